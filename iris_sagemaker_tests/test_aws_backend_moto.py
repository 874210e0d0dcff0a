"""The asset graph on the aws backend, against moto's server on 127.0.0.1 (S3 and SageMaker over HTTP).

moto records SageMaker calls but runs no algorithm and writes no artifact: these tests check what
SageMaker is asked to do, where the data lands, and that a missing output is reported, never swallowed.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

import boto3
import pandas as pd
import pytest
from dagster import materialize

from iris_sagemaker.core import run_objects, specs
from iris_sagemaker.core.settings import Settings
from iris_sagemaker.dagster_defs.code_location import build_definitions
from iris_sagemaker.dagster_defs.resources import IrisS3IOManager, SageMakerResource

pytestmark = [pytest.mark.dagster, pytest.mark.server, pytest.mark.slow]

BUCKET = "tutorial-bucket"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
UP_TO_MODEL = ["raw_iris", "train_csv", "test_csv", "knn_tuning_job", "knn_training_job", "knn_model"]


@pytest.fixture(autouse=True)
def _aws_backend_on_moto(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test here runs the aws backend against moto's server (conftest's ``moto_endpoint``)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_REGION", "us-east-2")
    monkeypatch.setenv("IRIS_SAGEMAKER_BACKEND", "aws")
    monkeypatch.setenv("IRIS_SAGEMAKER_BUCKET", BUCKET)
    monkeypatch.setenv("IRIS_SAGEMAKER_ROLE_ARN", ROLE)


@pytest.fixture()
def s3(moto_endpoint: str) -> Any:
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-2")
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-east-2"})
    return client


def _materialize(selection: list[str] | None = None, resource: SageMakerResource | None = None):
    defs = build_definitions()
    backend = resource or SageMakerResource()
    resources = {"sagemaker": backend, "io_manager": IrisS3IOManager(backend=backend)}
    assets = list(defs.assets)
    return materialize(assets, resources=resources, selection=selection, raise_on_error=False)


def _failure_message(result) -> str:
    """Errors of failed steps and of resources that failed to initialise."""
    errors = []
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None)
        if error is not None:
            errors.append(str(error))
    return "\n".join(errors)


def test_sagemaker_receives_the_tutorial_requests(s3: Any, moto_endpoint: str) -> None:
    result = _materialize(UP_TO_MODEL)
    assert result.success, _failure_message(result)

    # The run's own folder (run_objects); the tutorial's keys are published only after scoring.
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    run = result.run_id.replace("-", "")
    own = run_objects.run_keys(run)
    assert {own.train, own.test, own.labels} <= keys
    assert "iris/processed-input-data/train.csv" not in keys
    train = pd.read_csv(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=own.train)["Body"].read()), header=None)
    assert train.shape == (105, 5)

    sagemaker = boto3.client("sagemaker", endpoint_url=moto_endpoint, region_name="us-east-2")
    job = result.output_for_node("knn_training_job")
    seen = sagemaker.describe_training_job(TrainingJobName=job["TrainingJobName"])
    expected = specs.training_job_request(Settings.from_env(), job["TrainingJobName"], train_key=own.train)
    assert (
        seen["HyperParameters"]
        == expected["HyperParameters"]
        == {
            "predictor_type": "classifier",
            "feature_dim": "4",
            "k": "3",
            "sample_size": "150",
        }
    )
    assert (
        seen["AlgorithmSpecification"]["TrainingImage"]
        == "404615174143.dkr.ecr.us-east-2.amazonaws.com/knn:1"
    )
    assert seen["InputDataConfig"] == expected["InputDataConfig"]
    assert seen["OutputDataConfig"]["S3OutputPath"] == f"s3://{BUCKET}/iris/results"
    assert seen["ResourceConfig"] == expected["ResourceConfig"]
    assert seen["RoleArn"] == ROLE

    model = result.output_for_node("knn_model")
    seen_model = sagemaker.describe_model(ModelName=model["ModelName"])
    assert seen_model["PrimaryContainer"]["ModelDataUrl"] == (
        f"s3://{BUCKET}/iris/results/{job['TrainingJobName']}/output/model.tar.gz"
    )
    assert seen_model["PrimaryContainer"]["Image"] == expected["AlgorithmSpecification"]["TrainingImage"]
    assert seen_model["ExecutionRoleArn"] == ROLE


def test_completed_transform_without_output_fails_the_asset(s3: Any) -> None:
    result = _materialize()
    assert not result.success
    message = _failure_message(result)
    run = result.run_id.replace("-", "")
    assert (
        f"reported Completed but wrote no output at s3://tutorial-bucket/iris/runs/{run}/results/test.csv.out"
        in message
    )


def test_missing_bucket_is_reported_before_any_job(moto_endpoint: str) -> None:
    result = _materialize(UP_TO_MODEL)
    assert not result.success
    message = _failure_message(result)
    assert "bucket 'tutorial-bucket' does not exist" in message
    sagemaker = boto3.client("sagemaker", endpoint_url=moto_endpoint, region_name="us-east-2")
    assert sagemaker.list_training_jobs()["TrainingJobSummaries"] == []


class _SageMakerWritesOutput:
    """moto's SageMaker plus what moto does not do: write the transform's ``.out`` (all correct)."""

    def __init__(self, client: Any, s3: Any) -> None:
        self._client = client
        self._s3 = s3

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def create_transform_job(self, **request: Any) -> Any:
        response = self._client.create_transform_job(**request)
        test_key = request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"].split("/", 3)[3]
        labels_key = run_objects.sibling(test_key, "iris/holdout/test_labels.csv")
        labels = pd.read_csv(io.BytesIO(self._s3.get_object(Bucket=BUCKET, Key=labels_key)["Body"].read()))
        body = {"predictions": [{"predicted_label": float(v)} for v in labels["true_label"]]}
        out = request["TransformOutput"]["S3OutputPath"].split("/", 3)[3] + "/test.csv.out"
        self._s3.put_object(Bucket=BUCKET, Key=out, Body=json.dumps(body).encode())
        return response


def test_predictions_path_on_aws_when_sagemaker_writes_output(s3: Any) -> None:
    class Backend(SageMakerResource):
        def get_client(self) -> Any:
            return _SageMakerWritesOutput(super().get_client(), s3)

    result = _materialize(resource=Backend())
    assert result.success, _failure_message(result)
    table = result.output_for_node("test_predictions")
    assert len(table) == 45
    meta = result.asset_materializations_for_node("test_predictions")[0].metadata
    assert meta["accuracy"].value == 1.0
    run = result.run_id.replace("-", "")
    assert meta["predictions_uri"].value == f"s3://{BUCKET}/iris/runs/{run}/results/test.csv.out"
    assert meta["published_predictions_uri"].value == f"s3://{BUCKET}/iris/results/test.csv.out"
    # Published on S3: the tutorial's keys hold this run's objects, and latest-run.json says so.
    scored = s3.get_object(Bucket=BUCKET, Key="iris/evaluation/test_predictions.csv")["Body"].read()
    assert len(pd.read_csv(io.BytesIO(scored))) == 45
    latest = json.loads(s3.get_object(Bucket=BUCKET, Key="iris/latest-run.json")["Body"].read())
    assert latest["run"] == run and latest["objects"]["iris/results/test.csv.out"].startswith(
        f"iris/runs/{run}/"
    )
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert "iris/.publish-lock" not in keys


def test_nothing_secret_reaches_metadata(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value-123")
    result = _materialize(UP_TO_MODEL)
    assert result.success, _failure_message(result)
    for event in result.all_events:
        assert "very-secret-value-123" not in repr(event)


def test_cli_on_aws_backend_against_moto(s3: Any, moto_endpoint: str, dagster_home) -> None:
    """The issue's acceptance command: `dagster asset materialize` up to the model, aws backend, moto."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "IRIS_SAGEMAKER_EXECUTOR": "in_process"}
    command = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "iris_sagemaker"]
    done = subprocess.run(
        [*command, "--select", ",".join(UP_TO_MODEL)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    sagemaker = boto3.client("sagemaker", endpoint_url=moto_endpoint, region_name="us-east-2")
    jobs = sagemaker.list_training_jobs()["TrainingJobSummaries"]
    assert [j["TrainingJobName"][: len("train-iris-")] for j in jobs] == ["train-iris-"]
    assert [m["ModelName"][: len("Iris-KNN-")] for m in sagemaker.list_models()["Models"]] == ["Iris-KNN-"]


def test_local_engine_over_s3_runs_the_whole_pipeline(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    """Train locally against any S3 (MinIO, moto): objects in S3, the algorithm on this machine."""
    monkeypatch.setenv("IRIS_SAGEMAKER_BACKEND", "local")
    monkeypatch.setenv("IRIS_SAGEMAKER_S3_ENDPOINT_URL", moto_endpoint)
    monkeypatch.delenv("IRIS_SAGEMAKER_ROLE_ARN")
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-2")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-east-2"})
    result = _materialize()
    assert result.success, _failure_message(result)
    out = json.loads(s3.get_object(Bucket=BUCKET, Key="iris/results/test.csv.out")["Body"].read())
    assert len(out["predictions"]) == 45
    job = result.output_for_node("knn_training_job")
    artifact_key = job["ModelArtifacts"]["S3ModelArtifacts"].removeprefix(f"s3://{BUCKET}/")
    assert s3.head_object(Bucket=BUCKET, Key=artifact_key)["ContentLength"] > 0
    meta = result.asset_materializations_for_node("test_predictions")[0].metadata
    assert meta["accuracy"].value >= 0.9
    # Nothing of the bucket was written to the local folder.
    assert not (tmp_path / "local-root" / "s3").exists()


def test_training_logs_are_forwarded_from_cloudwatch(moto_endpoint: str) -> None:
    from iris_sagemaker.steps.log_tails import LOG_GROUP, CloudWatchLogTail

    logs = boto3.client("logs", endpoint_url=moto_endpoint, region_name="us-east-2")
    tail = CloudWatchLogTail(logs, "train-iris-1")
    assert tail.poll() == []  # no log group yet: nothing to forward, no error

    logs.create_log_group(logGroupName=LOG_GROUP)
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName="train-iris-1/algo-1-1700000000")
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName="train-iris-10/algo-1-1700000000")

    def put(stream: str, *messages: str) -> None:
        now_ms = int(time.time() * 1000)  # CloudWatch drops events older than 14 days
        events = [{"timestamp": now_ms + i, "message": m} for i, m in enumerate(messages)]
        logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream, logEvents=events)

    put("train-iris-1/algo-1-1700000000", "Reading data", "Building index")
    put("train-iris-10/algo-1-1700000000", "another job")
    assert tail.poll() == [
        "[train-iris-1/algo-1-1700000000] Reading data",
        "[train-iris-1/algo-1-1700000000] Building index",
    ]
    put("train-iris-1/algo-1-1700000000", "#test_score (algo-1) : ('accuracy', 0.97)")
    assert tail.poll() == ["[train-iris-1/algo-1-1700000000] #test_score (algo-1) : ('accuracy', 0.97)"]
    assert tail.poll() == []
