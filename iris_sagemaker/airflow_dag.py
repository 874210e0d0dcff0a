"""The Airflow mirror of the asset graph: ``data_prep >> train_model >> create_model >> test_model >>
score_predictions`` (works on Airflow 2.11 and 3.x).

- ``local`` backend (default): every task runs ``iris_sagemaker.airflow_tasks`` on the embedded engine
  and the same local bucket as Dagster; ``airflow dags test sagemaker_pipeline`` runs offline.
- ``aws``: ``train_model`` / ``create_model`` / ``test_model`` are the Amazon provider's SageMaker
  operators (deferrable by default; ``IRIS_SAGEMAKER_AIRFLOW_DEFERRABLE=false`` to block in the worker),
  their configs built by ``iris_sagemaker.specs`` like the assets' requests.

Settings: Airflow Variables ``s3_bucket`` and ``role`` and the connection ``aws-sagemaker`` (as in the
tutorial), falling back to ``IRIS_SAGEMAKER_BUCKET`` / ``IRIS_SAGEMAKER_ROLE_ARN``. Variables are read
when a task runs, never while the file is parsed. ``IRIS_SAGEMAKER_BACKEND`` picks the mode.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from iris_sagemaker import airflow_tasks, sagemaker_steps
from iris_sagemaker.airflow_tasks import (
    MODEL_DATA_URL_TEMPLATE,
    MODEL_NAME_TEMPLATE,
    TRANSFORM_NAME_TEMPLATE,
)
from iris_sagemaker.settings import Settings

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task
from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerModelOperator,
    SageMakerTrainingOperator,
    SageMakerTransformOperator,
)
from botocore.exceptions import ClientError

DAG_ID = "sagemaker_pipeline"
TASK_IDS = ("data_prep", "train_model", "create_model", "test_model", "score_predictions")
START_DATE = dt.datetime(2021, 7, 31, tzinfo=dt.UTC)  # the tutorial's


class ReusingSageMakerModelOperator(SageMakerModelOperator):
    """``SageMakerModelOperator`` that survives a rerun: an existing model of the same name serving the
    same artifact is reused; one serving another artifact (e.g. after a retrained, suffixed job) makes a
    new, timestamp-suffixed model, as the provider does for jobs (``action_if_job_exists="timestamp"``)."""

    def execute(self, context: Any) -> dict:
        # The provider's execute, plus the reuse check (calling super().execute from here would trip
        # Airflow's "execute cannot be called outside TaskInstance" guard).
        self.preprocess_config()
        name = self.config["ModelName"]
        existing = self._describe_model_or_none(name)
        if existing is not None:
            wanted = self.config["PrimaryContainer"]["ModelDataUrl"]
            if existing.get("PrimaryContainer", {}).get("ModelDataUrl") == wanted:
                self.log.info("Model %s already exists with artifact %s: reusing it.", name, wanted)
                return {"Model": sagemaker_steps.json_safe(existing)}
            self.config["ModelName"] = self._get_unique_name(
                name,
                False,
                self.hook.describe_model,
                lambda candidate, describe: self._check_if_resource_exists(candidate, "model", describe),
                "model",
            )
        self.log.info("Creating SageMaker Model %s.", self.config["ModelName"])
        self.hook.create_model(self.config)
        return {"Model": sagemaker_steps.json_safe(self.hook.describe_model(self.config["ModelName"]))}

    def _describe_model_or_none(self, name: str) -> dict | None:
        try:
            return self.hook.describe_model(name)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "ValidationException":
                return None
            raise


def build_dag(
    backend: str | None = None, deferrable: bool | None = None, aws_conn_id: str | None = None
) -> DAG:
    """The DAG for ``backend`` (default ``IRIS_SAGEMAKER_BACKEND``, else local)."""
    settings = airflow_tasks.parse_time_settings(backend)
    conn = aws_conn_id or airflow_tasks.conn_id()
    with DAG(
        dag_id=DAG_ID,
        description="Iris k-NN on SageMaker (or its embedded twin): prepare, train, create model, "
        "batch-transform, score",
        start_date=START_DATE,
        schedule=None,
        catchup=False,
        default_args={"retries": 0, "retry_delay": dt.timedelta(minutes=1)},
        user_defined_macros={
            airflow_tasks.MACROS_SETTINGS: airflow_tasks.resolve_settings,
            airflow_tasks.MACROS_JOB_NAMES: airflow_tasks.job_names,
        },
        tags=["iris", "sagemaker", settings.backend],
        doc_md=__doc__,
    ) as dag:
        prep = _data_prep(conn)
        if settings.is_local:
            steps = [_local_train(), _local_create_model(), _local_test_model()]
        else:
            wait_deferred = airflow_tasks.deferrable_default() if deferrable is None else deferrable
            steps = _aws_operators(settings, conn, wait_deferred)
        score = _score(conn)
        prep >> steps[0] >> steps[1] >> steps[2] >> score
    return dag


def _data_prep(conn: str) -> Any:
    @task(task_id="data_prep", multiple_outputs=False)
    def data_prep() -> dict:
        """Read and split Iris; write train/test CSVs (and the held-out labels) to the bucket."""
        settings = airflow_tasks.resolve_settings()
        return airflow_tasks.data_prep(settings, airflow_tasks.object_store(settings, conn))

    return data_prep()


def _clients(conn: str) -> tuple[Any, Any, Any]:
    """Settings, object store and SageMaker client, resolved when the task runs."""
    settings = airflow_tasks.resolve_settings()
    store = airflow_tasks.object_store(settings, conn)
    return settings, store, airflow_tasks.sagemaker_client(settings, conn, store)


def _local_train() -> Any:
    @task(task_id="train_model", multiple_outputs=False)
    def train_model(run_id: str | None = None) -> dict:
        """CreateTrainingJob on the embedded engine; wait for it."""
        settings, _, client = _clients(airflow_tasks.DEFAULT_CONN_ID)
        return airflow_tasks.train_model(settings, client, str(run_id))

    return train_model()


def _local_create_model() -> Any:
    @task(task_id="create_model", multiple_outputs=False)
    def create_model(model_data_url: str, run_id: str | None = None) -> dict:
        """CreateModel from the training job's artifact (reused on a rerun)."""
        settings, _, client = _clients(airflow_tasks.DEFAULT_CONN_ID)
        return airflow_tasks.create_model(settings, client, str(run_id), model_data_url)

    return create_model(MODEL_DATA_URL_TEMPLATE)


def _local_test_model() -> Any:
    @task(task_id="test_model", multiple_outputs=False)
    def test_model(model_name: str, run_id: str | None = None) -> dict:
        """CreateTransformJob over the test split; wait for it."""
        settings, _, client = _clients(airflow_tasks.DEFAULT_CONN_ID)
        return airflow_tasks.test_model(settings, client, str(run_id), model_name)

    return test_model(MODEL_NAME_TEMPLATE)


def _aws_operators(settings: Settings, conn: str, deferrable: bool) -> list[Any]:
    configs = airflow_tasks.aws_configs(settings)
    common: dict[str, Any] = {"aws_conn_id": conn, "region_name": settings.region}
    waiting: dict[str, Any] = {
        "wait_for_completion": True,
        "deferrable": deferrable,
        "check_interval": airflow_tasks.check_interval(),
        "check_if_job_exists": True,
        "action_if_job_exists": "timestamp",
    }
    return [
        SageMakerTrainingOperator(
            task_id="train_model",
            config=configs["training"],
            print_log=True,
            **waiting,
            **common,
        ),
        ReusingSageMakerModelOperator(task_id="create_model", config=configs["model"], **common),
        SageMakerTransformOperator(
            task_id="test_model",
            config=configs["transform"],
            **waiting,
            **common,
        ),
    ]


def _score(conn: str) -> Any:
    @task(task_id="score_predictions", multiple_outputs=False)
    def score_predictions(transform_job_name: str) -> dict:
        """Join the predictions with the held-out labels; fail below the accuracy threshold."""
        settings, store, client = _clients(conn)
        return airflow_tasks.score_predictions(settings, store, client, transform_job_name)

    return score_predictions(TRANSFORM_NAME_TEMPLATE)
