"""The provider's ``SageMakerTrigger``, with one addition: a deferred task that a user kills stops its job.

While a task is deferred, no worker process of it exists, so ``on_kill`` cannot run (apache/airflow
#36090): the trigger, in the triggerer, is the only thing still watching the job. The triggerer ends a
trigger by cancelling it (``asyncio.CancelledError`` in ``run()``) in two different situations:

- the task left its deferral: a user cleared it, marked it failed or succeeded, its DAG run was marked
  failed or timed out; the job has no owner any more and must be stopped;
- the triggerer is shutting down or restarting, or hands the trigger to another triggerer: the task is
  still deferred, another triggerer picks the trigger up and goes on waiting; the job must run on.

Two facts tell them apart. The task instance's state: still ``deferred`` means someone may still wait;
anything else (none once cleared, failed, success, skipped) means nobody does. And the attempt: a cleared
task can be queued, run and deferred again (on the same job, by its name) before the old trigger has
even been cancelled, so "deferred" alone could be the next attempt's. Every attempt of our operators
writes a token of its own to an XCom (:data:`WAIT_TOKEN_KEY`) before it defers and gives it to its
trigger; a trigger whose token is no longer the task's belongs to an attempt that is over. So: stopped
when the task is not deferred, or deferred by another attempt; left running when the task is deferred by
this very attempt (a restart or a hand-over). What each Airflow line offers:

- **Airflow 3.x** calls ``BaseTrigger.on_kill()`` after a user action (mark failed / success, clear),
  documented as never on shutdown, restart or redistribution, bounded by ``[triggerer] on_kill_timeout``
  (30 s). :meth:`on_kill` checks the two facts through the triggerer's Task SDK
  (``RuntimeTaskInstance.get_task_states``, ``XCom.get_one``) and stops the job.
- **Airflow 2.11** has no ``on_kill`` for triggers: :meth:`run` catches the cancellation and reads the two
  facts from the metadata database (the triggerer has it). A cancellation because the trigger timed out
  (the task's defer timeout) is left alone, as on 3.x: the task fails as timed out and a retry waits for
  the job again.

Stopping: StopTrainingJob / StopTransformJob / StopHyperParameterTuningJob (``job_steps.stop_job``,
which leaves a job that already ended alone), in a thread so the triggerer's event loop never blocks, and
a wait of at most :data:`STOP_TIMEOUT` seconds for ``Stopped``. An endpoint the task was creating is
deleted; an update cannot be cancelled (``endpoint_steps.stop_deployment``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import threading
from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger

from iris_sagemaker.steps import endpoint_steps, job_steps

STOP_TIMEOUT = 20.0  # seconds: within Airflow 3's default on_kill_timeout (30 s), reads included
DEFERRED = "deferred"
WAIT_TOKEN_KEY = "sagemaker_wait_token"  # XCom: the attempt that deferred (see the module docstring)
KILLED_WHILE_DEFERRED = "the task was killed while deferred"


def _airflow_major() -> int:
    import airflow

    return int(airflow.__version__.split(".")[0])


def _triggers_have_on_kill() -> bool:
    from airflow.triggers.base import BaseTrigger

    return callable(getattr(BaseTrigger, "on_kill", None))


class IrisSageMakerTrigger(SageMakerTrigger):
    """``SageMakerTrigger`` that stops its job (or undoes its endpoint's creation) when the deferred task
    is killed; see the module docstring. Waits, events and serialization are the provider's, plus
    ``wait_token`` (the deferring attempt's, see the module docstring) and ``endpoint_action`` /
    ``endpoint_config`` / ``previous_config`` for an endpoint being deployed."""

    def __init__(
        self,
        *args: Any,
        wait_token: str | None = None,
        endpoint_action: str | None = None,
        endpoint_config: str | None = None,
        previous_config: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.wait_token = wait_token
        self.endpoint_action = endpoint_action
        self.endpoint_config = endpoint_config
        self.previous_config = previous_config

    @classmethod
    def from_provider(cls, trigger: SageMakerTrigger, **extra: Any) -> IrisSageMakerTrigger:
        """The same wait as the provider's ``trigger`` (which the provider's operators build themselves)."""
        return cls(
            job_name=trigger.job_name,
            job_type=trigger.job_type,
            waiter_delay=trigger.waiter_delay,
            waiter_max_attempts=trigger.attempts,
            aws_conn_id=trigger.aws_conn_id,
            region_name=trigger.region_name,
            verify=trigger.verify,
            botocore_config=trigger.botocore_config,
            **extra,
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        classpath, kwargs = super().serialize()
        extra = {
            "wait_token": self.wait_token,
            "endpoint_action": self.endpoint_action,
            "endpoint_config": self.endpoint_config,
            "previous_config": self.previous_config,
        }
        return classpath, {**kwargs, **{k: v for k, v in extra.items() if v is not None}}

    async def run(self) -> AsyncIterator[Any]:
        try:
            async for event in super().run():
                yield event
        except asyncio.CancelledError:
            if not _triggers_have_on_kill():  # Airflow 2: the cancellation is all there is
                await self._stop_if_abandoned(cancelled=True)
            raise

    async def on_kill(self) -> None:
        """Airflow 3: a user acted on the deferred task (mark failed / success, clear)."""
        await self._stop_if_abandoned(cancelled=False)

    # --- the decision and the stop -------------------------------------------------------------------

    async def _stop_if_abandoned(self, cancelled: bool) -> None:
        """Decide and stop in a daemon thread of its own, and wait for it. The wait may be cancelled
        again (Airflow 3 re-sends the cancellation every second until the trigger is gone, which cancels
        a slow ``on_kill``); the thread goes on regardless, and never holds up the triggerer's exit."""
        ti = self.task_instance
        what = f"{self.job_type.lower()} {self.job_name}"
        if ti is None:  # a trigger run outside a triggerer (``airflow dags test`` runs them inline)
            self.log.info("the wait for %s was cancelled; no task instance to check, so it runs on", what)
            return
        if cancelled and _timed_out(ti):
            self.log.info(
                "the wait for %s timed out; the job runs on (a retry of the task waits for it)", what
            )
            return
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def work() -> None:
            try:
                self._stop_if_abandoned_now(ti, what)
            except Exception:
                self.log.exception("could not stop %s", what)
            finally:
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
                    loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

        context = contextvars.copy_context()  # the trigger's log context goes along
        threading.Thread(target=context.run, args=(work,), name=f"stop-{self.job_name}", daemon=True).start()
        await done

    def _stop_if_abandoned_now(self, ti: Any, what: str) -> None:
        try:
            state, token = _attempt_now(ti, self.wait_token is not None)
        except Exception as err:  # never stop a job because the state could not be read
            self.log.warning("cannot read the state of %s (%s); %s runs on", _ti_name(ti), err, what)
            return
        if state == DEFERRED and token == self.wait_token:
            self.log.info(
                "%s is still deferred by this attempt (a triggerer restart or hand-over, not a kill): %s "
                "runs on",
                _ti_name(ti),
                what,
            )
            return
        if state == DEFERRED:
            state = "deferred again by a later attempt"
        self._stop(f"{KILLED_WHILE_DEFERRED} (its state is now {state or 'none: cleared'})")

    def _stop(self, why: str) -> None:
        client = self.hook().conn
        kind = job_steps.JOB_KINDS.get(self.job_type.lower())
        if kind is not None:
            job_steps.stop_job_quietly(client, kind, self.job_name, self.log.info, STOP_TIMEOUT, why)
        elif self.job_type.lower() == "endpoint" and self.endpoint_action and self.endpoint_config:
            try:
                endpoint_steps.stop_deployment(
                    client,
                    self.job_name,
                    self.endpoint_config,
                    self.endpoint_action,
                    self.previous_config,
                    self.log.info,
                    STOP_TIMEOUT,
                    why,
                )
            except Exception as err:
                self.log.warning("could not undo the deployment of endpoint %s: %s", self.job_name, err)
        else:
            self.log.info(
                "%s: nothing this task started to stop for %s %s", why, self.job_type, self.job_name
            )


def _ti_name(ti: Any) -> str:
    return f"task {ti.dag_id}.{ti.task_id} of run {ti.run_id}"


def _timed_out(ti: Any) -> bool:
    """Whether the task's defer timeout has passed (Airflow 2's triggerer cancels the trigger then)."""
    try:
        timeout = getattr(ti, "trigger_timeout", None)
    except Exception:  # a detached database row: no timeout to tell
        return False
    if timeout is None:
        return False
    if timeout.tzinfo is None:
        timeout = timeout.replace(tzinfo=dt.UTC)
    return timeout < dt.datetime.now(dt.UTC)


def _attempt_now(ti: Any, with_token: bool) -> tuple[str | None, str | None]:
    """The task instance's current state (None once cleared) and, ``with_token``, the wait token its
    latest attempt wrote (None: none)."""
    map_index = getattr(ti, "map_index", -1)
    if map_index is None:
        map_index = -1
    token = _wait_token_now(ti, map_index) if with_token else None
    return _task_state(ti, map_index), token


def _wait_token_now(ti: Any, map_index: int) -> str | None:
    if _airflow_major() >= 3:
        from airflow.sdk.execution_time.xcom import XCom
    else:
        from airflow.models.xcom import XCom
    value = XCom.get_one(
        key=WAIT_TOKEN_KEY, dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id, map_index=map_index
    )
    return None if value is None else str(value)


def _task_state(ti: Any, map_index: int) -> str | None:
    """The task instance's current state (a string; None once cleared), read where each line keeps it."""
    if _airflow_major() >= 3:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        states = RuntimeTaskInstance.get_task_states(
            dag_id=ti.dag_id,
            map_index=map_index if map_index >= 0 else None,
            task_ids=[ti.task_id],
            run_ids=[ti.run_id],
        )
        key = ti.task_id if map_index < 0 else f"{ti.task_id}_{map_index}"
        state = states.get(ti.run_id, {}).get(key)
    else:
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            state = session.scalar(
                select(TaskInstance.state).where(
                    TaskInstance.dag_id == ti.dag_id,
                    TaskInstance.task_id == ti.task_id,
                    TaskInstance.run_id == ti.run_id,
                    TaskInstance.map_index == map_index,
                )
            )
    return None if state is None else str(getattr(state, "value", state))
