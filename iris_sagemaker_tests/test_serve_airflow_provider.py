"""The Airflow Amazon provider's own SageMakerHook against ``iris-sagemaker serve``, through an ``aws``
connection whose ``endpoint_url`` names the server: the code path of the provider's operators."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from iris_sagemaker.local_sagemaker.testing import (
    iris_like,
    model_request,
    to_csv,
    training_request,
    transform_request,
)
from iris_sagemaker.serve.process import start_server

from .serve_support import BUCKET, REGION, client

pytestmark = [pytest.mark.airflow, pytest.mark.server, pytest.mark.slow]


def test_the_providers_hook_trains_and_scores_with_logs(tmp_path: Path, monkeypatch) -> None:
    """print_log=True: the provider reads the job's CloudWatch stream (it re-describes every 30 s then)."""
    pytest.importorskip("airflow.providers.amazon")
    server = start_server(tmp_path / "root")
    try:
        s3 = client(server, "s3")
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        labels, features = iris_like()
        s3.put_object(Bucket=BUCKET, Key="in/train.csv", Body=to_csv(labels, features))
        s3.put_object(Bucket=BUCKET, Key="in/test.csv", Body=to_csv(features))
        connection = {
            "conn_type": "aws",
            "login": "local",
            "password": "local",
            "extra": {"endpoint_url": server.url, "region_name": REGION},
        }
        monkeypatch.setenv("AIRFLOW_CONN_AWS-SAGEMAKER", json.dumps(connection))
        monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

        hook = SageMakerHook(aws_conn_id="aws-sagemaker")
        printed: list[str] = []
        handler = logging.Handler()
        handler.emit = lambda record: printed.append(record.getMessage())  # type: ignore[method-assign]
        hook.log.addHandler(handler)
        hook.log.setLevel(logging.INFO)
        train = training_request("hook-train", f"s3://{BUCKET}/in/train.csv", f"s3://{BUCKET}/out")
        hook.create_training_job(train, wait_for_completion=True, print_log=True, check_interval=1)
        described = hook.describe_training_job("hook-train")
        assert described["TrainingJobStatus"] == "Completed"
        assert "job Completed" in printed, printed  # the job's CloudWatch stream, printed by the provider
        assert any(line.startswith("read 150 rows") for line in printed)
        hook.create_model(model_request("hook-model", described["ModelArtifacts"]["S3ModelArtifacts"]))
        scoring = transform_request(
            "hook-t", "hook-model", f"s3://{BUCKET}/in/test.csv", f"s3://{BUCKET}/pred"
        )
        hook.create_transform_job(scoring, wait_for_completion=True, check_interval=1)
        assert hook.describe_transform_job("hook-t")["TransformJobStatus"] == "Completed"
        body = s3.get_object(Bucket=BUCKET, Key="pred/test.csv.out")["Body"].read()
        assert len(json.loads(body)["predictions"]) == len(features)
        hook.log.removeHandler(handler)
    finally:
        server.stop()
