"""Job and model records: one JSON file per resource under ``ROOT/sagemaker/<kind>/``.

Every write goes to a temporary file in the same folder and is renamed into place (a reader never sees
a partial record); creation links the temporary file to its final name, which fails if the name is
taken, so two processes can never both create the same job. Read-modify-write updates hold an
advisory lock on a per-record lock file, shared by threads and processes alike.

A full disk: every write names the record it meant (:class:`~iris_sagemaker.core.storage.DiskFull`). A job's
last write (its final state) must still land when the disk is full, and a new temporary file needs new
blocks. So every record file ends with :data:`RESERVE_BYTES` of blank padding (JSON ignores trailing
whitespace): ``update(..., in_place_fallback=True)``, when the temporary file cannot be written, overwrites
the record file in place, which needs no new blocks while the new text fits in the file's current size.
Such an overwrite is not atomic, so a reader that finds a torn record reads it again under the lock the
writer holds.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from iris_sagemaker.core.storage import DiskFull, naming_disk_full

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: single-writer only
    fcntl = None  # type: ignore[assignment]

TRAINING_JOBS = "training-jobs"
MODELS = "models"
TRANSFORM_JOBS = "transform-jobs"
ENDPOINT_CONFIGS = "endpoint-configs"
ENDPOINTS = "endpoints"
TUNING_JOBS = "hyper-parameter-tuning-jobs"

Record = dict[str, Any]
# Room for what a job's final write adds (FailureReason, up to 1024 characters in SageMaker, end times,
# the closing transition, training seconds): the in-place fallback fits in it.
RESERVE_BYTES = 2048
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_SETTLED_NS = 250_000_000  # a record file older than this (ns) is reused by list() while its stat holds


def now() -> datetime:
    return datetime.now(UTC)


def to_json_time(value: datetime) -> str:
    return value.isoformat()


def from_json_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


class RecordStore:
    """JSON records of one SageMaker "account and region" rooted at ``root/sagemaker``."""

    def __init__(self, root: Path) -> None:
        self.base = root / "sagemaker"
        # kind -> file name -> (the file's signature when parsed, the record): what list() reuses
        self._parsed: dict[str, dict[str, tuple[tuple[int, int, int, int] | None, Record]]] = {}

    def path(self, kind: str, name: str) -> Path:
        key = name.lower()  # SageMaker names are unique regardless of case (ARNs are lowercase)
        if not _NAME_RE.match(key):
            raise ValueError(f"{name!r} cannot name a record")
        return self.base / kind / f"{key}.json"

    def create(self, kind: str, name: str, record: Record) -> bool:
        """Write a new record; False (and nothing written) if one with this name exists."""
        path = self.path(kind, name)
        with naming_disk_full(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._write_temp(path, record)
        try:
            with naming_disk_full(path):
                os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        return True

    def read(self, kind: str, name: str) -> Record | None:
        path = self.path(kind, name)
        try:
            return self._load(path, kind, name)
        except FileNotFoundError:
            return None

    def update(
        self, kind: str, name: str, mutate: Callable[[Record], bool], in_place_fallback: bool = False
    ) -> Record | None:
        """Apply ``mutate`` under the record's lock; it returns True to save its changes.

        ``in_place_fallback``: when the disk is too full for the temporary file, overwrite the record in
        place (see the module docstring); for final states, which must land. DiskFull if neither fits.
        """
        path = self.path(kind, name)
        with self._locked(kind, name):
            try:  # no torn record under the lock (and no second lock: flock would wait for this one)
                record: Record = json.loads(path.read_bytes())
            except FileNotFoundError:
                return None
            if mutate(record):
                self._save(path, record, in_place_fallback)
            return record

    def delete(self, kind: str, name: str) -> bool:
        with self._locked(kind, name):
            try:
                self.path(kind, name).unlink()
            except FileNotFoundError:
                return False
            return True

    def list(self, kind: str) -> list[Record]:
        """Every record of ``kind``, by name. Read-only: a record is parsed again only when its file
        changed (a new inode, size or mtime; every write replaces the file), so a listing costs a ``stat``
        per record and the records returned may be the ones an earlier call returned."""
        folder = self.base / kind
        try:
            with os.scandir(folder) as scan:
                entries = sorted((e for e in scan if e.name.endswith(".json")), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return []
        cache = self._parsed.setdefault(kind, {})
        records, seen = [], set()
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                status = entry.stat()
                signature = (status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)
                cached = cache.get(entry.name)
                if cached is None or cached[0] != signature:
                    record = self._load(Path(entry.path), kind, entry.name[: -len(".json")])
                    # A file written in the last moments is parsed again next time: file times are
                    # coarse (a few ms), and an inode is reused, so a second write of the same size
                    # within that time could keep the signature.
                    settled = status.st_mtime_ns < time.time_ns() - _SETTLED_NS
                    cached = (signature if settled else None, record)
                    cache[entry.name] = cached
            except FileNotFoundError:  # deleted while listing
                continue
            seen.add(entry.name)
            records.append(cached[1])
        for gone in set(cache) - seen:
            cache.pop(gone, None)
        return records

    def _load(self, path: Path, kind: str, name: str) -> Record:
        """The record in ``path``; a torn one (an in-place overwrite under way) is read again under the
        writer's lock, so it is whole. Never call it holding that lock."""
        try:
            record: Record = json.loads(path.read_bytes())
        except json.JSONDecodeError:
            with self._locked(kind, name):
                record = json.loads(path.read_bytes())
        return record

    @contextlib.contextmanager
    def _locked(self, kind: str, name: str) -> Iterator[None]:
        path = self.path(kind, name)
        lock_path = path.with_name(f".{path.stem}.lock")
        with naming_disk_full(path):  # a new lock file is empty: it needs an inode, not blocks
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(lock_path, "a+b")  # noqa: SIM115 - closed by the with below
        with fh:
            if fcntl is not None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fcntl is not None:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _save(self, path: Path, record: Record, in_place_fallback: bool) -> None:
        try:
            self._replace(path, record)
        except DiskFull:
            if not in_place_fallback:
                raise
            self._overwrite_in_place(path, record)

    def _replace(self, path: Path, record: Record) -> None:
        with naming_disk_full(path):
            tmp = self._write_temp(path, record)
        try:
            with naming_disk_full(path):
                os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    @staticmethod
    def _overwrite_in_place(path: Path, record: Record) -> None:
        """Rewrite ``path`` over its own blocks (caller holds the lock): DiskFull, with the file untouched,
        if the record no longer fits in the file's size. Blocks that are already allocated need no free
        space on ext4, xfs or tmpfs (copy-on-write file systems such as btrfs may still refuse)."""
        data = _encode(record)
        with naming_disk_full(path), open(path, "r+b") as fh:
            if len(data) > os.fstat(fh.fileno()).st_size:
                raise DiskFull(path)
            fh.write(data)
            fh.truncate()
            fh.flush()
            os.fsync(fh.fileno())

    @staticmethod
    def _write_temp(path: Path, record: Record) -> str:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(_encode(record) + b"\n" + b" " * RESERVE_BYTES)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return tmp


def _encode(record: Record) -> bytes:
    return json.dumps(record, indent=1, sort_keys=True, default=str).encode("utf-8")
