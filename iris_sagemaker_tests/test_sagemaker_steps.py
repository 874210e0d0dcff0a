"""Start-or-find, wait and output checks, on the embedded engine (the same code drives boto3)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from iris_sagemaker.core import dataset, specs
from iris_sagemaker.core.settings import TRAIN_KEY, Settings
from iris_sagemaker.core.storage import LocalObjectStore
from iris_sagemaker.local_sagemaker import LocalSageMakerClient
from iris_sagemaker.steps import job_steps
from iris_sagemaker.steps.job_steps import SageMakerJobError, Waiting

FAST = Waiting(first=0.01, max_interval=0.1, timeout=60)


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"IRIS_SAGEMAKER_LOCAL_ROOT": str(tmp_path)})


@pytest.fixture()
def client(settings: Settings) -> LocalSageMakerClient:
    store = LocalObjectStore(settings.local_root)
    parts = dataset.split(dataset.parse_iris(dataset.read_source(None)[1]), seed=1)
    store.put_bytes(settings.bucket, TRAIN_KEY, dataset.to_sagemaker_csv(parts.train))
    return LocalSageMakerClient(settings.local_root, region=settings.region, store=store)


def test_a_retried_step_reuses_its_completed_job(client: LocalSageMakerClient, settings: Settings) -> None:
    logs: list[str] = []
    request = specs.training_job_request(settings, "train-iris-retry")
    first = job_steps.run_training_job(client, request, FAST, log=logs.append)
    second = job_steps.run_training_job(client, request, FAST, log=logs.append)
    assert first["TrainingJobArn"] == second["TrainingJobArn"]
    assert second["TrainingJobStatus"] == "Completed"
    assert any("already exists (a retry of this step)" in line for line in logs)
    assert len(client.list_training_jobs()["TrainingJobSummaries"]) == 1


def test_a_failed_job_fails_the_step_with_its_reason(
    client: LocalSageMakerClient, settings: Settings
) -> None:
    request = specs.training_job_request(settings, "train-iris-bad", {"k": "zero"})
    with pytest.raises(
        SageMakerJobError, match=r"training job train-iris-bad ended Failed: ClientError: .*k"
    ):
        job_steps.run_training_job(client, request, FAST, log=lambda _: None)
    # A retry finds the same failed job and reports the same reason instead of hiding it.
    with pytest.raises(SageMakerJobError, match="ended Failed: ClientError"):
        job_steps.run_training_job(client, request, FAST, log=lambda _: None)


def test_a_stopped_job_is_never_a_success(
    client: LocalSageMakerClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IRIS_SAGEMAKER_LOCAL_TEST_WORKER_DELAY", "0.2")  # the engine's hook: a slow worker
    request = specs.training_job_request(settings, "train-iris-stopped")
    client.create_training_job(**request)
    client.stop_training_job(TrainingJobName="train-iris-stopped")
    with pytest.raises(SageMakerJobError, match="training job train-iris-stopped ended Stopped"):
        job_steps.run_training_job(client, request, FAST, log=lambda _: None)


def test_waiting_gives_up_after_the_timeout_with_advice() -> None:
    describe = lambda: {"TrainingJobStatus": "InProgress"}  # noqa: E731
    with pytest.raises(SageMakerJobError, match=r"still InProgress after 0 s; it keeps running"):
        job_steps.wait_for_status(
            describe, "TrainingJobStatus", "training job", "slow", Waiting(0.01, 0.01, 0.02), lambda _: None
        )


def test_timeout_comes_from_max_runtime() -> None:
    waiting = Waiting().for_request({"StoppingCondition": {"MaxRuntimeInSeconds": 100}})
    assert waiting.timeout == 100 + job_steps.SETUP_ALLOWANCE_SECONDS
    assert Waiting(timeout=5).for_request({"StoppingCondition": {"MaxRuntimeInSeconds": 100}}).timeout == 5


def test_model_reuse_requires_the_same_artifact(client: LocalSageMakerClient, settings: Settings) -> None:
    job = job_steps.run_training_job(
        client, specs.training_job_request(settings, "train-iris-m"), FAST, log=lambda _: None
    )
    artifact = job["ModelArtifacts"]["S3ModelArtifacts"]
    request = specs.model_request(settings, "Iris-KNN-m", artifact)
    first = job_steps.ensure_model(client, request, log=lambda _: None)
    again = job_steps.ensure_model(client, request, log=lambda _: None)
    assert first["ModelArn"] == again["ModelArn"]
    other_artifact = artifact.replace("train-iris-m", "other")
    store = LocalObjectStore(settings.local_root)
    prefix = f"s3://{settings.bucket}/"
    store.put_bytes(
        settings.bucket,
        other_artifact.removeprefix(prefix),
        store.get_bytes(settings.bucket, artifact.removeprefix(prefix)),
    )
    other = specs.model_request(settings, "Iris-KNN-m", other_artifact)
    with pytest.raises(SageMakerJobError, match="already exists but serves"):
        job_steps.ensure_model(client, other, log=lambda _: None)


def _transform_description(started: datetime) -> dict:
    return {
        "TransformJobName": "test-knn-x",
        "TransformJobStatus": "Completed",
        "TransformStartTime": started,
    }


def test_missing_transform_output_is_an_error(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    with pytest.raises(
        SageMakerJobError, match=r"reported Completed but wrote no output at s3://b-1/out/x\.out"
    ):
        job_steps.read_transform_output(
            store, "b-1", "out/x.out", _transform_description(datetime.now(UTC))
        )


def test_stale_transform_output_is_an_error(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put_bytes("b-1", "out/x.out", b"{}")
    hour_ago = time.time() - 3600
    os.utime(store.path_for("b-1", "out/x.out"), (hour_ago, hour_ago))
    with pytest.raises(SageMakerJobError, match="is an older run's output"):
        job_steps.read_transform_output(
            store, "b-1", "out/x.out", _transform_description(datetime.now(UTC))
        )
    fresh = _transform_description(datetime.now(UTC) - timedelta(hours=2))
    assert job_steps.read_transform_output(store, "b-1", "out/x.out", fresh) == b"{}"


class _ScriptedClient:
    """A training job that reports the given statuses, one per describe."""

    def __init__(self, statuses: list[str]) -> None:
        self.statuses = statuses

    def create_training_job(self, **request: object) -> None:
        pass

    def describe_training_job(self, TrainingJobName: str) -> dict[str, str]:
        return {"TrainingJobName": TrainingJobName, "TrainingJobStatus": self.statuses.pop(0)}


def test_each_poll_logs_the_jobs_new_lines_and_status_change_as_one_message(settings: Settings) -> None:
    request = specs.training_job_request(settings, "train-iris-polls")
    client = _ScriptedClient(["InProgress", "InProgress", "InProgress", "Completed"])
    new_lines = [["[job] reading"], [], ["[job] index built"], ["[job] wrote model"]]
    logs: list[str] = []
    job_steps.run_training_job(
        client, request, FAST, log=logs.append, on_poll=lambda: new_lines.pop(0)
    )
    assert logs == [
        "created training job train-iris-polls",
        "[job] reading\ntraining job train-iris-polls: InProgress",
        # the second poll had no new line and no new status: nothing logged
        "[job] index built",
        "[job] wrote model\ntraining job train-iris-polls: Completed",
    ]
