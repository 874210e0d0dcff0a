"""The ASGI application of ``iris-sagemaker serve``: one port, every service a SageMaker client needs.

A thin wire layer, as moto's ``responses.py`` is over its ``models.py``: each request is routed by what
the client sent, decoded with botocore's model of its service, and handed to the same engine client
methods that in-process callers use, so both behave alike by construction.

=====================================  ==========================================================
request                                served by
=====================================  ==========================================================
``X-Amz-Target: SageMaker.<Op>``       :class:`LocalSageMakerClient` (JSON 1.1)
``POST /endpoints/<name>/invocations`` :class:`LocalSageMakerRuntimeClient` (rest-JSON), when signed
                                       for ``sagemaker`` (or unsigned)
anything else (S3, Logs, IAM, STS, ...) moto's server, in this process (:mod:`.moto_services`): its S3
                                       bound to the bucket folder, its Logs to the engine's log files
=====================================  ==========================================================
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore import xform_name
from botocore.exceptions import ClientError
from botocore.model import OperationModel
from starlette.concurrency import run_in_threadpool
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from iris_sagemaker.local_sagemaker import probes, runtime, validation
from iris_sagemaker.local_sagemaker.client import ACCOUNT_ID, LocalSageMakerClient
from iris_sagemaker.local_sagemaker.jobs import shut_down_workers
from iris_sagemaker.local_sagemaker.runtime import LocalSageMakerRuntimeClient
from iris_sagemaker.local_sagemaker.service_model import OPERATIONS

from . import wire
from .moto_services import moto_app

MAX_API_BODY_BYTES = 8 * 1024 * 1024  # SageMaker and Logs requests are small JSON documents
MAX_S3_BODY_BYTES = 5 * 1024**3  # S3's own limit for one PUT (larger objects go multipart)
SHUTDOWN_WAIT_S = 10.0
_RUNTIME_PATH = re.compile(r"^/endpoints/(?P<EndpointName>[^/]+)/invocations$")
_log = logging.getLogger("iris_sagemaker.serve")


@dataclass(frozen=True)
class JsonService:
    """A JSON 1.1 service: its operations' models and the engine client that serves them."""

    name: str
    client: Any
    operations: tuple[str, ...]
    model_of: Callable[[str], OperationModel]
    probed: Callable[[str], bool] = lambda operation: False  # more operations it answers (empty lists)


class ServerApp:
    """The ASGI callable. ``root`` is LOCAL_ROOT; ``region`` the region the engine answers for."""

    def __init__(self, root: Path, region: str) -> None:
        self.root = root
        self.region = region
        os.environ["MOTO_ACCOUNT_ID"] = ACCOUNT_ID  # STS, IAM and S3 answer for the engine's account
        self.sagemaker = LocalSageMakerClient(root, region=region)
        self.runtime = LocalSageMakerRuntimeClient(sagemaker=self.sagemaker)
        self.services = {
            "SageMaker": JsonService(
                "sagemaker", self.sagemaker, OPERATIONS, _sagemaker_operation_model, probes.is_probe
            ),
        }
        self.moto = RequestBodyLimitMiddleware(moto_app(root, region, ACCOUNT_ID), MAX_S3_BODY_BYTES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        headers = request.headers
        target = headers.get("x-amz-target", "")
        prefix, _, operation = target.partition(".")
        if prefix in self.services:
            response = await self._json_api(self.services[prefix], operation, request)
        elif (
            request.method == "POST"
            and (match := _RUNTIME_PATH.match(request.url.path))
            and (wire.signing_service(headers.get("authorization")) in (None, "sagemaker"))
        ):
            response = await self._invoke(match.group("EndpointName"), request)
        elif request.url.path.startswith("/moto-api"):
            response = _error(*wire.wire_error("NotFound", "There is no moto API here.", 404))
        else:
            await self.moto(scope, receive, send)
            return
        await response(scope, receive, send)

    async def _json_api(self, service: JsonService, operation: str, request: Request) -> Response:
        if operation not in service.operations and not service.probed(operation):
            served = ", ".join(service.operations)
            return _error(
                *wire.wire_error(
                    "UnknownOperationException",
                    f"The embedded SageMaker engine does not implement {service.name} operation "
                    f"{operation or '(none)'}; it serves {served}, and answers the List* operations of "
                    "the resource kinds it never creates with an empty list.",
                )
            )
        body = await _read_body(request, MAX_API_BODY_BYTES)
        if body is None:
            return _error(*_too_large(MAX_API_BODY_BYTES))
        model = service.model_of(operation)
        try:
            params = wire.from_wire(model.input_shape, wire.decode_json_body(body))
        except wire.WireError as err:
            return _error(*wire.wire_error(err.code, str(err), err.status))
        method = getattr(service.client, xform_name(operation))
        result = await self._call(method, params, operation)
        if isinstance(result, Response):
            return result
        return Response(wire.json_response(model, result), 200, _headers(), wire.JSON_CONTENT_TYPE)

    async def _invoke(self, endpoint: str, request: Request) -> Response:
        body = await _read_body(request, runtime.MAX_BODY_BYTES)
        if body is None:
            return _error(*_too_large(runtime.MAX_BODY_BYTES, code=runtime.VALIDATION_ERROR))
        model = runtime.operation_model()
        params = wire.rest_request(model, {"EndpointName": endpoint}, request.headers, body)
        result = await self._call(self.runtime.invoke_endpoint, params, "InvokeEndpoint")
        if isinstance(result, Response):
            return result
        payload, headers = wire.rest_response(model, result)
        content_type = headers.pop("Content-Type", None)
        return Response(payload, 200, _headers(headers), content_type)

    async def _call(self, method: Callable[..., Any], params: dict[str, Any], operation: str) -> Any:
        try:
            inspect.signature(method).bind(**params)
        except TypeError as err:  # members the operation does not take (boto3 would not send them)
            return _error(*wire.wire_error("ValidationException", f"Invalid request for {operation}: {err}"))
        try:
            return await run_in_threadpool(lambda: method(**params))
        except ClientError as err:
            return _error(*wire.error_response(err))
        except Exception as err:  # an engine bug: answer, keep serving, and say where
            _log.error("%s failed:\n%s", operation, traceback.format_exc())
            message = f"The embedded engine failed on {operation}: {type(err).__name__}: {err}"
            return _error(*wire.wire_error("InternalFailure", message, 500))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await run_in_threadpool(self.warm_up)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await run_in_threadpool(self.shut_down)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def warm_up(self) -> None:
        """Load the service models before the first request, so that it is not slow."""
        validation.service_model()
        runtime.operation_model()

    def shut_down(self) -> None:
        left = shut_down_workers(
            "InternalServerError: iris-sagemaker serve shut down before the job finished; create it "
            "again (with a new name) once the server runs.",
            SHUTDOWN_WAIT_S,
        )
        if left:
            _log.warning("%d job(s) did not stop in %.0f s; they will read Failed", left, SHUTDOWN_WAIT_S)


def _sagemaker_operation_model(operation: str) -> OperationModel:
    if operation in OPERATIONS:
        return validation.operation_model(operation)
    return probes.operation_model(operation)


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None when it is longer than ``limit`` bytes (read no further)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int, code: str = "ValidationException") -> tuple[int, bytes, dict[str, str]]:
    return wire.wire_error(
        code, f"The request body is larger than {limit} bytes, the most this operation accepts.", 413
    )


def _headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"x-amzn-RequestId": str(uuid.uuid4()), **(extra or {})}


def _error(status: int, body: bytes, headers: dict[str, str]) -> Response:
    return Response(body, status, _headers(headers), wire.JSON_CONTENT_TYPE)
