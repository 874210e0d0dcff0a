"""Tune k in the Airflow mirror: with ``IRIS_SAGEMAKER_TUNE=true`` the DAG runs the provider's own
``SageMakerTuningOperator`` (``tune_model``) between ``data_prep`` and ``train_model``, which trains with the
k it chose; off by default, when the tutorial's four steps stay as they are. Offline against
``iris-sagemaker serve``, deferrable (the provider's trigger) and blocking, on Airflow 2.11 and 3.x.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from iris_sagemaker.local_sagemaker import LocalSageMakerClient
from iris_sagemaker_tests.airflow_support import (
    AIRFLOW,
    REPO,
    airflow_env,
    chain,
    require_airflow,
)

pytestmark = [pytest.mark.airflow]

require_airflow()


def test_tuning_is_off_by_default_and_a_task_before_training_when_on() -> None:
    from iris_sagemaker.airflow_defs.pipeline import build_dag

    assert chain(build_dag()) == [
        "data_prep",
        "train_model",
        "create_model",
        "test_model",
        "score_predictions",
    ]
    tuned = build_dag(tune=True)
    assert tuned.get_task("tune_model").upstream_task_ids == {"data_prep"}
    assert tuned.get_task("train_model").upstream_task_ids == {"data_prep", "tune_model"}
    tuning = tuned.get_task("tune_model").config
    assert (
        tuning["HyperParameterTuningJobConfig"]["ParameterRanges"]["IntegerParameterRanges"][0]["Name"] == "k"
    )
    channels = {c["ChannelName"]: c for c in tuning["TrainingJobDefinition"]["InputDataConfig"]}
    assert channels["train"]["DataSource"]["S3DataSource"]["S3Uri"].endswith("/tuning-input/fit.csv")
    assert channels["test"]["DataSource"]["S3DataSource"]["S3Uri"].endswith("/tuning-input/validation.csv")
    k = tuned.get_task("train_model").config["HyperParameters"]["k"]
    assert "xcom_pull(task_ids='tune_model')" in k and "TunedHyperParameters" in k


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.parametrize("deferrable", ["true", "false"])
def test_a_tuned_run_trains_with_the_k_tuning_chose(airflow_home: Path, deferrable: str) -> None:
    import subprocess
    import sys

    env = airflow_env(
        airflow_home,
        IRIS_SAGEMAKER_TUNE="true",
        IRIS_SAGEMAKER_TUNING_JOBS="6",
        IRIS_SAGEMAKER_TUNING_PARALLEL="3",
        IRIS_SAGEMAKER_AIRFLOW_DEFERRABLE=deferrable,
    )
    command = [sys.executable, "-m", "iris_sagemaker.cli", "with-server", "--", str(AIRFLOW), "dags", "test"]
    done = subprocess.run(
        [*command, "sagemaker_pipeline"], cwd=REPO, env=env, capture_output=True, text=True, timeout=400
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    engine = LocalSageMakerClient(Path(os.environ["IRIS_SAGEMAKER_LOCAL_ROOT"]))
    (tuning,) = engine.list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"]
    assert tuning["HyperParameterTuningJobStatus"] == "Completed"
    assert tuning["TrainingJobStatusCounters"]["Completed"] == 6
    described = engine.describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=tuning["HyperParameterTuningJobName"]
    )
    best_k = described["BestTrainingJob"]["TunedHyperParameters"]["k"]
    (training,) = [
        job
        for job in engine.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]
        if job["TrainingJobName"].startswith("train-iris-")
    ]
    trained = engine.describe_training_job(TrainingJobName=training["TrainingJobName"])
    assert trained["HyperParameters"]["k"] == best_k
    assert trained["TrainingJobStatus"] == "Completed"
