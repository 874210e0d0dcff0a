"""The AWS wire protocols the server speaks, driven by botocore's service models (pure functions).

* JSON 1.1 (SageMaker, CloudWatch Logs): the operation is ``X-Amz-Target: <targetPrefix>.<Op>``; the body
  is the input structure as JSON, timestamps as epoch seconds, blobs as base64.
* rest-JSON (SageMaker Runtime): members bound to the URI, to headers, or as the raw payload.

Requests are decoded into the keyword arguments boto3 would pass to the engine's client method
(datetimes and bytes, as boto3 callers give them), and responses encoded from what that method
returns, keeping only the members of the operation's output shape. Errors are
``{"__type": Code, "message": ...}`` with the status the engine's ``ClientError`` carries.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError
from botocore.model import OperationModel, Shape
from botocore.utils import parse_timestamp

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"


class WireError(Exception):
    """A request that cannot be decoded (HTTP 400 with ``code``)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def decode_json_body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WireError("SerializationException", f"The request body is not valid JSON: {err}") from None
    if not isinstance(body, dict):
        raise WireError("SerializationException", "The request body must be a JSON object.")
    return body


def from_wire(shape: Shape | None, value: Any) -> Any:
    """A decoded JSON value as boto3 callers pass it: timestamps as datetimes, blobs as bytes."""
    if shape is None or value is None:
        return value
    kind = shape.type_name
    if kind == "structure" and isinstance(value, Mapping):
        members = shape.members  # type: ignore[attr-defined]
        return {key: from_wire(members.get(key), item) for key, item in value.items()}
    if kind == "list" and isinstance(value, list):
        return [from_wire(shape.member, item) for item in value]  # type: ignore[attr-defined]
    if kind == "map" and isinstance(value, Mapping):
        return {key: from_wire(shape.value, item) for key, item in value.items()}  # type: ignore[attr-defined]
    if kind == "timestamp" and isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            parsed = parse_timestamp(value)
        except (ValueError, TypeError):
            return value  # the validator reports it
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if kind == "blob" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            return value
    return value


def to_wire(shape: Shape | None, value: Any) -> Any:
    """An engine response value as JSON 1.1 sends it: only the shape's members, epoch timestamps."""
    if shape is None:
        return None
    kind = shape.type_name
    if kind == "structure":
        members = shape.members  # type: ignore[attr-defined]
        return {
            key: to_wire(members[key], item)
            for key, item in value.items()
            if key in members and item is not None and not _located(members[key])
        }
    if kind == "list":
        return [to_wire(shape.member, item) for item in value]  # type: ignore[attr-defined]
    if kind == "map":
        return {key: to_wire(shape.value, item) for key, item in value.items()}  # type: ignore[attr-defined]
    if kind == "timestamp":
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return moment.timestamp()
    if kind == "blob":
        return base64.b64encode(value).decode("ascii")
    return value


def json_response(operation: OperationModel, result: Mapping[str, Any]) -> bytes:
    return json.dumps(to_wire(operation.output_shape, result) or {}, separators=(",", ":")).encode("utf-8")


def rest_request(
    operation: OperationModel, path_params: Mapping[str, str], headers: Mapping[str, str], body: bytes
) -> dict[str, Any]:
    """A rest-JSON request's keyword arguments: URI members, header members and the raw payload."""
    shape = operation.input_shape
    payload = shape.serialization.get("payload")
    params: dict[str, Any] = {}
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire_name = member.serialization.get("name", name)
        if location == "uri" and wire_name in path_params:
            params[name] = path_params[wire_name]
        elif location == "header" and wire_name.lower() in headers:
            params[name] = _header_value(member, headers[wire_name.lower()])
        elif name == payload:
            params[name] = body
    return params


def rest_response(operation: OperationModel, result: Mapping[str, Any]) -> tuple[bytes, dict[str, str]]:
    """A rest-JSON response: the raw payload, and the members bound to headers."""
    shape = operation.output_shape
    payload = shape.serialization.get("payload")
    headers: dict[str, str] = {}
    for name, member in shape.members.items():
        if member.serialization.get("location") == "header" and result.get(name) is not None:
            headers[member.serialization.get("name", name)] = str(result[name])
    body = result.get(payload) if payload else None
    if hasattr(body, "read"):
        body = body.read()
    return (body or b""), headers


def error_response(err: ClientError) -> tuple[int, bytes, dict[str, str]]:
    """An engine ``ClientError`` as the service sends it: status, JSON body, error-type header."""
    response = err.response
    error = response.get("Error", {})
    code = str(error.get("Code", "InternalFailure"))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400))
    body: dict[str, Any] = {"__type": code, "message": str(error.get("Message", ""))}
    body.update({k: v for k, v in response.items() if k not in ("Error", "ResponseMetadata")})
    return status, json.dumps(body).encode("utf-8"), {"x-amzn-ErrorType": code}


def wire_error(code: str, message: str, status: int = 400) -> tuple[int, bytes, dict[str, str]]:
    body = json.dumps({"__type": code, "message": message}).encode("utf-8")
    return status, body, {"x-amzn-ErrorType": code}


def signing_service(authorization: str | None) -> str | None:
    """The service a SigV4 request was signed for (``Credential=AKID/date/region/SERVICE/aws4_request``)."""
    if not authorization or "Credential=" not in authorization:
        return None
    scope = authorization.split("Credential=", 1)[1].split(",", 1)[0].split("/")
    return scope[3] if len(scope) == 5 else None


def _located(member: Shape) -> bool:
    return member.serialization.get("location") is not None


def _header_value(member: Shape, raw: str) -> Any:
    if member.type_name == "boolean":
        return raw.lower() == "true"
    if member.type_name in ("integer", "long"):
        try:
            return int(raw)
        except ValueError:
            return raw
    return raw
