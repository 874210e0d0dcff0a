"""CloudWatch Logs for ``iris-sagemaker serve``: moto's Logs implementation, bound to the engine's log files.

moto speaks the whole Logs API (groups, streams, events, GetLogEvents tokens, FilterLogEvents paging,
retention, tags, metric filters, queries, ...). The engine's logs stay where the engine writes them,
``ROOT/sagemaker/logs/<kind>/<name>.log`` (:mod:`iris_sagemaker.local_sagemaker.log_files`), and those files
stay the one source of truth for them, as the bucket folder is for S3 (:mod:`.s3_over_folder`):

* **before every call** the files are compared with what moto holds (one ``stat`` each): a new file
  becomes its group (``/aws/sagemaker/TrainingJobs``, ``/aws/sagemaker/TransformJobs``,
  ``/aws/sagemaker/Endpoints/<name>``) and stream (named by
  :func:`~iris_sagemaker.local_sagemaker.cloudwatch.engine_stream`); lines appended since are appended
  as events, with the time each line was written; a file that shrank or was replaced is read again, and a
  file that is gone takes its stream with it. So a job's log is readable while the job runs and after a
  restart, with no copy kept anywhere else.
* **deletes go to the files**: DeleteLogStream of an engine stream and DeleteLogGroup of an engine group
  remove the files first, so the logs stay deleted after a restart (a job still running writes a new
  file, as a container would recreate its stream).

FilterLogEvents gets what moto's lacks: ``logStreamNamePrefix``, results always interleaved in time (as
CloudWatch answers today), and a clear ``InvalidParameterException`` for a filter pattern moto cannot
evaluate (it would otherwise match every event): terms and quoted phrases work.

What user code creates in groups of its own (CreateLogGroup, CreateLogStream, PutLogEvents) lives in
moto's memory for as long as the server runs, as everything moto keeps does. Retention policies and tags
set on the engine's groups are kept the same way.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from iris_sagemaker.local_sagemaker.cloudwatch import engine_log_files, engine_stream
from iris_sagemaker.local_sagemaker.log_files import read_events
from iris_sagemaker.local_sagemaker.records import RecordStore

# Backend methods that read or change groups and streams: each sees the files' state first.
_SYNCED = (
    "create_log_group",
    "delete_log_group",
    "describe_log_groups",
    "create_log_stream",
    "delete_log_stream",
    "describe_log_streams",
    "put_log_events",
    "get_log_events",
    "filter_log_events",
    "put_retention_policy",
    "delete_retention_policy",
    "list_tags_log_group",
    "tag_log_group",
    "untag_log_group",
    "list_tags_for_resource",
    "tag_resource",
    "untag_resource",
    "start_query",
    "start_live_tail",
    "put_metric_filter",
    "describe_metric_filters",
    "put_subscription_filter",
    "describe_subscription_filters",
    "create_export_task",
)


@dataclass
class _Bound:
    """One engine log file as moto holds it: its group and stream, and how much of it was read."""

    group: str
    stream: str
    offset: int
    inode: int


class LocalLogsBinding:
    """Binds one moto Logs backend to the log files under ``root`` (see the module's docstring)."""

    def __init__(self, backend: Any, root: Path) -> None:
        self.backend = backend
        self.records = RecordStore(root)
        self._lock = threading.RLock()
        self._bound: dict[str, _Bound] = {}  # by the file's path
        self._installed = False

    def install(self) -> None:
        """Wrap the backend's methods (once)."""
        if self._installed:
            return
        self._installed = True
        self.backend.iris_sagemaker_binding = self
        for name in _SYNCED:
            original = getattr(self.backend, name, None)
            if original is None:
                continue
            wrapper = {
                "delete_log_stream": self._delete_log_stream,
                "delete_log_group": self._delete_log_group,
            }
            setattr(self.backend, name, self._synced(wrapper.get(name), original))

    def _synced(self, special: Callable[..., Any] | None, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.sync()
                if special is not None:
                    return special(original, *args, **kwargs)
                return original(*args, **kwargs)

        return call

    # ---- deletes: the files first ---------------------------------------------------------------

    def _delete_log_stream(
        self, original: Callable[..., Any], log_group_name: str, log_stream_name: str
    ) -> Any:
        result = original(log_group_name, log_stream_name)  # ResourceNotFound before anything is removed
        for path, bound in list(self._bound.items()):
            if bound.group == log_group_name and bound.stream == log_stream_name:
                self._remove_file(path)
        return result

    def _delete_log_group(self, original: Callable[..., Any], log_group_name: str) -> Any:
        result = original(log_group_name)
        for path, bound in list(self._bound.items()):
            if bound.group == log_group_name:
                self._remove_file(path)
        return result

    def _remove_file(self, path: str) -> None:
        Path(path).unlink(missing_ok=True)
        self._bound.pop(path, None)

    # ---- reads: the files first -----------------------------------------------------------------

    def refresh(self) -> None:
        """:meth:`sync`, under the binding's lock (for readers outside the wrapped methods)."""
        with self._lock:
            self.sync()

    def sync(self) -> None:
        """Bring moto's groups and streams in line with the engine's log files (a file seen before costs
        one ``stat``; only a new one has its record read, for its stream's name)."""
        seen: set[str] = set()
        for folder, path in engine_log_files(self.records):
            seen.add(path)
            try:
                status = os.stat(path)
            except FileNotFoundError:
                continue
            bound = self._bound.get(path)
            if bound is not None and (bound.inode != status.st_ino or status.st_size < bound.offset):
                self._drop(path)  # replaced or cut: read it again from the start
                bound = None
            if bound is None:
                found = engine_stream(self.records, folder, Path(path))
                if found is None:
                    continue
                group, stream = found
                bound = self._bind(group, stream.name, stream.created_ms, status.st_ino)
                self._bound[path] = bound
            if status.st_size > bound.offset:
                self._append(path, bound)
        for path in [path for path in self._bound if path not in seen]:
            self._drop(path)

    def _bind(self, group: str, stream: str, created_ms: int, inode: int) -> _Bound:
        from moto.logs.models import LogGroup, LogStream

        created = datetime.fromtimestamp(created_ms / 1000, UTC).replace(tzinfo=None)
        log_group = self.backend.groups.get(group)
        if log_group is None:
            log_group = LogGroup(self.backend.account_id, self.backend.region_name, group)
            log_group.creation_time = created
            self.backend.groups[group] = log_group
        if stream not in log_group.streams:
            log_stream = LogStream(log_group, stream)
            log_stream.creation_time = created
            log_group.streams[stream] = log_stream
        return _Bound(group, stream, 0, inode)

    def _append(self, path: str, bound: _Bound) -> None:
        from moto.logs.models import LogEvent

        log_stream = self._moto_stream(bound)
        if log_stream is None:  # deleted in moto only (e.g. its group re-created): bind it again
            self._drop(path)
            return
        while True:
            events, offset = read_events(path, bound.offset)
            if not events:
                return
            bound.offset = offset
            for event in events:
                log_stream.events.append(
                    LogEvent(event.timestamp_ms, {"timestamp": event.timestamp_ms, "message": event.message})
                )
                log_stream.stored_bytes += len(event.message.encode("utf-8"))
            log_stream.last_ingestion_time = datetime.fromtimestamp(
                events[-1].timestamp_ms / 1000, UTC
            ).replace(tzinfo=None)

    def _moto_stream(self, bound: _Bound) -> Any:
        group = self.backend.groups.get(bound.group)
        return None if group is None else group.streams.get(bound.stream)

    def _drop(self, path: str) -> None:
        """Forget a file: its stream leaves moto (and its group, when that was all the group held)."""
        bound = self._bound.pop(path, None)
        if bound is None:
            return
        group = self.backend.groups.get(bound.group)
        if group is None:
            return
        group.streams.pop(bound.stream, None)
        engine_owned = any(other.group == bound.group for other in self._bound.values())
        if not group.streams and not engine_owned and _engine_group(bound.group):
            self.backend.groups.pop(bound.group, None)


def _engine_group(group: str) -> bool:
    return group.startswith("/aws/sagemaker/")


def bind_logs(root: Path, account_id: str, region: str) -> LocalLogsBinding:
    """Bind moto's Logs backend of ``account_id``/``region`` to ``root``'s log files."""
    from moto.logs.models import logs_backends
    from moto.logs.responses import LogsResponse

    binding = LocalLogsBinding(logs_backends[account_id][region], root)
    binding.install()
    if not getattr(LogsResponse, "_iris_sagemaker_filter", False):
        LogsResponse.filter_log_events = _filter_log_events(LogsResponse.filter_log_events)  # type: ignore[method-assign]
        LogsResponse._iris_sagemaker_filter = True  # type: ignore[attr-defined]
    return binding


def supported_pattern(pattern: str | None) -> bool:
    """Whether moto evaluates ``pattern`` as CloudWatch does: none, terms, or one quoted phrase."""
    text = (pattern or "").strip()
    if not text:
        return True
    if text.startswith('"'):
        return len(text) > 1 and text.endswith('"') and '"' not in text[1:-1]
    return all(term[:1].isalnum() and '"' not in term for term in text.split())


def _filter_log_events(original: Callable[..., Any]) -> Callable[..., Any]:
    """LogsResponse.filter_log_events with a stream-name prefix, interleaving, and pattern checks."""
    from moto.logs.exceptions import InvalidParameterException, ResourceNotFoundException

    def filter_log_events(self: Any) -> Any:
        prefix = self._get_param("logStreamNamePrefix")
        names = self._get_param("logStreamNames")
        pattern = self._get_param("filterPattern")
        if prefix is not None and names:
            raise InvalidParameterException(
                "logStreamNames and logStreamNamePrefix cannot both be given: use one of them."
            )
        if not supported_pattern(pattern):
            raise InvalidParameterException(
                f"iris-sagemaker serve cannot evaluate the filter pattern {pattern!r}: it evaluates terms "
                '(ERROR timeout: events holding every term) and one quoted phrase ("job Completed"), not '
                "?OR terms, -exclusions, JSON or space-delimited patterns."
            )
        body = json.loads(self.body or "{}")  # moto's Logs reads its parameters from the JSON body
        if prefix is not None:
            binding = getattr(self.logs_backend, "iris_sagemaker_binding", None)
            if binding is not None:
                binding.refresh()  # the files may hold streams moto has not seen yet
            group = self.logs_backend.groups.get(self._get_param("logGroupName"))
            if group is None:
                raise ResourceNotFoundException()
            matching = [name for name in group.streams if name.startswith(prefix)]
            if not matching:
                return json.dumps({"events": [], "searchedLogStreams": []})
            body["logStreamNames"] = matching
        body["interleaved"] = True
        self.body = json.dumps(body)
        return original(self)

    return filter_log_events
