"""Tuning k for the tutorial (README, "Tune k"): the validation split carved from the training split, the
tuning job as a step (start or find, wait, stop when terminated: :mod:`.job_steps`), and reading what
it chose. The same for both backends and both orchestrators; request bodies are :mod:`.specs`'.

The held-out test split is never seen by tuning: its trials train on ``fit`` and are scored on
``validation``, both cut from the training split, so the accuracy ``test_predictions`` reports stays an
honest estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from iris_sagemaker.core import dataset, run_objects, specs
from iris_sagemaker.core.settings import Settings
from iris_sagemaker.steps import job_steps
from iris_sagemaker.steps.job_steps import TUNING_JOB, Log, OnPoll, Waiting

VALIDATION_FRACTION = 0.2


@dataclass(frozen=True)
class Carved:
    fit: pd.DataFrame
    validation: pd.DataFrame


@dataclass(frozen=True)
class TuningData:
    """Where one run's tuning data lives (under its own folder), and how many rows each set holds."""

    fit_key: str
    validation_key: str
    fit_rows: int
    validation_rows: int


def carve_validation(train: pd.DataFrame, seed: int, fraction: float = VALIDATION_FRACTION) -> Carved:
    """Split the training rows (label first) into ``fit`` and ``validation``: seeded, per label, so every
    class is in both when it has two rows or more."""
    rng = np.random.default_rng(seed)
    label = train.columns[0]
    validation_rows: list[Any] = []
    for _, rows in train.groupby(label, sort=True):
        index = rng.permutation(rows.index.to_numpy())
        take = min(len(index) - 1, max(1, round(len(index) * fraction)))  # a class of one row stays in fit
        validation_rows.extend(index[:take])
    chosen = train.index.isin(validation_rows)
    carved = Carved(fit=train[~chosen], validation=train[chosen])
    if carved.fit.empty or carved.validation.empty:
        raise ValueError(
            f"{len(train)} training rows cannot give both a fit and a validation set for tuning k; "
            "tune with more data, or turn tuning off (IRIS_SAGEMAKER_TUNE=false)"
        )
    return carved


def write_tuning_data(store: Any, bucket: str, train: pd.DataFrame, run: str, seed: int) -> TuningData:
    """Carve the validation set from the run's training rows and write both sets to the run's folder (the
    Dagster asset and the Airflow task alike)."""
    carved = carve_validation(train, seed)
    fit_key = run_objects.scoped(specs.TUNING_FIT_KEY, run)
    validation_key = run_objects.scoped(specs.TUNING_VALIDATION_KEY, run)
    store.put_bytes(bucket, fit_key, dataset.to_sagemaker_csv(carved.fit))
    store.put_bytes(bucket, validation_key, dataset.to_sagemaker_csv(carved.validation))
    return TuningData(fit_key, validation_key, len(carved.fit), len(carved.validation))


def run_tuning_job(
    client: Any, request: dict[str, Any], waiting: Waiting, log: Log = print, on_poll: OnPoll | None = None
) -> dict[str, Any]:
    """The tuning job of ``request``, Completed (a retry finds it: reused, waited for, or failed)."""
    return job_steps.run_job(client, TUNING_JOB, request, waiting, log, on_poll)


def trials(client: Any, name: str) -> list[dict[str, Any]]:
    """Every training job of the tuning job (ListTrainingJobsForHyperParameterTuningJob, all pages)."""
    out: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = client.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=name, MaxResults=100, **({"NextToken": token} if token else {})
        )
        out.extend(page["TrainingJobSummaries"])
        token = page.get("NextToken")
        if not token:
            return out


def chosen_hyperparameters(description: dict[str, Any]) -> dict[str, str]:
    """What the best training job was tuned to (``{"k": "7"}``)."""
    best = description.get("BestTrainingJob")
    if not best:
        raise job_steps.SageMakerJobError(
            f"hyperparameter tuning job {description['HyperParameterTuningJobName']} named no best training "
            "job: none of its training jobs gave the objective metric"
        )
    return dict(best["TunedHyperParameters"])


def trials_table(summaries: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per trial: its job, k, status and validation accuracy (empty when it gave none), by k."""
    rows = [
        {
            "training_job": s["TrainingJobName"],
            "k": int(s["TunedHyperParameters"]["k"]),
            "status": s["TrainingJobStatus"],
            "validation_accuracy": (s.get("FinalHyperParameterTuningJobObjectiveMetric") or {}).get("Value"),
        }
        for s in summaries
    ]
    table = pd.DataFrame(rows, columns=["training_job", "k", "status", "validation_accuracy"])
    return table.sort_values(["k", "training_job"], kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class TunedK:
    """A finished tuning of k: its request, its description, the k it chose, and its trials."""

    request: dict[str, Any]
    description: dict[str, Any]  # DescribeHyperParameterTuningJob, Completed
    chosen: dict[str, str]  # the best training job's tuned hyperparameters ({"k": "7"})
    trials: pd.DataFrame  # trials_table
    data: TuningData

    @property
    def best(self) -> dict[str, Any]:
        return dict(self.description["BestTrainingJob"])

    @property
    def objective(self) -> dict[str, Any]:
        """The best job's objective: ``{"MetricName": ..., "Value": ...}``."""
        return dict(self.best["FinalHyperParameterTuningJobObjectiveMetric"])


def tune_k(
    client: Any, store: Any, settings: Settings, train: pd.DataFrame, run: str, log: Log = print
) -> TunedK:
    """Tune k for run ``run``: carve the validation split from ``train`` into the run's folder, run the
    tuning job (start or find, wait), and read what it chose and every trial."""
    data = write_tuning_data(store, settings.bucket, train, run, settings.split_seed)
    name = specs.tuning_job_name(run)
    request = specs.tuning_job_request(settings, name, data.fit_key, data.validation_key)
    description = run_tuning_job(client, request, job_steps.waiting_for(settings.is_local), log=log)
    chosen = chosen_hyperparameters(description)
    table = trials_table(trials(client, name))
    return TunedK(request, description, chosen, table, data)
