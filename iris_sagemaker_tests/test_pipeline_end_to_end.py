"""The eight assets, materialized for real on the local backend (embedded SageMaker, local bucket)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance, materialize

from iris_sagemaker.core.settings import DEFAULT_LOCAL_BUCKET
from iris_sagemaker.dagster_defs.code_location import build_definitions

pytestmark = [pytest.mark.dagster]

REPO = Path(__file__).resolve().parents[1]


def _assets_and_checks():
    defs = build_definitions()
    return defs, [*defs.assets, *defs.asset_checks]


def test_the_lineage_is_the_tutorials() -> None:
    graph = build_definitions().resolve_asset_graph()
    upstream = {
        key.to_user_string(): sorted(parent.to_user_string() for parent in graph.get(key).parent_keys)
        for key in graph.get_all_asset_keys()
    }
    assert upstream == {
        "raw_iris": [],
        "train_csv": ["raw_iris"],
        "test_csv": ["raw_iris"],
        "knn_tuning_job": ["train_csv"],
        "knn_training_job": ["knn_tuning_job", "train_csv"],
        "knn_model": ["knn_training_job"],
        "test_predictions": ["knn_model", "test_csv"],
        "knn_endpoint": ["knn_model", "test_csv", "test_predictions"],
    }


def test_all_six_assets_materialize_and_score_the_test_set(tmp_path) -> None:
    defs, assets = _assets_and_checks()
    instance = DagsterInstance.ephemeral()
    result = materialize(assets, resources=defs.resources, raise_on_error=False, instance=instance)
    assert result.success, [e.message for e in result.all_events if e.is_failure]

    bucket = Path(os.environ["IRIS_SAGEMAKER_LOCAL_ROOT"]) / "s3" / DEFAULT_LOCAL_BUCKET
    train = pd.read_csv(bucket / "iris/processed-input-data/train.csv", header=None)
    test = pd.read_csv(bucket / "iris/processed-input-data/test.csv", header=None)
    assert train.shape == (105, 5) and set(train[0]) == {0, 1, 2}
    assert test.shape == (45, 4)

    predictions_text = (bucket / "iris/results/test.csv.out").read_text()
    predictions = json.loads(predictions_text)["predictions"]
    assert len(predictions) == 45
    assert {p["predicted_label"] for p in predictions} <= {0.0, 1.0, 2.0}

    artifacts = list((bucket / "iris/results").glob("train-iris-*/output/model.tar.gz"))
    assert len(artifacts) == 1

    materializations = {m.asset_key: m for m in result.asset_materializations_for_node("test_predictions")}
    metadata = materializations[AssetKey("test_predictions")].metadata
    accuracy = metadata["accuracy"].value
    assert accuracy >= 0.9
    assert metadata["dagster/row_count"].value == 45
    assert "| Iris-setosa |" in metadata["confusion_matrix"].value
    run = result.run_id.replace("-", "")
    assert metadata["predictions_uri"].value == (
        f"s3://{DEFAULT_LOCAL_BUCKET}/iris/runs/{run}/results/test.csv.out"
    )
    # Published: the tutorial's keys hold this run's objects, byte for byte.
    assert (
        metadata["published_predictions_uri"].value
        == f"s3://{DEFAULT_LOCAL_BUCKET}/iris/results/test.csv.out"
    )
    for key in (
        "processed-input-data/train.csv",
        "processed-input-data/test.csv",
        "holdout/test_labels.csv",
        "results/test.csv.out",
        "evaluation/test_predictions.csv",
        "raw/iris.csv",
    ):
        assert (bucket / "iris" / key).read_bytes() == (bucket / "iris/runs" / run / key).read_bytes(), key
    assert json.loads((bucket / "iris/latest-run.json").read_text())["run"] == run

    # The scored table agrees with the raw predictions and the held-out labels.
    scored = result.output_for_node("test_predictions")
    assert scored["predicted_label"].tolist() == [int(p["predicted_label"]) for p in predictions]
    assert scored["correct"].mean() == pytest.approx(accuracy)

    job = result.output_for_node("knn_training_job")
    assert job["TrainingJobStatus"] == "Completed"
    assert job["HyperParameters"]["k"] == "3"

    # The engine's progress reaches the Dagster run log while the steps wait for their jobs.
    messages = [line for e in instance.all_logs(result.run_id) for line in e.user_message.splitlines()]
    training = job["TrainingJobName"]
    assert any(m.startswith(f"[{training}] read 105 rows") for m in messages), messages
    assert any(f"[{training}] wrote s3://" in m for m in messages)
    assert any("] scored batch 1: 45 rows" in m for m in messages)

    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["raw_iris_schema"].passed
    assert checks["accuracy_at_least_threshold"].passed
    assert checks["online_matches_batch"].passed

    # The tutorial's next step: the model on a live endpoint, answering as the batch transform did.
    endpoint = result.asset_materializations_for_node("knn_endpoint")[0].metadata
    assert endpoint["endpoint_name"].value == "iris-knn"
    assert endpoint["status"].value == "InService"
    assert endpoint["agreement_with_batch"].value == 1.0
    assert endpoint["model_name"].value == result.output_for_node("knn_model")["ModelName"]
    assert 0 < endpoint["latency_p50_ms"].value <= endpoint["latency_p99_ms"].value
    assert endpoint["endpoint_arn"].value.endswith(":endpoint/iris-knn")
    assert any(m.startswith("[AllTraffic/i-") and "model loaded" in m for m in messages)


def test_a_retrain_updates_the_same_endpoint(tmp_path) -> None:
    from iris_sagemaker.local_sagemaker import LocalSageMakerClient

    defs, assets = _assets_and_checks()
    with DagsterInstance.ephemeral() as instance:
        configs = []
        for _ in range(2):
            result = materialize(assets, resources=defs.resources, instance=instance)
            configs.append(result.asset_materializations_for_node("knn_endpoint")[0].metadata)
    first, second = (c["endpoint_config_name"].value for c in configs)
    assert first != second
    client = LocalSageMakerClient(os.environ["IRIS_SAGEMAKER_LOCAL_ROOT"])
    assert [e["EndpointName"] for e in client.list_endpoints()["Endpoints"]] == ["iris-knn"]
    described = client.describe_endpoint(EndpointName="iris-knn")
    assert described["EndpointStatus"] == "InService" and described["EndpointConfigName"] == second


def test_without_the_opt_in_the_endpoint_is_skipped_not_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    from iris_sagemaker.local_sagemaker import LocalSageMakerClient

    monkeypatch.setenv("IRIS_SAGEMAKER_DEPLOY_ENDPOINT", "false")
    defs, assets = _assets_and_checks()
    result = materialize(assets, resources=defs.resources, raise_on_error=False)
    assert result.success
    assert result.asset_materializations_for_node("knn_endpoint") == []
    observed = result.asset_observations_for_node("knn_endpoint")[0].metadata
    assert observed["deployed"].value is False
    assert "IRIS_SAGEMAKER_DEPLOY_ENDPOINT" in observed["reason"].value
    assert "online_matches_batch" not in {c.check_name for c in result.get_asset_check_evaluations()}
    client = LocalSageMakerClient(os.environ["IRIS_SAGEMAKER_LOCAL_ROOT"])
    assert (
        client.list_endpoints()["Endpoints"] == [] and client.list_endpoint_configs()["EndpointConfigs"] == []
    )


def test_training_metadata_carries_job_identity() -> None:
    defs, assets = _assets_and_checks()
    result = materialize(assets, resources=defs.resources, selection="raw_iris*")
    meta = result.asset_materializations_for_node("knn_training_job")[0].metadata
    assert meta["status"].value == "Completed"
    assert meta["training_job_name"].value.startswith("train-iris-")
    assert meta["training_job_arn"].value.endswith(meta["training_job_name"].value.lower())
    assert meta["model_artifact"].value.endswith("/output/model.tar.gz")
    assert meta["hyperparameters"].value == {
        "predictor_type": "classifier",
        "feature_dim": "4",
        "k": "3",
        "sample_size": "150",
    }


def test_bad_data_url_fails_raw_iris_with_the_line(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("5.1,3.5,1.4,0.2,Iris-setosa\n5.1,oops,1.4,0.2,Iris-setosa\n")
    monkeypatch.setenv("IRIS_SAGEMAKER_DATA_URL", bad.as_uri())
    defs, assets = _assets_and_checks()
    result = materialize(assets, resources=defs.resources, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "line 2, column 'sepal_width': 'oops' is not a finite number" in str(
        failure.step_failure_data.error
    )
    bucket = Path(os.environ["IRIS_SAGEMAKER_LOCAL_ROOT"]) / "s3" / DEFAULT_LOCAL_BUCKET
    assert not (bucket / "iris/processed-input-data/train.csv").exists()


@pytest.mark.slow
def test_cli_materializes_every_asset(dagster_home: Path) -> None:
    """What `make run` and CI users run: `dagster asset materialize -m iris_sagemaker --select '*'`."""
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    dagster = Path(sys.executable).parent / "dagster"
    done = subprocess.run(
        [str(dagster), "asset", "materialize", "-m", "iris_sagemaker", "--select", "*"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = subprocess.run(
        [sys.executable, "-m", "iris_sagemaker.report"], env=env, capture_output=True, text=True, timeout=60
    )
    assert report.returncode == 0, report.stderr
    assert "(45 rows)" in report.stdout
    accuracy = float(report.stdout.split("accuracy: ")[1].split()[0])
    assert accuracy >= 0.9
    assert "endpoint: iris-knn (InService, endpoint config iris-knn-config-" in report.stdout


@pytest.mark.slow
def test_accuracy_drop_since_the_previous_run_is_reported(tmp_path) -> None:
    """Two runs on one instance: seed 4 scores 1.0, seed 1 scores 0.933; the second check says so."""
    from dagster import DagsterInstance

    from iris_sagemaker.dagster_defs.resources import IrisS3IOManager, SageMakerResource

    defs = build_definitions()
    with DagsterInstance.ephemeral() as instance:
        evaluations = []
        for seed in (4, 1):
            backend = SageMakerResource(local_root=str(tmp_path / "root"), split_seed=seed)
            result = materialize(
                list(defs.assets),
                resources={"sagemaker": backend, "io_manager": IrisS3IOManager(backend=backend)},
                instance=instance,
            )
            by_name = {e.check_name: e for e in result.get_asset_check_evaluations()}
            evaluations.append(by_name["accuracy_at_least_threshold"])
    first, second = (e.metadata for e in evaluations)
    assert "previous_accuracy" not in first
    assert second["previous_accuracy"].value == 1.0
    assert second["accuracy"].value == pytest.approx(42 / 45)
    assert second["accuracy_change"].value == pytest.approx(42 / 45 - 1.0)
    assert "Accuracy dropped" in second["accuracy_drop"].value


def test_data_that_fails_its_checks_starts_no_job(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten rows of one species: raw_iris_schema fails, blocking, with an ERROR line; nothing is trained."""
    from iris_sagemaker.local_sagemaker import LocalSageMakerClient

    source = tmp_path / "one-species.csv"
    source.write_text("".join(f"5.{i},3.5,1.4,0.2,Iris-setosa\n" for i in range(10)))
    monkeypatch.setenv("IRIS_SAGEMAKER_DATA_URL", source.as_uri())
    defs, assets = _assets_and_checks()
    with DagsterInstance.ephemeral() as instance:
        result = materialize(assets, resources=defs.resources, raise_on_error=False, instance=instance)
        errors = [e.user_message for e in instance.all_logs(result.run_id) if e.level >= 40]
    assert not result.success
    check = {c.check_name: c for c in result.get_asset_check_evaluations()}["raw_iris_schema"]
    assert not check.passed and check.blocking
    assert any("fails raw_iris_schema; no job will start" in m and "expected all three" in m for m in errors)
    client = LocalSageMakerClient(os.environ["IRIS_SAGEMAKER_LOCAL_ROOT"])
    assert client.list_training_jobs()["TrainingJobSummaries"] == []
    assert result.asset_materializations_for_node("knn_training_job") == []
