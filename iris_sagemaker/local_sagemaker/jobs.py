"""Job state: lifecycle, background workers and their supervision.

A job runs in a daemon thread of the process that created it (no start-up cost). Its record names the
owner (host, pid and the process's create time, so a reused pid is not mistaken for the owner, plus a
token naming the thread). Whoever reads an ``InProgress`` (or ``Stopping``) record checks the owner:
if the owning process is gone, or the owning thread is gone in this process, the record is rewritten
as ``Failed`` (or ``Stopped``, if a stop had been requested) with a FailureReason saying the worker
died. So no job stays ``InProgress`` forever. A record owned by another host cannot be checked and is
trusted.

Stops: ``request_stop`` marks the record ``Stopping``; the worker notices at its next checkpoint (an
in-process event, or the record itself when the stop came from another process) and ends ``Stopped``.

Test hook: the environment variable ``IRIS_SAGEMAKER_LOCAL_TEST_WORKER_DELAY`` (seconds, float) makes
every worker checkpoint wait that long (while still honouring stops). It exists only so tests can
observe a job while it runs; it is read by workers, never by the API.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

from .errors import JobFailure, JobStopped, validation_error
from .logs import JobLog, log_path
from .records import Record, RecordStore, from_json_time, now, to_json_time

TEST_DELAY_ENV = "IRIS_SAGEMAKER_LOCAL_TEST_WORKER_DELAY"
_DISK_STOP_POLL_S = 0.25
_ACTIVE = ("InProgress", "Stopping")
_log = logging.getLogger(__name__)

_registry_lock = threading.Lock()
_threads: dict[str, threading.Thread] = {}
_stop_events: dict[str, threading.Event] = {}
_shutdown: list[str] = []  # the reason, once this process has begun to shut its workers down


@dataclass(frozen=True)
class JobType:
    folder: str
    status_key: str
    start_key: str
    end_key: str
    noun: str  # "Training job" / "Transform job"
    has_transitions: bool


def owner_stamp() -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "create_time": psutil.Process().create_time(),
        "token": uuid.uuid4().hex,
    }


def owner_alive(owner: dict[str, Any]) -> bool:
    """Whether the worker named by ``owner`` can still finish its job."""
    if owner.get("host") != socket.gethostname():
        return True  # another machine sharing the folder: nothing to check
    pid = int(owner["pid"])
    if not _same_process(pid, float(owner["create_time"])):
        return False
    if pid != os.getpid():
        return True
    with _registry_lock:
        thread = _threads.get(owner["token"])
    # Registered but not yet started counts as alive: the record is written just before the start.
    return thread is not None and (thread.ident is None or thread.is_alive())


def _same_process(pid: int, create_time: float) -> bool:
    try:
        proc = psutil.Process(pid)
        return abs(proc.create_time() - create_time) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True


class JobContext:
    """What a running job program may do: checkpoint (stop/runtime checks) and report progress."""

    def __init__(
        self,
        records: RecordStore,
        jtype: JobType,
        name: str,
        stop_event: threading.Event,
        max_runtime_s: float | None,
    ) -> None:
        self._records = records
        self._jtype = jtype
        self._name = name
        self._stop_event = stop_event
        self._max_runtime_s = max_runtime_s
        self._started = time.monotonic()
        self._last_disk_poll = 0.0
        self._log = JobLog(log_path(records, jtype.folder, name))

    def log(self, message: str) -> None:
        """Append a progress line to the job's log (see :mod:`.logs`)."""
        self._log.write(message)

    def checkpoint(self) -> None:
        """Called between mini-batches; raises :class:`JobStopped` when the job must end."""
        delay = _test_delay()
        deadline = time.monotonic() + delay
        while True:
            self._check_stop()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._stop_event.wait(min(0.02, remaining))

    def secondary_status(self, status: str, message: str) -> None:
        if not self._jtype.has_transitions:
            return

        def mutate(record: Record) -> bool:
            state = record["state"]
            if state[self._jtype.status_key] != "InProgress":
                return False
            _transition(state, status, message)
            return True

        self._records.update(self._jtype.folder, self._name, mutate)

    def _check_stop(self) -> None:
        if self._stop_event.is_set() or _shutdown:
            raise JobStopped()
        if self._max_runtime_s is not None and time.monotonic() - self._started > self._max_runtime_s:
            raise JobStopped("MaxRuntimeExceeded")
        if time.monotonic() - self._last_disk_poll >= _DISK_STOP_POLL_S:
            self._last_disk_poll = time.monotonic()
            record = self._records.read(self._jtype.folder, self._name)
            active = record is not None and record["state"][self._jtype.status_key] in _ACTIVE
            if not active or record.get("stop_requested"):  # stopped elsewhere, or declared dead
                raise JobStopped()


Program = Callable[[JobContext], dict[str, Any]]


class JobRunner:
    """Creates job records, runs their programs in threads, supervises and stops them."""

    def __init__(self, records: RecordStore) -> None:
        self.records = records

    def create_and_start(
        self, jtype: JobType, name: str, record: Record, program: Program, max_runtime_s: float | None
    ) -> bool:
        """Write the new record and start its worker; False if the name is taken."""
        owner = owner_stamp()
        record["owner"] = owner
        record["stop_requested"] = False
        event = threading.Event()
        thread = threading.Thread(
            target=self._run,
            args=(jtype, name, program, event, max_runtime_s, owner["token"]),
            name=f"local-sagemaker-{jtype.folder}-{name}",
            daemon=True,
        )
        with _registry_lock:
            _threads[owner["token"]] = thread
            _stop_events[owner["token"]] = event
        if not self.records.create(jtype.folder, name, record):
            _forget(owner["token"])
            return False
        thread.start()
        return True

    def supervise(self, jtype: JobType, record: Record) -> Record:
        """Return ``record``, rewritten as Failed/Stopped first if its worker died."""
        if record["state"][jtype.status_key] not in _ACTIVE or owner_alive(record["owner"]):
            return record

        def mutate(current: Record) -> bool:
            state = current["state"]
            if state[jtype.status_key] not in _ACTIVE or owner_alive(current["owner"]):
                return False
            owner = current["owner"]
            if state[jtype.status_key] == "Stopping":
                _finish_state(jtype, state, "Stopped", None)
            else:
                reason = (
                    f"InternalServerError: the embedded engine's worker for this job (pid {owner['pid']} "
                    f"on {owner['host']}) died before the job finished."
                )
                _finish_state(jtype, state, "Failed", reason)
            # Logged before the record is saved, so whoever sees the final status finds its line.
            final = state[jtype.status_key]
            reason = state.get("FailureReason")
            _append_log(
                self.records, jtype, current["name"], f"job {final}" + (f": {reason}" if reason else "")
            )
            return True

        updated = self.records.update(jtype.folder, record["name"], mutate)
        return updated if updated is not None else record

    def request_stop(self, jtype: JobType, name: str, operation: str) -> None:
        """Mark an active job Stopping (ValidationException if it already ended)."""
        current = self.records.read(jtype.folder, name)
        if current is None:
            raise validation_error("Requested resource not found.", operation)
        self.supervise(jtype, current)
        final_status: list[str] = []

        def mutate(record: Record) -> bool:
            state = record["state"]
            status = state[jtype.status_key]
            if status not in _ACTIVE:
                final_status.append(status)
                return False
            if status == "Stopping":
                return False
            state[jtype.status_key] = "Stopping"
            record["stop_requested"] = True
            if jtype.has_transitions:
                _transition(state, "Stopping", "Stopping the training job")
            state["LastModifiedTime"] = to_json_time(now())
            return True

        record = self.records.update(jtype.folder, name, mutate)
        if record is None:
            raise validation_error("Requested resource not found.", operation)
        if final_status:
            noun = jtype.noun.lower()
            raise validation_error(
                f"The request was rejected because the {noun} is in status {final_status[0]}.", operation
            )
        with _registry_lock:
            event = _stop_events.get(record["owner"]["token"])
        if event is not None:
            event.set()

    def _run(
        self,
        jtype: JobType,
        name: str,
        program: Program,
        event: threading.Event,
        max_runtime_s: float | None,
        token: str,
    ) -> None:
        ctx = JobContext(self.records, jtype, name, event, max_runtime_s)
        try:
            self._mark_started(jtype, name)
            ctx.log(f"{jtype.noun} {name} started (pid {os.getpid()})")
            fields = program(ctx)
            self._finish(jtype, name, "Completed", None, fields, ctx=ctx)
        except JobStopped as stop:
            if _shutdown and not _stop_was_requested(self.records, jtype, name):
                self._finish(jtype, name, "Failed", _shutdown[0], {}, ctx=ctx)
            else:
                self._finish(jtype, name, "Stopped", None, {}, stop.secondary_status, ctx=ctx)
        except JobFailure as failure:
            self._finish(jtype, name, "Failed", str(failure), {}, ctx=ctx)
        except Exception as err:  # an engine bug must still end the job
            _log.exception("local SageMaker %s %s crashed", jtype.noun, name)
            reason = f"InternalServerError: the embedded engine failed: {type(err).__name__}: {err}"
            self._finish(jtype, name, "Failed", reason, {}, ctx=ctx)
        finally:
            _forget(token)

    def _mark_started(self, jtype: JobType, name: str) -> None:
        def mutate(record: Record) -> bool:
            record["state"][jtype.start_key] = to_json_time(now())
            return True

        self.records.update(jtype.folder, name, mutate)

    def _finish(
        self,
        jtype: JobType,
        name: str,
        status: str,
        reason: str | None,
        fields: dict[str, Any],
        secondary: str | None = None,
        ctx: JobContext | None = None,
    ) -> None:

        def mutate(record: Record) -> bool:
            state = record["state"]
            if state[jtype.status_key] not in _ACTIVE:
                return False  # already ended (e.g. declared dead while it was stalled)
            final = "Stopped" if record.get("stop_requested") or status == "Stopped" else status
            state.update(fields)
            _finish_state(jtype, state, final, reason if final == "Failed" else None, secondary)
            if ctx is not None:  # logged before the record is saved: the final status implies the line
                note = f" ({secondary})" if secondary and secondary != "Stopped" else ""
                ctx.log(f"job {final}" + {"Failed": f": {reason}", "Stopped": note}.get(final, ""))
            return True

        self.records.update(jtype.folder, name, mutate)


def _finish_state(
    jtype: JobType, state: Record, status: str, reason: str | None, secondary: str | None = None
) -> None:
    end = now()
    state[jtype.status_key] = status
    state["LastModifiedTime"] = to_json_time(end)
    state[jtype.end_key] = to_json_time(end)
    state.setdefault(jtype.start_key, state["CreationTime"])
    if reason:
        state["FailureReason"] = reason
    if jtype.has_transitions:
        final = secondary if secondary and secondary != "Stopped" else status
        _transition(state, final, _FINAL_MESSAGES.get(final, final), closing=True)
        state["SecondaryStatus"] = final
        seconds = _seconds_between(state[jtype.start_key], state[jtype.end_key])
        state["TrainingTimeInSeconds"] = max(1, seconds)  # the API reports at least one second
        state["BillableTimeInSeconds"] = max(1, seconds)


_FINAL_MESSAGES = {
    "Completed": "Training job completed",
    "Failed": "Training job failed",
    "Stopped": "Training job stopped",
    "MaxRuntimeExceeded": "Training job stopped: MaxRuntimeInSeconds exceeded",
}


def _transition(state: Record, status: str, message: str, closing: bool = False) -> None:
    stamp = to_json_time(now())
    transitions = state.setdefault("SecondaryStatusTransitions", [])
    if transitions and "EndTime" not in transitions[-1]:
        transitions[-1]["EndTime"] = stamp
    entry = {"Status": status, "StartTime": stamp, "StatusMessage": message}
    if closing:
        entry["EndTime"] = stamp
    transitions.append(entry)
    state["SecondaryStatus"] = status


def _seconds_between(start: str, end: str) -> int:
    return max(0, round((from_json_time(end) - from_json_time(start)).total_seconds()))


def _append_log(records: RecordStore, jtype: JobType, name: str, message: str) -> None:
    try:
        JobLog(log_path(records, jtype.folder, name)).write(message)
    except OSError:  # a read-only view of the records: the status matters, the log line does not
        _log.warning("cannot append to the log of %s %s", jtype.noun, name)


def _stop_was_requested(records: RecordStore, jtype: JobType, name: str) -> bool:
    record = records.read(jtype.folder, name)
    return bool(record and record.get("stop_requested"))


def registered_thread(name: str, target: Callable[[], None]) -> tuple[dict[str, Any], threading.Thread]:
    """A daemon thread for a worker that is not a job (an endpoint's model loader), and its owner stamp.

    Write the owner into the resource's record, then start the thread: until it ends, ``owner_alive``
    holds for that owner in this process; once it has ended (or the process died), it no longer does.
    """
    owner = owner_stamp()
    token = owner["token"]

    def main() -> None:
        try:
            target()
        finally:
            _forget(token)

    thread = threading.Thread(target=main, name=name, daemon=True)
    with _registry_lock:
        _threads[token] = thread
    return owner, thread


def discard_thread(owner: dict[str, Any]) -> None:
    """Forget a :func:`registered_thread` that will never be started."""
    _forget(owner["token"])


def shut_down_workers(reason: str, timeout: float) -> int:
    """End this process's workers: each running job ends ``Failed`` with ``reason`` (a job whose stop
    was requested still ends ``Stopped``). Waits up to ``timeout`` seconds in all; returns how many
    workers were still running then (their records read Failed, "worker died", once this process is
    gone). Jobs created after this call fail at their first checkpoint."""
    with _registry_lock:
        if not _shutdown:
            _shutdown.append(reason)
        events = list(_stop_events.values())
        threads = list(_threads.values())
    for event in events:
        event.set()
    deadline = time.monotonic() + timeout
    for thread in threads:
        if thread.ident is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
    return sum(1 for thread in threads if thread.is_alive())


def _forget(token: str) -> None:
    with _registry_lock:
        _threads.pop(token, None)
        _stop_events.pop(token, None)


def _test_delay() -> float:
    raw = os.environ.get(TEST_DELAY_ENV, "")
    try:
        return max(0.0, float(raw)) if raw else 0.0
    except ValueError:
        return 0.0
