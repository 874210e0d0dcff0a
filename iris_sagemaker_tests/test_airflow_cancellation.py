"""Killing an Airflow task stops its SageMaker job (README: "Killing a task stops its job"), on Airflow 2.11
(.venv) and 3.x (.venv-airflow3), against ``iris-sagemaker serve`` over HTTP, with each line's own machinery:

- **blocking**: ``airflow dags test`` waits for the training (or transform) job in the task; SIGTERM to
  it is how Airflow kills a running task (2.11's task runner on a clear or mark failed, 3.x's supervisor),
  and each line's SIGTERM handler calls the operator's ``on_kill``, which stops the job;
- **deferred**: the task defers to a real ``airflow triggerer``. Restarting the triggerer cancels the
  trigger too, but the job runs on (the task is still deferred by the same attempt). Clearing the task
  (``airflow tasks clear``) stops the job: on 3.x through ``BaseTrigger.on_kill``, on 2.11 through the
  trigger's own cancellation. The cleared task's next attempt then finds its job Stopped and fails for
  good, and so does the DAG run, as the README says.

Airflow 2.11's ``dags test`` leaves deferred tasks to a triggerer when one is healthy; Airflow 3's always
runs triggers inline, so on 3.x the DAG runs through ``airflow_dag_test_with_triggerer`` (``DAG.test()``
told to leave them to the triggerer). Slow jobs are deterministic: the server's workers pause at each
checkpoint (two per training or transform job here). Every process a test starts is stopped by it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from iris_sagemaker_tests.airflow_support import (
    AIRFLOW,
    REPO,
    airflow_env,
    airflow_major,
    migrate_airflow_db,
    require_airflow,
)

require_airflow()

from iris_sagemaker.local_sagemaker.jobs import TEST_DELAY_ENV  # noqa: E402
from iris_sagemaker.serve.process import ServerProcess, start_server  # noqa: E402
from iris_sagemaker.steps.job_steps import TRAINING_JOB, JobKind  # noqa: E402
from iris_sagemaker_tests.serve_support import REGION, client  # noqa: E402

pytestmark = [pytest.mark.airflow, pytest.mark.server, pytest.mark.slow]

BUCKET = "iris-cancel"
DAG_ID = "sagemaker_pipeline"


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated metadata database for the module; each test works on a copy."""
    return migrate_airflow_db(tmp_path_factory.mktemp("airflow-template"), timeout=240)


@dataclass
class Stack:
    """A server with a slow worker, an Airflow home, and the processes a test started."""

    server: ServerProcess
    home: Path
    env: dict[str, str]
    processes: list[subprocess.Popen[str]]

    @property
    def sm(self) -> Any:
        return client(self.server, "sagemaker")

    def spawn(self, args: list[str], log: str, **extra_env: str) -> subprocess.Popen[str]:
        handle = open(self.home / log, "w")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            args,
            cwd=REPO,
            env={**self.env, **extra_env},
            stdout=handle,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own group: whatever it starts is stopped with it
        )
        handle.close()
        self.processes.append(process)
        return process

    def airflow(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(AIRFLOW), *args], cwd=REPO, env=self.env, capture_output=True, text=True, timeout=240
        )

    def log(self, name: str) -> str:
        return (self.home / name).read_text(errors="replace")

    def all_logs(self) -> str:
        """Every log the test's processes and Airflow wrote (the triggers' own logs included)."""
        files = [p for p in self.home.rglob("*.log") if p.is_file()]
        return "\n".join(p.read_text(errors="replace") for p in files)

    def query(self, sql: str, *params: Any) -> list[tuple]:
        with contextlib.closing(sqlite3.connect(self.home / "airflow.db", timeout=30)) as db:
            return db.execute(sql, params).fetchall()


def _stop(process: subprocess.Popen[str], timeout: float = 30) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@contextlib.contextmanager
def stack(tmp_path: Path, migrated: Path, delay: float, **extra_env: str) -> Iterator[Stack]:
    home = tmp_path / "airflow"
    home.mkdir()
    shutil.copy(migrated, home / "airflow.db")
    server = start_server(tmp_path / "served", {TEST_DELAY_ENV: str(delay)})
    processes: list[subprocess.Popen[str]] = []
    try:
        client(server, "s3").create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        connection = {
            "conn_type": "aws",
            "login": "local",
            "password": "local",
            "extra": {"endpoint_url": server.url, "region_name": REGION},
        }
        env = airflow_env(
            home,
            **{
                "AIRFLOW_CONN_AWS-SAGEMAKER": json.dumps(connection),
                "AIRFLOW_VAR_S3_BUCKET": BUCKET,
                "IRIS_SAGEMAKER_LOCAL_ROOT": str(tmp_path / "local-root"),
                "IRIS_SAGEMAKER_CACHE_DIR": os.environ.get(
                    "IRIS_SAGEMAKER_CACHE_DIR", str(tmp_path / "cache")
                ),
                **extra_env,
            },
        )
        env.pop("AWS_ENDPOINT_URL", None)
        yield Stack(server, home, env, processes)
    finally:
        for process in reversed(processes):
            _stop(process)
        server.stop()


def _wait(what: str, check: Any, timeout: float, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


def _jobs(sm: Any, kind: JobKind) -> list[dict[str, Any]]:
    if kind is TRAINING_JOB:
        return sm.list_training_jobs()["TrainingJobSummaries"]
    return sm.list_transform_jobs()["TransformJobSummaries"]


def _running(sm: Any, kind: JobKind, process: subprocess.Popen[str], log: str) -> str:
    def check() -> str | None:
        assert process.poll() is None, f"the DAG run ended first:\n{log}"
        running = [j[kind.name_field] for j in _jobs(sm, kind) if j[kind.status_field] == "InProgress"]
        return running[0] if running else None

    return _wait(f"a {kind.noun} InProgress", check, 240)


def _status(sm: Any, kind: JobKind, name: str) -> str:
    return getattr(sm, kind.describe)(**{kind.name_field: name})[kind.status_field]


def test_a_blocking_task_killed_while_its_job_runs_stops_the_job(tmp_path: Path, migrated: Path) -> None:
    """SIGTERM to the process the task runs in, as Airflow kills a task: the line's SIGTERM handler calls
    ``on_kill``, which stops the job and waits for Stopped; the task fails (2.11: "received SIGTERM";
    3.x: its wait sees the job Stopped). (The transform operator's ``on_kill`` is the same code,
    ``_JobOperatorMixin.on_kill``.)"""
    kind = TRAINING_JOB
    with stack(tmp_path, migrated, delay=5.0, IRIS_SAGEMAKER_AIRFLOW_DEFERRABLE="false") as s:
        run = s.spawn([str(AIRFLOW), "dags", "test", DAG_ID], "dags-test.log")
        name = _running(s.sm, kind, run, "dags-test.log")
        os.kill(run.pid, signal.SIGTERM)  # the task's process, not its group
        run.wait(120)
        out = s.log("dags-test.log")
        assert _status(s.sm, kind, name) == "Stopped", out[-4000:]
        assert f"the task was killed: stopping {kind.noun} {name} (it was InProgress)" in out, out[-4000:]
        assert f"{kind.noun} {name}: Stopped" in out
        states = dict(s.query("SELECT task_id, state FROM task_instance"))
        assert states["train_model"] == "failed", states


def _triggerer(s: Stack, log: str) -> tuple[subprocess.Popen[str], int]:
    """``airflow triggerer``, and its job id once it heartbeats."""
    known = {row[0] for row in s.query("SELECT id FROM job WHERE job_type = 'TriggererJob'")}
    process = s.spawn([str(AIRFLOW), "triggerer", "--skip-serve-logs"], log)

    def started() -> int | None:
        assert process.poll() is None, s.log(log)[-3000:]
        rows = s.query("SELECT id FROM job WHERE job_type = 'TriggererJob' AND state = 'running'")
        new = [row[0] for row in rows if row[0] not in known]
        return new[0] if new else None

    return process, _wait("the triggerer heartbeats", started, 120)


def _deferred_on(s: Stack, task_id: str) -> tuple[int, int | None] | None:
    """(try number, triggerer id) of ``task_id`` while it is deferred."""
    rows = s.query(
        "SELECT ti.try_number, t.triggerer_id FROM task_instance ti JOIN trigger t ON ti.trigger_id = t.id "
        "WHERE ti.task_id = ? AND ti.state = 'deferred'",
        task_id,
    )
    return rows[0] if rows else None


def _polls(s: Stack) -> int:
    """How often the triggers logged a poll of the training job."""
    return s.all_logs().count("Training job not done yet")


def test_a_deferred_task_cleared_while_its_job_runs_stops_the_job_but_a_triggerer_restart_does_not(
    tmp_path: Path, migrated: Path
) -> None:
    with stack(tmp_path, migrated, delay=60.0) as s:  # the training job runs two minutes unless stopped
        first, first_id = _triggerer(s, "triggerer-1.log")
        if airflow_major() >= 3:
            command = [sys.executable, "-m", "iris_sagemaker_tests.airflow_dag_test_with_triggerer", DAG_ID]
        else:
            command = [str(AIRFLOW), "dags", "test", DAG_ID]  # a healthy triggerer gets its triggers
        run = s.spawn(command, "dags-test.log")
        name = _running(s.sm, TRAINING_JOB, run, "dags-test.log")
        _wait(
            "train_model deferred to the triggerer",
            lambda: (_deferred_on(s, "train_model") or (0, 0))[1],
            120,
        )
        # It polls the job (a triggerer stopped while it still imports a trigger fails that trigger).
        _wait("the trigger polls the job", lambda: _polls(s) >= 2, 120, 1.0)

        # A triggerer restart cancels the trigger as well: the task is still deferred by the same attempt,
        # so the job runs on and the next triggerer takes the wait over.
        _stop(first)
        assert first.returncode is not None
        time.sleep(1.0)
        assert _status(s.sm, TRAINING_JOB, name) == "InProgress", s.log("triggerer-1.log")[-4000:]
        _second, second_id = _triggerer(s, "triggerer-2.log")
        _wait(
            "the second triggerer takes the wait over",
            lambda: _deferred_on(s, "train_model") == (1, second_id),
            120,
        )
        polls = _polls(s)
        _wait("the second triggerer polls the job", lambda: _polls(s) > polls, 120, 1.0)
        assert _status(s.sm, TRAINING_JOB, name) == "InProgress"

        # Clearing the deferred task: its trigger is cancelled by a user action, and the job is stopped.
        cleared = s.airflow("tasks", "clear", DAG_ID, "-t", "train_model", "-y")
        assert cleared.returncode == 0, cleared.stderr[-3000:]
        _wait("the training job Stopped", lambda: _status(s.sm, TRAINING_JOB, name) == "Stopped", 120)
        logs = s.all_logs()
        assert "the task was killed while deferred (its state is now " in logs, logs[-6000:]
        assert f"stopping training job {name} (it was InProgress)" in logs
        assert f"training job {name}: Stopped" in logs

        # The cleared task's next attempt finds its job Stopped and fails for good; so does the DAG run.
        run.wait(180)
        states = dict(s.query("SELECT task_id, state FROM task_instance"))
        assert states["train_model"] == "failed", states
        assert states["create_model"] == "upstream_failed", states
        assert first_id != second_id
