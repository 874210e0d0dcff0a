"""The steps both adapters call (``steps.data_preparation``, ``steps.batch_scoring``,
``steps.endpoint_rollout``) and the pure rules under them, on the embedded engine: no orchestrator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iris_sagemaker.core import evaluation, run_objects, specs
from iris_sagemaker.core.settings import (
    DEFAULT_LOCAL_BUCKET,
    PREDICTIONS_KEY,
    RAW_KEY,
    SCORED_KEY,
    TEST_KEY,
    TEST_LABELS_KEY,
    TRAIN_KEY,
    Settings,
)
from iris_sagemaker.local_sagemaker.testing import Lab
from iris_sagemaker.steps import batch_scoring, data_preparation, endpoint_rollout, job_steps
from iris_sagemaker.steps.clients_for_backend import make_runtime_client
from iris_sagemaker.steps.job_steps import LOCAL_WAITING

RUN = "run-one"


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return Lab(tmp_path / "root", bucket=DEFAULT_LOCAL_BUCKET)


def _settings(lab: Lab, **env: str) -> Settings:
    return Settings.from_env({"IRIS_SAGEMAKER_LOCAL_ROOT": str(lab.client.root), **env})


def _model(lab: Lab, settings: Settings, run: str) -> str:
    """Prepare run ``run``'s data, train on its split and create its model; the model's name."""
    data_preparation.prepare_run_data(settings, lab.store, run, log=lambda _: None)
    names, keys = specs.job_names(run), run_objects.run_keys(run)
    request = specs.training_job_request(settings, names.training_job, train_key=keys.train)
    trained = job_steps.run_training_job(lab.client, request, LOCAL_WAITING, log=lambda _: None)
    model = specs.model_request(settings, names.model, trained["ModelArtifacts"]["S3ModelArtifacts"])
    return job_steps.ensure_model(lab.client, model, log=lambda _: None)["ModelName"]


def _scored(lab: Lab, settings: Settings, run: str) -> batch_scoring.ScoredBatch:
    model = _model(lab, settings, run)
    keys = run_objects.run_keys(run)
    name = specs.job_names(run).transform_job
    request = specs.transform_job_request(
        settings, name, model, input_key=keys.test, output_prefix=keys.output_prefix
    )
    test = batch_scoring.read_test_split(lab.store, settings.bucket, keys.test, keys.labels)
    quiet = lambda _: None  # noqa: E731
    return batch_scoring.transform_and_score(lab.client, lab.store, settings, request, test, log=quiet)


# ---- the pure rules -------------------------------------------------------------------------------------


def test_a_transform_says_what_it_read_and_where_its_predictions_are() -> None:
    request = specs.transform_job_request(
        Settings(bucket="b"), "t", "m", input_key="iris/runs/r/processed-input-data/test.csv",
        output_prefix="iris/runs/r/results",
    )
    assert specs.transform_keys(request) == (
        "iris/runs/r/processed-input-data/test.csv",
        "iris/runs/r/results/test.csv.out",
    )
    request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] = "https://example/x"
    with pytest.raises(ValueError, match=r"'https://example/x' is not an s3://bucket/key URI"):
        specs.transform_keys(request)


def test_the_training_job_behind_an_artifact_is_read_from_sagemakers_layout() -> None:
    url = "s3://b/iris/results/train-iris-r/output/model.tar.gz"
    assert specs.training_job_of_artifact(url) == "train-iris-r"
    assert specs.training_job_of_artifact("s3://b/models/model.tar.gz") is None
    assert specs.training_job_of_artifact("") is None


def test_only_a_run_below_the_threshold_is_kept_back_and_says_where_its_objects_stay() -> None:
    assert evaluation.below_threshold(0.9, 45, 0.9, "s3://b/iris/runs/r") is None
    said = evaluation.below_threshold(0.5, 45, 0.9, "s3://b/iris/runs/r")
    assert said == (
        "accuracy 0.5000 on 45 test rows is below 0.9; the run's objects stay in s3://b/iris/runs/r/ and are "
        "not published"
    )
    assert run_objects.run_prefix("manual__2026:01") == "iris/runs/manual__2026-01"


# ---- data preparation, scoring, publishing --------------------------------------------------------------


def test_data_prep_writes_the_runs_split_in_its_own_folder(lab: Lab) -> None:
    settings = _settings(lab, IRIS_SAGEMAKER_TUNE="true")
    said: list[str] = []
    result = data_preparation.prepare_run_data(settings, lab.store, RUN, log=said.append)
    keys = run_objects.run_keys(RUN)
    assert (result["rows"], result["train_rows"], result["test_rows"]) == (150, 105, 45)
    for key in (keys.raw, keys.train, keys.test, keys.labels):
        assert lab.store.exists(DEFAULT_LOCAL_BUCKET, key)
    assert result["fit_uri"] == settings.uri(run_objects.scoped(specs.TUNING_FIT_KEY, RUN))
    assert lab.store.exists(DEFAULT_LOCAL_BUCKET, run_objects.scoped(specs.TUNING_VALIDATION_KEY, RUN))
    assert not lab.store.exists(DEFAULT_LOCAL_BUCKET, TRAIN_KEY)  # nothing published by preparing
    assert f"under s3://{DEFAULT_LOCAL_BUCKET}/iris/runs/{RUN}/" in said[0]


def test_a_scored_run_publishes_what_its_model_trained_on_and_what_it_scored(lab: Lab) -> None:
    settings = _settings(lab)
    scored = _scored(lab, settings, RUN)
    keys = run_objects.run_keys(RUN)
    assert (scored.test_key, scored.output_key) == (keys.test, f"{keys.output_prefix}/test.csv.out")
    assert len(scored.table) == 45 and scored.scores.accuracy >= 0.9
    assert scored.verdict(settings.accuracy_threshold, RUN, settings) is None
    assert batch_scoring.trained_on_key(lab.client, scored.model_name) == keys.train
    batch_scoring.store_scored_table(lab.store, DEFAULT_LOCAL_BUCKET, keys.scored, scored.table)

    more = {"iris/dagster/knn_model.json": f"iris/runs/{RUN}/dagster/knn_model.json"}  # never written
    published = batch_scoring.publish_scored_run(
        lab.store, lab.client, settings, RUN, scored, lambda _: None, more
    )
    assert published == {
        RAW_KEY: keys.raw,
        TRAIN_KEY: keys.train,
        TEST_KEY: keys.test,
        TEST_LABELS_KEY: keys.labels,
        PREDICTIONS_KEY: scored.output_key,
        SCORED_KEY: keys.scored,
    }  # an object that does not exist is left out, not a failure
    assert lab.get(PREDICTIONS_KEY) == lab.get(scored.output_key)
    assert lab.get(SCORED_KEY) == scored.table.to_csv(index=False).encode()
    latest = json.loads(lab.get(run_objects.LATEST_KEY))
    assert (latest["run"], latest["model_name"]) == (RUN, scored.model_name)


def test_a_run_below_the_threshold_is_told_so(lab: Lab) -> None:
    settings = _settings(lab)
    scored = _scored(lab, settings, RUN)
    said = scored.verdict(1.01, RUN, settings)
    assert said is not None and "is below 1.01" in said
    assert f"stay in s3://{DEFAULT_LOCAL_BUCKET}/iris/runs/{RUN}/ and are not published" in said


def test_a_model_whose_training_job_cannot_be_told_trained_on_nothing_known(lab: Lab) -> None:
    assert batch_scoring.trained_on_key(lab.client, "Iris-KNN-nope") is None


# ---- the endpoint ------------------------------------------------------------------------------------------


def test_a_runs_model_is_deployed_checked_online_and_its_description_published(lab: Lab) -> None:
    settings = _settings(lab)
    scored = _scored(lab, settings, RUN)
    batch_scoring.publish_scored_run(lab.store, lab.client, settings, RUN, scored, lambda _: None)
    runtime = make_runtime_client(settings, lab.client)
    key = "iris/dagster/knn_endpoint.json"
    rollout = endpoint_rollout.deploy_run_model(
        lab.client,
        runtime,
        lab.store,
        settings,
        RUN,
        scored.model_name,
        scored.table,
        scored.table["predicted_label"],
        key,
        log=lambda _: None,
    )
    try:
        assert rollout.deployed and rollout.agreement == 1.0
        assert rollout.value is not None and rollout.value["EndpointStatus"] == "InService"
        assert json.loads(lab.get(key))["EndpointConfigName"] == rollout.value["EndpointConfigName"]
        assert key in json.loads(lab.get(run_objects.LATEST_KEY))["objects"]
        checked = endpoint_rollout.check_online_accuracy(settings, lab.store, runtime, settings.endpoint_name)
        assert checked["rows"] == 45 and checked["accuracy"] == scored.scores.accuracy

        # A later run published meanwhile: this run leaves the endpoint to it.
        lab.put(run_objects.LATEST_KEY, json.dumps({"run": "later", "model_name": "Iris-KNN-later"}).encode())
        again = endpoint_rollout.deploy_run_model(
            lab.client, runtime, lab.store, settings, RUN, scored.model_name, scored.table,
            scored.table["predicted_label"], key, log=lambda _: None,
        )
        assert not again.deployed
        assert again.reason is not None and "run 'later' published last" in again.reason
        assert endpoint_rollout.model_to_deploy(settings, lab.store, lab.client, scored.model_name) == {
            "ModelName": scored.model_name,
            "ModelDataUrl": lab.client.describe_model(ModelName=scored.model_name)["PrimaryContainer"][
                "ModelDataUrl"
            ],
        }
    finally:
        lab.client.delete_endpoint(EndpointName=settings.endpoint_name)
