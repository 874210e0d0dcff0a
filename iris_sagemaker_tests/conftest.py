from __future__ import annotations

import pytest


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
