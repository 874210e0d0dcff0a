"""The model in the launchpad (issue 26, item 9): k, sample_size, index_metric and the accuracy threshold
are settings (IRIS_SAGEMAKER_*, the sagemaker resource) and Dagster run config (knn_training_job,
test_predictions), checked as the k-NN algorithm checks them, recorded in metadata, and driving the
Airflow DAG's training request too; a tuned k goes the same way and wins."""

from __future__ import annotations

import pytest
from dagster import DagsterInstance, materialize

from iris_sagemaker.airflow_defs import config as airflow_config
from iris_sagemaker.core import specs
from iris_sagemaker.core.settings import Settings, SettingsError
from iris_sagemaker.dagster_defs.code_location import build_definitions
from iris_sagemaker.dagster_defs.resources import SageMakerResource
from iris_sagemaker.local_sagemaker.testing import Lab

pytestmark = [pytest.mark.dagster]

TUTORIAL = {"predictor_type": "classifier", "feature_dim": "4", "k": "3", "sample_size": "150"}


def test_the_defaults_are_the_tutorials_hyperparameters_and_threshold() -> None:
    settings = Settings.from_env({})
    assert settings.hyperparameters() == specs.DEFAULT_HYPERPARAMETERS == TUTORIAL
    assert list(specs.training_job_request(settings, "n")["HyperParameters"]) == list(TUTORIAL)  # same order
    assert settings.accuracy_threshold == 0.9


def test_the_settings_are_read_from_the_environment_and_the_resource() -> None:
    env = {
        "IRIS_SAGEMAKER_K": "5",
        "IRIS_SAGEMAKER_SAMPLE_SIZE": "100",
        "IRIS_SAGEMAKER_INDEX_METRIC": "COSINE",
        "IRIS_SAGEMAKER_ACCURACY_THRESHOLD": "0.95",
    }
    settings = Settings.from_env(env)
    assert specs.training_job_request(settings, "n")["HyperParameters"] == {
        **TUTORIAL,
        "k": "5",
        "sample_size": "100",
        "index_metric": "COSINE",
    }
    assert settings.accuracy_threshold == 0.95
    resource = SageMakerResource(k=7, sample_size=60, index_metric="L2", accuracy_threshold=0.5).settings
    assert resource.hyperparameters() == {**TUTORIAL, "k": "7", "sample_size": "60", "index_metric": "L2"}
    assert resource.accuracy_threshold == 0.5


@pytest.mark.parametrize(
    ("variable", "value", "hyperparameter"),
    [
        ("IRIS_SAGEMAKER_K", "0", {"k": "0"}),
        ("IRIS_SAGEMAKER_K", "three", {"k": "three"}),
        ("IRIS_SAGEMAKER_SAMPLE_SIZE", "-5", {"sample_size": "-5"}),
        ("IRIS_SAGEMAKER_INDEX_METRIC", "MANHATTAN", {"index_metric": "MANHATTAN"}),
    ],
)
def test_a_bad_hyperparameter_setting_gets_the_engines_own_message(
    tmp_path, variable: str, value: str, hyperparameter: dict[str, str]
) -> None:
    """The setting's error is the one line the training job would fail with, naming the variable."""
    job = Lab(tmp_path).train(hyperparameters={**TUTORIAL, **hyperparameter})
    engine = job["FailureReason"].removeprefix("ClientError: ")
    assert engine.startswith("Invalid hyperparameter ")
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({variable: value})
    example = {"IRIS_SAGEMAKER_K": "3", "IRIS_SAGEMAKER_SAMPLE_SIZE": "150"}.get(variable, "L2")
    assert raised.value.problems == [f"{variable}={value!r}: {engine} Set it to e.g. {example}"]


def test_every_bad_model_setting_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(
            {
                "IRIS_SAGEMAKER_K": "-1",
                "IRIS_SAGEMAKER_SAMPLE_SIZE": "many",
                "IRIS_SAGEMAKER_ACCURACY_THRESHOLD": "1.5",
            }
        )
    assert raised.value.problems == [
        "IRIS_SAGEMAKER_SAMPLE_SIZE='many': Invalid hyperparameter sample_size='many': must be a positive "
        "integer. Set it to e.g. 150",
        "IRIS_SAGEMAKER_K='-1': Invalid hyperparameter k='-1': must be a positive integer. Set it to e.g. 3",
        "IRIS_SAGEMAKER_ACCURACY_THRESHOLD=1.5 is not an accuracy: use a number from 0 to 1 (e.g. 0.9)",
    ]
    with pytest.raises(SettingsError, match=r"^IRIS_SAGEMAKER_ACCURACY_THRESHOLD='high' is not a number"):
        Settings.from_env({"IRIS_SAGEMAKER_ACCURACY_THRESHOLD": "high"})
    with pytest.raises(SettingsError, match=r"^IRIS_SAGEMAKER_K='0': Invalid hyperparameter k='0'"):
        SageMakerResource(k=0).settings  # noqa: B018


def test_the_airflow_training_request_takes_the_same_settings() -> None:
    settings = Settings.from_env({"IRIS_SAGEMAKER_K": "5", "IRIS_SAGEMAKER_SAMPLE_SIZE": "100"})
    training = airflow_config.operator_configs(settings)["training"]
    assert training["HyperParameters"] == {**TUTORIAL, "k": "5", "sample_size": "100"}
    tuned = airflow_config.operator_configs(
        Settings.from_env({"IRIS_SAGEMAKER_K": "5", "IRIS_SAGEMAKER_TUNE": "1"})
    )
    assert tuned["training"]["HyperParameters"]["k"] == airflow_config.TUNED_K_TEMPLATE  # the tuned k wins
    static = tuned["tuning"]["TrainingJobDefinition"]["StaticHyperParameters"]
    assert static == {key: value for key, value in TUTORIAL.items() if key != "k"}


def _materialize(run_config: dict | None = None, success: bool = True):
    defs = build_definitions()
    result = materialize(
        [*defs.assets, *defs.asset_checks],
        resources=defs.resources,
        raise_on_error=False,
        instance=DagsterInstance.ephemeral(),
        run_config=run_config,
    )
    assert result.success is success, [e.message for e in result.all_events if e.is_failure]
    return result


def _metadata(result, node: str) -> dict:
    metadata = result.asset_materializations_for_node(node)[0].metadata
    return {key: value.value for key, value in metadata.items()}


def test_the_launchpad_sets_the_model_and_the_threshold_for_one_run(monkeypatch) -> None:
    monkeypatch.setenv("IRIS_SAGEMAKER_DEPLOY_ENDPOINT", "false")
    result = _materialize(
        {
            "ops": {
                "knn_training_job": {"config": {"k": 5, "sample_size": 100, "index_metric": "COSINE"}},
                "test_predictions": {"config": {"accuracy_threshold": 0.8}},
            }
        }
    )
    job = result.output_for_node("knn_training_job")
    assert job["HyperParameters"] == {**TUTORIAL, "k": "5", "sample_size": "100", "index_metric": "COSINE"}
    training = _metadata(result, "knn_training_job")
    assert (training["k"], training["k_source"]) == (5, "the run config's (tuning off)")
    assert (training["sample_size"], training["index_metric"]) == (100, "COSINE")
    assert training["run_config"] == {"k": 5, "sample_size": 100, "index_metric": "COSINE"}
    assert _metadata(result, "test_predictions")["accuracy_threshold"] == 0.8
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evaluations["accuracy_at_least_threshold"].metadata["threshold"].value == 0.8


def test_settings_drive_the_model_and_the_check_fails_above_the_accuracy(monkeypatch) -> None:
    monkeypatch.setenv("IRIS_SAGEMAKER_DEPLOY_ENDPOINT", "false")
    monkeypatch.setenv("IRIS_SAGEMAKER_K", "7")
    monkeypatch.setenv("IRIS_SAGEMAKER_ACCURACY_THRESHOLD", "1")
    result = _materialize(success=False)  # the tutorial's split scores below 1: the blocking check fails
    training = _metadata(result, "knn_training_job")
    assert training["k"] == 7 and training["k_source"].startswith("the settings' (IRIS_SAGEMAKER_K")
    assert training["index_metric"] == "L2 (k-NN's default)"
    check = {e.check_name: e for e in result.get_asset_check_evaluations()}["accuracy_at_least_threshold"]
    assert not check.passed and check.metadata["threshold"].value == 1.0
    assert "not published" in _metadata(result, "test_predictions")["published_predictions_uri"]


@pytest.mark.parametrize(
    ("op", "config", "message"),
    [
        (
            "knn_training_job",
            {"k": 0},
            "knn_training_job's run config k='0': Invalid hyperparameter k='0': must be a positive integer. "
            "Set it to e.g. 3",
        ),
        (
            "knn_training_job",
            {"index_metric": "MANHATTAN"},
            "knn_training_job's run config index_metric='MANHATTAN': Invalid hyperparameter "
            "index_metric='MANHATTAN': allowed values are L2, INNER_PRODUCT, COSINE. Set it to e.g. L2",
        ),
        (
            "test_predictions",
            {"accuracy_threshold": 2.0},
            "test_predictions' run config accuracy_threshold=2.0 is not an accuracy: use a number from 0 "
            "to 1",
        ),
    ],
)
def test_bad_run_config_fails_its_step_with_the_engines_message(op: str, config: dict, message: str) -> None:
    result = _materialize({"ops": {op: {"config": config}}}, success=False)
    failures = [e for e in result.all_events if e.is_step_failure]
    assert [e.step_key for e in failures] == [op]
    assert message in failures[0].step_failure_data.error.message
    if op == "knn_training_job":  # checked before any job started
        client = SageMakerResource().get_client()
        assert client.list_training_jobs()["TrainingJobSummaries"] == []


def test_with_tuning_on_the_tuned_k_wins_over_the_run_config_and_says_so(monkeypatch) -> None:
    monkeypatch.setenv("IRIS_SAGEMAKER_DEPLOY_ENDPOINT", "false")
    monkeypatch.setenv("IRIS_SAGEMAKER_TUNE", "true")
    monkeypatch.setenv("IRIS_SAGEMAKER_TUNING_JOBS", "2")
    monkeypatch.setenv("IRIS_SAGEMAKER_TUNING_PARALLEL", "2")
    result = _materialize({"ops": {"knn_training_job": {"config": {"k": 19, "sample_size": 90}}}})
    tuned = result.output_for_node("knn_tuning_job")
    k = tuned["HyperParameters"]["k"]
    job = result.output_for_node("knn_training_job")
    assert job["HyperParameters"] == {**TUTORIAL, "k": k, "sample_size": "90"}
    training = _metadata(result, "knn_training_job")
    assert training["k_source"] == (
        f"tuned by {tuned['HyperParameterTuningJobName']} (tuning is on: it wins over the run config's "
        "k = 19)"
    )
