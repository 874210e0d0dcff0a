"""``iris-sagemaker with-server -- COMMAND`` (what ``make airflow-run`` runs): the command reaches a server
started for it, its exit status is passed on, and the server is stopped however the command ends."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from iris_sagemaker.airflow_defs.connection import running_server

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
