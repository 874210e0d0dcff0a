from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from iris_sagemaker.local_sagemaker.testing import Lab


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Tests never read the developer's settings or touch ~/.iris-sagemaker, and never reach AWS."""
    import os

    for name in list(os.environ):
        if name.startswith(("IRIS_SAGEMAKER_", "AWS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("IRIS_SAGEMAKER_LOCAL_ROOT", str(tmp_path / "local-root"))
    monkeypatch.setenv("IRIS_SAGEMAKER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture(autouse=True)
def _no_connection_left_behind() -> object:
    """The Airflow tasks define ``AIRFLOW_CONN_*`` for their process when no connection exists (local mode),
    and start a server for it: a test that runs them in-process stops that server and must not hand the
    connection to the next test's subprocesses."""
    import os
    import sys

    before = {name for name in os.environ if name.startswith("AIRFLOW_CONN_")}
    yield
    connection = sys.modules.get("iris_sagemaker.airflow_defs.connection")
    if connection is not None:
        connection.stop_local_servers()
    for name in [n for n in os.environ if n.startswith("AIRFLOW_CONN_") and n not in before]:
        del os.environ[name]


# ---- Fixtures several modules share (a module may define its own under the same name to change it) ----


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    """The embedded engine on a fresh root (``local_sagemaker.testing.Lab``): a client, a bucket, helpers."""
    from iris_sagemaker.local_sagemaker.testing import Lab

    return Lab(tmp_path)


@pytest.fixture
def dagster_home(tmp_path: Path) -> Path:
    """A new, empty DAGSTER_HOME with telemetry off, for a ``dagster`` CLI run in a subprocess."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return home


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One AIRFLOW_HOME with a migrated SQLite metadata database, shared by the module's ``airflow`` runs."""
    from iris_sagemaker_tests.airflow_support import migrate_airflow_db

    home = tmp_path_factory.mktemp("airflow-home")
    migrate_airflow_db(home)
    return home


@pytest.fixture
def moto_endpoint() -> Iterator[str]:
    """moto's server on a free port of 127.0.0.1, its state reset (moto keeps one state per process)."""
    import requests
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        requests.post(f"{endpoint}/moto-api/reset", timeout=10)
        yield endpoint
    finally:
        server.stop()
