"""``LocalLogsClient``: boto3's CloudWatch Logs reads (DescribeLogStreams, GetLogEvents) over the embedded
engine's own logs, in SageMaker's log groups and stream names:

* ``/aws/sagemaker/TrainingJobs``, stream ``<job>/algo-1-<epoch seconds of the job's creation>``;
* ``/aws/sagemaker/TransformJobs``, the same shape;
* ``/aws/sagemaker/Endpoints/<endpoint>``, stream ``<variant>/i-<17 hex digits>``.

Event tokens are positions in the stream (``f/<n>`` forward, ``b/<n>`` backward): with no new events,
``nextForwardToken`` comes back unchanged, which is how CloudWatch's readers (the Airflow provider,
the SageMaker SDK) know they have caught up.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from botocore.model import OperationModel
from botocore.validate import ParamValidator

from .client import ACCOUNT_ID
from .endpoints import LOG_GROUP_PREFIX
from .errors import client_error
from .log_files import LogEvent, log_path, read_events
from .records import ENDPOINTS, TRAINING_JOBS, TRANSFORM_JOBS, RecordStore
from .shaping import api_response
from .validation import other_service_model

SERVICE = "logs"
JOB_GROUPS = {"/aws/sagemaker/TrainingJobs": TRAINING_JOBS, "/aws/sagemaker/TransformJobs": TRANSFORM_JOBS}
NOT_FOUND = "ResourceNotFoundException"
INVALID = "InvalidParameterException"
_DEFAULT_EVENTS = 10_000
_DEFAULT_STREAMS = 50


def operation_model(operation: str) -> OperationModel:
    return other_service_model(SERVICE).operation_model(operation)


@dataclass(frozen=True)
class Stream:
    name: str
    path: Path
    created_ms: int


class LocalLogsClient:
    """A boto3-shaped ``logs`` client over the job and endpoint logs under ``root/sagemaker/logs``."""

    def __init__(self, root: str | os.PathLike[str], region: str = "us-east-2") -> None:
        self.root = Path(root).expanduser().resolve()
        self.region = region
        self._records = RecordStore(self.root)

    def __repr__(self) -> str:
        return f"LocalLogsClient(root={str(self.root)!r}, region={self.region!r})"

    def describe_log_streams(self, **request: Any) -> dict[str, Any]:
        op = "DescribeLogStreams"
        _validate(op, request)
        group = self._group(request, op)
        prefix = request.get("logStreamNamePrefix") or ""
        streams = [self._summary(group, stream) for stream in self._streams(group, prefix)]
        order = request.get("orderBy", "LogStreamName")
        if order == "LastEventTime" and prefix:
            raise client_error(INVALID, "Cannot order by LastEventTime with a logStreamNamePrefix.", op)
        key = "logStreamName" if order == "LogStreamName" else "lastEventTimestamp"
        streams.sort(
            key=lambda s: (s.get(key, 0), s["logStreamName"]), reverse=bool(request.get("descending"))
        )
        start = _offset(request.get("nextToken"), op)
        limit = request.get("limit", _DEFAULT_STREAMS)
        page = streams[start : start + limit]
        out: dict[str, Any] = {"logStreams": page}
        if start + limit < len(streams):
            out["nextToken"] = str(start + limit)
        return api_response(out)

    def get_log_events(self, **request: Any) -> dict[str, Any]:
        op = "GetLogEvents"
        _validate(op, request)
        group = self._group(request, op)
        name = request["logStreamName"]
        matches = [stream for stream in self._streams(group, name) if stream.name == name]
        if not matches:
            raise client_error(NOT_FOUND, "The specified log stream does not exist.", op)
        events = _in_range(_all_events(matches[0].path), request.get("startTime"), request.get("endTime"))
        limit = request.get("limit", _DEFAULT_EVENTS)
        token = request.get("nextToken")
        if token:
            direction, position = _token(token, op)
        elif request.get("startFromHead"):
            direction, position = "f", 0
        else:
            direction, position = "b", len(events)
        position = min(position, len(events))
        if direction == "f":
            first, last = position, min(len(events), position + limit)
        else:
            first, last = max(0, position - limit), position
        page = events[first:last]
        return api_response(
            {
                "events": [
                    {"timestamp": e.timestamp_ms, "message": e.message, "ingestionTime": e.timestamp_ms}
                    for e in page
                ],
                "nextForwardToken": f"f/{last:020d}",
                "nextBackwardToken": f"b/{first:020d}",
            }
        )

    # ---- groups and streams -------------------------------------------------------------------

    def _group(self, request: dict[str, Any], op: str) -> str:
        group = request.get("logGroupName") or request.get("logGroupIdentifier") or ""
        group = group.split(":log-group:", 1)[-1].removesuffix(":*")  # an ARN names the group too
        if group in JOB_GROUPS:
            folder = self._records.base / "logs" / JOB_GROUPS[group]
            if folder.is_dir():
                return group
        elif group.startswith(LOG_GROUP_PREFIX):
            endpoint = group[len(LOG_GROUP_PREFIX) :]
            if self._endpoint_log(endpoint) is not None:
                return group
        raise client_error(NOT_FOUND, "The specified log group does not exist.", op)

    def _endpoint_log(self, endpoint: str) -> Path | None:
        try:
            path = log_path(self._records, ENDPOINTS, endpoint)
        except ValueError:
            return None
        return path if path.is_file() else None

    def _streams(self, group: str, prefix: str) -> list[Stream]:
        if group.startswith(LOG_GROUP_PREFIX):
            endpoint = group[len(LOG_GROUP_PREFIX) :]
            path = self._endpoint_log(endpoint)
            if path is None:
                return []
            stream = endpoint_stream(self._records, endpoint, path)
            return [stream] if stream.name.startswith(prefix) else []
        folder = JOB_GROUPS[group]
        if "/" in prefix:  # "<job>/...": one job's streams, without listing the others
            names = [prefix.split("/", 1)[0]]
        else:
            names = [path.stem for path in sorted((self._records.base / "logs" / folder).glob("*.log"))]
        streams = [job_stream(self._records, folder, name) for name in names]
        return [stream for stream in streams if stream is not None and stream.name.startswith(prefix)]

    def _summary(self, group: str, stream: Stream) -> dict[str, Any]:
        events = _all_events(stream.path)
        summary: dict[str, Any] = {
            "logStreamName": stream.name,
            "creationTime": stream.created_ms,
            "arn": f"arn:aws:logs:{self.region}:{ACCOUNT_ID}:log-group:{group}:log-stream:{stream.name}",
            "storedBytes": 0,
        }
        if events:
            summary.update(
                firstEventTimestamp=events[0].timestamp_ms,
                lastEventTimestamp=events[-1].timestamp_ms,
                lastIngestionTime=events[-1].timestamp_ms,
            )
        return summary


def engine_log_files(records: RecordStore) -> Iterator[tuple[str, str]]:
    """Every log file the engine keeps under ``ROOT/sagemaker/logs``, as (record kind, path), in no set
    order: what a CloudWatch Logs service over these files serves (the HTTP server binds moto's Logs to
    them, and lists them on every call: a directory read per kind, no sorting, no ``Path`` objects)."""
    for folder in (TRAINING_JOBS, TRANSFORM_JOBS, ENDPOINTS):
        try:
            with os.scandir(records.base / "logs" / folder) as entries:
                for entry in entries:
                    if entry.name.endswith(".log") and not entry.name.startswith("."):
                        yield folder, entry.path
        except (FileNotFoundError, NotADirectoryError):
            continue


def engine_stream(records: RecordStore, folder: str, path: Path) -> tuple[str, Stream] | None:
    """The log group and stream of one of :func:`engine_log_files`, or None once it is gone."""
    if folder == ENDPOINTS:
        record = _read_record(records, ENDPOINTS, path.stem)
        endpoint = record["name"] if record else path.stem
        return LOG_GROUP_PREFIX + endpoint, endpoint_stream(records, endpoint, path)
    group = next(name for name, kind in JOB_GROUPS.items() if kind == folder)
    stream = job_stream(records, folder, path.stem)
    return None if stream is None else (group, stream)


def job_stream(records: RecordStore, folder: str, name: str) -> Stream | None:
    """The stream of job ``name``'s log, ``<job>/algo-1-<epoch seconds of its creation>``, or None."""
    try:
        path = log_path(records, folder, name)
    except ValueError:
        return None
    if not path.is_file():
        return None
    record = _read_record(records, folder, name)
    job = record["name"] if record else name
    created = _record_ms(record) if record else _first_event_ms(path)
    return Stream(f"{job}/algo-1-{created // 1000}", path, created)


def endpoint_stream(records: RecordStore, endpoint: str, path: Path) -> Stream:
    """The stream of an endpoint's log, ``<variant>/i-<17 hex digits>``, as SageMaker names it."""
    record = _read_record(records, ENDPOINTS, endpoint)
    variants = (record or {}).get("state", {}).get("ProductionVariants") or [{}]
    variant = variants[0].get("VariantName", "AllTraffic")
    instance = hashlib.sha256(endpoint.lower().encode("utf-8")).hexdigest()[:17]
    return Stream(f"{variant}/i-{instance}", path, _first_event_ms(path))


def _read_record(records: RecordStore, folder: str, name: str) -> dict[str, Any] | None:
    try:
        return records.read(folder, name)
    except ValueError:
        return None


def _all_events(path: Path) -> list[LogEvent]:
    events: list[LogEvent] = []
    offset = 0
    while True:
        batch, offset = read_events(path, offset)
        if not batch:
            return events
        events.extend(batch)


def _in_range(events: list[LogEvent], start: int | None, end: int | None) -> list[LogEvent]:
    if start is None and end is None:
        return events
    return [
        e
        for e in events
        if (start is None or e.timestamp_ms >= start) and (end is None or e.timestamp_ms < end)
    ]


def _record_ms(record: dict[str, Any]) -> int:
    return int(datetime.fromisoformat(record["state"]["CreationTime"]).timestamp() * 1000)


def _first_event_ms(path: Path) -> int:
    events, _ = read_events(path, 0)
    return events[0].timestamp_ms if events else int(path.stat().st_mtime * 1000)


def _token(token: str, op: str) -> tuple[str, int]:
    direction, _, position = token.partition("/")
    if direction not in ("f", "b") or not position.isdigit():
        raise client_error(INVALID, f"The specified nextToken is invalid: {token!r}.", op)
    return direction, int(position)


def _offset(token: str | None, op: str) -> int:
    if not token:
        return 0
    if not token.isdigit():
        raise client_error(INVALID, f"The specified nextToken is invalid: {token!r}.", op)
    return int(token)


def _validate(op: str, request: dict[str, Any]) -> None:
    report = ParamValidator().validate(dict(request), operation_model(op).input_shape)
    if report.has_errors():
        raise client_error(INVALID, f"Parameter validation failed:\n{report.generate_report()}", op)
