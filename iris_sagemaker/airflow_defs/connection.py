"""The ``aws-sagemaker`` connection in local mode: the provider's operators reach the embedded engine
through ``iris-sagemaker serve``, exactly as they reach SageMaker through AWS.

Resolved when a task runs (never while a DAG file is parsed), in this order:

1. the Airflow connection, when the user defined one (metastore, ``AIRFLOW_CONN_AWS-SAGEMAKER``, a
   secrets backend): its ``endpoint_url`` names the server (``make airflow-run`` defines it so);
2. else the server already running for ``IRIS_SAGEMAKER_LOCAL_ROOT`` (its root lock names its URL);
3. else a server started for this process, on a free loopback port, and stopped when the process exits
   (and with it, should the process be killed): what ``airflow dags test`` by hand and the
   dagster-airflow job get without any setup.

In cases 2 and 3 the connection is defined for this process only (``AIRFLOW_CONN_*`` in its
environment), so every hook of the process (the operators', S3Hook's) sees the same server, and the
operators wait in the worker rather than defer: a triggerer process would not know the server (and in
case 3 the server stops with the task's process). Deferring needs case 1.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from iris_sagemaker.core.settings import Settings
from iris_sagemaker.serve.lockfile import running_server

LOCAL_CREDENTIALS = "local"  # the server accepts any credentials; these are placeholders, not secrets
_started: dict[Path, Any] = {}
_defined_here: dict[str, str] = {}  # AIRFLOW_CONN_* variable -> the value this process set
_lock = threading.Lock()


def connection_env_var(conn_id: str) -> str:
    """Where Airflow's environment backend looks for ``conn_id`` (the id's hyphens stay)."""
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def local_connection(endpoint_url: str, region: str) -> dict[str, Any]:
    """An ``aws`` connection (JSON form) sending every AWS hook to the local server."""
    return {
        "conn_type": "aws",
        "login": LOCAL_CREDENTIALS,
        "password": LOCAL_CREDENTIALS,
        "extra": {"endpoint_url": endpoint_url, "region_name": region},
    }


def is_defined(conn_id: str) -> bool:
    from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook

    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return False
    return True


class LocalServerError(RuntimeError):
    """No usable local server: the message says which one runs and what to do."""


def _wait_until_free(root: Path, timeout: float = 15.0) -> dict[str, Any] | None:
    """Wait for a server whose owner has exited to finish stopping; what still holds the root after
    ``timeout``, or None."""
    deadline = time.monotonic() + timeout
    running = running_server(root)
    while running is not None and time.monotonic() < deadline:
        time.sleep(0.1)
        running = running_server(root)
    return running


def local_server_url(settings: Settings, log: Any = None) -> str:
    """The server for ``settings.local_root``: the running one, else one started for this process."""
    root = settings.local_root.expanduser()
    with _lock:
        mine = _started.get(root)
        if mine is not None and mine.process.poll() is None:
            return mine.url
        running = running_server(root)
        owner = running.get("owner_pid") if running is not None else None
        if running is not None and owner is not None and owner != os.getpid():
            if psutil.pid_exists(owner):
                raise LocalServerError(
                    f"the iris-sagemaker serve at {running['url']} for {root} was started for another "
                    f"process (pid {owner}) and stops with it. For tasks in several processes at once, "
                    "run one server for them all (iris-sagemaker serve, or make serve), or define the "
                    "Airflow connection aws-sagemaker with its endpoint_url"
                )
            running = _wait_until_free(root)  # its owner exited: it is stopping
            if running is not None:
                raise LocalServerError(
                    f"the iris-sagemaker serve (pid {running.get('pid')}) at {running['url']} for {root} "
                    f"outlived the process it was started for (pid {owner}); stop it (kill "
                    f"{running.get('pid')}) and run the task again"
                )
        if running is not None:
            return str(running["url"])
        if importlib.util.find_spec("uvicorn") is None or importlib.util.find_spec("moto") is None:
            raise LocalServerError(
                "local mode reaches the engine through iris-sagemaker serve, which is not installed here: "
                "pip install 'iris-sagemaker[serve]' (the [airflow] extras include it), or set "
                "IRIS_SAGEMAKER_BACKEND=aws"
            )
        from iris_sagemaker.serve.process import start_server

        server = start_server(root, owned=True)
        _started[root] = server
        atexit.register(server.stop)
        if log is not None:
            log(f"started iris-sagemaker serve for {root} at {server.url} (it stops with this process)")
        return server.url


def stop_local_servers() -> None:
    """Stop the servers this process started (they also stop when it exits) and forget the connections
    defined for them."""
    with _lock:
        for server in _started.values():
            server.stop()
        _started.clear()
        for variable, value in _defined_here.items():
            if os.environ.get(variable) == value:
                del os.environ[variable]
        _defined_here.clear()


def ensure_connection(conn_id: str, settings: Settings, log: Any = None) -> bool:
    """Local mode: when Airflow has no connection ``conn_id``, define it for this process as the local
    server, and return True: then only this process knows the server, and a triggerer would not (the
    operators wait in the worker instead of deferring). aws mode, or a connection Airflow has: nothing,
    False (the connection, else boto3's own chain, as the provider does)."""
    if not settings.is_local:
        return False
    variable = connection_env_var(conn_id)
    ours = variable in _defined_here and os.environ.get(variable) == _defined_here[variable]
    if not ours and is_defined(conn_id):
        return False
    # Ours (an earlier task of this process, maybe for another root) or none: (re)resolve for this root.
    url = local_server_url(settings, log)
    value = json.dumps(local_connection(url, settings.region))
    os.environ[variable] = _defined_here[variable] = value
    if log is not None:
        log(f"no Airflow connection {conn_id!r}: using the local server at {url}")
    return True
