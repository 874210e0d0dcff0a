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
