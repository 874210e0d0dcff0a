"""The Dagster asset graph on the ``aws`` backend, against ``iris-sagemaker serve``: the boto3 code path a
real AWS run takes (S3 through dagster-aws, SageMaker, SageMaker Runtime, CloudWatch Logs), with real
training, scoring and serving."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize

from iris_sagemaker.core.settings import TEST_KEY
from iris_sagemaker.dagster_defs.code_location import build_definitions
from iris_sagemaker.serve.process import start_server

from .serve_support import BUCKET, REGION, client

pytestmark = [pytest.mark.dagster, pytest.mark.server, pytest.mark.slow]

OBJECTS = (
    "iris/raw/iris.csv",
    "iris/processed-input-data/train.csv",
    "iris/processed-input-data/test.csv",
    "iris/holdout/test_labels.csv",
    "iris/dagster/knn_training_job.json",
    "iris/dagster/knn_model.json",
    "iris/results/test.csv.out",
    "iris/evaluation/test_predictions.csv",
)


def _run(instance: DagsterInstance):
    defs = build_definitions()
    result = materialize(
        [*defs.assets, *defs.asset_checks], resources=defs.resources, raise_on_error=False, instance=instance
    )
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return result


def test_the_asset_graph_runs_on_the_aws_backend_over_http(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "served-root"
    server = start_server(root, {"IRIS_SAGEMAKER_CACHE_DIR": str(tmp_path / "cache")})
    try:
        s3, sm = client(server, "s3"), client(server, "sagemaker")
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        for name, value in server.client_env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("IRIS_SAGEMAKER_BACKEND", "aws")
        monkeypatch.setenv("IRIS_SAGEMAKER_BUCKET", BUCKET)
        monkeypatch.setenv("IRIS_SAGEMAKER_ROLE_ARN", "arn:aws:iam::000000000000:role/local-sagemaker")
        monkeypatch.setenv("IRIS_SAGEMAKER_EXECUTOR", "in_process")
        instance = DagsterInstance.ephemeral()

        # Without the opt-in, `--select '*'` succeeds and no endpoint (nor config) is created.
        skipped = _run(instance)
        assert skipped.asset_materializations_for_node("knn_endpoint") == []
        assert sm.list_endpoints()["Endpoints"] == [] and sm.list_endpoint_configs()["EndpointConfigs"] == []

        monkeypatch.setenv("IRIS_SAGEMAKER_DEPLOY_ENDPOINT", "true")
        result = _run(instance)
        described = sm.describe_endpoint(EndpointName="iris-knn")
        test_rows = s3.get_object(Bucket=BUCKET, Key=TEST_KEY)["Body"].read()
        answer = client(server, "sagemaker-runtime").invoke_endpoint(
            EndpointName="iris-knn", Body=test_rows, ContentType="text/csv"
        )
        online = [p["predicted_label"] for p in json.loads(answer["Body"].read())["predictions"]]
    finally:
        server.stop()

    bucket = root / "s3" / BUCKET
    for key in OBJECTS:
        assert (bucket / key).is_file(), key
    batch = [
        p["predicted_label"]
        for p in json.loads((bucket / "iris/results/test.csv.out").read_text())["predictions"]
    ]
    assert online == batch and len(batch) == 45
    assert described["EndpointStatus"] == "InService"
    endpoint = result.asset_materializations_for_node("knn_endpoint")[0].metadata
    assert endpoint["endpoint_config_name"].value == described["EndpointConfigName"]
    assert endpoint["agreement_with_batch"].value == 1.0
    assert result.asset_materializations_for_node("test_predictions")[0].metadata["accuracy"].value >= 0.9
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {
        "raw_iris_schema": True,
        "splits_hold_all_species": True,
        "accuracy_at_least_threshold": True,
        "online_matches_batch": True,
    }
    # The CloudWatch streams of the training job and of the endpoint, read over HTTP, reach the run log.
    job = result.output_for_node("knn_training_job")["TrainingJobName"]
    messages = [line for e in instance.all_logs(result.run_id) for line in e.user_message.splitlines()]
    assert any(m.startswith(f"[{job}/algo-1-") and "read 105 rows" in m for m in messages), messages
    assert any(m.startswith("[AllTraffic/i-") and "endpoint InService" in m for m in messages), messages
