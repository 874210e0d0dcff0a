"""Every AWS service besides SageMaker's own, for ``iris-sagemaker serve``: moto's server, in this process.

moto implements S3, CloudWatch Logs, IAM, STS, SSM and the rest; this module binds and completes it:

* **S3** is bound to the local bucket folder (:mod:`.s3_over_folder`) and **CloudWatch Logs** to the
  engine's log files (:mod:`.logs_over_files`): one source of truth each, shared with the embedded engine.
* **IAM, as clients check it**: ``SimulatePrincipalPolicy`` and ``SimulateCustomPolicy`` (which moto
  lacks) answer ``allowed`` for every action and resource, and ``GetRole`` of a role nobody created
  returns one that trusts ``sagemaker.amazonaws.com``. That is the truth of this server: it has no
  authorization, so every call any role makes is allowed (README, "Security").
* **No bare 500s**: an operation moto does not implement, or a fault inside moto, is answered in the
  service's own error shape (JSON, query XML or REST XML, as its botocore model says), naming the
  service and the operation, so that every client can parse it and say what went wrong.
"""

from __future__ import annotations

import functools
import json
import logging
import traceback
import warnings
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp

from iris_sagemaker.core.storage import LocalObjectStore
from iris_sagemaker.local_sagemaker.validation import other_service_model

from . import wire
from .logs_over_files import bind_logs
from .s3_over_folder import LocalBucketS3

SAGEMAKER_TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sagemaker.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)
_UNKNOWN_OPERATION = {"json": "UnknownOperationException", "rest-json": "UnknownOperationException"}
_log = logging.getLogger("iris_sagemaker.serve")


def moto_app(root: Path, region: str, account_id: str) -> ASGIApp:
    """moto's server (every service it has) as an ASGI app, bound and completed as the module says."""
    from a2wsgi import WSGIMiddleware
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from moto.s3.models import s3_backends

    LocalBucketS3(s3_backends[account_id]["aws"], LocalObjectStore(root), region).install()
    bind_logs(root, account_id, region)
    _complete_iam(account_id)

    def create_app(service: Any) -> Any:
        app = create_backend_app(service)
        app.register_error_handler(Exception, functools.partial(_service_error, str(service)))
        return app

    return WSGIMiddleware(_Guarded(DomainDispatcherApplication(create_app)))  # type: ignore[arg-type]


# ---- IAM ---------------------------------------------------------------------------------------------


def _complete_iam(account_id: str) -> None:
    from moto.core.responses import ActionResult
    from moto.iam.exceptions import NotFoundException
    from moto.iam.models import iam_backends
    from moto.iam.responses import IamResponse

    def simulate(self: Any) -> Any:
        actions = self._get_param("ActionNames") or []
        resources = self._get_param("ResourceArns") or ["*"]
        results = [
            {
                "EvalActionName": action,
                "EvalResourceName": resource,
                "EvalDecision": "allowed",
                "MatchedStatements": [],
                "MissingContextValues": [],
            }
            for action in actions
            for resource in resources
        ]
        return ActionResult({"EvaluationResults": results, "IsTruncated": False})

    IamResponse.simulate_principal_policy = simulate  # type: ignore[attr-defined]
    IamResponse.simulate_custom_policy = simulate  # type: ignore[attr-defined]

    if getattr(IamResponse, "_iris_sagemaker_roles", False):
        return
    original_get_role = IamResponse.get_role

    def get_role(self: Any) -> Any:
        """GetRole, answering for a role nobody created (the API call only: moto's own lookups, such as
        CreateRole's check for a duplicate, still see only the roles that exist)."""
        try:
            return original_get_role(self)
        except NotFoundException:
            iam_backends[account_id]["aws"].create_role(
                role_name=self._get_param("RoleName"),
                assume_role_policy_document=SAGEMAKER_TRUST_POLICY,
                path="/",
                permissions_boundary=None,
                description="Answered by iris-sagemaker serve, which has no authorization: any role works.",
                tags=[],
                max_session_duration=None,
            )
            return original_get_role(self)

    IamResponse.get_role = get_role  # type: ignore[method-assign]
    IamResponse._iris_sagemaker_roles = True  # type: ignore[attr-defined]


# ---- errors in the service's own shape ----------------------------------------------------------------


class ServiceError(Exception):
    """What moto's serializer needs of an error: its code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Guarded:
    """moto's dispatcher, answering what fails before any service of moto's is reached (a request for a
    service moto does not have, such as ``ecr-public``) in that service's shape, as :func:`_service_error`
    answers what fails inside one."""

    def __init__(self, dispatcher: Any) -> None:
        self.dispatcher = dispatcher

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        from moto.backends import list_of_moto_modules
        from werkzeug.wrappers import Request

        try:
            return self.dispatcher(environ, start_response)
        except Exception as error:
            request = Request(environ)
            service = wire.signing_service(request.headers.get("Authorization")) or "(unsigned)"
            operation = _operation_name(request, form=False)
            protocol, model = _operation_model(service, operation)
            if service not in set(list_of_moto_modules()):
                code = _UNKNOWN_OPERATION.get(protocol, "InvalidAction")
                message = (
                    f"iris-sagemaker serve does not serve {service} (operation {operation}): it answers "
                    "SageMaker, SageMaker Runtime, and the services moto implements (S3, CloudWatch Logs, "
                    "IAM, STS, ...)."
                )
                status = 400
            else:
                _log.error("%s %s failed:\n%s", service, operation, traceback.format_exc())
                code, status = "InternalFailure", 500
                message = f"iris-sagemaker serve failed on {service} operation {operation}: {error!r}"
            status, headers, body = _serialized(model, ServiceError(code, message), status)
            start_response(
                f"{status} {'Bad Request' if status == 400 else 'Internal Server Error'}",
                list(headers.items()),
            )
            return [body if isinstance(body, bytes) else str(body).encode("utf-8")]


def _service_error(service: str, error: Exception) -> Any:
    from flask import Response, request
    from werkzeug.exceptions import HTTPException

    if isinstance(error, HTTPException):  # moto's own AWS errors, already in the service's shape
        return error
    operation = _operation_name(request)
    protocol, model = _operation_model(service, operation)
    if isinstance(error, NotImplementedError):
        code = _UNKNOWN_OPERATION.get(protocol, "InvalidAction")
        message = (
            f"iris-sagemaker serve does not implement {service} operation {operation}: it serves this "
            f"service through moto, which does not have it ({error})."
        )
        status = 400
    else:
        _log.error("%s %s failed:\n%s", service, operation, traceback.format_exc())
        code = "InternalFailure"
        message = (
            f"iris-sagemaker serve failed on {service} operation {operation}: {type(error).__name__}: {error}"
        )
        status = 500
    status, headers, body = _serialized(model, ServiceError(code, message), status)
    return Response(body, status, headers)


def _serialized(model: Any, error: ServiceError, status: int) -> tuple[int, dict[str, str], Any]:
    """``error`` as the operation's service sends errors: status, headers, body."""
    if model is None:  # a service botocore does not know: JSON, the most common shape
        body = json.dumps({"__type": error.code, "message": error.message})
        return status, {"Content-Type": "application/json", "x-amzn-ErrorType": error.code}, body
    from moto.core.serialize import get_serializer_class

    service_model = model.service_model
    serializer = get_serializer_class(service_model.service_name, service_model.protocol)(model)
    with warnings.catch_warnings():  # InternalFailure is AWS's common error, not in each service's model
        warnings.simplefilter("ignore", UserWarning)
        serialized = serializer.serialize(error)
    return status, serialized["headers"], serialized["body"]


def _operation_name(request: Any, form: bool = True) -> str:
    """What the client called: its X-Amz-Target, its query ``Action`` (``form``: in the body too), or the
    method and path (REST)."""
    target = request.headers.get("X-Amz-Target", "")
    if "." in target:
        return target.rsplit(".", 1)[1]
    action = request.values.get("Action") if form else request.args.get("Action")
    return action or f"{request.method} {request.path}"


@functools.lru_cache(maxsize=64)
def _operation_model(service: str, operation: str) -> tuple[str, Any]:
    """The service's protocol and the operation's model (any of the service's when it has no such)."""
    try:
        service_model = other_service_model(service)
    except Exception:  # a service botocore does not know
        return "json", None
    names = service_model.operation_names
    name = operation if operation in names else names[0]
    return service_model.protocol, service_model.operation_model(name)
