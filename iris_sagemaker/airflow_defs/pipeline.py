"""The Airflow mirror of the asset graph: ``data_prep >> train_model >> create_model >> test_model >>
score_predictions`` (Airflow 2.11 and 3.x), with ``tune_model`` before ``train_model`` when tuning is on
(``IRIS_SAGEMAKER_TUNE``; README, "Tune k").

One body in both modes: ``train_model``, ``create_model`` and ``test_model`` are the Amazon provider's
SageMaker operators (thin subclasses: ``operators``), their configs built by ``specs`` like the assets'
requests. They, and the two Python tasks, reach SageMaker and S3 through the connection ``aws-sagemaker``:

- ``local`` backend (default): the connection's ``endpoint_url`` names ``iris-sagemaker serve`` (the
  embedded engine over SageMaker's HTTP API, on the local bucket Dagster uses); without a connection, the
  server running for ``IRIS_SAGEMAKER_LOCAL_ROOT``, else one started for the task's process
  (``connection``). ``make airflow-run`` runs the DAG offline.
- ``aws``: SageMaker and S3 themselves.

Deferrable by default (``IRIS_SAGEMAKER_AIRFLOW_DEFERRABLE=false`` blocks in the worker). Settings:
Airflow Variables ``s3_bucket`` and ``role`` (as in the tutorial), falling back to
``IRIS_SAGEMAKER_BUCKET`` / ``IRIS_SAGEMAKER_ROLE_ARN``; read when a task runs, never while the file is
parsed. ``IRIS_SAGEMAKER_BACKEND`` picks the mode. Parsing imports the provider's operator module (the
tasks are its classes) but neither pandas, nor the engine, nor the server.
"""

from __future__ import annotations

import datetime as dt
import importlib
import math
import sys
from dataclasses import replace
from types import ModuleType
from typing import Any

from iris_sagemaker.airflow_defs import config
from iris_sagemaker.core.startup_heap import frozen_heap
from iris_sagemaker.steps.job_steps import DEFAULT_TIMEOUT_SECONDS

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

DAG_ID = "sagemaker_pipeline"
TASK_IDS = ("data_prep", "train_model", "create_model", "test_model", "score_predictions")
START_DATE = dt.datetime(2021, 7, 31, tzinfo=dt.UTC)  # the tutorial's


def task_code() -> ModuleType:
    """``airflow_defs.tasks`` (pandas, boto3 clients), imported when a task runs, never at parse.

    A task's process is short-lived (one task; or one ``airflow dags test``), and what it has loaded
    when a task of ours first runs (Airflow, then pandas and this package) stays until it exits: the
    first call freezes it out of the garbage collector's way, before and after the import
    (``iris_sagemaker.core.startup_heap``; ``IRIS_SAGEMAKER_GC_FREEZE=0`` turns it off).
    """
    name = "iris_sagemaker.airflow_defs.tasks"
    if name not in sys.modules:
        with frozen_heap():
            importlib.import_module(name)
    return sys.modules[name]


def operator_settings(backend: str | None, deferrable: bool | None, aws_conn_id: str | None) -> dict:
    """What every SageMaker operator of the DAGs shares: connection, region, waiting."""
    settings = config.parse_time_settings(backend)
    wait_deferred = config.deferrable_default() if deferrable is None else deferrable
    return {
        "settings": settings,
        "common": {"aws_conn_id": aws_conn_id or config.conn_id(), "region_name": settings.region},
        "waiting": {
            "wait_for_completion": True,
            "deferrable": wait_deferred,
            "check_interval": config.check_interval(settings.is_local),
        },
    }


def build_dag(
    backend: str | None = None,
    deferrable: bool | None = None,
    aws_conn_id: str | None = None,
    tune: bool | None = None,
) -> DAG:
    """The pipeline DAG for ``backend`` (default ``IRIS_SAGEMAKER_BACKEND``, else local). ``tune`` (default
    ``IRIS_SAGEMAKER_TUNE``, off) puts ``tune_model`` before ``train_model``, which then trains with its k."""
    from iris_sagemaker.airflow_defs.operators import (  # the provider: imported to build, not to parse
        IrisModelOperator,
        IrisTrainingOperator,
        IrisTransformOperator,
        IrisTuningOperator,
    )

    shared = operator_settings(backend, deferrable, aws_conn_id)
    settings, common, waiting = shared["settings"], shared["common"], shared["waiting"]
    if tune is not None:
        settings = replace(settings, tune=tune)
    configs = config.operator_configs(settings)
    # The provider's trigger gives up after max_attempts polls (default 60: a minute locally, half an hour
    # on AWS); wait as long as the blocking path does, MaxRuntimeInSeconds plus SageMaker's setup time.
    jobs_waiting = {
        **waiting,
        "max_attempts": math.ceil(DEFAULT_TIMEOUT_SECONDS / waiting["check_interval"]),
        "max_ingestion_time": DEFAULT_TIMEOUT_SECONDS,  # the blocking waits' overall timeout
    }
    with DAG(
        dag_id=DAG_ID,
        description="Iris k-NN on SageMaker (or its embedded twin): prepare, train, create model, "
        "batch-transform, score",
        start_date=START_DATE,
        schedule=None,
        catchup=False,
        default_args={"retries": 0, "retry_delay": dt.timedelta(minutes=1)},
        user_defined_macros=config.macros(),
        tags=["iris", "sagemaker", settings.backend],
        doc_md=__doc__,
    ) as dag:
        prep = _data_prep(common["aws_conn_id"])
        train = IrisTrainingOperator(
            task_id="train_model", config=configs["training"], print_log=True, **jobs_waiting, **common
        )
        model = IrisModelOperator(task_id="create_model", config=configs["model"], **common)
        transform = IrisTransformOperator(
            task_id="test_model", config=configs["transform"], **jobs_waiting, **common
        )
        score = _score(common["aws_conn_id"])
        if settings.tune:  # the provider's tuning operator, on a validation split data_prep carved
            tuning = IrisTuningOperator(
                task_id="tune_model", config=configs["tuning"], **jobs_waiting, **common
            )
            prep >> tuning >> train
        prep >> train >> model >> transform >> score
    return dag


def _data_prep(conn: str) -> Any:
    @task(task_id="data_prep", multiple_outputs=False)
    def data_prep(run_id: str | None = None) -> dict:
        """Read and split Iris; write train/test CSVs (and the held-out labels) to the run's folder."""
        tasks = task_code()
        found = tasks.backends(conn)
        tasks.ensure_local_bucket(found.store, found.settings)
        return tasks.data_prep(found.settings, found.store, str(run_id))

    return data_prep()


def _score(conn: str) -> Any:
    @task(task_id="score_predictions", multiple_outputs=False)
    def score_predictions(transform_job_name: str, run_id: str | None = None) -> dict:
        """Join the predictions with the held-out labels; fail below the accuracy threshold, else
        publish the run's objects to the tutorial's keys."""
        tasks = task_code()
        found = tasks.backends(conn)
        return tasks.score_predictions(
            found.settings, found.store, found.sagemaker, transform_job_name, str(run_id)
        )

    return score_predictions(config.TRANSFORM_NAME_TEMPLATE)
