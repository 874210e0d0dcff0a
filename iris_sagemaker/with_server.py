"""``iris-sagemaker with-server -- COMMAND``: run one command against a local server, then stop it.

The server for ``--root`` is started on a free loopback port (or, when one already runs for that root,
used as it is and left running). The command gets the server in its environment: ``AWS_ENDPOINT_URL``
and throwaway credentials for any boto3-based tool, the SageMaker SDK's config, and the Airflow
connection ``aws-sagemaker`` naming it: as ``AIRFLOW_CONN_AWS-SAGEMAKER`` and, since a shell drops a
variable whose name has a hyphen, also in a file that Airflow's ``LocalFilesystemBackend`` reads
(``AIRFLOW__SECRETS__BACKEND``), so ``with-server -- sh -c 'airflow ...'`` finds it too. The server is
stopped when the command ends, however it ends (failure, Ctrl-C, SIGTERM); the exit status is the
command's (130 after Ctrl-C). ``make airflow-run`` is built on it.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from iris_sagemaker.airflow_defs.config import conn_id
from iris_sagemaker.airflow_defs.connection import (
    connection_env_var,
    local_connection,
)
from iris_sagemaker.serve.lockfile import running_server
from iris_sagemaker.serve.process import client_env, start_server

INTERRUPTED = 130  # 128 + SIGINT: what a shell reports for a command stopped by Ctrl-C
INTERRUPT_GRACE = 2.0  # seconds the command has to stop on a Ctrl-C it got too, before it is passed on


SECRETS_BACKEND = "airflow.secrets.local_filesystem.LocalFilesystemBackend"


def command_env(
    url: str, region: str, extra: dict[str, str] | None = None, connections_file: Path | None = None
) -> dict[str, str]:
    """What the command is given to find the server (pure): boto3's variables, and the Airflow
    connection: as ``AIRFLOW_CONN_<ID>`` and, given ``connections_file``, as a secrets backend reading
    that file (variable names a shell keeps)."""
    env = {
        **client_env(url, region, extra),
        connection_env_var(conn_id()): json.dumps(local_connection(url, region)),
    }
    if connections_file is not None:
        env["AIRFLOW__SECRETS__BACKEND"] = SECRETS_BACKEND
        env["AIRFLOW__SECRETS__BACKEND_KWARGS"] = json.dumps({"connections_file_path": str(connections_file)})
    return env


def has_secrets_backend(env: Mapping[str, str]) -> bool:
    """Whether the user configured an Airflow secrets backend (environment, or ``airflow.cfg``): then it
    is left alone, and the command gets the connection as ``AIRFLOW_CONN_<ID>`` only."""
    if env.get("AIRFLOW__SECRETS__BACKEND", "").strip():
        return True
    home = env.get("AIRFLOW_HOME") or "~/airflow"
    path = Path(env.get("AIRFLOW_CONFIG") or Path(home) / "airflow.cfg").expanduser()
    config = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        config.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return False
    return bool(config.get("secrets", "backend", fallback="").strip())


@contextlib.contextmanager
def connections_file(url: str, region: str) -> Iterator[Path | None]:
    """A file holding the connection for Airflow's ``LocalFilesystemBackend`` while the command runs
    (None when the user has a secrets backend of their own)."""
    if has_secrets_backend(os.environ):
        yield None
        return
    fd, name = tempfile.mkstemp(prefix="iris-sagemaker-connections-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({conn_id(): local_connection(url, region)}, handle)
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def run_with_server(root: Path, region: str, command: Sequence[str]) -> int:
    """Run ``command`` with a server for ``root``; returns its exit status (128+N when killed by N)."""
    if not command:
        print("iris-sagemaker with-server: no command given (with-server -- COMMAND ...)", file=sys.stderr)
        return 2
    root = root.expanduser().resolve()
    running = running_server(root)
    server = None
    if running is not None and running.get("owner_pid") is None:
        url, extra = str(running["url"]), {}
        print(f"iris-sagemaker with-server: using the server already running for {root} at {url}", flush=True)
    elif running is not None:
        print(
            f"iris-sagemaker with-server: {root} is served by a server started for another process (pid "
            f"{running['owner_pid']}, {running['url']}); wait for it to finish, or run one shared server "
            "(iris-sagemaker serve) and use that",
            file=sys.stderr,
        )
        return 1
    else:
        try:
            server = start_server(root, {"AWS_REGION": region}, owned=True)
        except RuntimeError as err:
            print(f"iris-sagemaker with-server: {err}", file=sys.stderr)
            return 1
        url, extra = server.url, dict(server.exports)
        print(f"iris-sagemaker with-server: serving {root} at {url} for: {' '.join(command)}", flush=True)
    signals: list[int] = []  # SIGINT / SIGTERM received while the command ran
    try:
        with connections_file(url, region) as conn_file:
            env = {**os.environ, **command_env(url, region, extra, conn_file)}
            return _run(list(command), env, signals)
    except KeyboardInterrupt:  # Ctrl-C before the command started
        signals.append(signal.SIGINT)
        return INTERRUPTED
    finally:
        if server is not None:
            server.stop()
            said = "interrupted, server stopped" if signal.SIGINT in signals else "server stopped"
            print(f"iris-sagemaker with-server: {said}", flush=True)


def _run(command: list[str], env: dict[str, str], signals: list[int]) -> int:
    """Run ``command`` to its end and return its status (130 when Ctrl-C stopped it). SIGTERM is passed
    on at once; SIGINT (Ctrl-C in a terminal reaches the whole process group, the command included) is
    given ``INTERRUPT_GRACE`` seconds to stop the command on its own, then passed on (``kill -INT``
    reaches with-server alone). Handlers, not KeyboardInterrupt: an exception inside ``Popen.wait`` can
    lose the command's exit status."""
    child: subprocess.Popen[bytes] | None = None

    def on_signal(signum: int, _: object) -> None:
        if signum == signal.SIGTERM:
            _forward(child, signal.SIGTERM)
        elif signal.SIGINT not in signals:
            timer = threading.Timer(INTERRUPT_GRACE, lambda: _forward(child, signal.SIGINT))
            timer.daemon = True
            timer.start()
        signals.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if signals:  # Ctrl-C or SIGTERM before the command started: do not start it
            return INTERRUPTED if signal.SIGINT in signals else 128 + signal.SIGTERM
        child = subprocess.Popen(command, env=env)
        if signal.SIGTERM in signals:  # it arrived while the command was starting
            _forward(child, signal.SIGTERM)
        status = child.wait()
    except FileNotFoundError as err:
        print(f"iris-sagemaker with-server: cannot run {command[0]!r}: {err.strerror}", file=sys.stderr)
        return 127
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if signal.SIGINT in signals and status != 0:
        return INTERRUPTED
    return 128 - status if status < 0 else status


def _forward(child: subprocess.Popen[bytes] | None, sig: int) -> None:
    if child is not None and child.poll() is None:
        child.send_signal(sig)
