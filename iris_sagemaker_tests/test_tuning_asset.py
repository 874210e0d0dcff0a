"""Tune k in the asset graph: knn_tuning_job tunes on a validation split carved from train_csv (never the test
split) and hands its k to knn_training_job; off by default, when training keeps the tutorial's k = 3."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance, materialize

from iris_sagemaker.core.settings import DEFAULT_LOCAL_BUCKET, Settings, SettingsError
from iris_sagemaker.dagster_defs.code_location import build_definitions
from iris_sagemaker.local_sagemaker import LocalSageMakerClient
from iris_sagemaker.steps import tuning_steps

pytestmark = [pytest.mark.dagster]


def _materialize():
    defs = build_definitions()
    instance = DagsterInstance.ephemeral()
    result = materialize(
        [*defs.assets, *defs.asset_checks], resources=defs.resources, raise_on_error=False, instance=instance
    )
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return result


@pytest.mark.slow
def test_a_full_materialization_tunes_k_and_trains_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRIS_SAGEMAKER_TUNE", "true")
    monkeypatch.setenv("IRIS_SAGEMAKER_TUNING_JOBS", "8")
    result = _materialize()
    tuned = result.output_for_node("knn_tuning_job")
    assert tuned["tuned"] is True
    metadata = result.asset_materializations_for_node("knn_tuning_job")[0].metadata
    k = metadata["k"].value
    assert tuned["HyperParameters"] == {"k": str(k)} and 1 <= k <= 20
    assert metadata["training_jobs"].value == 8
    assert metadata["trials"].value.count("| tune-iris-") == 8
    assert metadata["objective_vs_k"].value.startswith(
        "![validation accuracy by k](data:image/svg+xml;base64,"
    )
    # Training used the chosen k, and says where it came from.
    job = result.output_for_node("knn_training_job")
    assert job["HyperParameters"]["k"] == str(k)
    training = result.asset_materializations_for_node("knn_training_job")[0].metadata
    assert training["k_source"].value == f"tuned by {tuned['HyperParameterTuningJobName']}"

    root = Path(os.environ["IRIS_SAGEMAKER_LOCAL_ROOT"])
    engine = LocalSageMakerClient(root)
    name = tuned["HyperParameterTuningJobName"]
    described = engine.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    trials = tuning_steps.trials(engine, name)
    best = max(t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for t in trials)
    assert described["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == best
    assert metadata["validation_accuracy"].value == best

    # The trials saw the carved fit and validation sets, never the held-out test split.
    bucket = root / "s3" / DEFAULT_LOCAL_BUCKET
    run = result.run_id.replace("-", "")
    fit = pd.read_csv(bucket / f"iris/runs/{run}/tuning-input/fit.csv", header=None)
    validation = pd.read_csv(bucket / f"iris/runs/{run}/tuning-input/validation.csv", header=None)
    train = pd.read_csv(bucket / "iris/processed-input-data/train.csv", header=None)
    assert len(fit) + len(validation) == len(train) == 105
    rows = sorted(map(tuple, np.vstack([fit.to_numpy(), validation.to_numpy()]).round(6)))
    assert rows == sorted(map(tuple, train.to_numpy().round(6)))
    for trial in trials:
        channels = engine.describe_training_job(TrainingJobName=trial["TrainingJobName"])["InputDataConfig"]
        uris = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in channels}
        assert uris["train"].endswith("/tuning-input/fit.csv")
        assert uris["test"].endswith("/tuning-input/validation.csv")
    assert result.asset_materializations_for_node("test_predictions")[0].metadata["accuracy"].value >= 0.9


def test_without_tuning_training_keeps_the_tutorials_k() -> None:
    result = _materialize()
    assert result.output_for_node("knn_tuning_job") == {"tuned": False, "HyperParameters": {"k": "3"}}
    assert result.output_for_node("knn_training_job")["HyperParameters"]["k"] == "3"
    metadata = {m.asset_key: m.metadata for m in result.asset_materializations_for_node("knn_training_job")}[
        AssetKey("knn_training_job")
    ]
    assert metadata["k_source"].value == "the tutorial's (tuning off)"
    root = Path(os.environ["IRIS_SAGEMAKER_LOCAL_ROOT"])
    assert (
        LocalSageMakerClient(root).list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"]
        == []
    )


def test_the_validation_split_is_carved_per_class_from_training_rows() -> None:
    train = pd.DataFrame({"species": [0] * 10 + [1] * 10 + [2] * 5 + [3], "x": range(26)})
    carved = tuning_steps.carve_validation(train, seed=1)
    assert sorted([*carved.fit["x"], *carved.validation["x"]]) == list(range(26))
    assert carved.validation["species"].value_counts().to_dict() == {0: 2, 1: 2, 2: 1}
    assert 3 in set(carved.fit["species"])  # a class of one row stays where training can see it
    again = tuning_steps.carve_validation(train, seed=1)
    assert again.validation.equals(carved.validation)
    with pytest.raises(ValueError, match="IRIS_SAGEMAKER_TUNE=false"):
        tuning_steps.carve_validation(train.iloc[[0, 10]], seed=1)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("IRIS_SAGEMAKER_TUNE", "maybe", "IRIS_SAGEMAKER_TUNE='maybe' is not true or false"),
        ("IRIS_SAGEMAKER_TUNING_JOBS", "0", "IRIS_SAGEMAKER_TUNING_JOBS=0 is out of range"),
        ("IRIS_SAGEMAKER_TUNING_JOBS", "many", "IRIS_SAGEMAKER_TUNING_JOBS='many' is not an integer"),
        ("IRIS_SAGEMAKER_TUNING_PARALLEL", "0", "IRIS_SAGEMAKER_TUNING_PARALLEL=0 is out of range"),
        ("IRIS_SAGEMAKER_TUNING_STRATEGY", "Grid", "IRIS_SAGEMAKER_TUNING_STRATEGY='Grid' is not a strategy"),
    ],
)
def test_tuning_settings_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({name: value})


def test_tuning_is_resource_config_too() -> None:
    """What the launchpad sets (the sagemaker resource's config) overrides the environment."""
    from iris_sagemaker.dagster_defs.resources import SageMakerResource

    resource = SageMakerResource(tune=True, tuning_jobs=5, tuning_parallel=2, tuning_strategy="Random")
    settings = resource.settings
    assert (settings.tune, settings.tuning_jobs, settings.tuning_parallel) == (True, 5, 2)
    assert settings.tuning_strategy == "Random"
    with pytest.raises(SettingsError, match="IRIS_SAGEMAKER_TUNING_PARALLEL=0"):
        SageMakerResource(tuning_parallel=0).settings  # noqa: B018
