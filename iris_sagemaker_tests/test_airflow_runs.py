"""`airflow dags test` for real, in a subprocess on SQLite, offline:

- local mode: the provider's operators through ``iris-sagemaker serve`` (a server started for the
  ``airflow`` process when no connection is defined; or ``with-server``'s, as ``make airflow-run`` runs
  it), the same objects as the Dagster run, 45 scored predictions; deferrable and blocking; then the
  deploy DAG, twice (the second run updates the same endpoint to its own config);
- aws mode: the Amazon provider's operators against moto's server on 127.0.0.1, checking the request
  bodies moto received and the CSVs in moto's S3 (moto runs no algorithm; the test stands in for
  the batch transform's output so the scoring task has something to score).

Runs in .venv (Airflow 2.11) and .venv-airflow3 (Airflow 3.x); skipped where Airflow is absent.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from iris_sagemaker.core import dataset, run_objects, specs
from iris_sagemaker.core.settings import (
    DEFAULT_LOCAL_BUCKET,
    PREDICTIONS_KEY,
    SCORED_KEY,
    TEST_KEY,
    TEST_LABELS_KEY,
    TRAIN_KEY,
    Settings,
)
from iris_sagemaker_tests.airflow_support import airflow_env, aws_connection, require_airflow, run_airflow

pytestmark = [pytest.mark.airflow, pytest.mark.server, pytest.mark.slow]

require_airflow()

REGION = "us-east-2"
BUCKET = "iris-airflow-moto"
ROLE = "arn:aws:iam::123456789012:role/iris-airflow-moto"


def _dags_test(home: Path, dag_id: str = "sagemaker_pipeline", **env: str) -> str:
    done = run_airflow(["dags", "test", dag_id], airflow_env(home, **env))
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert "state=success" in output or "successful" in output, output[-6000:]
    return output


def _with_server(home: Path, dag_id: str, **env: str) -> str:
    """``iris-sagemaker with-server -- airflow dags test DAG``: what ``make airflow-run`` runs."""
    import subprocess
    import sys

    from iris_sagemaker_tests.airflow_support import AIRFLOW, REPO

    command = [sys.executable, "-m", "iris_sagemaker.cli", "with-server", "--", str(AIRFLOW), "dags", "test"]
    env_vars = airflow_env(home, **env)
    done = subprocess.run(
        [*command, dag_id], cwd=REPO, env=env_vars, capture_output=True, text=True, timeout=300
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    return output


def _no_server_left(root: Path) -> None:
    from iris_sagemaker.serve.lockfile import running_server

    assert running_server(root) is None  # the server's lock is free: it stopped with the command


def _expected_split() -> dataset.IrisSplit:
    source, data = dataset.read_source(None)
    return dataset.split(dataset.parse_iris(data, source), seed=42)


def test_local_mode_runs_offline_and_leaves_the_dagster_objects(airflow_home: Path) -> None:
    """No connection defined: the tasks start a server for the ``airflow`` process, and it stops with it."""
    output = _dags_test(airflow_home)
    assert "no Airflow connection 'aws-sagemaker': using the local server" in output
    assert "waiting in this task instead of deferring" in output  # no triggerer could find that server
    assert "job Completed" in output  # the training job's CloudWatch log, printed once it ended
    root = Path(os.environ["IRIS_SAGEMAKER_LOCAL_ROOT"])
    _no_server_left(root)
    _check_local_objects(root)


def _check_local_objects(root: Path) -> None:
    bucket = root / "s3" / DEFAULT_LOCAL_BUCKET
    parts = _expected_split()
    assert (bucket / TRAIN_KEY).read_bytes() == dataset.to_sagemaker_csv(parts.train)
    assert (bucket / TEST_KEY).read_bytes() == dataset.to_sagemaker_csv(parts.test_features)
    labels = pd.read_csv(bucket / TEST_LABELS_KEY)["true_label"]
    assert labels.tolist() == parts.test_labels.tolist()

    artifacts = list((bucket / "iris/results").glob("train-iris-manual-*/output/model.tar.gz"))
    assert len(artifacts) == 1
    predictions = json.loads((bucket / PREDICTIONS_KEY).read_text())["predictions"]
    assert len(predictions) == 45
    scored = pd.read_csv(bucket / SCORED_KEY)
    assert len(scored) == 45
    assert scored["predicted_label"].tolist() == [int(p["predicted_label"]) for p in predictions]
    assert scored["correct"].mean() >= 0.9


def test_make_airflow_run_blocking_then_the_deploy_dag_twice(airflow_home: Path) -> None:
    """``with-server`` (make airflow-run / airflow-deploy): the connection is defined, so the operators
    defer (``airflow dags test`` runs the provider's triggers inline); the second deploy blocks."""
    import boto3

    from iris_sagemaker.serve.process import start_server

    root = Path(os.environ["IRIS_SAGEMAKER_LOCAL_ROOT"])
    output = _with_server(airflow_home, "sagemaker_pipeline")
    assert "iris-sagemaker with-server: server stopped" in output
    assert "no Airflow connection" not in output  # with-server defined it
    _no_server_left(root)
    _check_local_objects(root)

    first = _with_server(airflow_home, "sagemaker_deploy")
    second = _with_server(airflow_home, "sagemaker_deploy", IRIS_SAGEMAKER_AIRFLOW_DEFERRABLE="false")
    assert "updating it with the given config instead" in second  # the provider's own update path
    for run in (first, second):
        accuracy = float(re.search(r"endpoint iris-knn: accuracy (\d\.\d+) on 45 held-out rows", run)[1])
        assert accuracy >= 0.9
    _no_server_left(root)

    server = start_server(root)
    try:
        client = boto3.client("sagemaker", region_name=REGION, endpoint_url=server.url)
        endpoint = client.describe_endpoint(EndpointName="iris-knn")
        configs = client.list_endpoint_configs()["EndpointConfigs"]
        assert endpoint["EndpointStatus"] == "InService"
        assert len(configs) == 2  # one per deploy run; one endpoint, updated to the second
        newest = max(configs, key=lambda c: c["CreationTime"])
        assert endpoint["EndpointConfigName"] == newest["EndpointConfigName"]
        assert len(client.list_endpoints()["Endpoints"]) == 1
    finally:
        server.stop()


class MotoRecorder:
    """Records the SageMaker request bodies moto's server receives; writes a stand-in transform output."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.bodies: dict[str, list[dict[str, Any]]] = {}

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from moto.sagemaker.responses import SageMakerResponse

        for action in ("create_training_job", "create_model", "create_transform_job"):
            original = getattr(SageMakerResponse, action)
            monkeypatch.setattr(SageMakerResponse, action, self._wrap(action, original))

    def _wrap(self, action: str, original: Any) -> Any:
        recorder = self

        def handler(response: Any) -> Any:
            body = json.loads(response.body)
            recorder.bodies.setdefault(action, []).append(body)
            result = original(response)
            if action == "create_transform_job":
                recorder._write_transform_output(body)
            return result

        return handler

    def _write_transform_output(self, request: dict[str, Any]) -> None:
        """What k-NN would write: one prediction per test row (here: the true labels, in order)."""
        s3 = s3_client(self.endpoint)
        test_key = request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"].removeprefix(
            f"s3://{BUCKET}/"
        )
        labels_key = run_objects.sibling(test_key, TEST_LABELS_KEY)
        labels = pd.read_csv(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=labels_key)["Body"].read()))
        out = {"predictions": [{"predicted_label": float(v)} for v in labels["true_label"]]}
        output_path = request["TransformOutput"]["S3OutputPath"].removeprefix(f"s3://{BUCKET}/")
        key = specs.transform_output_key(test_key, output_path)
        s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(out).encode())


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", region_name=REGION, endpoint_url=endpoint)


def test_aws_mode_sends_the_builders_requests_to_sagemaker(
    airflow_home: Path, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = MotoRecorder(moto_endpoint)
    recorder.install(monkeypatch)
    s3 = s3_client(moto_endpoint)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})

    _dags_test(
        airflow_home,
        IRIS_SAGEMAKER_BACKEND="aws",
        AWS_REGION=REGION,
        AIRFLOW_VAR_S3_BUCKET=BUCKET,
        AIRFLOW_VAR_ROLE=ROLE,
        IRIS_SAGEMAKER_AIRFLOW_CHECK_INTERVAL="1",  # the provider sleeps one interval when printing logs
        **{"AIRFLOW_CONN_AWS-SAGEMAKER": aws_connection(moto_endpoint, REGION)},
    )

    # Exactly one request each, equal to what the shared builders (and so the Dagster assets) send.
    (training,) = recorder.bodies["create_training_job"]
    (model,) = recorder.bodies["create_model"]
    (transform,) = recorder.bodies["create_transform_job"]
    settings = Settings.from_env(backend="aws", bucket=BUCKET, role_arn=ROLE)
    name = training["TrainingJobName"]
    assert name.startswith("train-iris-manual-")
    run_key = name.removeprefix("train-iris-")
    names = specs.job_names(run_key)
    train_uri = training["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"]
    folder = run_objects.folder_of(train_uri.removeprefix(f"s3://{BUCKET}/"))
    assert folder is not None and folder.startswith("manual__")  # the DAG run's own folder
    own = run_objects.run_keys(folder)
    assert training == specs.training_job_request(settings, names.training_job, train_key=own.train)
    artifact = f"s3://{BUCKET}/iris/results/{names.training_job}/output/model.tar.gz"
    assert model == specs.model_request(settings, names.model, artifact)
    assert transform == specs.transform_job_request(
        settings, names.transform_job, names.model, input_key=own.test, output_prefix=own.output_prefix
    )

    # data_prep wrote the CSVs to (moto's) S3 through the aws-sagemaker connection, in the run's folder;
    # the scoring task published them to the tutorial's keys.
    parts = _expected_split()
    get = lambda key: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()  # noqa: E731
    for key in (own.train, TRAIN_KEY):
        assert get(key) == dataset.to_sagemaker_csv(parts.train)
    for key in (own.test, TEST_KEY):
        assert get(key) == dataset.to_sagemaker_csv(parts.test_features)

    # The scoring task read the transform output and wrote the scored table.
    scored = pd.read_csv(io.BytesIO(get(SCORED_KEY)))
    assert len(scored) == 45 and scored["correct"].all()
