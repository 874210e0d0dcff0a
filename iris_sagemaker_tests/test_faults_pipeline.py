"""kill -9 of the whole pipeline (`dagster asset materialize` and its step processes) while a job runs:
the job reads Failed, not InProgress; the killed run leaves no partial output and publishes nothing; the
next run succeeds and publishes its own objects."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iris_sagemaker.core import evaluation
from iris_sagemaker.core.run_objects import LATEST_KEY, RUNS_PREFIX
from iris_sagemaker.core.settings import DEFAULT_LOCAL_BUCKET, PREDICTIONS_KEY
from iris_sagemaker.core.storage import LocalObjectStore
from iris_sagemaker.local_sagemaker import LocalSageMakerClient

pytestmark = [pytest.mark.dagster, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
SLOW = "IRIS_SAGEMAKER_LOCAL_TEST_WORKER_DELAY"


def _materialize(env: dict[str, str]) -> subprocess.Popen[str]:
    dagster = str(Path(sys.executable).parent / "dagster")
    return subprocess.Popen(
        [dagster, "asset", "materialize", "-m", "iris_sagemaker", "--select", "*"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: the step processes die with it
    )


def _in_progress(client: LocalSageMakerClient, stage: str) -> str | None:
    if stage == "training":
        jobs = client.list_training_jobs()["TrainingJobSummaries"]
        return next((j["TrainingJobName"] for j in jobs if j["TrainingJobStatus"] == "InProgress"), None)
    jobs = client.list_transform_jobs()["TransformJobSummaries"]
    return next((j["TransformJobName"] for j in jobs if j["TransformJobStatus"] == "InProgress"), None)


@pytest.mark.parametrize("stage", ["training", "transform"])
def test_kill_9_during_a_job_fails_it_and_the_next_run_succeeds(
    tmp_path: Path, dagster_home: Path, stage: str
) -> None:
    root = tmp_path / "root"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "IRIS_SAGEMAKER_LOCAL_ROOT": str(root),
        "IRIS_SAGEMAKER_DEPLOY_ENDPOINT": "false",
    }
    client = LocalSageMakerClient(root)
    killed = _materialize({**env, SLOW: "2"})
    try:
        deadline = time.monotonic() + 180
        job = None
        while job is None and time.monotonic() < deadline and killed.poll() is None:
            time.sleep(0.1)
            job = _in_progress(client, stage)
        assert job is not None, f"no {stage} job started"
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait(30)
    finally:
        if killed.poll() is None:
            os.killpg(killed.pid, signal.SIGKILL)
            killed.wait(30)
    time.sleep(0.5)  # let the step processes' exits be seen
    if stage == "training":
        described = client.describe_training_job(TrainingJobName=job)
        status, reason = described["TrainingJobStatus"], described.get("FailureReason", "")
    else:
        described = client.describe_transform_job(TransformJobName=job)
        status, reason = described["TransformJobStatus"], described.get("FailureReason", "")
    assert status == "Failed" and "died before the job finished" in reason
    store = LocalObjectStore(root)
    assert not store.exists(DEFAULT_LOCAL_BUCKET, LATEST_KEY)  # the killed run published nothing
    assert not store.exists(DEFAULT_LOCAL_BUCKET, PREDICTIONS_KEY)
    leftovers = [k for k in store.list_keys(DEFAULT_LOCAL_BUCKET, RUNS_PREFIX) if k.endswith(".out")]
    assert leftovers == []  # no partial transform output

    rerun = _materialize(env)
    out, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, out[-3000:]
    latest = json.loads(store.get_bytes(DEFAULT_LOCAL_BUCKET, LATEST_KEY))
    assert all(source.startswith(f"{RUNS_PREFIX}{latest['run']}/") for source in latest["objects"].values())
    predictions = evaluation.parse_predictions(store.get_bytes(DEFAULT_LOCAL_BUCKET, PREDICTIONS_KEY))
    assert len(predictions) == 45
