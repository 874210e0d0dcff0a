"""Per-job progress logs: human-readable lines a job's worker appends as it goes ("reading s3://...",
"scored batch 3: 5000 rows", "wrote s3://.../test.csv.out"), the embedded engine's CloudWatch.

One file per job, ``ROOT/sagemaker/logs/<training-jobs|transform-jobs>/<name>.log`` (names lower-cased,
as job names are unique regardless of case). Each line is written with a single ``write`` to a file
opened for appending, so a reader in another thread or process sees whole lines, and a reader polling
with a byte offset (:func:`read_lines`) gets every line exactly once.
"""

from __future__ import annotations

import threading
from pathlib import Path

from .records import RecordStore

_MAX_READ = 1 << 20  # at most this many bytes per read_lines call


class JobLog:
    """Appends lines to one job's log file (opened lazily, created with its folder)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, message: str) -> None:
        text = " ".join(message.splitlines()) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(text)


def log_path(records: RecordStore, folder: str, name: str) -> Path:
    """Where the log of job ``name`` (of record kind ``folder``) lives; ValueError for a bad name."""
    record_path = records.path(folder, name)  # validates the name
    return records.base / "logs" / folder / f"{record_path.stem}.log"


def read_lines(path: Path, offset: int) -> tuple[list[str], int]:
    """Complete lines from byte ``offset`` on, and the offset after the last one returned."""
    offset = max(0, offset)
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read(_MAX_READ)
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        if len(data) < _MAX_READ:
            return [], offset
        end = len(data) - 1  # an overlong line: hand it over in pieces rather than never
    complete = data[: end + 1]
    lines = complete.decode("utf-8", errors="replace").splitlines()
    return lines, offset + len(complete)
