"""The Dagster asset graph on the ``aws`` backend, against ``iris-sagemaker serve``: the boto3 code path a
real AWS run takes (S3 through dagster-aws, SageMaker, CloudWatch Logs), with real training and scoring."""

from __future__ import annotations

import json
from pathlib import Path

from dagster import AssetKey, DagsterInstance, materialize

from iris_sagemaker.dagster_defs.definitions import build_definitions
from iris_sagemaker.serve.process import start_server

from .serve_support import BUCKET, REGION, client


def test_the_asset_graph_runs_on_the_aws_backend_over_http(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "served-root"
    server = start_server(root, {"IRIS_SAGEMAKER_CACHE_DIR": str(tmp_path / "cache")})
    try:
        client(server, "s3").create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        for name, value in server.client_env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("IRIS_SAGEMAKER_BACKEND", "aws")
        monkeypatch.setenv("IRIS_SAGEMAKER_BUCKET", BUCKET)
        monkeypatch.setenv("IRIS_SAGEMAKER_ROLE_ARN", "arn:aws:iam::000000000000:role/local-sagemaker")
        monkeypatch.setenv("IRIS_SAGEMAKER_EXECUTOR", "in_process")
        defs = build_definitions()
        instance = DagsterInstance.ephemeral()
        result = materialize(
            list(defs.assets), resources=defs.resources, raise_on_error=False, instance=instance
        )
        assert result.success, [e.message for e in result.all_events if e.is_failure]
    finally:
        server.stop()

    bucket = root / "s3" / BUCKET
    for key in (
        "iris/raw/iris.csv",
        "iris/processed-input-data/train.csv",
        "iris/processed-input-data/test.csv",
        "iris/results/test.csv.out",
        "iris/evaluation/test_predictions.csv",
    ):
        assert (bucket / key).is_file(), key
    assert len(json.loads((bucket / "iris/results/test.csv.out").read_text())["predictions"]) == 45
    metadata = result.asset_materializations_for_node("test_predictions")[0].metadata
    assert metadata["accuracy"].value >= 0.9
    assert result.asset_materializations_for_node("knn_model")[0].asset_key == AssetKey("knn_model")
    # The training job's CloudWatch stream, read over HTTP, reaches the run log.
    job = result.output_for_node("knn_training_job")["TrainingJobName"]
    messages = [line for e in instance.all_logs(result.run_id) for line in e.user_message.splitlines()]
    assert any(m.startswith(f"[{job}/algo-1-") and "read 105 rows" in m for m in messages), messages
