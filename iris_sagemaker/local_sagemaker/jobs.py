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

A full disk (ENOSPC/EDQUOT, :class:`~iris_sagemaker.core.storage.DiskFull`): a write the program makes (its
output, a record update) fails the job with a FailureReason that names the file and says to free space
under ROOT; progress-log lines are dropped instead (the log reports, it does not decide). The final state
is saved by temporary file and rename, else in place over the record's reserved padding (see
:mod:`.records`). If even that fails, a job that had completed has its outputs removed (nothing may read
Completed without a record, or keep an artifact no record vouches for) and is saved ``Failed`` with the
disk-full reason, which the removal usually makes room for. Failing that, the outcome stays in this
process's memory and supervision uses it instead of "worker died". Supervision on the read path never
needs space: when it cannot save, it returns the ended record unsaved and saves it on a later read.

Test hook: the environment variable ``IRIS_SAGEMAKER_LOCAL_TEST_WORKER_DELAY`` (seconds, float) makes
every worker checkpoint wait that long (while still honouring stops). It exists only so tests can
observe a job while it runs; it is read by workers, never by the API.
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil

from iris_sagemaker.core.settings import TEST_WORKER_DELAY_VARIABLE as TEST_DELAY_ENV
from iris_sagemaker.core.storage import DiskFull, ObjectStore, is_disk_full

from .errors import JobFailure, JobStopped, disk_full_message, validation_error
from .log_files import JobLog, log_path
from .records import Record, RecordStore, from_json_time, now, to_json_time

_DISK_STOP_POLL_S = 0.25
_ACTIVE = ("InProgress", "Stopping")
_log = logging.getLogger(__name__)

_registry_lock = threading.Lock()
_threads: dict[str, threading.Thread] = {}
_stop_events: dict[str, threading.Event] = {}
_shutdown: list[str] = []  # the reason, once this process has begun to shut its workers down
_MAX_LISTED_OUTPUTS = 3


@dataclass(frozen=True)
class JobType:
    folder: str
    status_key: str
    start_key: str
    end_key: str
    noun: str  # "Training job" / "Transform job"
    has_transitions: bool


@dataclass(frozen=True)
class Outcome:
    """How a job's program ended: the final status and what its record should say."""

    status: str
    reason: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    secondary: str | None = None


# Outcomes a worker could not save (full disk), by owner token, for supervision to save later.
_unrecorded: dict[str, Outcome] = {}


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
        self._outputs: list[tuple[ObjectStore, str, str]] = []

    def log(self, message: str) -> None:
        """Append a progress line to the job's log (see :mod:`.logs`). A full disk loses the line, not
        the job: the job's own writes decide whether there is room for its work."""
        try:
            self._log.write(message)
        except DiskFull as err:
            _log.warning("%s %s: log line lost (%s): %s", self._jtype.noun, self._name, err, message)

    def output_written(self, store: ObjectStore, bucket: str, key: str) -> None:
        """Note an object the job wrote, to remove should its Completed state fail to be recorded."""
        self._outputs.append((store, bucket, key))

    def discard_outputs(self) -> list[str]:
        """Remove the objects noted by :meth:`output_written`; returns the URIs removed."""
        removed = []
        for store, bucket, key in self._outputs:
            try:
                store.delete(bucket, key)
            except Exception:  # still try the others; the reason lists only those removed
                _log.exception("cannot remove s3://%s/%s of %s %s", bucket, key, self._jtype.noun, self._name)
                continue
            removed.append(f"s3://{bucket}/{key}")
        self._outputs.clear()
        return removed

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
        try:
            created = self.records.create(jtype.folder, name, record)
        except BaseException:  # a full disk: no record, so no worker may stay registered
            _forget(owner["token"])
            raise
        if not created:
            _forget(owner["token"])
            return False
        thread.start()
        return True

    def supervise(self, jtype: JobType, record: Record) -> Record:
        """Return ``record``, rewritten as ended first if its worker died: with the outcome the worker
        could not save (full disk), else Failed "worker died" (Stopped if a stop was requested).

        A read must not need space: if the ended record cannot be saved, it is returned unsaved, and a
        later read saves it.
        """
        if not _orphaned(jtype, record):
            return record

        def mutate(current: Record) -> bool:
            if not _orphaned(jtype, current):
                return False
            _end_orphan(jtype, current)
            # Logged before the record is saved, so whoever sees the final status finds its line.
            state = current["state"]
            reason = state.get("FailureReason")
            message = f"job {state[jtype.status_key]}" + (f": {reason}" if reason else "")
            _append_log(self.records, jtype, current["name"], message)
            return True

        try:
            updated = self.records.update(jtype.folder, record["name"], mutate, in_place_fallback=True)
        except DiskFull as err:
            _log.warning("%s %s: cannot save its end yet (%s)", jtype.noun, record["name"], err)
            view = copy.deepcopy(record)
            _end_orphan(jtype, view)
            return view
        with _registry_lock:
            _unrecorded.pop(record["owner"]["token"], None)
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
            outcome = self._execute(jtype, name, program, ctx)
            self._record_end(jtype, name, outcome, ctx, token)
        finally:
            _forget(token)

    def _execute(self, jtype: JobType, name: str, program: Program, ctx: JobContext) -> Outcome:
        """Run the program; how it ended."""
        try:
            self._mark_started(jtype, name)
            ctx.log(f"{jtype.noun} {name} started (pid {os.getpid()})")
            return Outcome("Completed", fields=program(ctx))
        except JobStopped as stop:
            if _shutdown and not _stop_was_requested(self.records, jtype, name):
                return Outcome("Failed", _shutdown[0])
            return Outcome("Stopped", secondary=stop.secondary_status)
        except JobFailure as failure:
            return Outcome("Failed", str(failure))
        except Exception as err:  # a full disk, or an engine bug: either must still end the job
            if is_disk_full(err):
                return Outcome("Failed", self._disk_full_reason(err))
            _log.exception("local SageMaker %s %s crashed", jtype.noun, name)
            reason = f"InternalServerError: the embedded engine failed: {type(err).__name__}: {err}"
            return Outcome("Failed", reason)

    def _record_end(self, jtype: JobType, name: str, outcome: Outcome, ctx: JobContext, token: str) -> None:
        """Save the job's end; on a full disk, as the module docstring says."""
        try:
            self._finish(jtype, name, outcome, ctx)
            return
        except DiskFull as err:
            if outcome.status != "Completed":
                self._keep_unsaved(jtype, name, outcome, token, err)
                return
            outcome = Outcome("Failed", self._disk_full_reason(err, ctx.discard_outputs()))
        try:  # the removal usually made room
            self._finish(jtype, name, outcome, ctx)
        except DiskFull as err:
            self._keep_unsaved(jtype, name, outcome, token, err)

    @staticmethod
    def _keep_unsaved(jtype: JobType, name: str, outcome: Outcome, token: str, err: DiskFull) -> None:
        """Leave the outcome for supervision (in this process) to save once there is room."""
        _log.warning("%s %s: cannot save its end yet (%s)", jtype.noun, name, err)
        with _registry_lock:
            _unrecorded[token] = outcome

    def _disk_full_reason(self, err: OSError, removed: list[str] | None = None) -> str:
        reason = f"InternalServerError: {disk_full_message(err, self.records.base.parent)}"
        if removed:
            shown = ", ".join(removed[:_MAX_LISTED_OUTPUTS])
            extra = len(removed) - _MAX_LISTED_OUTPUTS
            shown += f" and {extra} more" if extra > 0 else ""
            reason += (
                f" The job's output ({shown}) was written but its completion could not be recorded, so it "
                "was removed."
            )
        return reason

    def _mark_started(self, jtype: JobType, name: str) -> None:
        def mutate(record: Record) -> bool:
            record["state"][jtype.start_key] = to_json_time(now())
            return True

        self.records.update(jtype.folder, name, mutate)

    def _finish(self, jtype: JobType, name: str, outcome: Outcome, ctx: JobContext) -> None:
        """Save ``outcome`` as the job's final state (in place if the disk is too full; DiskFull if even
        that does not fit)."""
        reason, secondary = outcome.reason, outcome.secondary

        def mutate(record: Record) -> bool:
            state = record["state"]
            if state[jtype.status_key] not in _ACTIVE:
                return False  # already ended (e.g. declared dead while it was stalled)
            stopped = record.get("stop_requested") or outcome.status == "Stopped"
            final = "Stopped" if stopped else outcome.status
            state.update(outcome.fields)
            _finish_state(jtype, state, final, reason if final == "Failed" else None, secondary)
            # Logged before the record is saved: the final status implies the line (if there was room).
            note = f" ({secondary})" if secondary and secondary != "Stopped" else ""
            ctx.log(f"job {final}" + {"Failed": f": {reason}", "Stopped": note}.get(final, ""))
            return True

        self.records.update(jtype.folder, name, mutate, in_place_fallback=True)


def _orphaned(jtype: JobType, record: Record) -> bool:
    """Whether ``record`` is active but its worker can no longer end it."""
    return record["state"][jtype.status_key] in _ACTIVE and not owner_alive(record["owner"])


def _end_orphan(jtype: JobType, record: Record) -> None:
    """End an orphaned record: with its worker's unsaved outcome if this process holds one."""
    state = record["state"]
    owner = record["owner"]
    with _registry_lock:
        outcome = _unrecorded.get(owner["token"])
    if state[jtype.status_key] == "Stopping":
        _finish_state(jtype, state, "Stopped", None)
    elif outcome is not None:
        reason = outcome.reason if outcome.status == "Failed" else None
        _finish_state(jtype, state, outcome.status, reason, outcome.secondary)
    else:
        reason = (
            f"InternalServerError: the embedded engine's worker for this job (pid {owner['pid']} "
            f"on {owner['host']}) died before the job finished."
        )
        _finish_state(jtype, state, "Failed", reason)


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
