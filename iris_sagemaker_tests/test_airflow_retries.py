"""The retry contract of the provider's SageMaker operators (``airflow_defs.operators``), blocking and
deferrable, against one ``iris-sagemaker serve`` over HTTP, offline; in .venv (Airflow 2.11) and
.venv-airflow3 (Airflow 3.x).

The README's "Retries": a retried task whose job already exists reuses it when Completed (no new job, no new
name), waits for it when InProgress, and fails for good (``AirflowFailException``) with the job's
reason when Failed or Stopped. ``Stopped`` is never success, in any operator or trigger path.

The operators run in-process (``execute(context={})``; Airflow only warns outside a TaskInstance). A
deferred task is resumed as the triggerer would resume it: the ``SageMakerTrigger`` it raised runs in
an event loop, polling the server over HTTP with aiobotocore, and its first event goes to
``execute_complete``.

Slow jobs are deterministic: the server pauses ``DELAY`` seconds at every worker checkpoint (one per
training mini-batch, one per transform payload), so a job of N checkpoints runs at least N x DELAY s
however fast the machine; the fast jobs have two or three checkpoints.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from iris_sagemaker_tests.airflow_support import require_airflow

require_airflow()

from airflow.providers.common.compat.sdk import (  # noqa: E402 - only where Airflow is installed
    AirflowException,
    AirflowFailException,
    TaskDeferred,
)

from iris_sagemaker.airflow_defs import operators  # noqa: E402
from iris_sagemaker.core import dataset, specs  # noqa: E402
from iris_sagemaker.core.settings import TEST_KEY, TRAIN_KEY, Settings  # noqa: E402
from iris_sagemaker.local_sagemaker.jobs import TEST_DELAY_ENV  # noqa: E402
from iris_sagemaker.local_sagemaker.testing import iris_like, to_csv, wait_for  # noqa: E402
from iris_sagemaker.serve.process import ServerProcess, start_server  # noqa: E402
from iris_sagemaker_tests.serve_support import (  # noqa: E402
    REGION,
    client,
    tutorial_settings,
    upload_tutorial_split,
    variant,
)

pytestmark = [pytest.mark.airflow, pytest.mark.server, pytest.mark.slow]

CONN_ID = "aws-sagemaker"
DELAY = 0.1  # seconds the server's job workers pause at each checkpoint
# The tutorial's train split (105 rows) in mini-batches of 3: 35 checkpoints, at least 3.5 s.
SLOW_TRAINING = {"mini_batch_size": "3"}
# Mini-batches of 1: 105 checkpoints, at least 10 s (only ever run to be stopped).
STOPPABLE_TRAINING = {"mini_batch_size": "1"}
LATE_FAILURE_TRAIN = "iris/late-failure/train/"  # a.csv: the train split; b.csv: 5 features, not 4
LATE_FAILURE_TEST = "iris/late-failure/test/"  # a.csv: the test split; b.csv: 5 features, not 4
BAD_TEST_KEY = "iris/bad/test.csv"  # 5 features: the model was trained on 4
LONG_TEST_KEY = "iris/long/test.csv"  # 300 rows: at least 30 s one record at a time
BASE_MODEL = "retries-base-model"
MODES = ["blocking", "deferrable"]
JOB_TIMEOUT = 60.0


# --- the server and its data ----------------------------------------------------------------------


@dataclass
class Server:
    process: ServerProcess
    root: Path
    settings: Settings
    sm: Any  # boto3 SageMaker client on the server
    artifact: str  # the model.tar.gz of a Completed training job
    prepared: dict[str, str]  # case -> name of a job created for it (see `server`)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module, its bucket holding the tutorial's split and the odd CSVs the cases
    need, and the jobs the retry cases find: per kind, one Completed, one Failed, one Stopped."""
    root = tmp_path_factory.mktemp("retries") / "root"
    process = start_server(root, {TEST_DELAY_ENV: str(DELAY)})
    try:
        settings = tutorial_settings(root)
        s3, sm = client(process, "s3"), client(process, "sagemaker")
        s3.create_bucket(Bucket=settings.bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        split = upload_tutorial_split(s3, settings)
        train_csv = dataset.to_sagemaker_csv(split.train)
        test_csv = dataset.to_sagemaker_csv(split.test_features)
        labels, features = iris_like(rows_per_class=100)
        five = np.hstack([features, features[:, :1]])[:20]  # 5 features, where feature_dim is 4
        objects = {
            f"{LATE_FAILURE_TRAIN}a.csv": train_csv,
            f"{LATE_FAILURE_TRAIN}b.csv": to_csv(labels[:20], five),
            f"{LATE_FAILURE_TEST}a.csv": test_csv,
            f"{LATE_FAILURE_TEST}b.csv": to_csv(five),
            BAD_TEST_KEY: to_csv(five),
            LONG_TEST_KEY: to_csv(features),
        }
        for key, body in objects.items():
            s3.put_object(Bucket=settings.bucket, Key=key, Body=body)

        base = sm_wait(sm, TRAINING, create(sm, TRAINING, training_config(settings, "retries-base-train")))
        artifact = base["ModelArtifacts"]["S3ModelArtifacts"]
        sm.create_model(**specs.model_request(settings, BASE_MODEL, artifact))
        prepared = {
            "training-completed": "retries-base-train",
            "training-failed": create(sm, TRAINING, training_config(settings, "retries-failed-train", "bad")),
            "training-stopped": create(
                sm, TRAINING, training_config(settings, "retries-stopped-train", "stoppable")
            ),
            "transform-completed": create(sm, TRANSFORM, transform_config(settings, "retries-done-tf")),
            "transform-failed": create(sm, TRANSFORM, transform_config(settings, "retries-failed-tf", "bad")),
            "transform-stopped": create(
                sm, TRANSFORM, transform_config(settings, "retries-stopped-tf", "stoppable")
            ),
        }
        for kind in (TRAINING, TRANSFORM):
            stop_when_running(sm, kind, prepared[f"{kind.key}-stopped"])
        expected = {"completed": "Completed", "failed": "Failed", "stopped": "Stopped"}
        for case, name in prepared.items():
            kind = TRAINING if case.startswith("training") else TRANSFORM
            assert sm_wait(sm, kind, name)[kind.status] == expected[case.split("-")[1]], case
        yield Server(process, root, settings, sm, artifact, prepared)
    finally:
        process.stop()


@pytest.fixture(autouse=True)
def _connection(server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The ``aws-sagemaker`` connection names the server (so ``connection.ensure_connection`` starts
    none); the Variables are set, so no task looks into a metastore there is none of."""
    connection = {
        "conn_type": "aws",
        "login": "local",
        "password": "local",
        "extra": {"endpoint_url": server.process.url, "region_name": REGION},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(connection))
    monkeypatch.setenv("AIRFLOW_VAR_S3_BUCKET", server.settings.bucket)
    monkeypatch.setenv("AIRFLOW_VAR_ROLE", server.settings.role_arn)
    monkeypatch.setenv("IRIS_SAGEMAKER_LOCAL_ROOT", str(server.root))
    monkeypatch.setenv("IRIS_SAGEMAKER_BUCKET", server.settings.bucket)


# --- the two kinds of job -------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    key: str
    operator: type
    name_field: str
    status: str
    result_key: str
    boto_describe: str
    boto_list: str
    boto_stop: str
    summaries: str

    def describe(self, sm: Any, name: str) -> dict[str, Any]:
        return getattr(sm, self.boto_describe)(**{self.name_field: name})

    def names_like(self, sm: Any, name: str) -> list[str]:
        """Every job whose name contains ``name``: the provider's own retry would add ``name-<time>``."""
        listed = getattr(sm, self.boto_list)(NameContains=name, MaxResults=100)[self.summaries]
        return sorted(job[self.name_field] for job in listed)


TRAINING = Kind(
    "training",
    operators.IrisTrainingOperator,
    "TrainingJobName",
    "TrainingJobStatus",
    "Training",
    "describe_training_job",
    "list_training_jobs",
    "stop_training_job",
    "TrainingJobSummaries",
)
TRANSFORM = Kind(
    "transform",
    operators.IrisTransformOperator,
    "TransformJobName",
    "TransformJobStatus",
    "Transform",
    "describe_transform_job",
    "list_transform_jobs",
    "stop_transform_job",
    "TransformJobSummaries",
)
KINDS = {"training": TRAINING, "transform": TRANSFORM}


def training_config(settings: Settings, name: str, variant_: str = "fast") -> dict[str, Any]:
    """fast: the tutorial's job; slow: >= 3.5 s; stoppable: >= 10 s; bad: fails at once (feature_dim 5
    on 4 features); late-failure: fails after the train split's >= 3.5 s (its second object is bad)."""
    if variant_ == "late-failure":
        return specs.training_job_request(settings, name, SLOW_TRAINING, train_key=LATE_FAILURE_TRAIN)
    hyperparameters = {
        "fast": None,
        "slow": SLOW_TRAINING,
        "stoppable": STOPPABLE_TRAINING,
        "bad": {"feature_dim": "5"},
    }[variant_]
    return specs.training_job_request(settings, name, hyperparameters, train_key=TRAIN_KEY)


def transform_config(settings: Settings, name: str, variant_: str = "fast") -> dict[str, Any]:
    """fast: the tutorial's job (one payload); slow: one record at a time, 45 rows, >= 4.5 s; stoppable:
    300 rows one at a time, >= 30 s; bad: 5 features for a 4-feature model, fails at once;
    late-failure: fails after the test split's >= 4.5 s (its second object is bad)."""
    input_key = {"bad": BAD_TEST_KEY, "stoppable": LONG_TEST_KEY, "late-failure": LATE_FAILURE_TEST}.get(
        variant_, TEST_KEY
    )
    request = specs.transform_job_request(
        settings, name, BASE_MODEL, input_key=input_key, output_prefix=f"iris/retries/{name}"
    )
    if variant_ != "fast" and variant_ != "bad":
        request["BatchStrategy"] = "SingleRecord"
    return request


def config_for(kind: Kind, settings: Settings, name: str, variant_: str = "fast") -> dict[str, Any]:
    build = training_config if kind is TRAINING else transform_config
    return build(settings, name, variant_)


def create(sm: Any, kind: Kind, config: dict[str, Any]) -> str:
    getattr(sm, f"create_{kind.key}_job")(**config)
    return config[kind.name_field]


def sm_wait(sm: Any, kind: Kind, name: str) -> dict[str, Any]:
    return wait_for(lambda: kind.describe(sm, name), kind.status, timeout=JOB_TIMEOUT)


def stop_when_running(sm: Any, kind: Kind, name: str) -> None:
    """Stop the job (as ``aws sagemaker stop-*-job`` would) once it exists and is InProgress."""

    def describe() -> dict[str, Any]:
        try:
            return kind.describe(sm, name)
        except sm.exceptions.ClientError as err:  # not created yet: the task, in another thread, will
            if err.response["Error"]["Code"] != "ValidationException":
                raise
            return {kind.status: "NotYetCreated"}

    wait_for(describe, kind.status, timeout=JOB_TIMEOUT, until=lambda d: d[kind.status] == "InProgress")
    getattr(sm, kind.boto_stop)(**{kind.name_field: name})


# --- running an operator as a task would ----------------------------------------------------------


@dataclass
class Run:
    result: Any
    deferred: bool
    event: dict[str, Any] | None = None


async def _first_event(trigger: Any) -> Any:
    async for event in trigger.run():
        return event
    raise AssertionError("the trigger ended without an event")


def resume(operator: Any, deferred: TaskDeferred) -> tuple[dict[str, Any], Callable[[], Any]]:
    """Run the trigger the task deferred to as the triggerer does (rebuilt from its serialized form, in
    an event loop); its first event, and the resumed task (the method the task named, with that event)."""
    classpath, kwargs = deferred.trigger.serialize()
    module, _, name = classpath.rpartition(".")
    trigger = getattr(importlib.import_module(module), name)(**kwargs)
    event = asyncio.run(asyncio.wait_for(_first_event(trigger), JOB_TIMEOUT)).payload
    return event, lambda: getattr(operator, deferred.method_name)({}, event)


def run(operator: Any) -> Run:
    """``execute``; when it defers, the trigger's first event and ``execute_complete`` with it. An
    exception from either propagates; ``Run`` records whether the task deferred."""
    try:
        return Run(operator.execute(context={}), deferred=False)
    except TaskDeferred as deferred:
        assert operator.deferrable, "a blocking operator deferred"
        event, complete = resume(operator, deferred)
        return Run(complete(), deferred=True, event=event)


def run_catching(operator: Any, before_resume: Callable[[], None] | None = None) -> tuple[Run, Exception]:
    """``run`` that must fail: the exception, and whether the task had deferred (and the event)."""
    state = Run(None, deferred=False)
    try:
        try:
            operator.execute(context={})
        except TaskDeferred as deferred:
            state.deferred = True
            if before_resume is not None:
                before_resume()
            state.event, complete = resume(operator, deferred)
            complete()
    except Exception as err:
        return state, err
    raise AssertionError(f"{operator.task_id} succeeded; it should have failed")


def job_operator(kind: Kind, config: dict[str, Any], mode: str, **options: Any) -> Any:
    return kind.operator(
        task_id=f"{kind.key}_{mode}",
        config=config,
        aws_conn_id=CONN_ID,
        region_name=REGION,
        wait_for_completion=True,
        deferrable=mode == "deferrable",
        check_interval=1,
        **({"print_log": False} if kind is TRAINING else {}),
        **options,
    )


def statuses_seen(operator: Any, kind: Kind) -> list[str]:
    """The job statuses the operator's own describe calls return, in order (the hook, spied on)."""
    seen: list[str] = []
    describe = getattr(operator.hook, kind.boto_describe)

    def spy(name: str) -> dict[str, Any]:
        described = describe(name)
        seen.append(described[kind.status])
        return described

    setattr(operator.hook, kind.boto_describe, spy)
    return seen


# --- the retry cases, per kind and mode -----------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind_key", list(KINDS))
def test_a_retry_reuses_the_completed_job(server: Server, kind_key: str, mode: str) -> None:
    kind = KINDS[kind_key]
    name = server.prepared[f"{kind_key}-completed"]
    existing = kind.describe(server.sm, name)

    done = run(job_operator(kind, config_for(kind, server.settings, name), mode))

    assert not done.deferred  # nothing to wait for
    result = done.result[kind.result_key]
    assert (result[kind.name_field], result[kind.status]) == (name, "Completed")
    assert result.get("CreationTime") == repr(existing["CreationTime"])  # the provider's serialize
    assert kind.names_like(server.sm, name) == [name]  # no new job, no timestamp-suffixed name
    if kind is TRAINING:
        assert result["ModelArtifacts"] == existing["ModelArtifacts"]
    else:
        assert done.result["Model"]["ModelName"] == BASE_MODEL


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind_key", list(KINDS))
def test_a_retry_waits_for_the_job_still_in_progress(server: Server, kind_key: str, mode: str) -> None:
    kind = KINDS[kind_key]
    config = config_for(kind, server.settings, f"retries-running-{kind_key}-{mode}", "slow")
    name = create(server.sm, kind, config)
    operator = job_operator(kind, config, mode)
    seen = statuses_seen(operator, kind)
    assert kind.describe(server.sm, name)[kind.status] == "InProgress"

    done = run(operator)

    assert seen[0] == "InProgress"  # the task found the job running ...
    assert done.deferred == (mode == "deferrable")  # ... and waited: deferred, or blocking
    if done.deferred:
        assert done.event == {"status": "success", "job_name": name}  # the trigger polled the server
    result = done.result[kind.result_key]
    assert (result[kind.name_field], result[kind.status]) == (name, "Completed")
    assert kind.describe(server.sm, name)[kind.status] == "Completed"
    assert kind.names_like(server.sm, name) == [name]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind_key", list(KINDS))
def test_a_retry_fails_for_good_with_the_failed_jobs_reason(server: Server, kind_key: str, mode: str) -> None:
    kind = KINDS[kind_key]
    name = server.prepared[f"{kind_key}-failed"]
    reason = kind.describe(server.sm, name)["FailureReason"]
    assert ("feature_dim=5" if kind is TRAINING else "has 5 columns, expected 4") in reason

    state, err = run_catching(job_operator(kind, config_for(kind, server.settings, name, "bad"), mode))

    assert not state.deferred
    assert isinstance(err, AirflowFailException), repr(err)  # retrying again cannot help
    assert f"{kind_key} job {name} already exists and ended Failed: {reason}" in str(err)
    assert kind.names_like(server.sm, name) == [name]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind_key", list(KINDS))
def test_a_retry_fails_for_good_on_the_stopped_job(server: Server, kind_key: str, mode: str) -> None:
    kind = KINDS[kind_key]
    name = server.prepared[f"{kind_key}-stopped"]
    config = config_for(kind, server.settings, name, "stoppable")

    state, err = run_catching(job_operator(kind, config, mode))

    assert not state.deferred
    assert isinstance(err, AirflowFailException), repr(err)
    assert f"{kind_key} job {name} already exists and ended Stopped: it was stopped" in str(err)
    assert kind.names_like(server.sm, name) == [name]


# --- a new job that does not complete while the task waits: Stopped is never success ----------------


def _stop_while_waiting(server: Server, kind: Kind, operator: Any, name: str) -> tuple[Run, Exception]:
    """Run the task; once its job runs, stop the job (blocking: from another thread while ``execute``
    waits; deferrable: while the task is deferred, before the trigger runs)."""
    if operator.deferrable:
        return run_catching(operator, before_resume=lambda: stop_when_running(server.sm, kind, name))
    # The task in this thread (Airflow's ExecutorSafeguard keeps its state in the main thread's locals),
    # the user who stops the job in another.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        stopper = pool.submit(stop_when_running, server.sm, kind, name)
        outcome = run_catching(operator)
        stopper.result(timeout=JOB_TIMEOUT)  # it did stop the job (and raised nothing)
    return outcome


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind_key", list(KINDS))
def test_a_job_stopped_while_the_task_waits_fails_the_task(server: Server, kind_key: str, mode: str) -> None:
    """Blocking, the provider's transform wait returns on Stopped as if done; deferred, the trigger
    yields a "stopped" event. Either way the task fails for good, saying Stopped."""
    kind = KINDS[kind_key]
    config = config_for(kind, server.settings, f"retries-stop-while-{kind_key}-{mode}", "stoppable")
    name = config[kind.name_field]
    operator = job_operator(kind, config, mode)

    state, err = _stop_while_waiting(server, kind, operator, name)

    assert kind.describe(server.sm, name)[kind.status] == "Stopped"
    assert state.deferred == (mode == "deferrable")
    if state.deferred:
        assert state.event is not None and state.event["status"] == "stopped", state.event
    assert isinstance(err, AirflowFailException), repr(err)
    assert f"{kind_key} job {name} ended Stopped: it was stopped" in str(err)
    assert kind.names_like(server.sm, name) == [name]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind_key", list(KINDS))
def test_a_job_failing_while_the_task_waits_fails_the_task_with_its_reason(
    server: Server, kind_key: str, mode: str
) -> None:
    """The provider raises a retryable AirflowException ("... failed because <reason>") here; the task
    fails for good instead, naming the job: a retry could only find it Failed."""
    kind = KINDS[kind_key]
    config = config_for(kind, server.settings, f"retries-failing-{kind_key}-{mode}", "late-failure")
    name = config[kind.name_field]

    state, err = run_catching(job_operator(kind, config, mode))

    described = kind.describe(server.sm, name)
    assert described[kind.status] == "Failed"
    assert state.deferred == (mode == "deferrable")  # it failed after seconds, not at once
    if state.deferred:
        assert state.event is not None and state.event["status"] == "failed", state.event
    assert isinstance(err, AirflowFailException), repr(err)
    assert f"{kind_key} job {name} ended Failed: {described['FailureReason']}" in str(err)
    assert "b.csv" in described["FailureReason"]  # the bad second object, read after the good one


@pytest.mark.parametrize("kind_key", list(KINDS))
def test_a_trigger_that_gives_up_leaves_the_task_retryable_and_the_retry_waits(
    server: Server, kind_key: str
) -> None:
    """max_attempts=1: the trigger yields "timeout" while the job runs. That must not fail the task for
    good (the job may complete); the retry finds the job InProgress and waits for it."""
    kind = KINDS[kind_key]
    config = config_for(kind, server.settings, f"retries-timeout-{kind_key}", "slow")
    name = config[kind.name_field]

    state, err = run_catching(job_operator(kind, config, "deferrable", max_attempts=1))

    assert state.deferred and state.event is not None and state.event["status"] == "timeout"
    assert isinstance(err, AirflowException) and not isinstance(err, AirflowFailException), repr(err)
    assert f"{kind_key} job {name}" in str(err) and "a retry of this task waits for it" in str(err)

    retry = run(job_operator(kind, config, "deferrable"))

    assert retry.deferred
    assert retry.result[kind.result_key][kind.status] == "Completed"
    assert kind.names_like(server.sm, name) == [name]


@pytest.mark.parametrize("kind_key", list(KINDS))
def test_a_trigger_that_lost_the_server_after_the_job_completed_succeeds(
    server: Server, kind_key: str
) -> None:
    """An "error" event (the triggerer could not reach the server, say) for a job that is Completed by
    now: the task looks at the job itself and succeeds, rather than failing a run that trained fine."""
    kind = KINDS[kind_key]
    name = server.prepared[f"{kind_key}-completed"]
    operator = job_operator(kind, config_for(kind, server.settings, name), "deferrable")
    event = {"status": "error", "job_name": name, "message": "Cannot connect to host 127.0.0.1"}
    result = operator.execute_complete({}, event)
    assert result[kind.result_key][kind.status] == "Completed"
    assert result[kind.result_key][kind.name_field] == name


# --- model, endpoint config, endpoint -------------------------------------------------------------


def described(result: dict[str, Any]) -> dict[str, Any]:
    """An operator's XCom without the per-request ResponseMetadata (request id, date)."""
    return {k: {f: v for f, v in d.items() if f != "ResponseMetadata"} for k, d in result.items()}


def _operator(cls: type, task_id: str, config: dict[str, Any], **options: Any) -> Any:
    return cls(task_id=task_id, config=config, aws_conn_id=CONN_ID, region_name=REGION, **options)


def test_a_retried_model_task_reuses_its_model(server: Server) -> None:
    config = specs.model_request(server.settings, "retries-model", server.artifact)

    first = run(_operator(operators.IrisModelOperator, "create_model", dict(config))).result
    retry = run(_operator(operators.IrisModelOperator, "create_model", dict(config))).result

    assert described(retry) == described(first)  # the same XCom, ModelArn included
    assert first["Model"]["ModelArn"].endswith("/retries-model")
    models = server.sm.list_models(NameContains="retries-model")["Models"]
    assert [m["ModelName"] for m in models] == ["retries-model"]


def test_a_model_name_taken_by_another_artifact_fails_naming_both(server: Server) -> None:
    other = server.artifact.replace("model.tar.gz", "other/model.tar.gz")
    server.sm.create_model(**specs.model_request(server.settings, "retries-taken", server.artifact))
    config = specs.model_request(server.settings, "retries-taken", other)

    _, err = run_catching(_operator(operators.IrisModelOperator, "create_model", config))

    assert isinstance(err, AirflowFailException), repr(err)
    assert "retries-taken" in str(err) and server.artifact in str(err) and other in str(err)
    described = server.sm.describe_model(ModelName="retries-taken")
    assert described["PrimaryContainer"]["ModelDataUrl"] == server.artifact  # left as it was


def test_a_retried_endpoint_config_task_reuses_its_config(server: Server) -> None:
    config = specs.endpoint_config_request(server.settings, "retries-config", BASE_MODEL)
    cls = operators.IrisEndpointConfigOperator

    first = run(_operator(cls, "create_endpoint_config", dict(config))).result
    retry = run(_operator(cls, "create_endpoint_config", dict(config))).result

    assert described(retry) == described(first)  # the same XCom, EndpointConfigArn included
    configs = server.sm.list_endpoint_configs(NameContains="retries-config")["EndpointConfigs"]
    assert [c["EndpointConfigName"] for c in configs] == ["retries-config"]
    # The same name serving another model is not this task's config: fail, never deploy it silently.
    server.sm.create_model(**specs.model_request(server.settings, "retries-other-model", server.artifact))
    other = specs.endpoint_config_request(server.settings, "retries-config", "retries-other-model")
    _, err = run_catching(_operator(cls, "create_endpoint_config", other))
    assert isinstance(err, AirflowFailException), repr(err)
    assert BASE_MODEL in str(err) and "retries-other-model" in str(err)


@pytest.mark.parametrize("mode", MODES)
def test_the_endpoint_is_created_updated_and_a_retry_changes_nothing(server: Server, mode: str) -> None:
    endpoint = f"retries-endpoint-{mode}"
    configs = [f"retries-ep-{mode}-{i}" for i in (1, 2)]
    for config_name in configs:
        server.sm.create_endpoint_config(
            EndpointConfigName=config_name, ProductionVariants=variant(BASE_MODEL)
        )

    def deploy(config_name: str) -> Run:
        options = {"wait_for_completion": True, "deferrable": mode == "deferrable", "check_interval": 1}
        request = specs.endpoint_request(endpoint, config_name)
        return run(_operator(operators.IrisEndpointOperator, "deploy_endpoint", request, **options))

    try:
        created = deploy(configs[0])
        assert created.deferred == (mode == "deferrable")
        first = created.result["Endpoint"]
        assert (first["EndpointStatus"], first["EndpointConfigName"]) == ("InService", configs[0])

        updated = deploy(configs[1])  # the next deploy run: the same endpoint, on its own config
        assert updated.deferred == (mode == "deferrable")
        second = updated.result["Endpoint"]
        assert (second["EndpointStatus"], second["EndpointConfigName"]) == ("InService", configs[1])
        assert second["EndpointArn"] == first["EndpointArn"]
        assert updated.result["EndpointConfig"]["EndpointConfigName"] == configs[1]

        before = server.sm.describe_endpoint(EndpointName=endpoint)
        retry = deploy(configs[1])  # a retry of that deploy: already there, nothing to do
        assert not retry.deferred
        assert described(retry.result) == described(updated.result)
        after = server.sm.describe_endpoint(EndpointName=endpoint)
        assert after["LastModifiedTime"] == before["LastModifiedTime"]  # no second update
        names = [e["EndpointName"] for e in server.sm.list_endpoints(NameContains=endpoint)["Endpoints"]]
        assert names == [endpoint]
    finally:
        server.sm.delete_endpoint(EndpointName=endpoint)


def test_the_slow_jobs_are_slow_however_fast_the_machine(server: Server) -> None:
    """What makes the InProgress cases deterministic: the pause at every checkpoint bounds a slow
    job's duration from below."""
    started = time.monotonic()
    name = create(server.sm, TRAINING, training_config(server.settings, "retries-timing", "slow"))
    assert sm_wait(server.sm, TRAINING, name)[TRAINING.status] == "Completed"
    assert time.monotonic() - started >= 35 * DELAY


@pytest.mark.parametrize("mode", MODES)
def test_a_broken_model_fails_the_deploy_with_its_reason_and_a_failed_update_is_not_success(
    server: Server, mode: str
) -> None:
    """A new endpoint on a broken model ends Failed: the task fails for good with the endpoint's
    FailureReason (not botocore's bare WaiterError, not a trigger's "failed"). An update to the broken
    model leaves the old model serving (InService, but on the old config): that is not success either."""
    from airflow.providers.common.compat.sdk import AirflowFailException

    broken_key = "iris/broken/model.tar.gz"
    s3 = client(server.process, "s3")
    s3.put_object(Bucket=server.settings.bucket, Key=broken_key, Body=b"not a model")
    broken_model = f"retries-broken-model-{mode}"
    server.sm.create_model(
        **specs.model_request(server.settings, broken_model, f"s3://{server.settings.bucket}/{broken_key}")
    )
    good, bad = f"retries-good-{mode}", f"retries-bad-{mode}"
    server.sm.create_endpoint_config(EndpointConfigName=good, ProductionVariants=variant(BASE_MODEL))
    server.sm.create_endpoint_config(EndpointConfigName=bad, ProductionVariants=variant(broken_model))
    options = {"wait_for_completion": True, "deferrable": mode == "deferrable", "check_interval": 1}

    def deploy(endpoint: str, config_name: str) -> Any:
        request = specs.endpoint_request(endpoint, config_name)
        return _operator(operators.IrisEndpointOperator, "deploy_endpoint", request, **options)

    fresh, updated = f"retries-broken-new-{mode}", f"retries-broken-update-{mode}"
    try:
        _, err = run_catching(deploy(fresh, bad))
        assert isinstance(err, AirflowFailException), repr(err)
        assert f"endpoint {fresh} is Failed on endpoint config {bad}" in str(err)
        assert "not a readable model.tar.gz" in str(err)

        run(deploy(updated, good))
        _, err = run_catching(deploy(updated, bad))
        assert isinstance(err, AirflowFailException), repr(err)
        wanted = f"endpoint {updated} is InService on endpoint config {good}, not InService on {bad}"
        assert wanted in str(err)
        still = server.sm.describe_endpoint(EndpointName=updated)
        assert still["EndpointConfigName"] == good  # the old model still serves
    finally:
        for name in (fresh, updated):
            with contextlib.suppress(Exception):
                server.sm.delete_endpoint(EndpointName=name)
