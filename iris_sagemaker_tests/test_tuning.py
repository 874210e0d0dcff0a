"""Hyperparameter tuning jobs through boto3 over HTTP against ``iris-sagemaker serve``: each strategy tunes
k-NN for real, every trial's objective equals an independent k-NN's accuracy, the best job is the best of its
trials, parallel limits hold, stops stop, bad requests fail at create naming what is wrong, and a server
killed mid-tuning leaves nothing InProgress.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError

from iris_sagemaker.local_sagemaker.jobs import TEST_DELAY_ENV
from iris_sagemaker.local_sagemaker.testing import to_csv, training_request
from iris_sagemaker.serve.process import ServerProcess, start_server

from .sdk_support import brute_force_knn, iris
from .serve_support import BUCKET, REGION, client

pytestmark = [pytest.mark.server, pytest.mark.slow]

ACTIVE = ("InProgress", "Stopping")


def _upload(s3: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    train_x, train_y, test_x, test_y = iris()
    s3.put_object(Bucket=BUCKET, Key="tune/train/train.csv", Body=to_csv(train_y, train_x))
    s3.put_object(Bucket=BUCKET, Key="tune/test/test.csv", Body=to_csv(test_y, test_x))
    return train_x, train_y, test_x, test_y


def _definition(static: dict[str, str] | None = None, test: bool = True) -> dict[str, Any]:
    request = training_request(
        "unused",
        f"s3://{BUCKET}/tune/train/",
        f"s3://{BUCKET}/tune/out",
        test_uri=f"s3://{BUCKET}/tune/test/" if test else None,
    )
    definition = {
        key: request[key]
        for key in ("RoleArn", "InputDataConfig", "OutputDataConfig", "ResourceConfig", "StoppingCondition")
    }
    definition["AlgorithmSpecification"] = {
        "TrainingImage": request["AlgorithmSpecification"]["TrainingImage"],
        "TrainingInputMode": "File",
    }
    definition["StaticHyperParameters"] = static or {
        "feature_dim": "4",
        "predictor_type": "classifier",
        "sample_size": "1000",  # above the 105 rows: every row is kept, so an independent k-NN can agree
    }
    return definition


def _config(strategy: str, ranges: dict[str, Any], jobs: int | None = 6, parallel: int = 3) -> dict[str, Any]:
    limits = {"MaxParallelTrainingJobs": parallel}
    if jobs is not None:
        limits["MaxNumberOfTrainingJobs"] = jobs
    return {
        "Strategy": strategy,
        "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "test:accuracy"},
        "ResourceLimits": limits,
        "ParameterRanges": ranges,
        "RandomSeed": 7,
    }


K_RANGE = {"IntegerParameterRanges": [{"Name": "k", "MinValue": "1", "MaxValue": "60"}]}


def _wait(sm: Any, name: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        described = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        if described["HyperParameterTuningJobStatus"] not in ACTIVE or time.monotonic() > deadline:
            return described
        time.sleep(0.1)


def _trials(sm: Any, name: str, **extra: Any) -> list[dict[str, Any]]:
    return list(
        sm.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job")
        .paginate(HyperParameterTuningJobName=name, **extra)
        .search("TrainingJobSummaries[]")
    )


def _code(err: pytest.ExceptionInfo[ClientError]) -> str:
    return err.value.response["Error"]["Code"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = start_server(tmp_path_factory.mktemp("tuning-root"))
    try:
        s3 = client(proc, "s3")
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def data(server: ServerProcess) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return _upload(client(server, "s3"))


@pytest.mark.parametrize(
    ("strategy", "ranges", "jobs"),
    [
        ("Bayesian", K_RANGE, 8),
        ("Random", K_RANGE, 6),
        ("Grid", {"CategoricalParameterRanges": [{"Name": "k", "Values": ["1", "5", "15", "45"]}]}, None),
    ],
)
def test_each_strategy_tunes_k_for_real(server: ServerProcess, data, strategy, ranges, jobs) -> None:
    sm = client(server, "sagemaker")
    train_x, train_y, test_x, test_y = data
    name = f"tune-{strategy.lower()}"
    arn = sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name,
        HyperParameterTuningJobConfig=_config(strategy, ranges, jobs),
        TrainingJobDefinition=_definition(),
    )["HyperParameterTuningJobArn"]
    described = _wait(sm, name)
    assert described["HyperParameterTuningJobStatus"] == "Completed", described.get("FailureReason")
    trials = _trials(sm, name)
    expected_jobs = jobs if jobs is not None else 4  # Grid: every value once
    assert len(trials) == expected_jobs
    assert described["TrainingJobStatusCounters"]["Completed"] == expected_jobs
    assert described["ObjectiveStatusCounters"] == {"Succeeded": expected_jobs, "Pending": 0, "Failed": 0}
    values = {}
    for trial in trials:
        k = int(trial["TunedHyperParameters"]["k"])
        accuracy = float(np.mean(brute_force_knn(train_x, train_y, test_x, k) == test_y))
        value = trial["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
        assert value == pytest.approx(accuracy, abs=1e-6), f"k={k}"
        values[trial["TrainingJobName"]] = value
        job = sm.describe_training_job(TrainingJobName=trial["TrainingJobName"])
        assert job["TuningJobArn"] == arn
        assert job["HyperParameters"]["k"] == str(k)
        assert job["ModelArtifacts"]["S3ModelArtifacts"].endswith(
            f"{trial['TrainingJobName']}/output/model.tar.gz"
        )
    best = described["BestTrainingJob"]
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == max(values.values())
    assert values[best["TrainingJobName"]] == max(values.values())
    if strategy == "Grid":
        assert sorted(int(t["TunedHyperParameters"]["k"]) for t in trials) == [1, 5, 15, 45]


def test_bayesian_is_a_model_not_random_sampling(server: ServerProcess, data) -> None:
    """After its random start, TPE proposes from what it learnt: with accuracy falling as k grows on Iris,
    its later proposals sit lower in k than its first ones."""
    sm = client(server, "sagemaker")
    ranges = {"IntegerParameterRanges": [{"Name": "k", "MinValue": "1", "MaxValue": "100"}]}
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="tune-model",
        HyperParameterTuningJobConfig=_config("Bayesian", ranges, jobs=20, parallel=1),
        TrainingJobDefinition=_definition(),
    )
    assert _wait(sm, "tune-model")["HyperParameterTuningJobStatus"] == "Completed"
    trials = sorted(_trials(sm, "tune-model"), key=lambda t: t["TrainingJobName"])
    ks = [int(t["TunedHyperParameters"]["k"]) for t in trials]
    assert np.median(ks[10:]) < np.median(ks[:10]), ks


def test_parallel_limit_holds_and_is_reached(tmp_path: Path) -> None:
    proc = start_server(tmp_path / "root", {TEST_DELAY_ENV: "0.2"})
    try:
        client(proc, "s3").create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        _upload(client(proc, "s3"))
        sm = client(proc, "sagemaker")
        sm.create_hyper_parameter_tuning_job(
            HyperParameterTuningJobName="tune-parallel",
            HyperParameterTuningJobConfig=_config("Random", K_RANGE, jobs=6, parallel=2),
            TrainingJobDefinition=_definition(),
        )
        most = 0
        while True:
            running = _trials(sm, "tune-parallel", StatusEquals="InProgress")
            most = max(most, len(running))
            described = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="tune-parallel")
            if described["HyperParameterTuningJobStatus"] != "InProgress":
                break
            assert described["TrainingJobStatusCounters"]["InProgress"] <= 2
            time.sleep(0.05)
        assert most == 2
        assert described["TrainingJobStatusCounters"]["Completed"] == 6
    finally:
        proc.stop()


def test_stop_stops_the_running_trials_and_starts_no_more(tmp_path: Path) -> None:
    proc = start_server(tmp_path / "root", {TEST_DELAY_ENV: "0.3"})
    try:
        client(proc, "s3").create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        _upload(client(proc, "s3"))
        sm = client(proc, "sagemaker")
        sm.create_hyper_parameter_tuning_job(
            HyperParameterTuningJobName="tune-stop",
            HyperParameterTuningJobConfig=_config("Random", K_RANGE, jobs=10, parallel=2),
            TrainingJobDefinition=_definition(),
        )
        while not _trials(sm, "tune-stop", StatusEquals="InProgress"):
            time.sleep(0.05)
        sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="tune-stop")
        described = _wait(sm, "tune-stop", timeout=60)
        assert described["HyperParameterTuningJobStatus"] == "Stopped"
        trials = _trials(sm, "tune-stop")
        assert len(trials) < 10
        assert "Stopped" in {t["TrainingJobStatus"] for t in trials}
        assert not [t for t in trials if t["TrainingJobStatus"] in ACTIVE]
        assert described["TrainingJobStatusCounters"]["InProgress"] == 0
        time.sleep(1)
        assert len(_trials(sm, "tune-stop")) == len(trials)  # nothing started after the stop
        with pytest.raises(ClientError) as err:
            sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="tune-stop")
        assert _code(err) == "ValidationException"
    finally:
        proc.stop()


def test_a_server_killed_mid_tuning_leaves_nothing_in_progress(tmp_path: Path) -> None:
    root = tmp_path / "root"
    proc = start_server(root, {TEST_DELAY_ENV: "0.3"})
    try:
        client(proc, "s3").create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        _upload(client(proc, "s3"))
        sm = client(proc, "sagemaker")
        sm.create_hyper_parameter_tuning_job(
            HyperParameterTuningJobName="tune-killed",
            HyperParameterTuningJobConfig=_config("Bayesian", K_RANGE, jobs=10, parallel=2),
            TrainingJobDefinition=_definition(),
        )
        while not _trials(sm, "tune-killed", StatusEquals="InProgress"):
            time.sleep(0.05)
    finally:
        proc.stop(signal.SIGKILL)
    proc = start_server(root)
    try:
        sm = client(proc, "sagemaker")
        described = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="tune-killed")
        assert described["HyperParameterTuningJobStatus"] == "Failed"
        assert "died before the job finished" in described["FailureReason"]
        trials = _trials(sm, "tune-killed")
        assert trials and not [t for t in trials if t["TrainingJobStatus"] in ACTIVE]
        listed = sm.list_hyper_parameter_tuning_jobs(StatusEquals="InProgress")
        assert listed["HyperParameterTuningJobSummaries"] == []
    finally:
        proc.stop()


def test_lists_sorts_filters_tags_and_delete(server: ServerProcess, data) -> None:
    sm = client(server, "sagemaker")
    ranges = {"CategoricalParameterRanges": [{"Name": "k", "Values": ["1", "9", "27", "81"]}]}
    arn = sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="tune-lists",
        HyperParameterTuningJobConfig=_config("Grid", ranges, jobs=None, parallel=4),
        TrainingJobDefinition=_definition(),
        Tags=[{"Key": "team", "Value": "iris"}],
    )["HyperParameterTuningJobArn"]
    with pytest.raises(ClientError) as err:
        sm.delete_hyper_parameter_tuning_job(HyperParameterTuningJobName="tune-lists")
    assert _code(err) == "ValidationException" and "InProgress" in str(err.value)
    assert _wait(sm, "tune-lists")["HyperParameterTuningJobStatus"] == "Completed"
    by_value = _trials(sm, "tune-lists", SortBy="FinalObjectiveMetricValue", SortOrder="Descending")
    values = [t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for t in by_value]
    assert values == sorted(values, reverse=True)
    by_name = _trials(sm, "tune-lists", SortBy="Name", PaginationConfig={"PageSize": 1})
    assert [t["TrainingJobName"] for t in by_name] == sorted(t["TrainingJobName"] for t in by_value)
    assert _trials(sm, "tune-lists", StatusEquals="Failed") == []
    listed = sm.list_hyper_parameter_tuning_jobs(NameContains="lists")["HyperParameterTuningJobSummaries"]
    assert [(s["HyperParameterTuningJobName"], s["Strategy"]) for s in listed] == [("tune-lists", "Grid")]
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "iris"}]
    sm.delete_hyper_parameter_tuning_job(HyperParameterTuningJobName="tune-lists")
    for call in (
        lambda: sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="tune-lists"),
        lambda: sm.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName="tune-lists"
        ),
    ):
        with pytest.raises(ClientError) as err:
            call()
        assert _code(err) == "ResourceNotFound"
    # Its training jobs stay, as on SageMaker.
    assert sm.describe_training_job(TrainingJobName=by_value[0]["TrainingJobName"])["TrainingJobStatus"]


def _create_error(sm: Any, config: dict[str, Any], **request: Any) -> str:
    with pytest.raises(ClientError) as err:
        sm.create_hyper_parameter_tuning_job(
            HyperParameterTuningJobName="tune-bad",
            HyperParameterTuningJobConfig=config,
            **({"TrainingJobDefinition": _definition()} | request),
        )
    assert _code(err) == "ValidationException"
    return err.value.response["Error"]["Message"]


def test_bad_requests_fail_at_create_naming_the_problem(server: ServerProcess) -> None:
    sm = client(server, "sagemaker")
    bad_metric = _config("Bayesian", K_RANGE)
    bad_metric["HyperParameterTuningJobObjective"]["MetricName"] = "test:f1"
    assert "'test:f1' is not one the k-NN algorithm emits" in _create_error(sm, bad_metric)
    below = {"IntegerParameterRanges": [{"Name": "k", "MinValue": "0", "MaxValue": "5"}]}
    assert "k >= 1" in _create_error(sm, _config("Random", below))
    both = {"IntegerParameterRanges": [{"Name": "sample_size", "MinValue": "10", "MaxValue": "50"}]}
    assert "sample_size is both static" in _create_error(sm, _config("Random", both))
    message = _create_error(sm, _config("Random", K_RANGE), TrainingJobDefinition=_definition(test=False))
    assert "'test' channel" in message
    assert "Hyperband strategy is not supported" in _create_error(sm, _config("Hyperband", K_RANGE))
    grid_ints = _config("Grid", K_RANGE, jobs=None)
    assert "Grid strategy searches categorical ranges only" in _create_error(sm, grid_ints)
    continuous = {"ContinuousParameterRanges": [{"Name": "k", "MinValue": "1", "MaxValue": "5"}]}
    assert "no continuous hyperparameters" in _create_error(sm, _config("Random", continuous))
    unknown = {"IntegerParameterRanges": [{"Name": "epochs", "MinValue": "1", "MaxValue": "5"}]}
    assert "epochs: not a k-NN hyperparameter" in _create_error(sm, _config("Random", unknown))
    bad_choice = {"CategoricalParameterRanges": [{"Name": "index_type", "Values": ["faiss.HNSW"]}]}
    assert "'faiss.HNSW' not allowed" in _create_error(sm, _config("Random", bad_choice))
    regressor = _config("Random", K_RANGE)
    regressor["HyperParameterTuningJobObjective"] = {"Type": "Minimize", "MetricName": "test:mse"}
    assert "emitted by k-NN regressors" in _create_error(sm, regressor)
    assert "MaxNumberOfTrainingJobs is required" in _create_error(sm, _config("Random", K_RANGE, jobs=None))
    warm = {
        "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": "x"}],
        "WarmStartType": "TransferLearning",
    }
    assert "Warm start" in _create_error(sm, _config("Random", K_RANGE), WarmStartConfig=warm)
    plural = {"TrainingJobDefinitions": [_definition()], "TrainingJobDefinition": None}
    definitions = _config("Random", K_RANGE)
    del definitions["HyperParameterTuningJobObjective"]
    with pytest.raises(ClientError) as err:
        sm.create_hyper_parameter_tuning_job(
            HyperParameterTuningJobName="tune-bad",
            HyperParameterTuningJobConfig=definitions,
            TrainingJobDefinitions=plural["TrainingJobDefinitions"],
        )
    assert "TrainingJobDefinitions" in str(err.value)
    assert (
        sm.list_hyper_parameter_tuning_jobs(NameContains="tune-bad")["HyperParameterTuningJobSummaries"] == []
    )
    with pytest.raises(ClientError) as err:
        sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="never-made")
    assert _code(err) == "ResourceNotFound"
