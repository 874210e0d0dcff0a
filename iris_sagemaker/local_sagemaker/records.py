"""Job and model records: one JSON file per resource under ``ROOT/sagemaker/<kind>/``.

Every write goes to a temporary file in the same folder and is renamed into place (a reader never sees
a partial record); creation links the temporary file to its final name, which fails if the name is
taken, so two processes can never both create the same job. Read-modify-write updates hold an
advisory lock on a per-record lock file, shared by threads and processes alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: single-writer only
    fcntl = None  # type: ignore[assignment]

TRAINING_JOBS = "training-jobs"
MODELS = "models"
TRANSFORM_JOBS = "transform-jobs"
ENDPOINT_CONFIGS = "endpoint-configs"
ENDPOINTS = "endpoints"

Record = dict[str, Any]
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


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

    def path(self, kind: str, name: str) -> Path:
        key = name.lower()  # SageMaker names are unique regardless of case (ARNs are lowercase)
        if not _NAME_RE.match(key):
            raise ValueError(f"{name!r} cannot name a record")
        return self.base / kind / f"{key}.json"

    def create(self, kind: str, name: str, record: Record) -> bool:
        """Write a new record; False (and nothing written) if one with this name exists."""
        path = self.path(kind, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._write_temp(path, record)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        return True

    def read(self, kind: str, name: str) -> Record | None:
        path = self.path(kind, name)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        record: Record = json.loads(text)
        return record

    def update(self, kind: str, name: str, mutate: Callable[[Record], bool]) -> Record | None:
        """Apply ``mutate`` under the record's lock; it returns True to save its changes."""
        with self._locked(kind, name):
            record = self.read(kind, name)
            if record is None:
                return None
            if mutate(record):
                self._replace(self.path(kind, name), record)
            return record

    def delete(self, kind: str, name: str) -> bool:
        with self._locked(kind, name):
            try:
                self.path(kind, name).unlink()
            except FileNotFoundError:
                return False
            return True

    def list(self, kind: str) -> list[Record]:
        folder = self.base / kind
        if not folder.is_dir():
            return []
        records = []
        for path in sorted(folder.glob("*.json")):
            with contextlib.suppress(FileNotFoundError):  # deleted while listing
                records.append(json.loads(path.read_text(encoding="utf-8")))
        return records

    @contextlib.contextmanager
    def _locked(self, kind: str, name: str) -> Iterator[None]:
        path = self.path(kind, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = path.with_name(f".{path.stem}.lock")
        with open(lock_path, "a+b") as fh:
            if fcntl is not None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fcntl is not None:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _replace(self, path: Path, record: Record) -> None:
        tmp = self._write_temp(path, record)
        try:
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    @staticmethod
    def _write_temp(path: Path, record: Record) -> str:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(record, fh, indent=1, sort_keys=True, default=str)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return tmp
