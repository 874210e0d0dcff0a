"""Shared helpers of the Airflow tests; they run in both venvs (.venv on Airflow 2.11 with Dagster,
.venv-airflow3 on Airflow 3 without it) and skip cleanly where Airflow is not installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
DAGS_FOLDER = REPO / "airflow_dags"
AIRFLOW = Path(sys.executable).parent / "airflow"
# Importing Airflow writes $AIRFLOW_HOME/airflow.cfg: never the developer's ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="iris-sagemaker-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


def require_airflow() -> Any:
    airflow = pytest.importorskip("airflow", reason="Airflow is not installed in this venv")
    pytest.importorskip("airflow.providers.amazon", reason="the Amazon provider is not installed")
    return airflow


def airflow_major() -> int:
    import airflow

    return int(airflow.__version__.split(".")[0])


def dagbag(folder: Path = DAGS_FOLDER) -> Any:
    """A DagBag of ``folder`` (default: the project's DAG folder), without Airflow's examples."""
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow >= 3.1
    except ImportError:
        from airflow.models.dagbag import DagBag
    import inspect

    if "include_examples" in inspect.signature(DagBag).parameters:  # Airflow 2 (3.x reads the config)
        return DagBag(dag_folder=str(folder), include_examples=False)
    return DagBag(dag_folder=str(folder))


def chain(dag: Any) -> list[str]:
    """Task ids in dependency order; every task has exactly one upstream (a straight line)."""
    roots = [t for t in dag.tasks if not t.upstream_task_ids]
    assert len(roots) == 1
    order, task = [roots[0].task_id], roots[0]
    while task.downstream_task_ids:
        assert len(task.downstream_task_ids) == 1
        task = dag.get_task(next(iter(task.downstream_task_ids)))
        order.append(task.task_id)
    return order


def airflow_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of an `airflow` subprocess: its own SQLite home, our DAG folder, no examples."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        }
    )
    env.update(extra)
    return env


def run_airflow(args: list[str], env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(AIRFLOW), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def migrate_airflow_db(home: Path, timeout: float = 300) -> Path:
    """``airflow db migrate`` into ``home`` (a new SQLite metadata database); the database's path."""
    done = run_airflow(["db", "migrate"], airflow_env(home), timeout=timeout)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return home / "airflow.db"


def aws_connection(endpoint_url: str, region: str) -> str:
    """The `aws-sagemaker` connection as Airflow reads it from AIRFLOW_CONN_* (JSON form)."""
    return json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": endpoint_url, "region_name": region},
        }
    )


class FakeTaskInstance:
    """Just enough of a TaskInstance to render the DAG's templates without a database."""

    def __init__(self, xcoms: dict[str, Any]) -> None:
        self.xcoms = xcoms

    def xcom_pull(self, task_ids: str, **_: Any) -> Any:
        return self.xcoms[task_ids]


def _render(dag: Any, task_id: str, run_id: str, xcoms: dict) -> dict:
    task = dag.get_task(task_id)
    context = {"run_id": run_id, "ti": FakeTaskInstance(xcoms)}
    return task.render_template(task.config, context, jinja_env=dag.get_template_env())


def rendered_requests(run_id: str, model_data_url: str, backend: str = "aws") -> dict[str, dict]:
    """The pipeline operators' configs, rendered as Airflow renders them for DAG run ``run_id``."""
    from iris_sagemaker.airflow_defs import config
    from iris_sagemaker.airflow_defs.pipeline import build_dag

    dag = build_dag(backend=backend)
    names = config.job_names(run_id)
    xcoms = {
        "train_model": {"Training": {"ModelArtifacts": {"S3ModelArtifacts": model_data_url}}},
        "create_model": {"Model": {"ModelName": names.model}},
    }
    return {t: _render(dag, t, run_id, xcoms) for t in ("train_model", "create_model", "test_model")}
