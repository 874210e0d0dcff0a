"""The Airflow mirror against the Dagster assets (main venv only: Dagster + dagster-airflow, Airflow 2).

- The DAG's request bodies equal the bodies the assets actually sent in a materialization.
- The code location offers the DAG as the Dagster job `sagemaker_pipeline` (dagster-airflow), and that
  job runs the DAG to success in-process, leaving the same objects as the assets.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from iris_sagemaker.core.settings import (
    DEFAULT_LOCAL_BUCKET,
    LOCAL_ROLE_ARN,
    PREDICTIONS_KEY,
    RAW_KEY,
    SCORED_KEY,
    TEST_KEY,
    TEST_LABELS_KEY,
    TRAIN_KEY,
)
from iris_sagemaker_tests.airflow_support import REPO, rendered_requests, require_airflow

require_airflow()
pytest.importorskip("dagster", reason="Dagster is not installed in this venv")
pytest.importorskip("dagster_airflow", reason="dagster-airflow is not installed (or Airflow 3 is)")

from dagster import materialize  # noqa: E402

from iris_sagemaker.airflow_defs.dagster_job import JOB_NAME  # noqa: E402
from iris_sagemaker.airflow_defs.pipeline import TASK_IDS  # noqa: E402
from iris_sagemaker.dagster_defs import resources  # noqa: E402
from iris_sagemaker.dagster_defs.code_location import build_definitions  # noqa: E402

pytestmark = [pytest.mark.airflow, pytest.mark.dagster, pytest.mark.slow]

SHARED_OBJECTS = (RAW_KEY, TRAIN_KEY, TEST_KEY, TEST_LABELS_KEY)


class RecordingClient:
    """Wraps a SageMaker client; keeps every create_* request body."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.requests: dict[str, dict[str, Any]] = {}

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)
        if not name.startswith("create_"):
            return method

        def record(**request: Any) -> Any:
            self.requests[name] = json.loads(json.dumps(request))
            return method(**request)

        return record


def _materialize_assets(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, RecordingClient]:
    clients: list[RecordingClient] = []
    real = resources.make_sagemaker_client

    def recording(*args: Any, **kwargs: Any) -> RecordingClient:
        clients.append(RecordingClient(real(*args, **kwargs)))
        return clients[-1]

    monkeypatch.setattr(resources, "make_sagemaker_client", recording)
    defs = build_definitions()
    result = materialize(list(defs.assets), resources=defs.resources)
    assert result.success
    requests: dict[str, dict[str, Any]] = {}
    for client in clients:
        requests.update(client.requests)
    combined = RecordingClient(None)
    combined.requests = requests
    return result, combined


def test_dag_request_bodies_equal_what_the_assets_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    result, recorder = _materialize_assets(monkeypatch)
    sent = recorder.requests
    # The tutorial's three requests, then knn_endpoint's (the deploy DAG's counterpart is not in this DAG).
    assert set(sent) == {
        "create_training_job",
        "create_model",
        "create_transform_job",
        "create_endpoint_config",
        "create_endpoint",
    }

    # The DAG run whose names match the Dagster run's (both derive names from a run key alone).
    run_key = sent["create_training_job"]["TrainingJobName"].removeprefix("train-iris-")
    assert run_key == result.run_id.replace("-", "")
    monkeypatch.setenv("AIRFLOW_VAR_S3_BUCKET", DEFAULT_LOCAL_BUCKET)
    monkeypatch.setenv("AIRFLOW_VAR_ROLE", LOCAL_ROLE_ARN)
    artifact = sent["create_model"]["PrimaryContainer"]["ModelDataUrl"]
    rendered = rendered_requests(run_key, artifact)

    assert rendered["train_model"] == sent["create_training_job"]
    assert rendered["create_model"] == sent["create_model"]
    assert rendered["test_model"] == sent["create_transform_job"]

    # The deploy DAG's two bodies equal knn_endpoint's, for the same run key and model.
    from iris_sagemaker.airflow_defs.deploy import build_deploy_dag
    from iris_sagemaker_tests.airflow_support import FakeTaskInstance

    dag = build_deploy_dag(backend="local")
    ti = FakeTaskInstance({"find_model": {"ModelName": sent["create_model"]["ModelName"]}})
    pairs = (("create_endpoint_config", "create_endpoint_config"), ("deploy_endpoint", "create_endpoint"))
    for task_id, body in pairs:
        task = dag.get_task(task_id)
        context = {"run_id": run_key, "ti": ti}
        assert task.render_template(task.config, context, jinja_env=dag.get_template_env()) == sent[body]


def test_the_code_location_runs_the_dag_as_a_dagster_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dagster_root, airflow_root = tmp_path / "dagster-root", tmp_path / "airflow-root"
    monkeypatch.setenv("IRIS_SAGEMAKER_LOCAL_ROOT", str(dagster_root))
    defs = build_definitions()
    assert materialize(list(defs.assets), resources=defs.resources).success

    monkeypatch.setenv("IRIS_SAGEMAKER_LOCAL_ROOT", str(airflow_root))
    from iris_sagemaker.airflow_defs.dagster_job import airflow_job

    job = airflow_job()
    result = job.execute_in_process(raise_on_error=False)
    # dagster-airflow's ephemeral Airflow database of this run
    shutil.rmtree(Path(tempfile.gettempdir()) / f"dagster_airflow_{result.run_id}", ignore_errors=True)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    started = [e.step_key for e in result.all_events if e.event_type_value == "STEP_START"]
    assert started == [f"sagemaker_pipeline__{task}" for task in TASK_IDS]

    dagster_bucket = dagster_root / "s3" / DEFAULT_LOCAL_BUCKET
    airflow_bucket = airflow_root / "s3" / DEFAULT_LOCAL_BUCKET
    for key in SHARED_OBJECTS:
        assert (airflow_bucket / key).read_bytes() == (dagster_bucket / key).read_bytes(), key
    # Same data, same deterministic k-NN: the same predictions and the same scored table.
    assert json.loads((airflow_bucket / PREDICTIONS_KEY).read_text()) == json.loads(
        (dagster_bucket / PREDICTIONS_KEY).read_text()
    )
    assert (airflow_bucket / SCORED_KEY).read_bytes() == (dagster_bucket / SCORED_KEY).read_bytes()
    assert len(list(airflow_bucket.glob("iris/results/train-iris-*/output/model.tar.gz"))) == 1
    assert os.environ["IRIS_SAGEMAKER_LOCAL_ROOT"] == str(airflow_root)


def test_the_dag_job_runs_from_the_dagster_cli(dagster_home: Path) -> None:
    """`dagster job execute -m iris_sagemaker.airflow_definitions -j ...`, as a user runs it."""
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    dagster = Path(sys.executable).parent / "dagster"
    done = subprocess.run(
        [str(dagster), "job", "execute", "-m", "iris_sagemaker.airflow_definitions", "-j", JOB_NAME],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "RUN_SUCCESS" in done.stdout + done.stderr
    # No warnings but the CLI's own notice that `job execute` is superseded by `dg launch` (printed
    # before any of our code loads): not dagster-airflow's supersession notices, not Airflow's timer-unit
    # deprecation, not the ephemeral Airflow's Fernet-key and queued-duration warnings.
    warned = [line for line in (done.stdout + done.stderr).splitlines() if "warn" in line.lower()]
    assert [line for line in warned if "`job_execute_command` is superseded" not in line] == [], warned
    bucket = Path(os.environ["IRIS_SAGEMAKER_LOCAL_ROOT"]) / "s3" / DEFAULT_LOCAL_BUCKET
    assert len(json.loads((bucket / PREDICTIONS_KEY).read_text())["predictions"]) == 45
