"""Tags of the engine's resources (AddTags, ListTags, DeleteTags), kept in each resource's record.

A resource's tags start as the ``Tags`` its ``Create*`` request gave (the request is stored in the
record, so they survive restarts) and are kept under the record's ``"tags"`` once changed. ARNs name the
resource: ``arn:aws:sagemaker:<region>:<account>:<kind>/<name>``, kinds as :data:`KINDS` says.
The limits are SageMaker's: 50 tags per resource, keys that start with ``aws:`` are AWS's own.
"""

from __future__ import annotations

from typing import Any

from .errors import validation_error
from .records import (
    ENDPOINT_CONFIGS,
    ENDPOINTS,
    MODELS,
    TRAINING_JOBS,
    TRANSFORM_JOBS,
    TUNING_JOBS,
    Record,
    RecordStore,
)

KINDS = {
    "training-job": TRAINING_JOBS,
    "model": MODELS,
    "transform-job": TRANSFORM_JOBS,
    "endpoint-config": ENDPOINT_CONFIGS,
    "endpoint": ENDPOINTS,
    "hyper-parameter-tuning-job": TUNING_JOBS,
}
MAX_TAGS = 50
_DEFAULT_PAGE = 50
Tag = dict[str, str]


def tags_of(record: Record) -> list[Tag]:
    """The resource's tags, in the order they were first set."""
    if "tags" in record:
        return list(record["tags"])
    return [dict(tag) for tag in record.get("request", {}).get("Tags") or []]


def merged(current: list[Tag], added: list[Tag], op: str) -> list[Tag]:
    """``current`` with ``added`` set (a key given again takes the new value), within SageMaker's limits."""
    for tag in added:
        if tag["Key"].lower().startswith("aws:"):
            raise validation_error(f"Tag key {tag['Key']!r}: keys starting with 'aws:' are reserved.", op)
    values = {tag["Key"]: tag.get("Value", "") for tag in current}
    values.update({tag["Key"]: tag.get("Value", "") for tag in added})
    if len(values) > MAX_TAGS:
        raise validation_error(
            f"A resource can have at most {MAX_TAGS} tags; this request would leave {len(values)}.", op
        )
    return [{"Key": key, "Value": value} for key, value in values.items()]


def without(current: list[Tag], keys: list[str]) -> list[Tag]:
    gone = set(keys)
    return [tag for tag in current if tag["Key"] not in gone]


def tag_page(tags: list[Tag], next_token: str | None, max_results: int | None, op: str) -> dict[str, Any]:
    """One page of ListTags: ``{"Tags": [...], "NextToken": ...}`` (the token is an offset)."""
    try:
        start = int(next_token or 0)
    except ValueError:
        raise validation_error(f"Invalid pagination token {next_token!r}.", op) from None
    size = max_results or _DEFAULT_PAGE
    out: dict[str, Any] = {"Tags": tags[start : start + size]}
    if start + size < len(tags):
        out["NextToken"] = str(start + size)
    return out


class TagStore:
    """Tags of the records under one root, found by ARN."""

    def __init__(self, records: RecordStore, region: str, account: str) -> None:
        self.records = records
        self.prefix = f"arn:aws:sagemaker:{region}:{account}:"

    def read(self, arn: str, op: str) -> list[Tag]:
        kind, name = self._resource(arn, op)
        record = self.records.read(kind, name)
        if record is None:
            raise _not_found(arn, op)
        return tags_of(record)

    def change(self, arn: str, op: str, change: Any) -> list[Tag]:
        """Apply ``change(tags) -> tags`` to the resource's tags under its record's lock."""
        kind, name = self._resource(arn, op)
        result: list[list[Tag]] = []

        def mutate(record: Record) -> bool:
            record["tags"] = change(tags_of(record))
            result.append(record["tags"])
            return True

        if self.records.update(kind, name, mutate) is None:
            raise _not_found(arn, op)
        return result[0]

    def _resource(self, arn: str, op: str) -> tuple[str, str]:
        kind, _, name = arn.removeprefix(self.prefix).partition("/")
        if not arn.startswith(self.prefix) or kind not in KINDS or not name:
            raise _not_found(arn, op)
        try:
            self.records.path(KINDS[kind], name)
        except ValueError:
            raise _not_found(arn, op) from None
        return KINDS[kind], name


def _not_found(arn: str, op: str) -> Exception:
    kinds = ", ".join(KINDS)
    return validation_error(
        f"Resource {arn} not found: the embedded engine tags its {kinds} resources, by the ARN their "
        "Create* or Describe* answer gave.",
        op,
    )
