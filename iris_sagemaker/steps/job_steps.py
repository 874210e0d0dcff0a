"""Start-or-find, wait for, stop and check SageMaker jobs; the same code for boto3 and the embedded engine.

Retries are safe: a step that finds its job already created (``ResourceInUse``) reuses it when it
completed, waits for it when it is still running, and fails with the job's own reason when it failed or
was stopped. ``Stopped`` is never a success.

A step owns the job it waits for: when the orchestrator terminates it while it waits (see
:func:`stopped_on_termination`), it stops the job (StopTrainingJob, StopTransformJob, ...) and waits a
bounded time for ``Stopped`` before it lets the termination go on. A job that already ended is left alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

TERMINAL_FAILURES = ("Failed", "Stopped")
# How Describe* says a job does not exist: training and transform jobs ValidationException, tuning jobs
# ResourceNotFound.
NOT_FOUND_CODES = ("ValidationException", "ResourceNotFound")
ACTIVE = ("InProgress", "Stopping")  # a job (training, transform, tuning, ...) that has not ended yet
# S3 timestamps have one-second resolution; allow for that and small clock skew.
STALE_TOLERANCE = dt.timedelta(seconds=5)
Log = Callable[[str], None]
# Called after each describe; returns the job's log lines written since the previous call.
OnPoll = Callable[[], list[str]]


class SageMakerJobError(RuntimeError):
    """A job ended without success, or could not be waited for."""


# Time SageMaker may spend before MaxRuntimeInSeconds starts counting (instances, image pull) and after.
SETUP_ALLOWANCE_SECONDS = 1800
DEFAULT_TIMEOUT_SECONDS = 6000 + SETUP_ALLOWANCE_SECONDS


@dataclass(frozen=True)
class Waiting:
    """Polling policy: the interval grows from ``first`` to ``max_interval``; give up after ``timeout``.

    Without a ``timeout``, a training job's comes from its ``StoppingCondition.MaxRuntimeInSeconds``.
    ``stop_timeout``: how long a terminated step waits for the job it stopped to read ``Stopped``.
    """

    first: float = 0.05
    max_interval: float = 30.0
    timeout: float | None = None
    stop_timeout: float = 300.0

    def for_request(self, request: dict[str, Any]) -> Waiting:
        if self.timeout is not None:
            return self
        runtime = request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds")
        timeout = runtime + SETUP_ALLOWANCE_SECONDS if runtime else DEFAULT_TIMEOUT_SECONDS
        return dataclasses.replace(self, timeout=float(timeout))

    def intervals(self) -> Any:
        interval = self.first
        while True:
            yield interval
            interval = min(interval * 2, self.max_interval)


# Embedded jobs take milliseconds to seconds, and stop at their next checkpoint.
LOCAL_WAITING = Waiting(first=0.01, max_interval=0.1, stop_timeout=60.0)
# SageMaker jobs take minutes; DescribeX is throttled. A stopped training job gets SIGTERM, then up to
# 120 s before it is killed: Stopping -> Stopped can take a few minutes.
AWS_WAITING = Waiting(first=5.0, max_interval=30.0, stop_timeout=300.0)


def waiting_for(is_local: bool) -> Waiting:
    """The polling policy of a backend, the same for the Dagster assets and the Airflow tasks."""
    return LOCAL_WAITING if is_local else AWS_WAITING


def _error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def wait_for_status(
    describe: Callable[[], dict[str, Any]],
    status_field: str,
    kind: str,
    name: str,
    waiting: Waiting,
    log: Log,
    on_poll: OnPoll | None = None,
    done: Callable[[str], bool] | None = None,
) -> dict[str, Any]:
    """Poll ``describe`` until the status is ``Completed`` (a failure status raises), or, with ``done``,
    until ``done(status)``; SageMakerJobError once ``waiting.timeout`` has passed."""
    timeout = waiting.timeout if waiting.timeout is not None else DEFAULT_TIMEOUT_SECONDS
    deadline = time.monotonic() + timeout
    last_status = None
    for interval in waiting.intervals():
        description = describe()
        lines = list(on_poll()) if on_poll is not None else []
        status = description[status_field]
        if status != last_status:
            lines.append(f"{kind} {name}: {status}")
            last_status = status
        if lines:
            log("\n".join(lines))  # one message per poll: the job's new log lines, then its new status
        if done is not None:
            if done(status):
                return description
        elif status == "Completed":
            return description
        elif status in TERMINAL_FAILURES:
            reason = failure_reason(kind, status, description)
            raise SageMakerJobError(f"{kind} {name} ended {status}: {reason}")
        if time.monotonic() + interval > deadline:
            raise SageMakerJobError(
                f"{kind} {name} is still {status} after {timeout:.0f} s; it keeps running in "
                "SageMaker: stop it there, or rerun this step to wait for it again"
            )
        time.sleep(interval)
    raise AssertionError("unreachable")


def _create_or_find(create: Callable[[], Any], kind: str, name: str, log: Log) -> None:
    try:
        create()
        log(f"created {kind} {name}")
    except ClientError as err:
        if _error_code(err) != "ResourceInUse":
            raise
        log(f"{kind} {name} already exists (a retry of this step): using it")


@dataclass(frozen=True)
class JobKind:
    """How boto3 names one kind of SageMaker job. ``stop`` defaults to the describe method's stop twin:
    ``describe_training_job`` -> ``stop_training_job``, and for a tuning job
    ``describe_hyper_parameter_tuning_job`` -> ``stop_hyper_parameter_tuning_job``."""

    noun: str
    name_field: str
    status_field: str
    create: str
    describe: str
    stop: str = ""

    @property
    def stop_method(self) -> str:
        return self.stop or "stop_" + self.describe.removeprefix("describe_")


TRAINING_JOB = JobKind(
    "training job", "TrainingJobName", "TrainingJobStatus", "create_training_job", "describe_training_job"
)
TRANSFORM_JOB = JobKind(
    "transform job",
    "TransformJobName",
    "TransformJobStatus",
    "create_transform_job",
    "describe_transform_job",
)
TUNING_JOB = JobKind(
    "hyperparameter tuning job",
    "HyperParameterTuningJobName",
    "HyperParameterTuningJobStatus",
    "create_hyper_parameter_tuning_job",
    "describe_hyper_parameter_tuning_job",
)
# By the Airflow provider's SageMakerTrigger ``job_type``, lower case.
JOB_KINDS = {"training": TRAINING_JOB, "transform": TRANSFORM_JOB, "tuning": TUNING_JOB}


def failure_reason(noun: str, status: str, description: dict[str, Any]) -> str:
    """Why a job ended ``status``: its FailureReason; for a Stopped job without one (SageMaker gives
    none), whether it ran out of time or was stopped."""
    reason = description.get("FailureReason")
    if reason:
        return str(reason)
    if status == "Stopped":
        secondary = description.get("SecondaryStatus")
        if secondary in ("MaxRuntimeExceeded", "MaxWaitTimeExceeded"):
            return f"it ran out of time ({secondary}: see its StoppingCondition)"
        return (
            f"it was stopped (by a terminated run or killed task that started it, aws sagemaker "
            f"stop-{noun.replace(' ', '-')}, or Stop in the console)"
        )
    return "no reason given"


REUSE, WAIT = "reuse", "wait"


def existing_job_action(kind: JobKind, description: dict[str, Any]) -> str:
    """What a retried step does with the job it finds under its own name (pure): ``REUSE`` a Completed
    one, ``WAIT`` for one still running; a Failed or Stopped one raises SageMakerJobError with its reason
    (starting it again would need a new name, so a new run)."""
    status = description[kind.status_field]
    name = description[kind.name_field]
    if status == "Completed":
        return REUSE
    if status in TERMINAL_FAILURES:
        raise SageMakerJobError(
            f"{kind.noun} {name} already exists and ended {status}: "
            f"{failure_reason(kind.noun, status, description)}. Retrying this step cannot "
            "start it again under the same name; fix the cause and start a new run"
        )
    return WAIT


def check_completed(kind: JobKind, description: dict[str, Any]) -> dict[str, Any]:
    """``description`` when the job is Completed; otherwise SageMakerJobError with its status and reason
    (a wait that returns on any terminal status, Stopped included, must not pass for success)."""
    status = description[kind.status_field]
    if status != "Completed":
        reason = failure_reason(kind.noun, status, description)
        raise SageMakerJobError(f"{kind.noun} {description[kind.name_field]} ended {status}: {reason}")
    return description


def run_job(
    client: Any,
    kind: JobKind,
    request: dict[str, Any],
    waiting: Waiting,
    log: Log = print,
    on_poll: OnPoll | None = None,
) -> dict[str, Any]:
    """Start (or find) the job and wait for it to end; stop it if the step is terminated meanwhile
    (:func:`stopped_on_termination`).

    Each poll logs one message: the new lines ``on_poll`` returns (the job's own log), then the job's
    status when it changed.
    """
    name = request[kind.name_field]
    describe = getattr(client, kind.describe)
    with stopped_on_termination(client, kind, name, log, waiting.stop_timeout):
        _create_or_find(lambda: getattr(client, kind.create)(**request), kind.noun, name, log)
        return wait_for_status(
            lambda: describe(**{kind.name_field: name}),
            kind.status_field,
            kind.noun,
            name,
            waiting,
            log,
            on_poll,
        )


# --- stopping what a step started -----------------------------------------------------------------------


def is_termination(err: BaseException) -> bool:
    """Whether ``err`` is how an orchestrator ends a step, not a failure of the step: a ``BaseException``
    that is not an ``Exception`` (KeyboardInterrupt for SIGINT, SystemExit, Dagster's
    ``DagsterExecutionInterruptedError`` for a terminated run's SIGTERM/SIGINT, asyncio's CancelledError).
    A generator being closed (GeneratorExit) is not one."""
    return not isinstance(err, Exception | GeneratorExit)


TERMINATED = "the run was terminated"


@contextlib.contextmanager
def stopped_on_termination(
    client: Any,
    kind: JobKind,
    name: str,
    log: Log = print,
    timeout: float = LOCAL_WAITING.stop_timeout,
    why: str = TERMINATED,
) -> Iterator[None]:
    """Around the code that creates and waits for job ``name``: if it is ended by a termination
    (:func:`is_termination`), stop the job (:func:`stop_job`, bounded by ``timeout`` seconds) before the
    termination goes on. Exceptions pass untouched (a retry waits for the job again).

    One line per job kind, for any boto3-shaped client: ``with stopped_on_termination(client,
    TUNING_JOB, name, log):``.
    """
    try:
        yield
    except BaseException as err:
        if is_termination(err):
            stop_job_quietly(client, kind, name, log, timeout, why)
        raise


def stop_job_quietly(
    client: Any, kind: JobKind, name: str, log: Log, timeout: float, why: str = TERMINATED
) -> str | None:
    """:func:`stop_job` for a caller that is already on its way out (a termination, Airflow's
    ``on_kill``): what goes wrong is logged, never raised; a second interrupt ends the wait."""
    try:
        return stop_job(client, kind, name, log, timeout, why)
    except Exception as err:  # the termination matters more than the stop: say why, do not mask it
        log(f"could not stop {kind.noun} {name}: {type(err).__name__}: {err}")
    except BaseException as err:  # a second interrupt: stop waiting, keep the first one's way out
        if not is_termination(err):
            raise
        log(f"stopped waiting for {kind.noun} {name} to stop (interrupted again); its stop was requested")
    return None


def stop_job(
    client: Any, kind: JobKind, name: str, log: Log = print, timeout: float = 60.0, why: str = TERMINATED
) -> str | None:
    """Stop job ``name`` if it still runs, and wait up to ``timeout`` s for it to end; its last status
    (None: there is no such job). A job that already ended (Completed, Failed, Stopped) is left alone.

    ``why`` says who asked (the run log's reader wants to know why their job stopped).
    """
    described = _describe_job(client, kind, name)
    if described is None:
        log(f"{why}: {kind.noun} {name} was not created, nothing to stop")
        return None
    status = described[kind.status_field]
    if status not in ACTIVE:
        log(f"{why}: {kind.noun} {name} already ended {status}; left as it is")
        return status
    if status == "InProgress":
        try:
            getattr(client, kind.stop_method)(**{kind.name_field: name})
        except ClientError as err:  # it ended between the describe and the stop
            if _error_code(err) != "ValidationException":
                raise
            described = _describe_job(client, kind, name)
            status = described[kind.status_field] if described else "gone"
            if status not in ACTIVE:
                log(f"{why}: {kind.noun} {name} ended {status} before it could be stopped; left as it is")
                return status
    log(f"{why}: stopping {kind.noun} {name} (it was {status})")
    deadline = time.monotonic() + timeout
    interval = 0.05
    while status in ACTIVE and time.monotonic() < deadline:
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 2, 10.0)
        described = _describe_job(client, kind, name)
        status = described[kind.status_field] if described else "gone"
    if status in ACTIVE:
        log(
            f"{kind.noun} {name} is still {status} after {timeout:.0f} s; its stop was requested and it "
            "will end Stopped"
        )
    else:
        log(f"{kind.noun} {name}: {status}")
    return status


def _describe_job(client: Any, kind: JobKind, name: str) -> dict[str, Any] | None:
    """Describe* of job ``name``, or None when there is no such job (ValidationException; ResourceNotFound
    for a tuning job)."""
    try:
        return getattr(client, kind.describe)(**{kind.name_field: name})
    except ClientError as err:
        if _error_code(err) in NOT_FOUND_CODES:
            return None
        raise


def run_training_job(
    client: Any,
    request: dict[str, Any],
    waiting: Waiting = Waiting(),
    log: Log = print,
    on_poll: OnPoll | None = None,
) -> dict[str, Any]:
    """The training job of ``request``, Completed; its timeout follows its MaxRuntimeInSeconds."""
    return run_job(client, TRAINING_JOB, request, waiting.for_request(request), log, on_poll)


def run_transform_job(
    client: Any,
    request: dict[str, Any],
    waiting: Waiting = Waiting(),
    log: Log = print,
    on_poll: OnPoll | None = None,
) -> dict[str, Any]:
    """The transform job of ``request``, Completed."""
    return run_job(client, TRANSFORM_JOB, request, waiting, log, on_poll)


def check_same_artifact(existing: dict[str, Any], request: dict[str, Any]) -> None:
    """A model found under the requested name must serve the requested artifact (a retry); one serving
    another artifact raises SageMakerJobError naming both."""
    name = request["ModelName"]
    wanted = request["PrimaryContainer"]["ModelDataUrl"]
    found = existing.get("PrimaryContainer", {}).get("ModelDataUrl")
    if found != wanted:
        raise SageMakerJobError(
            f"model {name} already exists but serves {found}, not {wanted}; delete it "
            "(aws sagemaker delete-model) or start a new run"
        )


def ensure_model(client: Any, request: dict[str, Any], log: Log = print) -> dict[str, Any]:
    """Create the model, or reuse an existing one of the same name built from the same artifact."""
    name = request["ModelName"]
    try:
        client.create_model(**request)
        log(f"created model {name}")
    except ClientError as err:
        message = str(err.response.get("Error", {}).get("Message", ""))
        if _error_code(err) != "ResourceInUse" and "already existing model" not in message:
            raise
        check_same_artifact(client.describe_model(ModelName=name), request)
        log(f"model {name} already exists with the same artifact: using it")
    return client.describe_model(ModelName=name)


def read_transform_output(store: Any, bucket: str, key: str, description: dict[str, Any]) -> bytes:
    """The ``.out`` object a Completed transform job wrote; never a missing or stale one.

    A job reported Completed without its output (or with only an older run's output in place) fails here
    rather than passing off old predictions as new.
    """
    from iris_sagemaker.core.storage import ObjectNotFound

    name = description["TransformJobName"]
    uri = f"s3://{bucket}/{key}"
    try:
        modified = store.last_modified(bucket, key)
    except ObjectNotFound:
        raise SageMakerJobError(
            f"transform job {name} reported {description['TransformJobStatus']} but wrote no output at "
            f"{uri}; check the job's TransformOutput and the role's s3:PutObject permission"
        ) from None
    started = description.get("TransformStartTime") or description.get("CreationTime")
    if started is not None and modified < started - STALE_TOLERANCE:
        raise SageMakerJobError(
            f"transform job {name} started at {started.isoformat()} but {uri} was last written at "
            f"{modified.isoformat()}: the object is an older run's output, and this job wrote none"
        )
    return store.get_bytes(bucket, key)


def json_safe(description: dict[str, Any]) -> dict[str, Any]:
    """A describe response without ``ResponseMetadata``, datetimes as ISO 8601 strings."""

    def convert(value: Any) -> Any:
        if isinstance(value, dt.datetime):
            return value.isoformat()
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v) for v in value]
        return value

    return convert({k: v for k, v in description.items() if k != "ResponseMetadata"})
