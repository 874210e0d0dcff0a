"""The tutorial's "next step" as a DAG: ``find_model >> create_endpoint_config >> deploy_endpoint >>
check_endpoint`` (``sagemaker_deploy``, no schedule: trigger it after a pipeline run).

- ``find_model``: the DAG param ``model_name``, else the model of the latest published pipeline run
  (``iris/latest-run.json``, written by either orchestrator once a run scored above the threshold);
- ``create_endpoint_config`` / ``deploy_endpoint``: the provider's ``SageMakerEndpointConfigOperator`` and
  ``SageMakerEndpointOperator`` (thin subclasses), bodies from the builders the Dagster asset
  ``knn_endpoint`` uses: one config per deploy run, one endpoint with a stable name
  (``IRIS_SAGEMAKER_ENDPOINT_NAME``, default ``iris-knn``), created once and then updated to the new model;
- ``check_endpoint``: InvokeEndpoint with the published held-out test rows; fails below the accuracy
  threshold.

Same connection, Variables and modes as ``sagemaker_pipeline``. On AWS an endpoint bills by the hour
until it is deleted (README: "Deploy to a real-time endpoint").
"""

from __future__ import annotations

from typing import Any

from iris_sagemaker.airflow_defs import config
from iris_sagemaker.airflow_defs.pipeline import START_DATE, operator_settings, task_code

try:  # Airflow 3
    from airflow.sdk import DAG, Param, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task
    from airflow.models.param import Param

DAG_ID = "sagemaker_deploy"
TASK_IDS = ("find_model", "create_endpoint_config", "deploy_endpoint", "check_endpoint")


def build_deploy_dag(
    backend: str | None = None, deferrable: bool | None = None, aws_conn_id: str | None = None
) -> DAG:
    from iris_sagemaker.airflow_defs.operators import IrisEndpointConfigOperator, IrisEndpointOperator

    shared = operator_settings(backend, deferrable, aws_conn_id)
    settings, common, waiting = shared["settings"], shared["common"], shared["waiting"]
    configs = config.deploy_configs(settings)
    conn = common["aws_conn_id"]
    with DAG(
        dag_id=DAG_ID,
        description="Deploy the latest Iris k-NN model to a real-time endpoint and check it online",
        start_date=START_DATE,
        schedule=None,
        catchup=False,
        default_args={"retries": 0},
        params={
            "model_name": Param(
                "", type="string", description="the SageMaker model to deploy; empty: the latest run's"
            )
        },
        user_defined_macros=config.macros(),
        tags=["iris", "sagemaker", "endpoint", settings.backend],
        doc_md=__doc__,
    ) as dag:
        model = _find_model(conn)
        endpoint_config = IrisEndpointConfigOperator(
            task_id="create_endpoint_config", config=configs["endpoint_config"], **common
        )
        endpoint = IrisEndpointOperator(
            task_id="deploy_endpoint", config=configs["endpoint"], **waiting, **common
        )
        check = _check_endpoint(conn)
        model >> endpoint_config >> endpoint >> check
    return dag


def _find_model(conn: str) -> Any:
    @task(task_id="find_model", multiple_outputs=False)
    def find_model(params: dict | None = None) -> dict:
        """The model to deploy: the param ``model_name``, else the latest published run's."""
        tasks = task_code()
        found = tasks.backends(conn)
        name = str((params or {}).get("model_name") or "").strip() or None
        return tasks.find_model(found.settings, found.store, found.sagemaker, name)

    return find_model()


def _check_endpoint(conn: str) -> Any:
    @task(task_id="check_endpoint", multiple_outputs=False)
    def check_endpoint(endpoint_name: str, previous_config: str) -> dict:
        """InvokeEndpoint with the held-out test rows; fail below the accuracy threshold."""
        tasks = task_code()
        found = tasks.backends(conn)
        previous = previous_config if previous_config not in ("", "None") else None
        return tasks.check_endpoint(found.settings, found.store, found.runtime(), endpoint_name, previous)

    return check_endpoint(
        "{{ ti.xcom_pull(task_ids='deploy_endpoint')['Endpoint']['EndpointName'] }}",
        "{{ ti.xcom_pull(task_ids='deploy_endpoint', key='" + config.PREVIOUS_CONFIG_KEY + "') }}",
    )
