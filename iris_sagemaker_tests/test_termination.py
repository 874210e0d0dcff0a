"""Stopping what a run started (README: "Terminating a run stops its jobs"): a Dagster run terminated while a
step waits for its SageMaker job stops that job, waits (bounded) for ``Stopped`` and says so in the run log; a
job that already ended is left alone; a re-execution finds the Stopped job and fails (Stopped is never
success).

How a termination reaches a step: terminating a run (the UI and the run launcher, or SIGTERM/SIGINT to the
run's process, as a run launcher's termination sends) makes Dagster raise
``DagsterExecutionInterruptedError`` inside the step's code: in the run's process with the in-process
executor, in the step's own process with the multiprocess executor (its parent interrupts its children).
``job_steps.stopped_on_termination`` catches it, stops the job, and re-raises it.

The first tests drive ``job_steps`` and ``endpoint_steps`` in this process with the embedded engine
(an interrupt raised where a signal would land: in the wait); the others terminate real Dagster runs in
their own processes: ``dagster job execute`` on the local backend (in-process executor) and on the ``aws``
backend against ``iris-sagemaker serve`` (multiprocess executor, the aws default), by SIGTERM and SIGINT,
and one through the run launcher, as the UI's "Terminate" does. Slow jobs are deterministic: the engine's
workers pause at every checkpoint (``IRIS_SAGEMAKER_LOCAL_TEST_WORKER_DELAY``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from iris_sagemaker.local_sagemaker.jobs import TEST_DELAY_ENV
from iris_sagemaker.local_sagemaker.testing import Lab, iris_like, to_csv, training_request, transform_request
from iris_sagemaker.steps import endpoint_steps, job_steps
from iris_sagemaker.steps.job_steps import TRAINING_JOB, TRANSFORM_JOB, JobKind, Waiting

pytestmark = [pytest.mark.dagster, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
FAST = Waiting(first=0.01, max_interval=0.05, timeout=60.0, stop_timeout=30.0)
SLOW_TRAINING = {
    "predictor_type": "classifier",
    "feature_dim": "4",
    "k": "3",
    "sample_size": "150",
    "mini_batch_size": "1",
}  # 150 checkpoints: long enough to be stopped


# --- in this process: the mechanism ---------------------------------------------------------------------


class Interrupted(KeyboardInterrupt):
    """What a signal handler raises in the waiting code (KeyboardInterrupt: SIGINT's own exception)."""


def _interrupt_once_running(describe: Callable[[], dict[str, Any]], status_key: str) -> Callable[[], list]:
    """An ``on_poll`` that raises :class:`Interrupted` at the first poll that sees the job InProgress."""

    def poll() -> list[str]:
        if describe()[status_key] == "InProgress":
            raise Interrupted()
        return []

    return poll


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    monkeypatch.setenv(TEST_DELAY_ENV, "0.05")
    lab = Lab(tmp_path / "root")
    yield lab
    for kind, jobs in (
        (TRAINING_JOB, lab.client.list_training_jobs()["TrainingJobSummaries"]),
        (TRANSFORM_JOB, lab.client.list_transform_jobs()["TransformJobSummaries"]),
    ):
        for job in jobs:  # nothing this test started keeps running
            if job[kind.status_field] == "InProgress":
                getattr(lab.client, kind.stop_method)(**{kind.name_field: job[kind.name_field]})


def _training(lab: Lab, name: str, hyperparameters: dict[str, str] | None = None) -> dict[str, Any]:
    labels, features = iris_like()
    uri = lab.put(f"{name}/train.csv", to_csv(labels, features))
    return training_request(name, uri, f"s3://{lab.bucket}/out", hyperparameters)


def _transform(lab: Lab, name: str) -> dict[str, Any]:
    """A transform request of one record per request over 150 rows: 150 checkpoints."""
    model = lab.model(f"{name}-model", lab.train(f"{name}-train"))
    _, features = iris_like()
    uri = lab.put(f"{name}/test.csv", to_csv(features))
    return transform_request(
        name, model["ModelName"], uri, f"s3://{lab.bucket}/out", BatchStrategy="SingleRecord"
    )


@pytest.mark.parametrize("kind", [TRAINING_JOB, TRANSFORM_JOB], ids=["training", "transform"])
def test_an_interrupt_while_a_step_waits_stops_its_job_and_goes_on(lab: Lab, kind: JobKind) -> None:
    name = f"stop-me-{kind.noun.split()[0]}"
    request = _training(lab, name, SLOW_TRAINING) if kind is TRAINING_JOB else _transform(lab, name)
    describe = getattr(lab.client, kind.describe)
    lines: list[str] = []
    with pytest.raises(Interrupted):  # the termination goes on once the job is stopped
        job_steps.run_job(
            lab.client,
            kind,
            request,
            FAST,
            log=lines.append,
            on_poll=_interrupt_once_running(lambda: describe(**{kind.name_field: name}), kind.status_field),
        )
    assert describe(**{kind.name_field: name})[kind.status_field] == "Stopped"
    assert f"the run was terminated: stopping {kind.noun} {name} (it was InProgress)" in lines
    assert lines[-1] == f"{kind.noun} {name}: Stopped"


def test_an_error_while_waiting_is_no_termination_and_leaves_the_job_running(lab: Lab) -> None:
    """A failure of the step (the network, a bug) is not a termination: the job goes on, and a retry of
    the step waits for it (the README's retry rules)."""
    request = _training(lab, "keep-running", SLOW_TRAINING)

    def broken_poll() -> list[str]:
        raise ConnectionError("the network went away")

    with pytest.raises(ConnectionError):
        job_steps.run_job(
            lab.client, TRAINING_JOB, request, FAST, log=lambda _: None, on_poll=broken_poll
        )
    assert lab.describe_training("keep-running")["TrainingJobStatus"] == "InProgress"


def test_a_job_that_already_ended_is_left_alone(lab: Lab) -> None:
    lab.train("done-before")
    lines: list[str] = []
    with (
        pytest.raises(Interrupted),
        job_steps.stopped_on_termination(lab.client, TRAINING_JOB, "done-before", lines.append),
    ):
        raise Interrupted()  # terminated after its job, e.g. while it read the job's output
    described = lab.describe_training("done-before")
    assert described["TrainingJobStatus"] == "Completed"
    assert lines == [
        "the run was terminated: training job done-before already ended Completed; left as it is"
    ]
    assert job_steps.stop_job(lab.client, TRAINING_JOB, "never-created", lines.append) is None
    assert lines[-1] == "the run was terminated: training job never-created was not created, nothing to stop"


def test_a_stopped_job_fails_the_retry_and_says_who_stopped_it(lab: Lab) -> None:
    """A re-execution of a terminated run finds its job Stopped: never a success, never waited for."""
    request = _training(lab, "stopped-then-retried", SLOW_TRAINING)
    lab.client.create_training_job(**request)
    job_steps.stop_job(lab.client, TRAINING_JOB, "stopped-then-retried", lambda _: None, 30)
    with pytest.raises(
        job_steps.SageMakerJobError, match=r"ended Stopped: it was stopped \(by a terminated run"
    ):
        job_steps.run_job(lab.client, TRAINING_JOB, request, FAST, log=lambda _: None)


class _StopsSlowly:
    """A client whose job stays Stopping: the bounded wait gives up, saying the stop was requested."""

    def __init__(self) -> None:
        self.status = "InProgress"
        self.stops = 0

    def describe_training_job(self, TrainingJobName: str) -> dict[str, Any]:
        return {"TrainingJobName": TrainingJobName, "TrainingJobStatus": self.status}

    def stop_training_job(self, TrainingJobName: str) -> dict[str, Any]:
        self.stops += 1
        self.status = "Stopping"
        return {}


def test_the_wait_for_stopped_is_bounded() -> None:
    client, lines = _StopsSlowly(), []
    start = time.monotonic()
    assert job_steps.stop_job(client, TRAINING_JOB, "slow", lines.append, timeout=0.3) == "Stopping"
    assert time.monotonic() - start < 5 and client.stops == 1
    assert (
        lines[-1]
        == "training job slow is still Stopping after 0 s; its stop was requested and it will end Stopped"
    )


def test_a_second_interrupt_ends_the_wait_and_keeps_the_first(lab: Lab) -> None:
    client, lines = _StopsSlowly(), []
    polls = iter([None])

    def describe(TrainingJobName: str) -> dict[str, Any]:
        if client.status == "Stopping" and next(polls, "again") == "again":
            raise Interrupted()  # the second Ctrl-C, while waiting for Stopped
        return {"TrainingJobName": TrainingJobName, "TrainingJobStatus": client.status}

    client.describe_training_job = describe  # type: ignore[method-assign]
    with (
        pytest.raises(Interrupted),
        job_steps.stopped_on_termination(client, TRAINING_JOB, "twice", lines.append, 30),
    ):
        raise Interrupted()
    assert client.stops == 1
    assert (
        lines[-1]
        == "stopped waiting for training job twice to stop (interrupted again); its stop was requested"
    )


def test_each_job_kind_knows_its_stop() -> None:
    assert TRAINING_JOB.stop_method == "stop_training_job"
    assert TRANSFORM_JOB.stop_method == "stop_transform_job"
    tuning = JobKind(
        "hyperparameter tuning job",
        "HyperParameterTuningJobName",
        "HyperParameterTuningJobStatus",
        "create_hyper_parameter_tuning_job",
        "describe_hyper_parameter_tuning_job",
    )
    assert tuning.stop_method == "stop_hyper_parameter_tuning_job"
    import boto3

    client = boto3.session.Session(region_name="us-east-2").client("sagemaker")
    for kind in (TRAINING_JOB, TRANSFORM_JOB, tuning):  # boto3 has each of them
        assert callable(getattr(client, kind.stop_method))


class _Endpoints:
    """A SageMaker client whose endpoint stays ``Creating`` / ``Updating`` (real ones take minutes)."""

    def __init__(self, existing: str | None = None) -> None:
        self.endpoint: dict[str, Any] | None = (
            {"EndpointName": "ep", "EndpointConfigName": existing, "EndpointStatus": "InService"}
            if existing
            else None
        )
        self.calls: list[str] = []

    def _not_found(self) -> ClientError:
        error = {"Code": "ValidationException", "Message": 'Could not find endpoint "ep".'}
        return ClientError({"Error": error}, "DescribeEndpoint")

    def create_endpoint_config(self, **request: Any) -> dict[str, Any]:
        self.config = request
        return {}

    def describe_endpoint_config(self, EndpointConfigName: str) -> dict[str, Any]:
        return self.config

    def describe_endpoint(self, EndpointName: str) -> dict[str, Any]:
        if self.endpoint is None:
            raise self._not_found()
        return dict(self.endpoint)

    def create_endpoint(self, EndpointName: str, EndpointConfigName: str) -> dict[str, Any]:
        self.calls.append("create")
        self.endpoint = {
            "EndpointName": EndpointName,
            "EndpointConfigName": EndpointConfigName,
            "EndpointStatus": "Creating",
        }
        return {}

    def update_endpoint(self, EndpointName: str, EndpointConfigName: str) -> dict[str, Any]:
        self.calls.append("update")
        assert self.endpoint is not None
        self.endpoint["EndpointStatus"] = "Updating"
        return {}

    def delete_endpoint(self, EndpointName: str) -> dict[str, Any]:
        self.calls.append("delete")
        self.endpoint = None
        return {}


def _config(name: str) -> dict[str, Any]:
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": "m",
        "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large",
    }
    return {"EndpointConfigName": name, "ProductionVariants": [variant]}


def _interrupt_after(polls: int) -> Callable[[], list[str]]:
    seen = iter(range(polls))

    def poll() -> list[str]:
        if next(seen, None) is None:
            raise Interrupted()
        return []

    return poll


def test_an_interrupt_while_an_endpoint_is_created_deletes_it() -> None:
    client, lines = _Endpoints(), []
    with pytest.raises(Interrupted):
        endpoint_steps.deploy(client, "ep", _config("cfg-2"), FAST, lines.append, _interrupt_after(2))
    assert client.calls == ["create", "delete"] and client.endpoint is None
    assert any(line.startswith("the run was terminated: deleting endpoint ep") for line in lines), lines
    assert lines[-1] == "endpoint ep: deleted"


def test_an_interrupt_while_an_endpoint_is_updated_leaves_the_update_and_names_the_way_back() -> None:
    client, lines = _Endpoints(existing="cfg-1"), []
    with pytest.raises(Interrupted):
        endpoint_steps.deploy(client, "ep", _config("cfg-2"), FAST, lines.append, _interrupt_after(2))
    assert client.calls == ["update"] and client.endpoint["EndpointStatus"] == "Updating"
    assert "SageMaker cannot cancel an update" in lines[-1]
    assert "--endpoint-name ep --endpoint-config-name cfg-1" in lines[-1]


# --- real Dagster runs, terminated ---------------------------------------------------------------------


def _dagster_home(tmp_path: Path) -> Path:
    """An instance that launches runs at once (no queue, hence no daemon needed): ``dagster job launch``
    hands the run to the code server it starts, which runs it in a process of its own and waits for it."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\nrun_coordinator:\n  module: dagster.core.run_coordinator\n"
        "  class: DefaultRunCoordinator\n"
    )
    # Its storage created here, once, as the Makefile does: processes that start together on a new home
    # otherwise race to create it ("table alembic_version already exists").
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(home)):
        pass
    return home


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DAGSTER_HOME": str(_dagster_home(tmp_path)),
        "IRIS_SAGEMAKER_DEPLOY_ENDPOINT": "false",
        TEST_DELAY_ENV: "2",  # two checkpoints each: training and transform take about 4 s
        **extra,
    }


def _start_run(env: dict[str, str]) -> subprocess.Popen[str]:
    """``dagster job execute`` of the retrain job (all assets), in its own process group."""
    dagster = str(Path(sys.executable).parent / "dagster")
    return subprocess.Popen(
        [dagster, "job", "execute", "-m", "iris_sagemaker", "-j", "retrain_iris_knn"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _wait_running(client: Any, kind: JobKind, run: subprocess.Popen[str] | None, timeout: float = 120) -> str:
    """The name of the first job of ``kind`` seen InProgress (``run``, when given, must not end first)."""
    lister = {
        TRAINING_JOB: ("list_training_jobs", "TrainingJobSummaries"),
        TRANSFORM_JOB: ("list_transform_jobs", "TransformJobSummaries"),
    }[kind]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run is not None and run.poll() is not None:
            raise AssertionError(run.stdout.read() if run.stdout else f"the run ended {run.returncode}")
        jobs = getattr(client, lister[0])()[lister[1]]
        running = [j[kind.name_field] for j in jobs if j[kind.status_field] == "InProgress"]
        if running:
            return running[0]
        time.sleep(0.1)
    raise AssertionError(f"no {kind.noun} ran within {timeout} s")


def _finish(run: subprocess.Popen[str], timeout: float = 120) -> str:
    """Its output once it and what it started (its process group: a code server, step processes) ended;
    whatever is left of the group after ``timeout`` is killed."""
    try:
        out, _ = run.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        out = ""
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)  # the group outlives a leader that returned early
        run.wait(10)
    return out


def _terminate_and_check(
    client: Any, kind: JobKind, env: dict[str, str], sig: int, tmp_path: Path
) -> tuple[str, str]:
    """Start a run, send ``sig`` to its process once its ``kind`` job runs; the job ends Stopped, the run
    log says so, and the jobs it had passed are left as they were."""
    run = _start_run(env)
    try:
        name = _wait_running(client, kind, run)
        os.kill(run.pid, sig)  # the run's process only, as a run launcher's termination does
        out = _finish(run)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(10)
    described = getattr(client, kind.describe)(**{kind.name_field: name})
    assert described[kind.status_field] == "Stopped", out[-3000:]
    assert f"the run was terminated: stopping {kind.noun} {name}" in out, out[-3000:]
    assert f"{kind.noun} {name}: Stopped" in out
    assert run.returncode != 0
    if kind is TRANSFORM_JOB:  # the training job had passed: left Completed, never stopped
        trainings = client.list_training_jobs()["TrainingJobSummaries"]
        assert [j["TrainingJobStatus"] for j in trainings] == ["Completed"]
        assert "stopping training job" not in out
    return name, out


@pytest.mark.parametrize(
    ("kind", "sig"),
    [(TRAINING_JOB, signal.SIGTERM), (TRANSFORM_JOB, signal.SIGINT)],
    ids=["training", "transform"],
)
def test_terminating_a_local_run_stops_its_job(tmp_path: Path, kind: JobKind, sig: int) -> None:
    """Local backend, in-process executor: the embedded engine runs in the run's own process, so the job
    would otherwise die with it ("worker died", Failed); it reads Stopped."""
    from iris_sagemaker.local_sagemaker import LocalSageMakerClient

    root = tmp_path / "root"
    env = _env(tmp_path, IRIS_SAGEMAKER_LOCAL_ROOT=str(root))
    _terminate_and_check(LocalSageMakerClient(root), kind, env, sig, tmp_path)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Any]:
    from iris_sagemaker.serve.process import start_server

    server = start_server(tmp_path / "served-root", {TEST_DELAY_ENV: "0.5"})
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.server
@pytest.mark.parametrize(
    ("kind", "executor"),
    [(TRAINING_JOB, "multiprocess"), (TRANSFORM_JOB, "in_process")],
    ids=["training-multiprocess", "transform-in_process"],
)
def test_terminating_an_aws_run_stops_its_job_over_http(
    tmp_path: Path, served: Any, kind: JobKind, executor: str
) -> None:
    """``aws`` backend through an endpoint URL (``iris-sagemaker serve``): SIGTERM to the run's process
    stops the job with StopTrainingJob/StopTransformJob over HTTP. With the multiprocess executor (the aws
    default) the run's process interrupts the step's own process, which stops it; the transform case runs
    in-process (one process start instead of five on a busy machine)."""
    from iris_sagemaker_tests.serve_support import BUCKET, REGION, client

    s3, sm = client(served, "s3"), client(served, "sagemaker")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    env = _env(
        tmp_path,
        **served.client_env(),
        IRIS_SAGEMAKER_BACKEND="aws",
        IRIS_SAGEMAKER_BUCKET=BUCKET,
        IRIS_SAGEMAKER_ROLE_ARN="arn:aws:iam::000000000000:role/local-sagemaker",
        IRIS_SAGEMAKER_EXECUTOR=executor,
    )
    env.pop(TEST_DELAY_ENV)  # the server's workers are the slow ones; the run's process has none
    _terminate_and_check(sm, kind, env, signal.SIGTERM, tmp_path)


def retrain_job() -> Any:
    """The retrain job, reconstructable (for a re-execution in this process)."""
    from iris_sagemaker.dagster_defs.code_location import build_definitions

    return build_definitions().resolve_job_def("retrain_iris_knn")


def test_terminating_through_the_run_launcher_stops_the_job_and_a_reexecution_fails_on_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The UI's "Terminate": the run, launched through the instance's run launcher (a code server runs
    it), is terminated by ``run_launcher.terminate``, which asks the code server to interrupt the run's
    process. Its training job ends Stopped; then a re-execution of the run (from failure, same root run:
    same job names) finds the Stopped job and fails on it: Stopped is never success."""
    from dagster import DagsterInstance, DagsterRunStatus, ReexecutionOptions, execute_job, reconstructable

    from iris_sagemaker.local_sagemaker import LocalSageMakerClient

    root = tmp_path / "root"
    env = _env(tmp_path, IRIS_SAGEMAKER_LOCAL_ROOT=str(root))
    client = LocalSageMakerClient(root)
    dagster = str(Path(sys.executable).parent / "dagster")
    launch = subprocess.Popen(
        [dagster, "job", "launch", "-m", "iris_sagemaker", "-j", "retrain_iris_knn"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    for name in ("DAGSTER_HOME", "IRIS_SAGEMAKER_LOCAL_ROOT", "IRIS_SAGEMAKER_DEPLOY_ENDPOINT"):
        monkeypatch.setenv(name, env[name])
    try:
        with DagsterInstance.get() as instance:
            # `job launch` returns once the run is launched; the code server it started runs it.
            try:
                job = _wait_running(client, TRAINING_JOB, None, timeout=240)
            except AssertionError as err:
                raise AssertionError(
                    f"{err}; dagster job launch said:\n{_finish(launch, 30)[-4000:]}"
                ) from None
            [run] = instance.get_runs()
            assert instance.run_launcher.terminate(run.run_id)
            deadline = time.monotonic() + 120
            while not instance.get_run_by_id(run.run_id).is_finished and time.monotonic() < deadline:
                time.sleep(0.2)
            finished = instance.get_run_by_id(run.run_id)
            messages = [e.user_message for e in instance.all_logs(run.run_id)]
            assert finished.status == DagsterRunStatus.CANCELED, finished.status
            assert client.describe_training_job(TrainingJobName=job)["TrainingJobStatus"] == "Stopped"
            assert f"the run was terminated: stopping training job {job} (it was InProgress)" in messages
            assert f"training job {job}: Stopped" in messages

            result = execute_job(
                reconstructable(retrain_job),
                instance,
                reexecution_options=ReexecutionOptions.from_failure(run.run_id, instance),
                raise_on_error=False,
            )
            assert not result.success
            failures = [str(e.step_failure_data.error) for e in result.all_events if e.is_step_failure]
            assert any(f"training job {job} ended Stopped: it was stopped" in f for f in failures), failures
    finally:
        _finish(launch, timeout=60)
