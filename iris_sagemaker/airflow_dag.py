"""The Airflow mirror of the asset graph: ``data_prep >> train_model >> create_model >> test_model >>
score_predictions`` (works on Airflow 2.11 and 3.x).

- ``local`` backend (default): every task runs ``iris_sagemaker.airflow_tasks`` on the embedded engine
  and the same local bucket as Dagster; ``airflow dags test sagemaker_pipeline`` runs offline. The tasks
  import it when they run: parsing the file imports neither pandas nor the engine nor the provider.
- ``aws``: ``train_model`` / ``create_model`` / ``test_model`` are the Amazon provider's SageMaker
  operators (deferrable by default; ``IRIS_SAGEMAKER_AIRFLOW_DEFERRABLE=false`` to block in the worker),
  their configs built by ``iris_sagemaker.specs`` like the assets' requests.

Settings: Airflow Variables ``s3_bucket`` and ``role`` and the connection ``aws-sagemaker`` (as in the
tutorial), falling back to ``IRIS_SAGEMAKER_BUCKET`` / ``IRIS_SAGEMAKER_ROLE_ARN``. Variables are read
when a task runs, never while the file is parsed. ``IRIS_SAGEMAKER_BACKEND`` picks the mode.
"""

from __future__ import annotations

import datetime as dt
import importlib
import sys
from types import ModuleType
from typing import Any

from iris_sagemaker import airflow_config
from iris_sagemaker.airflow_config import (
    MODEL_DATA_URL_TEMPLATE,
    MODEL_NAME_TEMPLATE,
    TRANSFORM_NAME_TEMPLATE,
)
from iris_sagemaker.run_objects import run_folder
from iris_sagemaker.startup_heap import frozen_heap

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

DAG_ID = "sagemaker_pipeline"
TASK_IDS = ("data_prep", "train_model", "create_model", "test_model", "score_predictions")
START_DATE = dt.datetime(2021, 7, 31, tzinfo=dt.UTC)  # the tutorial's


def _task_code() -> ModuleType:
    """``iris_sagemaker.airflow_tasks`` (pandas, the engine), imported when a task runs, never at parse.

    A task's process is short-lived (one task; or one ``airflow dags test``), and what it has loaded
    when a task of ours first runs (Airflow, then pandas and this package) stays until it exits: the
    first call freezes it out of the garbage collector's way, before and after the import
    (``iris_sagemaker.startup_heap``; ``IRIS_SAGEMAKER_GC_FREEZE=0`` turns it off).
    """
    name = "iris_sagemaker.airflow_tasks"
    if name not in sys.modules:
        with frozen_heap():
            importlib.import_module(name)
    return sys.modules[name]


def build_dag(
    backend: str | None = None, deferrable: bool | None = None, aws_conn_id: str | None = None
) -> DAG:
    """The DAG for ``backend`` (default ``IRIS_SAGEMAKER_BACKEND``, else local)."""
    settings = airflow_config.parse_time_settings(backend)
    conn = aws_conn_id or airflow_config.conn_id()
    with DAG(
        dag_id=DAG_ID,
        description="Iris k-NN on SageMaker (or its embedded twin): prepare, train, create model, "
        "batch-transform, score",
        start_date=START_DATE,
        schedule=None,
        catchup=False,
        default_args={"retries": 0, "retry_delay": dt.timedelta(minutes=1)},
        user_defined_macros={
            airflow_config.MACROS_SETTINGS: airflow_config.resolve_settings,
            airflow_config.MACROS_JOB_NAMES: airflow_config.job_names,
            airflow_config.MACROS_RUN_FOLDER: run_folder,
        },
        tags=["iris", "sagemaker", settings.backend],
        doc_md=__doc__,
    ) as dag:
        prep = _data_prep(conn)
        if settings.is_local:
            steps = [_local_train(), _local_create_model(), _local_test_model()]
        else:
            from iris_sagemaker.airflow_aws import aws_operators  # the provider: aws mode only

            wait_deferred = airflow_config.deferrable_default() if deferrable is None else deferrable
            steps = aws_operators(settings, conn, wait_deferred)
        score = _score(conn)
        prep >> steps[0] >> steps[1] >> steps[2] >> score
    return dag


def _data_prep(conn: str) -> Any:
    @task(task_id="data_prep", multiple_outputs=False)
    def data_prep(run_id: str | None = None) -> dict:
        """Read and split Iris; write train/test CSVs (and the held-out labels) to the run's folder."""
        airflow_tasks = _task_code()
        settings = airflow_config.resolve_settings()
        return airflow_tasks.data_prep(settings, airflow_tasks.object_store(settings, conn), str(run_id))

    return data_prep()


def _local_train() -> Any:
    @task(task_id="train_model", multiple_outputs=False)
    def train_model(run_id: str | None = None) -> dict:
        """CreateTrainingJob on the embedded engine; wait for it."""
        airflow_tasks = _task_code()
        settings, _, client = airflow_tasks.backends(airflow_config.DEFAULT_CONN_ID)
        return airflow_tasks.train_model(settings, client, str(run_id))

    return train_model()


def _local_create_model() -> Any:
    @task(task_id="create_model", multiple_outputs=False)
    def create_model(model_data_url: str, run_id: str | None = None) -> dict:
        """CreateModel from the training job's artifact (reused on a rerun)."""
        airflow_tasks = _task_code()
        settings, _, client = airflow_tasks.backends(airflow_config.DEFAULT_CONN_ID)
        return airflow_tasks.create_model(settings, client, str(run_id), model_data_url)

    return create_model(MODEL_DATA_URL_TEMPLATE)


def _local_test_model() -> Any:
    @task(task_id="test_model", multiple_outputs=False)
    def test_model(model_name: str, run_id: str | None = None) -> dict:
        """CreateTransformJob over the test split; wait for it."""
        airflow_tasks = _task_code()
        settings, _, client = airflow_tasks.backends(airflow_config.DEFAULT_CONN_ID)
        return airflow_tasks.test_model(settings, client, str(run_id), model_name)

    return test_model(MODEL_NAME_TEMPLATE)


def _score(conn: str) -> Any:
    @task(task_id="score_predictions", multiple_outputs=False)
    def score_predictions(transform_job_name: str, run_id: str | None = None) -> dict:
        """Join the predictions with the held-out labels; fail below the accuracy threshold, else
        publish the run's objects to the tutorial's keys."""
        airflow_tasks = _task_code()
        settings, store, client = airflow_tasks.backends(conn)
        return airflow_tasks.score_predictions(settings, store, client, transform_job_name, str(run_id))

    return score_predictions(TRANSFORM_NAME_TEMPLATE)
