"""The Amazon provider's own system test ``example_sagemaker_endpoint.py``, unmodified, under
``airflow dags test`` against ``iris-sagemaker serve``: a client nobody on this project wrote.

The DAG file and its helper package ``system.amazon.aws.utils`` come from the installed provider version's
source distribution, fetched from the package index on the first run and cached (``provider_system``);
only the Airflow repository's ``tests_common.test_utils`` modules they import are shims of ours. The run
must succeed with every task, teardown included: training, model, endpoint config, endpoint, the endpoint
sensor, InvokeEndpoint, then the deletes and the CloudWatch Logs clean-up (``prune_logs``,
``archive_logs``). Its ``watcher`` task fails the run when any task failed; a second DAG shows the shim does.

Runs in .venv (Airflow 2.11) and .venv-airflow3 (Airflow 3.x); skipped where Airflow is absent.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from iris_sagemaker.local_sagemaker.service_model import default_cache_dir
from iris_sagemaker_tests.airflow_support import airflow_env, require_airflow, run_airflow
from iris_sagemaker_tests.provider_system import SHIMS, dag_layout, sdist

require_airflow()

# Read at import: the autouse fixture points IRIS_SAGEMAKER_CACHE_DIR at a fresh folder for every test, and
# the sdist (2.4 MB) is fetched once per machine, not once per run.
CACHE_DIR = default_cache_dir()
REGION = "us-east-1"  # the DAG knows k-NN images for us-east-1 and us-west-2 only
DAG_ID = "example_sagemaker_endpoint"
ENV_ID = "irisendpoint"  # SYSTEM_TESTS_ENV_ID: the prefix of every name the DAG creates
ROLE = "arn:aws:iam::123456789012:role/provider-system-test"
_EXCEPTION = re.compile(r"^[\w.]+(Error|Exception): ")
TEARDOWN = {
    "delete_endpoint_config",
    "delete_endpoint",
    "delete_model",
    "delete_bucket",
    "prune_logs",
    "archive_logs",
}


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("airflow-home")
    done = run_airflow(["db", "migrate"], airflow_env(home), timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return home


def _states(home: Path, dag_id: str) -> tuple[str, dict[str, str]]:
    """The DAG run's state and its task instances' states, from the metadata database."""
    with sqlite3.connect(home / "airflow.db") as db:
        (run_state,) = db.execute("SELECT state FROM dag_run WHERE dag_id = ?", (dag_id,)).fetchone()
        rows = db.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ?", (dag_id,))
        return run_state, dict(rows.fetchall())


def _errors(output: str) -> list[str]:
    """The exception lines of the tasks' tracebacks, once each (e.g. botocore's ClientError naming the
    operation that failed)."""
    lines = (line.strip() for line in output.splitlines())
    return list(dict.fromkeys(line for line in lines if _EXCEPTION.match(line)))


def _return_value(home: Path, dag_id: str, task_id: str) -> object:
    with sqlite3.connect(home / "airflow.db") as db:
        (value,) = db.execute(
            "SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = 'return_value'",
            (dag_id, task_id),
        ).fetchone()
    return json.loads(value)


def _client(url: str, service: str) -> Any:
    import boto3

    credentials = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
    return boto3.session.Session(region_name=REGION, **credentials).client(service, endpoint_url=url)


def test_the_providers_endpoint_system_test_runs_unmodified(airflow_home: Path, tmp_path: Path) -> None:
    from iris_sagemaker.serve.process import start_server

    layout = dag_layout(sdist(CACHE_DIR), f"{DAG_ID}.py", tmp_path)
    server = start_server(tmp_path / "root", {"AWS_REGION": REGION}, owned=True)
    try:
        env = airflow_env(
            airflow_home,
            **layout.env(),
            **server.client_env(REGION),
            ROLE_ARN=ROLE,
            SYSTEM_TESTS_ENV_ID=ENV_ID,
            # The training task waits in the provider's trigger (run inline by `dags test`), which looks
            # once right away, then every 30 s; blocking, it sleeps 30 s twice before it looks.
            AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE="True",
        )
        done = run_airflow(["dags", "test", DAG_ID], env, timeout=300)
        output = done.stdout + done.stderr
        run_state, states = _states(airflow_home, DAG_ID)
        watcher = states.pop("watcher")  # it runs (and fails the run) once a task failed
        unsuccessful = {task: state for task, state in states.items() if state != "success"}
        context = "\n".join(
            [f"tasks not successful: {unsuccessful}", *_errors(output), "--- output ---", output[-6000:]]
        )
        context += f"\n--- server ---\n{server.text()[-2000:]}"
        assert unsuccessful == {}, context
        assert states.keys() >= TEARDOWN, context
        assert (watcher, run_state, done.returncode) == ("skipped", "success", 0), context
        assert _return_value(airflow_home, DAG_ID, "call_endpoint") == [{"predicted_label": 0.0}]

        # The teardown left nothing behind on the server.
        sagemaker = _client(server.url, "sagemaker")
        assert sagemaker.list_endpoints()["Endpoints"] == []
        assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
        assert sagemaker.list_models()["Models"] == []
        buckets = _client(server.url, "s3").list_buckets()["Buckets"]
        assert f"{ENV_ID}-sagemaker" not in [b["Name"] for b in buckets]
        # prune_logs deleted the training job's stream, then the group it left empty
        groups = _client(server.url, "logs").describe_log_groups(logGroupNamePrefix="/aws/sagemaker/")
        assert "/aws/sagemaker/TrainingJobs" not in [g["logGroupName"] for g in groups["logGroups"]]
    finally:
        server.stop()


WATCHED_DAG = """
from datetime import datetime

from tests_common.test_utils.version_compat import AIRFLOW_V_3_0_PLUS
from tests_common.test_utils.watcher import watcher

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import DAG, task
else:
    from airflow.decorators import task
    from airflow.models.dag import DAG

with DAG("watched", schedule=None, start_date=datetime(2021, 1, 1), catchup=False) as dag:

    @task
    def fails():
        raise ValueError("this task fails")

    @task(trigger_rule="all_done")
    def teardown():
        pass

    fails() >> teardown()
    list(dag.tasks) >> watcher()
"""


def test_the_watcher_shim_fails_the_run_when_a_task_failed(airflow_home: Path, tmp_path: Path) -> None:
    """Without the watcher this run would succeed: its one leaf, the teardown, succeeds."""
    (tmp_path / "watched.py").write_text(WATCHED_DAG)
    env = airflow_env(airflow_home, AIRFLOW__CORE__DAGS_FOLDER=str(tmp_path), PYTHONPATH=str(SHIMS))
    done = run_airflow(["dags", "test", "watched"], env, timeout=120)
    run_state, states = _states(airflow_home, "watched")
    context = done.stdout[-4000:] + done.stderr[-4000:]
    assert states == {"fails": "failed", "teardown": "success", "watcher": "failed"}, context
    assert run_state == "failed", context
    assert "Failing task because one or more upstream tasks failed." in done.stdout + done.stderr
