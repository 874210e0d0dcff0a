"""The ``aws-sagemaker`` connection in local mode (``airflow_defs.connection``): the user's connection
wins; else the server running for the root; else one started for this process and stopped with it.

Runs in .venv (Airflow 2.11) and .venv-airflow3 (Airflow 3.x); skipped where Airflow is absent.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from iris_sagemaker.core.settings import Settings
from iris_sagemaker_tests.airflow_support import aws_connection, require_airflow

require_airflow()

from iris_sagemaker.airflow_defs import connection  # noqa: E402
from iris_sagemaker.serve.lockfile import running_server  # noqa: E402
from iris_sagemaker.serve.process import start_server  # noqa: E402

pytestmark = [pytest.mark.airflow, pytest.mark.server]

VARIABLE = "AIRFLOW_CONN_AWS-SAGEMAKER"


def _settings(root: Path, backend: str = "local") -> Settings:
    env = {"IRIS_SAGEMAKER_LOCAL_ROOT": str(root), "IRIS_SAGEMAKER_BACKEND": backend}
    if backend == "aws":
        env.update(IRIS_SAGEMAKER_BUCKET="b-aws", IRIS_SAGEMAKER_ROLE_ARN="arn:aws:iam::123456789012:role/r")
    return Settings.from_env(env)


def _endpoint_url() -> str:
    return json.loads(os.environ[VARIABLE])["extra"]["endpoint_url"]


def test_a_defined_connection_is_used_as_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    defined = aws_connection("http://127.0.0.1:9", "us-east-2")
    monkeypatch.setenv(VARIABLE, defined)
    connection.ensure_connection("aws-sagemaker", _settings(tmp_path / "root"))
    assert os.environ[VARIABLE] == defined
    assert running_server(tmp_path / "root") is None  # nothing was started


def test_aws_mode_never_defines_a_connection(tmp_path: Path) -> None:
    connection.ensure_connection("aws-sagemaker", _settings(tmp_path / "root", "aws"))
    assert VARIABLE not in os.environ


def test_the_server_running_for_the_root_is_used(tmp_path: Path) -> None:
    root = tmp_path / "root"
    server = start_server(root)
    try:
        messages: list[str] = []
        connection.ensure_connection("aws-sagemaker", _settings(root), messages.append)
        assert _endpoint_url() == server.url
        assert running_server(root)["pid"] == server.process.pid  # no second server
        assert messages == [f"no Airflow connection 'aws-sagemaker': using the local server at {server.url}"]
    finally:
        server.stop()


@pytest.mark.slow
def test_without_a_server_one_is_started_for_this_process_and_stopped(tmp_path: Path) -> None:
    root, other = tmp_path / "root", tmp_path / "other-root"
    connection.ensure_connection("aws-sagemaker", _settings(root))
    running = running_server(root)
    assert running is not None and running["owner_pid"] == os.getpid()
    assert _endpoint_url() == running["url"]

    # Another root in the same process (a long-lived worker): the connection this process defined is
    # resolved again for it, never reused for the wrong root.
    connection.ensure_connection("aws-sagemaker", _settings(other))
    assert _endpoint_url() == running_server(other)["url"] != running["url"]

    connection.stop_local_servers()
    assert running_server(root) is None and connection.running_server(other) is None
    assert VARIABLE not in os.environ


OWNER = """
import sys, time
from pathlib import Path
from iris_sagemaker.serve.process import start_server
server = start_server(Path(sys.argv[1]), owned=True)
print(server.url, flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_another_processs_server_is_refused_then_dies_with_it(tmp_path: Path) -> None:
    """A server started for another (live) process is not borrowed: it would stop under us. Once that
    process is killed (-9), its server stops too, and the next task starts its own."""
    import signal
    import subprocess
    import sys

    root = tmp_path / "root"
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(root)], stdout=subprocess.PIPE, text=True
    )
    try:
        url = owner.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        with pytest.raises(connection.LocalServerError) as raised:
            connection.ensure_connection("aws-sagemaker", _settings(root))
        message = str(raised.value)
        assert f"{url} for {root}" in message and f"(pid {owner.pid})" in message
        assert "iris-sagemaker serve" in message and "endpoint_url" in message  # what to do
        assert VARIABLE not in os.environ

        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        connection.ensure_connection("aws-sagemaker", _settings(root))  # waits for it to stop, then starts
        assert _endpoint_url() != url
        assert running_server(root)["owner_pid"] == os.getpid()
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(10)
        connection.stop_local_servers()


def test_without_the_serve_stack_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = connection.importlib.util.find_spec
    monkeypatch.setattr(
        connection.importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a)
    )
    with pytest.raises(connection.LocalServerError, match=r"pip install 'iris-sagemaker\[serve\]'"):
        connection.ensure_connection("aws-sagemaker", _settings(tmp_path / "root"))
    assert running_server(tmp_path / "root") is None
