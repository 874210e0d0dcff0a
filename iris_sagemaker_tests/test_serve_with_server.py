"""``iris-sagemaker with-server -- COMMAND`` (what ``make airflow-run`` runs): the command reaches a server
started for it, its exit status is passed on, and the server is stopped however the command ends."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iris_sagemaker import with_server
from iris_sagemaker.serve.lockfile import running_server

pytestmark = [pytest.mark.server, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
WITH_SERVER = [sys.executable, "-m", "iris_sagemaker.cli", "with-server"]

PROBE = """
import json, os, boto3
conn = json.loads(os.environ["AIRFLOW_CONN_AWS-SAGEMAKER"])
s3 = boto3.client("s3", region_name="us-east-2")  # AWS_ENDPOINT_URL and the credentials: from with-server
s3.create_bucket(Bucket="probe", CreateBucketConfiguration={"LocationConstraint": "us-east-2"})
print(json.dumps({"url": os.environ["AWS_ENDPOINT_URL"], "conn": conn["extra"]["endpoint_url"]}))
"""


def _run(root: Path, *command: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*WITH_SERVER, "--root", str(root), "--", *command],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_command_reaches_the_server_through_boto3_and_the_airflow_connection(tmp_path: Path) -> None:
    root = tmp_path / "root"
    done = _run(root, sys.executable, "-c", PROBE)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-2])  # then the "server stopped" line
    assert seen["url"] == seen["conn"] and seen["url"].startswith("http://127.0.0.1:")
    assert (root / "s3" / "probe").is_dir()  # the bucket is a folder of the root, as the local backend's
    assert done.stdout.strip().endswith("iris-sagemaker with-server: server stopped")
    assert running_server(root) is None


def test_a_failing_command_passes_its_status_on_and_the_server_stops(tmp_path: Path) -> None:
    root = tmp_path / "root"
    done = _run(root, sys.executable, "-c", "import sys; sys.exit(3)")
    assert done.returncode == 3
    assert "server stopped" in done.stdout and running_server(root) is None


def test_a_missing_command_or_none_is_a_clear_error(tmp_path: Path) -> None:
    missing = _run(tmp_path / "root", "no-such-command-here")
    assert missing.returncode == 127
    assert "cannot run 'no-such-command-here'" in missing.stderr
    assert running_server(tmp_path / "root") is None
    empty = subprocess.run([*WITH_SERVER, "--root", str(tmp_path / "r2")], capture_output=True, text=True)
    assert empty.returncode == 2 and "no command given" in empty.stderr


def test_sigterm_stops_the_command_and_the_server(tmp_path: Path) -> None:
    root = tmp_path / "root"
    wrapper = subprocess.Popen(
        [*WITH_SERVER, "--root", str(root), "--", "sleep", "60"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wrapper.stdout is not None
        assert "serving" in wrapper.stdout.readline()  # the server is up, the command started
        time.sleep(0.5)
        wrapper.send_signal(signal.SIGTERM)
        assert wrapper.wait(30) == 128 + signal.SIGTERM
        assert running_server(root) is None
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
            wrapper.wait(10)


@pytest.mark.parametrize("to_group", [True, False], ids=["ctrl-c", "kill-int"])
def test_ctrl_c_is_a_clean_stop_one_line_exit_130_and_no_traceback(tmp_path: Path, to_group: bool) -> None:
    """Ctrl-C in a terminal signals the whole process group (with-server, the command, the server);
    ``kill -INT`` signals with-server alone, which passes it on to the command."""
    root = tmp_path / "root"
    wrapper = subprocess.Popen(
        [*WITH_SERVER, "--root", str(root), "--", "sleep", "60"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert wrapper.stdout is not None
        assert "serving" in wrapper.stdout.readline()
        time.sleep(0.5)
        if to_group:
            os.killpg(wrapper.pid, signal.SIGINT)
        else:
            wrapper.send_signal(signal.SIGINT)
        out, err = wrapper.communicate(timeout=30)
    finally:
        if wrapper.poll() is None:
            os.killpg(wrapper.pid, signal.SIGKILL)
            wrapper.wait(10)
    assert wrapper.returncode == 130, (out, err)
    assert out.splitlines() == ["iris-sagemaker with-server: interrupted, server stopped"]
    assert "Traceback" not in err and err == ""
    assert running_server(root) is None


SHELL_PROBE = """
import json, os
from airflow.providers.common.compat.sdk import BaseHook
conn = BaseHook.get_connection("aws-sagemaker")
print(json.dumps({"url": os.environ["AWS_ENDPOINT_URL"], "conn": conn.extra_dejson["endpoint_url"]}))
"""


@pytest.mark.skipif(
    importlib.util.find_spec("airflow") is None, reason="needs Airflow (pip install '.[airflow]')"
)
def test_the_airflow_connection_survives_a_shell(tmp_path: Path) -> None:
    """``sh`` (dash) drops ``AIRFLOW_CONN_AWS-SAGEMAKER`` (a hyphen is not valid in a shell variable's
    name): Airflow still finds the connection, through the secrets backend with-server names."""
    probe = tmp_path / "probe.py"
    probe.write_text(SHELL_PROBE)
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "TMPDIR": str(tmp_path / "tmp")}
    done = subprocess.run(
        [*WITH_SERVER, "--root", str(tmp_path / "root"), "--", "sh", "-c", f"{sys.executable} {probe}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-2])
    assert seen["url"] == seen["conn"]
    assert not list(
        Path(os.environ.get("TMPDIR", "/tmp")).glob(f"iris-sagemaker-connections-*{os.getpid()}*")
    )


def test_a_secrets_backend_of_the_users_own_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND", "my.vault.Backend")
    with with_server.connections_file("http://127.0.0.1:1", "us-east-2") as path:
        assert path is None
    monkeypatch.delenv("AIRFLOW__SECRETS__BACKEND")
    with with_server.connections_file("http://127.0.0.1:1", "us-east-2") as path:
        assert path is not None
        assert json.loads(path.read_text())["aws-sagemaker"]["extra"]["endpoint_url"] == "http://127.0.0.1:1"
        env = with_server.command_env("http://127.0.0.1:1", "us-east-2", connections_file=path)
        assert json.loads(env["AIRFLOW__SECRETS__BACKEND_KWARGS"]) == {"connections_file_path": str(path)}
    assert not path.exists()
