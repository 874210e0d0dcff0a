"""``iris-sagemaker with-server -- COMMAND``: run one command against a local server, then stop it.

The server for ``--root`` is started on a free loopback port (or, when one already runs for that root,
used as it is and left running). The command gets the server in its environment: ``AWS_ENDPOINT_URL``
and throwaway credentials for any boto3-based tool, the SageMaker SDK's config, and the Airflow
connection ``aws-sagemaker`` naming it. The server is stopped when the command ends, however it ends
(failure, Ctrl-C, SIGTERM); the exit status is the command's. ``make airflow-run`` is built on it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from iris_sagemaker.airflow_defs.config import conn_id
from iris_sagemaker.airflow_defs.connection import (
    connection_env_var,
    local_connection,
    running_server,
)
from iris_sagemaker.serve.process import client_env, start_server


def command_env(url: str, region: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """What the command is given to find the server (pure): boto3's variables, and the Airflow
    connection."""
    return {
        **client_env(url, region, extra),
        connection_env_var(conn_id()): json.dumps(local_connection(url, region)),
    }


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
    env = {**os.environ, **command_env(url, region, extra)}
    child: subprocess.Popen[bytes] | None = None
    terminated: list[int] = []

    def on_sigterm(*_: object) -> None:
        terminated.append(signal.SIGTERM)
        _forward(child, signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        child = subprocess.Popen(list(command), env=env)
        if terminated:  # SIGTERM arrived while it was starting
            _forward(child, signal.SIGTERM)
        while True:
            try:
                status = child.wait()
                break
            except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: wait for the command
                continue
        return 128 - status if status < 0 else status
    except FileNotFoundError as err:
        print(f"iris-sagemaker with-server: cannot run {command[0]!r}: {err.strerror}", file=sys.stderr)
        return 127
    finally:
        signal.signal(signal.SIGTERM, previous)
        if server is not None:
            server.stop()
            print("iris-sagemaker with-server: server stopped", flush=True)


def _forward(child: subprocess.Popen[bytes] | None, sig: int) -> None:
    if child is not None and child.poll() is None:
        child.send_signal(sig)
