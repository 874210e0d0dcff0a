"""The deploy DAG's Python tasks (``airflow_defs.tasks``) on the embedded engine: which model is deployed,
and the online check's verdict. No Airflow needed: the task bodies take a store and clients."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from iris_sagemaker.airflow_defs import tasks
from iris_sagemaker.core import dataset, run_objects, specs
from iris_sagemaker.core.settings import DEFAULT_LOCAL_BUCKET, TEST_KEY, TEST_LABELS_KEY, Settings
from iris_sagemaker.local_sagemaker.testing import Lab

pytestmark = [pytest.mark.airflow]


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return Lab(tmp_path / "root", bucket=DEFAULT_LOCAL_BUCKET)


def _settings(lab: Lab) -> Settings:
    return Settings.from_env({"IRIS_SAGEMAKER_LOCAL_ROOT": str(lab.client.root)})


def test_without_a_published_run_there_is_nothing_to_deploy(lab: Lab) -> None:
    with pytest.raises(tasks.DeployError, match=r"nothing to deploy: s3://iris-sagemaker-local/iris/latest"):
        tasks.find_model(_settings(lab), lab.store, lab.client)


def test_a_published_run_without_a_model_name_says_how_to_fix_it(lab: Lab) -> None:
    lab.put(run_objects.LATEST_KEY, json.dumps({"run": "old-run", "objects": {}}).encode())
    with pytest.raises(tasks.DeployError, match=r"\(run old-run\) names no model.*model_name"):
        tasks.find_model(_settings(lab), lab.store, lab.client)


def _trained_model(lab: Lab, name: str) -> str:
    settings = _settings(lab)
    _, data = dataset.read_source(None)
    parts = dataset.split(dataset.parse_iris(data), seed=42)
    lab.put("in/train.csv", dataset.to_sagemaker_csv(parts.train))
    request = specs.training_job_request(settings, f"train-{name}", train_key="in/train.csv")
    lab.client.create_training_job(**request)
    artifact = lab.wait_training(f"train-{name}")["ModelArtifacts"]["S3ModelArtifacts"]
    lab.client.create_model(**specs.model_request(settings, name, artifact))
    lab.put(TEST_KEY, dataset.to_sagemaker_csv(parts.test_features))
    lab.put(TEST_LABELS_KEY, parts.test_labels.to_frame().to_csv(index=False).encode())
    return artifact


def test_the_latest_runs_model_or_the_param(lab: Lab) -> None:
    artifact = _trained_model(lab, "Iris-KNN-a")
    published = {"run": "r", "objects": {}, "model_name": "Iris-KNN-a"}
    lab.put(run_objects.LATEST_KEY, json.dumps(published).encode())
    found = tasks.find_model(_settings(lab), lab.store, lab.client)
    assert found == {"ModelName": "Iris-KNN-a", "ModelDataUrl": artifact}
    assert tasks.find_model(_settings(lab), lab.store, lab.client, "Iris-KNN-a")["ModelName"] == "Iris-KNN-a"


class WrongRuntime:
    """An endpoint that answers class 0 for every row (a bad model, as InvokeEndpoint returns it)."""

    def invoke_endpoint(self, EndpointName: str, Body: bytes, ContentType: str) -> dict[str, Any]:
        rows = Body.decode().count("\n") + 1
        body = json.dumps({"predictions": [{"predicted_label": 0.0}] * rows}).encode()
        return {"Body": io.BytesIO(body), "ContentType": "application/json"}


def test_the_online_check_fails_below_the_threshold_and_says_the_endpoint_stays(lab: Lab) -> None:
    _trained_model(lab, "Iris-KNN-b")
    with pytest.raises(tasks.DeployError) as raised:
        tasks.check_endpoint(_settings(lab), lab.store, WrongRuntime(), "iris-knn")
    message = str(raised.value)
    labels = lab.get(TEST_LABELS_KEY).decode().split()[1:]
    share_of_class_0 = labels.count("0") / len(labels)  # what an always-0 model scores
    assert f"accuracy {share_of_class_0:.4f} on 45 held-out rows is below 0.9" in message
    assert "stays deployed. Roll it back: aws sagemaker delete-endpoint --endpoint-name iris-knn" in message
    with pytest.raises(tasks.DeployError, match=r"update-endpoint --endpoint-name iris-knn "
                       r"--endpoint-config-name iris-knn-config-before"):
        tasks.check_endpoint(_settings(lab), lab.store, WrongRuntime(), "iris-knn", "iris-knn-config-before")


def test_without_a_published_test_set_the_check_says_to_run_the_pipeline(lab: Lab) -> None:
    with pytest.raises(tasks.DeployError, match=r"no published held-out test set.*run the pipeline first"):
        tasks.check_endpoint(_settings(lab), lab.store, WrongRuntime(), "iris-knn")


def test_a_model_that_does_not_exist_names_where_its_name_came_from(lab: Lab) -> None:
    with pytest.raises(tasks.DeployError, match=r"model Iris-KNN-nope \(the DAG param model_name\) does not"):
        tasks.find_model(_settings(lab), lab.store, lab.client, "Iris-KNN-nope")
    published = {"run": "r", "objects": {}, "model_name": "Iris-KNN-gone"}
    lab.put(run_objects.LATEST_KEY, json.dumps(published).encode())
    with pytest.raises(tasks.DeployError, match=r"\(named by s3://iris-sagemaker-local/iris/latest-run.json\)"):
        tasks.find_model(_settings(lab), lab.store, lab.client)
