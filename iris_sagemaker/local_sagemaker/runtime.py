"""``LocalSageMakerRuntimeClient``: boto3's ``sagemaker-runtime`` client (``invoke_endpoint``) over the
embedded engine's endpoints.

Inference is the batch transform's: the same request decoders, the same model search and vote, the same
response encoders (:mod:`.formats`). Errors are SageMaker Runtime's: ``ValidationError`` (400; 413 for an
oversized body) for requests the service refuses, ``ModelError`` (424, with ``OriginalStatusCode`` and
``OriginalMessage``) for payloads the k-NN container refuses. An error never takes an endpoint down.
"""

from __future__ import annotations

import contextlib
import io
import os
import uuid
from typing import Any

from botocore.exceptions import ClientError
from botocore.model import OperationModel
from botocore.response import StreamingBody
from botocore.validate import ParamValidator

from .client import ACCOUNT_ID, LocalSageMakerClient
from .endpoints import LOG_GROUP_PREFIX, SERVING
from .errors import JobFailure, client_error
from .formats import FormatError, decode_request, encode_response, parse_media_type, response_format
from .validation import check_value, format_errors, other_service_model

SERVICE = "sagemaker-runtime"
MAX_BODY_BYTES = 6 * 1024 * 1024  # 6291456: InvokeEndpoint's payload limit
VALIDATION_ERROR = "ValidationError"
MODEL_ERROR = "ModelError"
# InvokeEndpoint members that select something the embedded engine does not have.
_UNSUPPORTED = (
    "TargetModel",
    "TargetContainerHostname",
    "InferenceComponentName",
    "EnableExplanations",
    "SessionId",
)


def operation_model(operation: str = "InvokeEndpoint") -> OperationModel:
    """botocore's ``sagemaker-runtime`` model of ``operation``."""
    return other_service_model(SERVICE).operation_model(operation)


def runtime_error(code: str, message: str, status: int, **fields: Any) -> ClientError:
    return client_error(code, message, "InvokeEndpoint", status, **fields)


class LocalSageMakerRuntimeClient:
    """A boto3-shaped ``sagemaker-runtime`` client for the endpoints of a :class:`LocalSageMakerClient`.

    Pass the SageMaker client whose endpoints to serve (sharing its loaded models), or a root (and
    region) to make one.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        region: str = "us-east-2",
        sagemaker: LocalSageMakerClient | None = None,
    ) -> None:
        if sagemaker is None:
            if root is None:
                raise TypeError("LocalSageMakerRuntimeClient needs a root or a sagemaker client")
            sagemaker = LocalSageMakerClient(root, region=region)
        self.sagemaker = sagemaker
        self.region = sagemaker.region

    def __repr__(self) -> str:
        return f"LocalSageMakerRuntimeClient(root={str(self.sagemaker.root)!r}, region={self.region!r})"

    def invoke_endpoint(self, **request: Any) -> dict[str, Any]:
        body = _body_bytes(request.get("Body"))
        _validate(request, body)
        name = request["EndpointName"]
        record = self.sagemaker.endpoint_record(name)
        if record is None:
            raise runtime_error(VALIDATION_ERROR, f"Endpoint {name} of account {ACCOUNT_ID} not found.", 400)
        status = record["state"]["EndpointStatus"]
        if status not in SERVING or not record.get("model_data_url"):
            reason = record["state"].get("FailureReason")
            raise runtime_error(
                VALIDATION_ERROR,
                f"Endpoint {name} of account {ACCOUNT_ID} is {status}, not InService"
                + (f": {reason}" if reason else "; wait for it (the endpoint_in_service waiter)."),
                400,
            )
        variant = record["state"]["ProductionVariants"][0]["VariantName"]
        target = request.get("TargetVariant")
        if target and target != variant:
            raise runtime_error(
                VALIDATION_ERROR,
                f"Endpoint {name} has no production variant {target!r} (it has {variant!r}).",
                400,
            )
        try:
            model = self.sagemaker.served.get(name, record["model_data_url"])
        except JobFailure as failure:
            message = f"Endpoint {name} cannot load its model: {failure}"
            raise runtime_error("InternalFailure", message, 500) from None
        try:
            accept = response_format(request.get("Accept"))
            content_type = request.get("ContentType")
            if not content_type:
                raise FormatError(
                    "no ContentType given: send text/csv, application/json, application/jsonlines or "
                    "application/x-recordio-protobuf"
                )
            features = decode_request(
                body, parse_media_type(content_type, ""), model.config.feature_dim, "the request"
            )
        except FormatError as err:
            raise self._model_error(name, str(err)) from None
        prediction = model.predict(features)
        data = encode_response(accept, prediction.predicted, prediction.distances, prediction.labels)
        request_id = str(uuid.uuid4())
        return {
            "Body": StreamingBody(io.BytesIO(data), len(data)),
            "ContentType": accept.media,
            "InvokedProductionVariant": variant,
            "ResponseMetadata": {
                "RequestId": request_id,
                "HTTPStatusCode": 200,
                "HTTPHeaders": {
                    "x-amzn-requestid": request_id,
                    "content-type": accept.media,
                    "x-amzn-invoked-production-variant": variant,
                },
                "RetryAttempts": 0,
            },
        }

    def _model_error(self, name: str, message: str) -> ClientError:
        group = LOG_GROUP_PREFIX + name
        with contextlib.suppress(OSError):  # the answer matters more than its log line
            self.sagemaker.log_endpoint_event(name, f"400 Bad Request: {message}")
        log_arn = f"arn:aws:logs:{self.region}:{ACCOUNT_ID}:log-group:{group}"
        text = (
            f'Received client error (400) from primary with message "{message}". See '
            f"https://{self.region}.console.aws.amazon.com/cloudwatch/home?region={self.region}"
            f"#logEventViewer:group={group} in account {ACCOUNT_ID} for more information."
        )
        return runtime_error(
            MODEL_ERROR, text, 424, OriginalStatusCode=400, OriginalMessage=message, LogStreamArn=log_arn
        )


def _body_bytes(body: Any) -> bytes:
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    if hasattr(body, "read"):
        data = body.read(MAX_BODY_BYTES + 1)
        return data.encode("utf-8") if isinstance(data, str) else bytes(data)
    raise runtime_error(
        VALIDATION_ERROR,
        "Parameter validation failed:\nBody must be bytes, a string or a file-like object",
        400,
    )


def _validate(request: dict[str, Any], body: bytes) -> None:
    shape = operation_model().input_shape
    params = {**request, "Body": body}
    report = ParamValidator().validate(params, shape)
    if report.has_errors():
        raise runtime_error(
            VALIDATION_ERROR, f"Parameter validation failed:\n{report.generate_report()}", 400
        )
    if len(body) > MAX_BODY_BYTES:
        raise runtime_error(
            VALIDATION_ERROR,
            f"Received a payload of more than {MAX_BODY_BYTES} bytes, the most InvokeEndpoint accepts "
            "(6 MB): split it into smaller requests, or score it with a batch transform job.",
            413,
        )
    errors = list(check_value(shape, params, ""))
    if errors:
        raise runtime_error(VALIDATION_ERROR, format_errors(errors), 400)
    for field in _UNSUPPORTED:
        if request.get(field):
            raise runtime_error(
                VALIDATION_ERROR, f"{field} is not supported by the embedded SageMaker engine.", 400
            )
