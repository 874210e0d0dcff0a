"""Per-job and per-endpoint progress logs: human-readable lines a worker appends as it goes ("reading
s3://...", "scored batch 3: 5000 rows", "wrote s3://.../test.csv.out"), the embedded engine's CloudWatch.

One file per resource, ``ROOT/sagemaker/logs/<training-jobs|transform-jobs|endpoints>/<name>.log``
(names lower-cased, as SageMaker names are unique regardless of case). Each line is
``<epoch milliseconds>\\t<message>``, written with a single ``write`` to a file opened for appending, so a
reader in another thread or process sees whole lines, and a reader polling with a byte offset
(:func:`read_lines`, :func:`read_events`) gets every line exactly once. A line without the time prefix
(written by hand, or by an older version) is read whole, stamped with the file's modification time.
When the disk fills part-way through a line, the part written is cut off again (the next line must not
continue it) and :class:`~iris_sagemaker.core.storage.DiskFull` names the log.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from iris_sagemaker.core.storage import naming_disk_full

from .records import RecordStore

_MAX_READ = 1 << 20  # at most this many bytes per read call


@dataclass(frozen=True)
class LogEvent:
    timestamp_ms: int
    message: str


class JobLog:
    """Appends lines to one log file (opened lazily, created with its folder)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, message: str) -> None:
        text = f"{time.time_ns() // 1_000_000}\t" + " ".join(message.splitlines()) + "\n"
        with self._lock, naming_disk_full(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                _append_whole(fd, text.encode("utf-8"))
            finally:
                os.close(fd)


def _append_whole(fd: int, data: bytes) -> None:
    """Append ``data`` to ``fd`` (opened O_APPEND); if a write fails after part of it landed (a full
    disk), truncate that part away again. This assumes nobody appended in between, which holds for one
    writer per log (a job's worker, an endpoint's loader)."""
    written = 0
    try:
        while written < len(data):
            written += os.write(fd, data[written:])
    except OSError:
        if written:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, os.fstat(fd).st_size - written)
        raise


def log_path(records: RecordStore, folder: str, name: str) -> Path:
    """Where the log of resource ``name`` (of record kind ``folder``) lives; ValueError for a bad name."""
    record_path = records.path(folder, name)  # validates the name
    return records.base / "logs" / folder / f"{record_path.stem}.log"


def read_events(path: str | os.PathLike[str], offset: int) -> tuple[list[LogEvent], int]:
    """Complete lines from byte ``offset`` on, as events, and the offset after the last one returned."""
    offset = max(0, offset)
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read(_MAX_READ)
            fallback_ms = os.fstat(fh.fileno()).st_mtime_ns // 1_000_000
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        if len(data) < _MAX_READ:
            return [], offset
        end = len(data) - 1  # an overlong line: hand it over in pieces rather than never
    complete = data[: end + 1]
    lines = complete.decode("utf-8", errors="replace").splitlines()
    return [_event(line, fallback_ms) for line in lines], offset + len(complete)


def read_lines(path: Path, offset: int) -> tuple[list[str], int]:
    """The messages of :func:`read_events`."""
    events, offset = read_events(path, offset)
    return [event.message for event in events], offset


def _event(line: str, fallback_ms: int) -> LogEvent:
    stamp, tab, message = line.partition("\t")
    if tab and stamp.isdigit():
        return LogEvent(int(stamp), message)
    return LogEvent(fallback_ms, line)
