"""The Airflow DAG ``sagemaker_pipeline`` as a Dagster job (dagster-airflow), beside the assets.

Run it from the Dagster UI (job ``sagemaker_pipeline``) or the CLI:
``dagster job execute -m iris_sagemaker -j sagemaker_pipeline``. Each op runs its Airflow task
in the Dagster run against an ephemeral Airflow database (SQLite, in a temp folder), so no Airflow
deployment is needed. dagster-airflow supports Airflow 2 only: with Airflow 3 installed, or without
dagster-airflow, the code location simply offers no such job.

The DAG is built non-deferrable here: nothing runs Airflow's triggerer inside a Dagster run.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

from iris_sagemaker.settings import DEFAULT_LOCAL_ROOT

log = logging.getLogger(__name__)
JOB_NAME = "sagemaker_pipeline"  # dagster-airflow names the job after the DAG id


def airflow_jobs() -> list[Any]:
    """``[the job]`` when dagster-airflow and Airflow 2 import cleanly, else ``[]`` (logged)."""
    # Importing Airflow writes $AIRFLOW_HOME/airflow.cfg; without a deployment's AIRFLOW_HOME keep it in
    # the project's local folder instead of creating ~/airflow. dagster-airflow points AIRFLOW_HOME at
    # its ephemeral database when a run starts.
    local_root = os.environ.get("IRIS_SAGEMAKER_LOCAL_ROOT", "").strip() or DEFAULT_LOCAL_ROOT
    os.environ.setdefault("AIRFLOW_HOME", os.path.join(os.path.expanduser(local_root), "airflow"))
    try:
        from dagster import SupersessionWarning
        from dagster_airflow import make_dagster_job_from_airflow_dag

        from iris_sagemaker.airflow_dag import build_dag
    except Exception as err:  # ImportError, or dagster-airflow's circular import under Airflow 3
        log.info("no Airflow job in the code location (dagster-airflow or Airflow 2 unavailable): %s", err)
        return []
    # dagster-airflow is marked superseded by dagster-airlift, which needs a running Airflow; this
    # project wants the DAG runnable inside Dagster without one, so it keeps dagster-airflow.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SupersessionWarning)
        return [make_dagster_job_from_airflow_dag(build_dag(deferrable=False))]
