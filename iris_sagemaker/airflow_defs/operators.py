"""The provider's SageMaker operators, thin subclasses, in both modes (imported when a DAG is built).

What the subclasses add to the Amazon provider's own operators:

- **Retries (README: "Retries").** A retried task that finds its job under its own name reuses it
  when Completed (no new job, no new name), waits for it when InProgress (blocking, or deferred to the
  provider's ``SageMakerTrigger``), and fails with the job's FailureReason when Failed or Stopped
  (``AirflowFailException``: retrying again could not help). The provider would start a
  timestamp-suffixed new job instead (``action_if_job_exists="timestamp"``).
- **Stopped is never success.** The provider's blocking transform wait returns on any terminal status;
  every result is checked to be Completed (endpoint: InService on the wanted config).
- **A job that ended Failed or Stopped fails the task for good**, first try or retry, blocking or
  deferred, with the job's status and reason (the provider raises a retryable AirflowException saying
  only "failed because ..."). A trigger that gave up waiting (timeout, error) raises a retryable error:
  the job may still run, and the retry waits for it.
- **A retry returns what the first try did**: the provider's ``serialize`` of the same descriptions.
- **The local server.** In local mode the ``aws-sagemaker`` connection names ``iris-sagemaker serve``;
  when it is not defined, ``connection.ensure_connection`` supplies one (before any hook is built).
- **A killed task stops its job** (README: "Killing a task stops its job"). Waiting in the task (blocking),
  ``on_kill`` (what Airflow calls when it kills the task: SIGTERM from a clear, a mark failed/success, an
  execution timeout) stops the task's training/transform job, or deletes the endpoint it was creating, and
  waits a bounded time for it. Deferred, the task has no process to kill: every deferral goes to
  ``triggers.IrisSageMakerTrigger``, the provider's trigger that also stops the job when the deferred task is
  killed (how far each Airflow line allows it: that module's docstring, and the README).

The provider's ``execute`` is called for the normal path. Airflow guards ``execute`` against calls from
outside a task (``ExecutorSafeguard``); our own ``execute`` is the guarded entry, so the provider's is
called unwrapped (``_provider_execute``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerEndpointConfigOperator,
    SageMakerEndpointOperator,
    SageMakerModelOperator,
    SageMakerTrainingOperator,
    SageMakerTransformOperator,
    SageMakerTuningOperator,
    serialize,
)
from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException
from botocore.exceptions import ClientError, WaiterError

from iris_sagemaker.airflow_defs import config, connection
from iris_sagemaker.airflow_defs.triggers import WAIT_TOKEN_KEY, IrisSageMakerTrigger
from iris_sagemaker.steps import endpoint_steps, job_steps
from iris_sagemaker.steps.job_steps import (
    TERMINAL_FAILURES,
    TRAINING_JOB,
    TRANSFORM_JOB,
    TUNING_JOB,
    JobKind,
    SageMakerJobError,
)

ENDPOINT_SETTLING = ("Creating", "Updating", "SystemUpdating", "RollingBack")
KILLED = "the task was killed"
# on_kill runs in the task's SIGTERM handler; Airflow 2.11 kills the task's process group 60 s later
# ([core] killed_task_cleanup_time), Airflow 3 five seconds later. The stop request goes first.
ON_KILL_STOP_TIMEOUT = 30.0


def _provider_execute(cls: type, operator: Any, context: Any) -> Any:
    """``cls.execute`` (a provider operator's) without Airflow's ExecutorSafeguard wrapper."""
    method = cls.__dict__["execute"]
    return getattr(method, "__wrapped__", method)(operator, context)


def _describe_or_none(describe: Callable[[str], dict[str, Any]], name: str) -> dict[str, Any] | None:
    """A Describe* call, or None when SageMaker says there is no such resource (ValidationException; for a
    tuning job, ResourceNotFound)."""
    try:
        return describe(name)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in job_steps.NOT_FOUND_CODES:
            return None
        raise


def _fail(err: SageMakerJobError) -> AirflowFailException:
    return AirflowFailException(str(err))


class _LocalServerMixin:
    """Resolves the connection (local mode: the local server) before the first hook is built; defers to
    the trigger that stops its job when the deferred task is killed."""

    aws_conn_id: str | None
    log: Any
    _wait_token: str | None = None

    def _claim_attempt(self, context: Any) -> None:
        """Write this attempt's wait token (XCom ``sagemaker_wait_token``) before anything can defer: a
        trigger told to stop checks that its attempt is still the task's (``triggers`` module)."""
        ti = context.get("ti") if context else None
        if ti is None or not getattr(self, "deferrable", False):  # no trigger to tell (or outside a task
            return  # instance, as in tests: a trigger then goes by the task's state alone)
        self._wait_token = uuid.uuid4().hex
        ti.xcom_push(key=WAIT_TOKEN_KEY, value=self._wait_token)

    def defer(self, *, trigger: Any, method_name: str, kwargs: Any = None, timeout: Any = None) -> Any:
        """Airflow's ``defer``, with the provider's ``SageMakerTrigger`` (built by the provider's own
        ``execute`` too) swapped for ``IrisSageMakerTrigger``: the same wait, plus stopping on a kill."""
        if isinstance(trigger, SageMakerTrigger) and not isinstance(trigger, IrisSageMakerTrigger):
            fields = {"wait_token": self._wait_token, **self._on_kill_fields()}
            trigger = IrisSageMakerTrigger.from_provider(trigger, **fields)
        return super().defer(  # type: ignore[misc]
            trigger=trigger, method_name=method_name, kwargs=kwargs, timeout=timeout
        )

    def _on_kill_fields(self) -> dict[str, Any]:
        """What the trigger needs beyond the provider's fields to undo what this task started."""
        return {}

    def _client_if_built(self) -> Any:
        """The hook's boto3 client, if this task built it (``on_kill`` runs in a signal handler: it must
        not look up a connection there); None otherwise, and then the task cannot have started a job."""
        hook = self.__dict__.get("hook")
        return hook.conn if hook is not None else None

    def _connect(self) -> None:
        """Before any hook: the connection. When only this process knows the local server (Airflow has
        no such connection), wait here rather than defer: a triggerer could not reach the server."""
        settings = config.resolve_settings()
        conn = self.aws_conn_id
        if (
            conn
            and connection.ensure_connection(conn, settings, self.log.info)
            and getattr(self, "deferrable", False)
        ):
            self.log.info(
                "waiting in this task instead of deferring: the connection %s is not defined in Airflow, "
                "so a triggerer would not find the local server (define it to defer)",
                self.aws_conn_id,
            )
            self.deferrable = False
        if settings.is_local and getattr(self, "print_log", False) and not getattr(self, "deferrable", True):
            # Blocking, the provider tails the log re-describing the job at most every 30 s: 30 s more
            # for a job of a second. The log is printed once the job ended instead (IrisTrainingOperator).
            self.print_log = False
            self.log_when_done = True


class _JobOperatorMixin(_LocalServerMixin):
    """Shared by training and transform: find an existing job, decide, wait, check the result."""

    kind: JobKind
    job_type: str  # SageMakerTrigger's job_type
    result_key: str  # the XCom key of the job's description: "Training" / "Transform"
    provider: type
    config: dict[str, Any]
    deferrable: bool
    check_interval: int
    max_attempts: int
    max_ingestion_time: int | None
    hook: Any

    def execute(self, context: Any) -> dict[str, Any]:
        self._connect()
        self._claim_attempt(context)
        name = self.config[self.kind.name_field]
        describe = getattr(self.hook, self.kind.describe)
        existing = _describe_or_none(describe, name)
        if existing is None:
            with self._failing_for_good(name):
                return self._checked(_provider_execute(self.provider, self, context))
        try:
            action = job_steps.existing_job_action(self.kind, existing)
        except SageMakerJobError as err:
            raise _fail(err) from None
        if action == job_steps.REUSE:
            self.log.info("%s %s already exists and is Completed (a retry): reusing it", self.kind.noun, name)
            return self._checked(self.serialize_result(name))
        self.log.info(
            "%s %s already exists and is %s (a retry): waiting for it",
            self.kind.noun,
            name,
            existing[self.kind.status_field],
        )
        if self.deferrable:
            self.defer(
                trigger=self._trigger(name),
                method_name="execute_complete",
                timeout=(
                    dt.timedelta(seconds=self.max_ingestion_time)
                    if self.max_ingestion_time
                    else self.execution_timeout  # as the provider defers
                ),
            )
        with self._failing_for_good(name):
            self.hook.check_status(
                name, self.kind.status_field, describe, self.check_interval, self.max_ingestion_time
            )
        return self._checked(self.serialize_result(name))

    def on_kill(self) -> None:
        """Airflow kills the task while it waits for its job (blocking): stop the job, wait (bounded) for
        Stopped. A job that already ended, or was never created, is left alone."""
        client = self._client_if_built()
        if client is None:
            self.log.info("%s: no %s was started by this task", KILLED, self.kind.noun)
            return
        name = self.config[self.kind.name_field]
        job_steps.stop_job_quietly(client, self.kind, name, self.log.info, ON_KILL_STOP_TIMEOUT, KILLED)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """The trigger's event: "success" (the job is checked to be Completed), "failed" / "stopped" (the
        task fails with the job's reason), else ("timeout", "error") a retryable error: the job may still
        run, and a retry of the task waits for it again."""
        self._connect()
        if event and event.get("status") != "success":
            name = event.get("job_name") or self.config[self.kind.name_field]
            message = event.get("message") or "no message"
            self._fail_if_ended(name)
            described = _describe_or_none(getattr(self.hook, self.kind.describe), name)
            if described is not None and described[self.kind.status_field] == "Completed":
                # The trigger gave up (or lost the server) but the job finished meanwhile.
                self.log.info("%s %s is Completed (the trigger said %s)", self.kind.noun, name, message)
                return self._checked(self.serialize_result(name))
            if event.get("status") in ("failed", "stopped"):
                raise AirflowFailException(f"{self.kind.noun} {name} ended {event['status']}: {message}")
            raise AirflowException(
                f"waiting for {self.kind.noun} {name} ended {event.get('status')} before the job did "
                f"({message}); it may still be running: a retry of this task waits for it again"
            )
        return self._checked(self.provider.execute_complete(self, context, event))

    @contextlib.contextmanager
    def _failing_for_good(self, name: str) -> Iterator[None]:
        """The provider's waits raise a plain (retryable) AirflowException when a job fails, and "the
        resource failed because ..." is all they say. A job that ended Failed or Stopped cannot be
        rerun under its name, so fail the task for good, with the job's own status and reason."""
        try:
            yield
        except AirflowFailException:
            raise
        except AirflowException:
            self._fail_if_ended(name)
            raise

    def _fail_if_ended(self, name: str) -> None:
        """AirflowFailException (the job's status and reason) when job ``name`` ended Failed or Stopped."""
        described = _describe_or_none(getattr(self.hook, self.kind.describe), name)
        if described is not None and described[self.kind.status_field] in TERMINAL_FAILURES:
            self._checked({self.result_key: described})

    def _trigger(self, name: str) -> SageMakerTrigger:
        return SageMakerTrigger(
            job_name=name,
            job_type=self.job_type,
            waiter_delay=self.check_interval,
            waiter_max_attempts=self.max_attempts,
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            botocore_config=self.botocore_config,
        )

    def _checked(self, result: dict[str, Any]) -> dict[str, Any]:
        try:
            job_steps.check_completed(self.kind, result[self.result_key])
        except SageMakerJobError as err:
            raise _fail(err) from None
        return result

    # Provided by the provider's operator classes (never defined here: they would shadow them).
    region_name: str | None
    verify: Any
    botocore_config: Any
    defer: Callable[..., None]
    serialize_result: Callable[[str], dict[str, Any]]


class IrisTrainingOperator(_JobOperatorMixin, SageMakerTrainingOperator):
    """``SageMakerTrainingOperator`` with the project's retry contract (module docstring)."""

    kind, job_type, result_key, provider = TRAINING_JOB, "Training", "Training", SageMakerTrainingOperator

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(check_if_job_exists=False, **kwargs)  # existing jobs are handled in execute
        self.log_when_done = False

    execute = _JobOperatorMixin.execute
    execute_complete = _JobOperatorMixin.execute_complete

    def _checked(self, result: dict[str, Any]) -> dict[str, Any]:
        """The job's CloudWatch log, once, when it was not tailed while waiting (its last lines say why
        a job failed), then the Completed check."""
        if self.log_when_done:
            self.log_when_done = False
            name = result[self.result_key][self.kind.name_field]
            try:
                self.hook.check_training_status_with_log(
                    name, self.hook.non_terminal_states, self.hook.failed_states, False, 0
                )
            except (AirflowException, ClientError) as err:  # the log is a courtesy: never the verdict
                self.log.warning("could not print the log of training job %s: %s", name, err)
        return super()._checked(result)


class IrisTransformOperator(_JobOperatorMixin, SageMakerTransformOperator):
    """``SageMakerTransformOperator`` with the project's retry contract; Stopped fails in every path."""

    kind, job_type, result_key, provider = TRANSFORM_JOB, "Transform", "Transform", SageMakerTransformOperator

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(check_if_job_exists=False, check_if_model_exists=False, **kwargs)

    execute = _JobOperatorMixin.execute
    execute_complete = _JobOperatorMixin.execute_complete


class _TuningHook(SageMakerHook):
    """The provider's hook, also answering to boto3's name for its tuning describe: the retry contract looks
    a job's describe up by its kind's boto3 name (``describe_hyper_parameter_tuning_job``)."""

    def describe_hyper_parameter_tuning_job(self, name: str) -> dict[str, Any]:
        return self.describe_tuning_job(name)


class IrisTuningOperator(_JobOperatorMixin, SageMakerTuningOperator):
    """``SageMakerTuningOperator`` with the project's retry contract: a tuning job found under its name is
    reused (Completed), waited for (InProgress), or fails the task for good (Failed, Stopped)."""

    kind, job_type, result_key, provider = TUNING_JOB, "Tuning", "Tuning", SageMakerTuningOperator
    aws_hook_class = _TuningHook

    def __init__(self, *, max_attempts: int = 60, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_attempts = max_attempts  # the provider's tuning operator has none: the trigger's polls

    execute = _JobOperatorMixin.execute
    execute_complete = _JobOperatorMixin.execute_complete

    def serialize_result(self, job_name: str) -> dict[str, dict[str, Any]]:
        return {"Tuning": serialize(self.hook.describe_tuning_job(job_name))}


class IrisModelOperator(_LocalServerMixin, SageMakerModelOperator):
    """``SageMakerModelOperator`` that survives a retry: a model of the same name serving the same artifact
    is reused; one serving another artifact fails the task, naming both (never a silent second model)."""

    def execute(self, context: Any) -> dict[str, Any]:
        self._connect()
        name = self.config["ModelName"]
        existing = _describe_or_none(self.hook.describe_model, name)
        if existing is None:
            return _provider_execute(SageMakerModelOperator, self, context)
        try:
            job_steps.check_same_artifact(existing, self.config)
        except SageMakerJobError as err:
            raise _fail(err) from None
        wanted = self.config["PrimaryContainer"]["ModelDataUrl"]
        self.log.info("model %s already exists with artifact %s (a retry): reusing it", name, wanted)
        return {"Model": serialize(existing)}  # what the provider's execute returns


class IrisEndpointConfigOperator(_LocalServerMixin, SageMakerEndpointConfigOperator):
    """``SageMakerEndpointConfigOperator`` that reuses its config on a retry (same name, same model)."""

    def execute(self, context: Any) -> dict[str, Any]:
        self._connect()
        name = self.config["EndpointConfigName"]
        existing = _describe_or_none(self.hook.describe_endpoint_config, name)
        if existing is None:
            return _provider_execute(SageMakerEndpointConfigOperator, self, context)
        wanted = [v["ModelName"] for v in self.config["ProductionVariants"]]
        found = [v["ModelName"] for v in existing.get("ProductionVariants", [])]
        if found != wanted:
            raise AirflowFailException(
                f"endpoint config {name} already exists but serves {found}, not {wanted}; start a new run"
            )
        self.log.info("endpoint config %s already exists (a retry): reusing it", name)
        return {"EndpointConfig": serialize(existing)}  # what the provider's execute returns


class IrisEndpointOperator(_LocalServerMixin, SageMakerEndpointOperator):
    """``SageMakerEndpointOperator``: creates the endpoint, or updates the existing one to the new config
    (the provider's fallback); a retry finding it already on that config waits for it. The result must be
    InService *on this config*: a failed update leaves the old model serving, and that is not success."""

    _deploying: tuple[str, str | None] | None = None  # (CREATE or UPDATE, the config served before)

    def execute(self, context: Any) -> dict[str, Any]:
        self._connect()
        self._claim_attempt(context)
        name, wanted = self.config["EndpointName"], self.config["EndpointConfigName"]
        existing = _describe_or_none(self.hook.describe_endpoint, name)
        # What served before this deployment: the one to roll back to (the online check names it).
        previous = existing.get("EndpointConfigName") if existing is not None else None
        ti = context.get("ti") if context else None
        if previous != wanted and ti is not None:
            ti.xcom_push(key=config.PREVIOUS_CONFIG_KEY, value=previous)
        if existing is None or previous != wanted:
            self._deploying = (endpoint_steps.CREATE if existing is None else endpoint_steps.UPDATE, previous)
            with self._failing_with_reason(name):
                return self._checked(_provider_execute(SageMakerEndpointOperator, self, context))
        self.log.info("endpoint %s already uses %s (a retry): waiting for it", name, wanted)
        if existing["EndpointStatus"] in ENDPOINT_SETTLING:
            if self.deferrable:
                self.defer(
                    trigger=SageMakerTrigger(
                        job_name=name,
                        job_type="endpoint",
                        waiter_delay=self.check_interval,
                        aws_conn_id=self.aws_conn_id,
                        region_name=self.region_name,
                        verify=self.verify,
                        botocore_config=self.botocore_config,
                    ),
                    method_name="execute_complete",
                    timeout=dt.timedelta(seconds=self.max_ingestion_time),
                )
            with self._failing_with_reason(name):
                self.hook.get_waiter("endpoint_in_service").wait(
                    EndpointName=name,
                    WaiterConfig={"Delay": self.check_interval, "MaxAttempts": self.max_ingestion_time},
                )
        return self._checked(self._result(name))

    def _on_kill_fields(self) -> dict[str, Any]:
        if self._deploying is None:
            return {}
        action, previous = self._deploying
        return {
            "endpoint_action": action,
            "endpoint_config": self.config["EndpointConfigName"],
            "previous_config": previous,
        }

    def on_kill(self) -> None:
        """Killed while it waits for the endpoint it deploys: an endpoint it was creating is deleted
        (SageMaker has no other way to stop a creation), an update goes on (SageMaker cannot cancel one)."""
        client = self._client_if_built()
        if client is None or self._deploying is None:
            self.log.info("%s: this task started no deployment", KILLED)
            return
        action, previous = self._deploying
        name, wanted = self.config["EndpointName"], self.config["EndpointConfigName"]
        try:
            endpoint_steps.stop_deployment(
                client, name, wanted, action, previous, self.log.info, ON_KILL_STOP_TIMEOUT, KILLED
            )
        except Exception as err:  # on_kill must not raise: Airflow is already ending the task
            self.log.warning("could not undo the deployment of endpoint %s: %s", name, err)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Whatever the event says, the endpoint itself decides: InService on this config, else the task
        fails with its status and FailureReason (or, still settling, a retryable error)."""
        self._connect()
        name = self.config["EndpointName"]
        if event and event.get("status") != "success":
            result = self._result(name)
            if result["Endpoint"]["EndpointStatus"] in ENDPOINT_SETTLING:
                raise AirflowException(
                    f"waiting for endpoint {name} ended {event.get('status')} ({event.get('message')}); it "
                    "is still settling: a retry of this task waits for it again"
                )
            return self._checked(result)
        return self._checked(self._result(name))

    @contextlib.contextmanager
    def _failing_with_reason(self, name: str) -> Iterator[None]:
        """The provider's blocking wait raises botocore's WaiterError ("terminal failure state") for a
        Failed endpoint: fail with the endpoint's own status and FailureReason instead."""
        try:
            yield
        except WaiterError:
            self._checked(self._result(name))
            raise

    def _result(self, name: str) -> dict[str, Any]:
        endpoint = self.hook.describe_endpoint(name)
        return {  # what the provider's execute returns
            "EndpointConfig": serialize(self.hook.describe_endpoint_config(endpoint["EndpointConfigName"])),
            "Endpoint": serialize(endpoint),
        }

    def _checked(self, result: dict[str, Any]) -> dict[str, Any]:
        endpoint = result["Endpoint"]
        wanted = self.config["EndpointConfigName"]
        if endpoint["EndpointStatus"] != "InService" or endpoint["EndpointConfigName"] != wanted:
            raise AirflowFailException(
                f"endpoint {endpoint['EndpointName']} is {endpoint['EndpointStatus']} on endpoint config "
                f"{endpoint['EndpointConfigName']}, not InService on {wanted}: "
                f"{endpoint.get('FailureReason') or 'no reason given'}"
            )
        return result
