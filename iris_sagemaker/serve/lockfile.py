"""The server's root lock, ``ROOT/sagemaker/serve.lock``: taken and written by the server, read by clients.

One server per root: the lock is held (``flock``) for the server's lifetime and names its pid and URL, so a
second server on the same root refuses to start and says which one runs, and a client (the Airflow
connection, ``with-server``, the soak bench) finds the running server's URL. The lock goes with the
process, however it ends (kill -9 included).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .process import OWNER_ENV

LOCK_FILE = "serve.lock"


class ServeError(Exception):
    """Why the server cannot start (printed as is, exit status 1)."""


@contextlib.contextmanager
def root_lock(root: Path) -> Iterator[IO[str]]:
    """Hold the root's server lock, or raise ServeError naming the server that holds it."""
    folder = root / "sagemaker"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115 - held while serving
    except OSError as err:
        raise ServeError(f"cannot use --root {root}: {err.strerror} ({err.filename})") from None
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = _holder(handle.read())
            raise ServeError(
                f"another iris-sagemaker serve{holder} already serves --root {root}; stop it first, "
                "or give this one another --root"
            ) from None
        yield handle
    finally:
        handle.close()




def announce(handle: IO[str], url: str) -> None:
    """Write who holds the lock: the pid and URL a second server will name, and, for a server started for
    one process only (``IRIS_SAGEMAKER_SERVE_OWNER``), that process, whose exit stops it."""
    handle.seek(0)
    handle.truncate()
    info: dict[str, Any] = {"pid": os.getpid(), "url": url}
    owner = os.environ.get(OWNER_ENV, "").strip()
    if owner.isdigit():
        info["owner_pid"] = int(owner)
    handle.write(json.dumps(info))
    handle.flush()


def _holder(text: str) -> str:
    try:
        info: dict[str, Any] = json.loads(text)
        return f" (pid {int(info['pid'])}, {info['url']})"
    except (ValueError, KeyError, TypeError):
        return ""


def running_server(root: Path) -> dict[str, Any] | None:
    """What the ``iris-sagemaker serve`` holding ``root``'s lock wrote of itself (``url``, ``pid``, and
    ``owner_pid`` when it was started for one process only), or None when no server runs."""
    path = root.expanduser() / "sagemaker" / LOCK_FILE
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return None
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # held: a server runs
            try:
                info = json.loads(handle.read())
                return info if isinstance(info, dict) and info.get("url") else None
            except ValueError:
                return None  # starting: it has not written its URL yet
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return None
