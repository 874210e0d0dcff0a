"""Deploy a model to a real-time endpoint and check it online; the same code for boto3 and the engine.

The endpoint keeps one stable name; each deployment brings its own endpoint config. The first
deployment creates the endpoint, later ones update it (UpdateEndpoint), so a retrain moves the live
endpoint to the new model instead of leaving a trail of endpoints. Retries are safe: an existing config
serving the same model is reused, and an endpoint already on the wanted config is simply waited for.
A failed update leaves the previous model serving (as SageMaker does) and fails the step with the
reason.

Runs that deploy to one endpoint take turns (:func:`endpoint_lock`, a lock object in the run's bucket):
each deploys and checks the endpoint online while it holds it, so two runs at once both succeed.
:func:`check_still_serving` still catches a deploy that did not take the lock.

A step terminated while it waits for its deployment (:func:`stopped_deployment_on_termination`) undoes
what it started where SageMaker allows: an endpoint it is creating is deleted (SageMaker has no way to
cancel a CreateEndpoint but DeleteEndpoint, and an endpoint bills while it exists); an update cannot be
cancelled at all, so it goes on, and the log says how to roll back. An endpoint that is already InService
is left alone, like a job that already ended.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from iris_sagemaker.core import specs
from iris_sagemaker.steps.job_steps import (
    TERMINATED,
    Log,
    OnPoll,
    SageMakerJobError,
    Waiting,
    is_termination,
    wait_for_status,
)

SETTLING = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")
# Endpoints take minutes on AWS (instances, image, model); give up on waiting after an hour.
LOCAL_ENDPOINT_WAITING = Waiting(first=0.01, max_interval=0.1, timeout=600.0, stop_timeout=60.0)
AWS_ENDPOINT_WAITING = Waiting(first=10.0, max_interval=30.0, timeout=3600.0, stop_timeout=300.0)
CREATE, UPDATE = "create", "update"
LATENCY_ROWS = 200  # one-row requests timed for the latency figures
MAX_REQUEST_BYTES = 5 * 1024 * 1024  # the rest go in requests under InvokeEndpoint's 6 MB


def endpoint_waiting(is_local: bool) -> Waiting:
    return LOCAL_ENDPOINT_WAITING if is_local else AWS_ENDPOINT_WAITING


def _missing(err: ClientError) -> bool:
    """Whether ``err`` says there is no such endpoint (SageMaker's ValidationException "Could not find")."""
    code = str(err.response.get("Error", {}).get("Code", ""))
    return code == "ValidationException" and "Could not find endpoint" in str(err)


def describe_endpoint(client: Any, name: str) -> dict[str, Any] | None:
    """DescribeEndpoint, or None when there is no such endpoint."""
    try:
        return client.describe_endpoint(EndpointName=name)
    except ClientError as err:
        if _missing(err):
            return None
        raise


def ensure_endpoint_config(client: Any, request: dict[str, Any], log: Log = print) -> dict[str, Any]:
    """Create the endpoint config, or reuse an existing one (a retry) that serves the same model."""
    name = request["EndpointConfigName"]
    try:
        client.create_endpoint_config(**request)
        log(f"created endpoint config {name}")
    except ClientError as err:
        if "already existing endpoint configuration" not in str(err):
            raise
        existing = client.describe_endpoint_config(EndpointConfigName=name)
        wanted = request["ProductionVariants"][0]["ModelName"]
        found = existing["ProductionVariants"][0]["ModelName"]
        if found != wanted:
            raise SageMakerJobError(
                f"endpoint config {name} already exists but serves model {found}, not {wanted}; delete it "
                "or use another run"
            ) from err
        log(f"endpoint config {name} already exists with model {wanted}: using it")
    return client.describe_endpoint_config(EndpointConfigName=name)


def deploy(
    client: Any,
    endpoint_name: str,
    config_request: dict[str, Any],
    waiting: Waiting,
    log: Log = print,
    on_poll: OnPoll | None = None,
) -> dict[str, Any]:
    """The endpoint ``endpoint_name``, InService on the config of ``config_request``."""
    config_name = config_request["EndpointConfigName"]
    ensure_endpoint_config(client, config_request, log)
    current = describe_endpoint(client, endpoint_name)
    if current is not None and current["EndpointStatus"] in SETTLING:
        log(f"endpoint {endpoint_name} is {current['EndpointStatus']} (another deployment): waiting for it")
        current = _settle(client, endpoint_name, waiting, log, on_poll)
    if current is not None and current["EndpointStatus"] == "Failed":
        log(f"endpoint {endpoint_name} is Failed ({current.get('FailureReason')}): deleting it to start over")
        client.delete_endpoint(EndpointName=endpoint_name)
        _wait_deleted(client, endpoint_name, waiting)
        current = None
    previous = current["EndpointConfigName"] if current is not None else None
    action = CREATE if current is None else None if previous == config_name else UPDATE
    with stopped_deployment_on_termination(
        client, endpoint_name, config_name, action, previous, log, waiting.stop_timeout
    ):
        if action == CREATE:
            client.create_endpoint(**specs.endpoint_request(endpoint_name, config_name))
            log(f"creating endpoint {endpoint_name} with endpoint config {config_name}")
        elif action == UPDATE:
            client.update_endpoint(**specs.endpoint_request(endpoint_name, config_name))
            log(f"updating endpoint {endpoint_name} from endpoint config {previous} to {config_name}")
        else:
            log(f"endpoint {endpoint_name} already serves endpoint config {config_name} (a retry): using it")
        described = _settle(client, endpoint_name, waiting, log, on_poll)
    if described is None:
        raise SageMakerJobError(f"endpoint {endpoint_name} was deleted while it was being deployed")
    if described["EndpointStatus"] == "Failed":
        reason = described.get("FailureReason") or "no reason given"
        raise SageMakerJobError(f"endpoint {endpoint_name} failed: {reason}")
    if described["EndpointConfigName"] != config_name:
        reason = described.get("FailureReason") or "no reason given"
        raise SageMakerJobError(
            f"updating endpoint {endpoint_name} to endpoint config {config_name} failed: {reason}. It still "
            f"serves endpoint config {described['EndpointConfigName']}"
        )
    return described


@contextlib.contextmanager
def stopped_deployment_on_termination(
    client: Any,
    endpoint_name: str,
    config_name: str,
    action: str | None,
    previous: str | None,
    log: Log = print,
    timeout: float = 60.0,
    why: str = TERMINATED,
) -> Iterator[None]:
    """Around a deployment's create-or-update and its wait: a termination (``is_termination``) undoes what
    ``action`` (CREATE, UPDATE, or None: nothing started) started, as far as SageMaker allows
    (:func:`stop_deployment`), then goes on. Exceptions pass untouched."""
    try:
        yield
    except BaseException as err:
        if is_termination(err) and action is not None:
            try:
                stop_deployment(client, endpoint_name, config_name, action, previous, log, timeout, why)
            except Exception as problem:  # never mask the termination
                log(f"could not undo the deployment of endpoint {endpoint_name}: {problem}")
            except BaseException as again:  # a second interrupt ends the wait
                if not is_termination(again):
                    raise
                log(f"stopped waiting for endpoint {endpoint_name} (interrupted again)")
        raise


def stop_deployment(
    client: Any,
    endpoint_name: str,
    config_name: str,
    action: str,
    previous: str | None,
    log: Log = print,
    timeout: float = 60.0,
    why: str = TERMINATED,
) -> str | None:
    """Undo a deployment this step started and had not seen through; the endpoint's status afterwards
    (None: there is none).

    CREATE: the endpoint, still Creating on ``config_name``, is deleted (waited for up to ``timeout`` s);
    one already InService or Failed is left as it is. UPDATE: SageMaker cannot cancel an update; it is
    left to finish, and the log names the config to roll back to (``previous``).
    """
    current = describe_endpoint(client, endpoint_name)
    if current is None:
        log(f"{why}: endpoint {endpoint_name} was not created, nothing to stop")
        return None
    status = current["EndpointStatus"]
    if action == UPDATE:
        if status in SETTLING:
            log(
                f"{why}: endpoint {endpoint_name} is {status} to endpoint config {config_name}; SageMaker "
                f"cannot cancel an update, so it goes on. To go back once it settles: aws sagemaker "
                f"update-endpoint --endpoint-name {endpoint_name} --endpoint-config-name {previous}"
            )
        else:
            log(f"{why}: endpoint {endpoint_name} already settled {status}; left as it is")
        return status
    if status != "Creating":
        log(f"{why}: endpoint {endpoint_name} already ended its creation {status}; left as it is")
        return status
    try:
        client.delete_endpoint(EndpointName=endpoint_name)
    except ClientError as err:
        if _missing(err):
            log(f"{why}: endpoint {endpoint_name} is gone")
            return None
        log(
            f"{why}: SageMaker refused to delete endpoint {endpoint_name} while it is Creating ({err}); it "
            f"bills once it runs: aws sagemaker delete-endpoint --endpoint-name {endpoint_name}"
        )
        return status
    log(
        f"{why}: deleting endpoint {endpoint_name}, which this step was creating (SageMaker cannot cancel "
        "a CreateEndpoint)"
    )
    deadline = time.monotonic() + timeout
    interval = 0.05
    while (current := describe_endpoint(client, endpoint_name)) is not None and time.monotonic() < deadline:
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 2, 10.0)
    if current is not None:
        log(f"endpoint {endpoint_name} is still {current['EndpointStatus']} after {timeout:.0f} s")
        return str(current["EndpointStatus"])
    log(f"endpoint {endpoint_name}: deleted")
    return None


ENDPOINT_LOCKS = "iris/.endpoint-locks/"  # one lock object per endpoint name, in the run's bucket
LOCK_HEARTBEAT = 10.0  # the holder refreshes its lock this often ...
LOCK_STALE_AFTER = 120.0  # ... so a lock not refreshed for this long is a dead run's


def endpoint_lock_key(endpoint_name: str) -> str:
    return f"{ENDPOINT_LOCKS}{endpoint_name}"


@contextlib.contextmanager
def endpoint_lock(
    store: Any, bucket: str, endpoint_name: str, run: str, waiting: Waiting, log: Log = print
) -> Iterator[None]:
    """Hold the endpoint for one run's deploy and online check: runs that deploy to ``endpoint_name``
    through the same bucket take turns (a lock object, ``iris/.endpoint-locks/<endpoint>``, written only
    if absent: S3's conditional write on aws, a hard link locally). A run waits for the holder as long as
    a deployment may take (``waiting.timeout``); the holder refreshes the lock every ``LOCK_HEARTBEAT`` s,
    and a lock left by a dead run is removed after ``LOCK_STALE_AFTER`` s. Deploys that do not take the
    lock (another bucket, the console, another tool) are not serialised by it;
    :func:`check_still_serving` still catches them."""
    from iris_sagemaker.core import run_objects

    key = endpoint_lock_key(endpoint_name)

    def busy(holder: str | None, age: float) -> Exception:
        return SageMakerJobError(
            f"run {holder!r} has held endpoint {endpoint_name} (s3://{bucket}/{key}) for longer than a "
            f"deployment may take ({age:.0f} s since its last refresh); retry the step, or delete the lock "
            f"object if that run is dead (it is ignored {LOCK_STALE_AFTER:.0f} s after its last refresh)"
        )

    def on_wait(holder: str | None) -> None:
        log(f"endpoint {endpoint_name} is being deployed by run {holder!r}: waiting for it to finish")

    with run_objects.object_lock(
        store,
        bucket,
        key,
        run,
        f"lock of endpoint {endpoint_name}",
        log,
        timeout=(waiting.timeout or 3600.0) + LOCK_STALE_AFTER,
        stale_after=LOCK_STALE_AFTER,
        busy=busy,
        on_wait=on_wait,
        heartbeat=LOCK_HEARTBEAT,
    ):
        yield


def check_still_serving(client: Any, endpoint_name: str, config_name: str) -> None:
    """After the online check: the endpoint must still serve ``config_name``. Another run that deployed
    to the same endpoint meanwhile would have made the check compare its model, not this run's."""
    described = describe_endpoint(client, endpoint_name)
    now = described.get("EndpointConfigName") if described else None
    if now != config_name:
        raise SageMakerJobError(
            f"endpoint {endpoint_name} was switched to endpoint config {now} (another run deploying to "
            f"the same endpoint) while this run checked it on {config_name}: the online check did not "
            "test this run's model. Something deployed to it without taking the endpoint's lock (another "
            "bucket, the console, another tool): deploy one at a time per endpoint "
            "(IRIS_SAGEMAKER_ENDPOINT_NAME names it), then rerun."
        )


def _settle(
    client: Any, name: str, waiting: Waiting, log: Log, on_poll: OnPoll | None
) -> dict[str, Any] | None:
    """Wait until the endpoint is no longer Creating/Updating/...; None if it is gone."""
    try:
        return wait_for_status(
            lambda: client.describe_endpoint(EndpointName=name),
            "EndpointStatus",
            "endpoint",
            name,
            waiting,
            log,
            on_poll,
            done=lambda status: status not in SETTLING,
        )
    except ClientError as err:
        if _missing(err):
            return None
        raise


def _wait_deleted(client: Any, name: str, waiting: Waiting) -> None:
    deadline = time.monotonic() + (waiting.timeout or 3600.0)
    for interval in waiting.intervals():
        if describe_endpoint(client, name) is None:
            return
        if time.monotonic() + interval > deadline:
            raise SageMakerJobError(f"endpoint {name} is still being deleted after {waiting.timeout:.0f} s")
        time.sleep(interval)


@dataclass(frozen=True)
class OnlineCheck:
    predicted: list[float]
    latencies_ms: list[float]

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p99_ms(self) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def invoke_rows(
    runtime: Any, endpoint_name: str, rows: Sequence[Sequence[float]], latency_rows: int = LATENCY_ROWS
) -> OnlineCheck:
    """Every row's online prediction, and the latency of one-row requests.

    The first ``latency_rows`` rows go one request each (text/csv), as an online client sends them, and
    are timed, after one untimed request that pays what only a first request pays (connections, the
    client's model). The rest go in requests of up to ``MAX_REQUEST_BYTES``, so that a test set of
    millions of rows is checked in seconds.
    """
    texts = [",".join(repr(float(value)) for value in row) for row in rows]
    if texts:
        _invoke(runtime, endpoint_name, texts[0])
    predicted: list[float] = []
    latencies: list[float] = []
    for text in texts[:latency_rows]:
        start = time.perf_counter()
        predicted.extend(_invoke(runtime, endpoint_name, text))
        latencies.append((time.perf_counter() - start) * 1000)
    batch: list[str] = []
    size = 0
    for text in texts[latency_rows:]:
        if batch and size + len(text) + 1 > MAX_REQUEST_BYTES:
            predicted.extend(_invoke(runtime, endpoint_name, "\n".join(batch)))
            batch, size = [], 0
        batch.append(text)
        size += len(text) + 1
    if batch:
        predicted.extend(_invoke(runtime, endpoint_name, "\n".join(batch)))
    return OnlineCheck(predicted, latencies)


def _invoke(runtime: Any, endpoint_name: str, body: str) -> list[float]:
    response = runtime.invoke_endpoint(EndpointName=endpoint_name, Body=body.encode(), ContentType="text/csv")
    return [float(entry["predicted_label"]) for entry in json.loads(response["Body"].read())["predictions"]]
