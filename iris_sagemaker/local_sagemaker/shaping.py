"""Shaping the engine's API answers as boto3 returns them (pure helpers shared by the API's modules): the
``ResponseMetadata``, record times as datetimes, List* filtering, sorting and paging, and the decorator that
turns a full disk into ``InternalFailure``."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from botocore.utils import parse_timestamp

from iris_sagemaker.core.storage import is_disk_full

from .errors import disk_full_message, internal_failure, validation_error

_TIME_KEYS = frozenset(
    {
        "CreationTime",
        "LastModifiedTime",
        "TrainingStartTime",
        "TrainingEndTime",
        "TransformStartTime",
        "TransformEndTime",
        "StartTime",
        "EndTime",
        "Timestamp",
        "ResolutionTime",
        "HyperParameterTuningEndTime",
    }
)
_DEFAULT_MAX_RESULTS = 10
_Method = TypeVar("_Method", bound=Callable[..., Any])


def api(method: _Method) -> _Method:
    """An API method: a full disk becomes ``InternalFailure`` (500) of the operation the method is named
    after (``create_training_job`` -> ``CreateTrainingJob``), as the HTTP server answers engine faults;
    the message names the file and the root to free space under."""
    operation = "".join(part.title() for part in method.__name__.split("_"))

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except OSError as err:
            if not is_disk_full(err):
                raise
            raise internal_failure(disk_full_message(err, self.root), operation) from err

    return call  # type: ignore[return-value]


def api_response(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with the ResponseMetadata boto3 adds to every response."""
    request_id = str(uuid.uuid4())
    body["ResponseMetadata"] = {
        "RequestId": request_id,
        "HTTPStatusCode": 200,
        "HTTPHeaders": {"x-amzn-requestid": request_id, "content-type": "application/x-amz-json-1.1"},
        "RetryAttempts": 0,
    }
    return body


def times(value: Any) -> Any:
    """Record times (ISO strings) as timezone-aware datetimes, recursively, as boto3 returns them."""
    if isinstance(value, dict):
        return {
            key: datetime.fromisoformat(item) if key in _TIME_KEYS and isinstance(item, str) else times(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [times(item) for item in value]
    return value


def list_page(
    items: list[dict[str, Any]], request: dict[str, Any], name_key: str, status_key: str | None, op: str
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Filter, sort and paginate summaries as the List* operations do (NextToken = an offset)."""
    items = [item for item in items if _matches(item, request, name_key, status_key)]
    sort_by = request.get("SortBy", "CreationTime")
    sort_key = {"Name": name_key, "CreationTime": "CreationTime", "Status": status_key or name_key}[sort_by]
    items.sort(
        key=lambda item: (item[sort_key], item[name_key]), reverse=request.get("SortOrder") == "Descending"
    )
    try:
        offset = int(request.get("NextToken") or 0)
    except ValueError:
        raise validation_error("Invalid pagination token.", op) from None
    limit = request.get("MaxResults", _DEFAULT_MAX_RESULTS)
    page = items[offset : offset + limit]
    token = {"NextToken": str(offset + limit)} if offset + limit < len(items) else {}
    return times(page), token


def _matches(item: dict[str, Any], request: dict[str, Any], name_key: str, status_key: str | None) -> bool:
    contains = request.get("NameContains")
    if contains and contains.lower() not in item[name_key].lower():
        return False
    if status_key and request.get("StatusEquals") and item[status_key] != request["StatusEquals"]:
        return False
    for param, field, after in (
        ("CreationTimeAfter", "CreationTime", True),
        ("CreationTimeBefore", "CreationTime", False),
        ("LastModifiedTimeAfter", "LastModifiedTime", True),
        ("LastModifiedTimeBefore", "LastModifiedTime", False),
    ):
        if param in request and field in item:
            bound = _as_utc(request[param])
            value = datetime.fromisoformat(item[field])
            if (value <= bound) if after else (value >= bound):
                return False
    return True


def _as_utc(value: Any) -> datetime:
    parsed = value if isinstance(value, datetime) else parse_timestamp(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
