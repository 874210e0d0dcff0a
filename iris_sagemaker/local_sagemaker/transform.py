"""The batch transform program: load the model once, then stream every input object through it in
mini-batches and write ``<S3OutputPath>/<X>.out`` (atomically, only if the whole object succeeded)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from iris_sagemaker.storage import ObjectNotFound, ObjectStore, ObjectStoreError

from . import knn
from .channels import matched_keys, object_lines, open_object, source_uri
from .errors import AlgorithmClientError
from .formats import (
    CSV,
    FormatError,
    MediaType,
    Payload,
    ResponseFormat,
    decode_request,
    encode_response,
    line_payloads,
    parse_media_type,
    response_format,
    whole_object_payload,
)
from .jobs import JobContext

DEFAULT_MAX_PAYLOAD_MB = 6
_UNSUPPORTED = ("DataProcessing", "DataCaptureConfig")


@dataclass(frozen=True)
class TransformSettings:
    content_type: MediaType
    response: ResponseFormat
    split_lines: bool
    single_record: bool
    max_bytes: int
    assemble_lines: bool
    compression: str | None


def settings_from(request: dict[str, Any]) -> TransformSettings:
    for field in _UNSUPPORTED:
        if request.get(field):
            raise AlgorithmClientError(f"{field} is not supported by the embedded engine.")
    tin, tout = request["TransformInput"], request["TransformOutput"]
    split = tin.get("SplitType", "None")
    if split not in ("None", "Line"):
        raise AlgorithmClientError(
            f"SplitType {split} is not supported by the embedded engine; use Line or None."
        )
    content_type = parse_media_type(tin.get("ContentType"), CSV)
    if content_type.media not in ("text/csv", "application/json", "application/jsonlines"):
        raise AlgorithmClientError(
            f"ContentType {content_type.media} is not supported by the embedded engine; use text/csv, "
            "application/json or application/jsonlines."
        )
    try:
        response = response_format(tout.get("Accept"))
    except FormatError as err:
        raise AlgorithmClientError(str(err)) from None
    max_mb = request.get("MaxPayloadInMB", DEFAULT_MAX_PAYLOAD_MB)
    return TransformSettings(
        content_type=content_type,
        response=response,
        split_lines=split == "Line",
        single_record=request.get("BatchStrategy", "MultiRecord") == "SingleRecord",
        max_bytes=max_mb * 1024 * 1024,
        assemble_lines=tout.get("AssembleWith", "None") == "Line",
        compression=tin.get("CompressionType"),
    )


def output_key(input_key: str, object_key: str, output_prefix: str) -> str:
    """``X.out`` under the output prefix, X being the object's key relative to the input's folder."""
    folder = input_key.rpartition("/")[0]
    relative = object_key[len(folder) + 1 :] if folder else object_key
    prefix = output_prefix.rstrip("/")
    return f"{prefix}/{relative}.out" if prefix else f"{relative}.out"


def run_transform(
    request: dict[str, Any], model_data_url: str, store: ObjectStore, ctx: JobContext
) -> dict[str, Any]:
    settings = settings_from(request)
    model = _load_model(store, model_data_url)
    in_uri, keys = matched_keys(
        store, request["TransformInput"]["DataSource"]["S3DataSource"], "TransformInput"
    )
    out_uri = source_uri(request["TransformOutput"]["S3OutputPath"], "TransformOutput.S3OutputPath")
    for key in keys:
        target = output_key(in_uri.key, key, out_uri.key)
        _transform_object(store, model, settings, (in_uri.bucket, key), (out_uri.bucket, target), ctx)
    return {}


def _load_model(store: ObjectStore, url: str) -> knn.KnnModel:
    uri = source_uri(url, "ModelDataUrl")
    try:
        data = store.get_bytes(uri.bucket, uri.key)
    except (ObjectNotFound, ObjectStoreError) as err:
        raise AlgorithmClientError(f"Could not read the model data at {url}: {err}") from None
    return knn.load_model(data)


def _transform_object(
    store: ObjectStore,
    model: knn.KnnModel,
    settings: TransformSettings,
    source_obj: tuple[str, str],
    target: tuple[str, str],
    ctx: JobContext,
) -> None:
    source = f"s3://{source_obj[0]}/{source_obj[1]}"
    with (
        open_object(store, *source_obj, settings.compression) as fh,
        store.open_write(*target) as out,
    ):
        for payload in _payloads(fh, settings, source):
            ctx.checkpoint()
            body = _infer(model, settings, payload, source)
            out.write(body)
            if settings.assemble_lines and not body.endswith(b"\n"):
                out.write(b"\n")


def _payloads(fh: IO[bytes], settings: TransformSettings, source: str) -> Iterator[Payload]:
    try:
        if settings.split_lines:
            yield from line_payloads(object_lines(fh, source), settings.single_record, settings.max_bytes)
        else:
            yield from whole_object_payload(fh, settings.max_bytes)
    except FormatError as err:
        raise AlgorithmClientError(f"{source}: {err}") from None


def _infer(model: knn.KnnModel, settings: TransformSettings, payload: Payload, source: str) -> bytes:
    try:
        features = decode_request(
            payload.data, settings.content_type, model.config.feature_dim, source, payload.first_line
        )
    except FormatError as err:
        raise AlgorithmClientError(f"Unable to parse the request: {err}") from None
    prediction = model.predict(features)
    return encode_response(settings.response, prediction.predicted, prediction.distances, prediction.labels)
