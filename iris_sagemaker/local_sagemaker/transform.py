"""The batch transform program: load the model once, then stream every input object through it in
mini-batches and write ``<S3OutputPath>/<X>.out`` (atomically, only if the whole object succeeded).

Memory is bounded by the payload size (MaxPayloadInMB, or :data:`.formats.STREAM_CHUNK_BYTES` without a
limit), never by the object's: multi-record payloads are cut from the byte stream at line ends (no
per-line Python), parsed by pandas' C parser, searched, voted by numpy and written at once. RecordIO
payloads are cut the same way, from frames located a run at a time, and each block of records is decoded
by one protobuf parse (:mod:`.recordio`). When a job ends, the memory its thread freed is handed back to
the operating system (``storage.release_free_memory``)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from iris_sagemaker.core.storage import ObjectStore, release_free_memory

from . import knn, recordio
from .channels import matched_keys, object_chunks, object_lines, open_object, read_model, source_uri
from .errors import AlgorithmClientError
from .formats import (
    CSV,
    JSON,
    JSONLINES,
    RECORDIO,
    STREAM_CHUNK_BYTES,
    FormatError,
    MediaType,
    Payload,
    ResponseFormat,
    decode_request,
    document_close,
    document_open,
    encode_entries,
    encode_response,
    entries_separator,
    line_payloads,
    parse_media_type,
    response_format,
    whole_object_payload,
)
from .jobs import JobContext

DEFAULT_MAX_PAYLOAD_MB = 6
_UNSUPPORTED = ("DataProcessing", "DataCaptureConfig")
_PROGRESS_INTERVAL_S = 1.0


@dataclass(frozen=True)
class TransformSettings:
    content_type: MediaType
    response: ResponseFormat
    split_lines: bool
    split_records: bool
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
    if split not in ("None", "Line", "RecordIO"):
        raise AlgorithmClientError(
            f"SplitType {split} is not supported by the embedded engine; use Line, RecordIO or None."
        )
    content_type = parse_media_type(tin.get("ContentType"), CSV)
    if content_type.media not in (CSV, JSON, JSONLINES, RECORDIO):
        raise AlgorithmClientError(
            f"ContentType {content_type.media} is not supported by the embedded engine; use text/csv, "
            f"application/json, application/jsonlines or {RECORDIO}."
        )
    if (split == "RecordIO") != (content_type.media == RECORDIO) and split != "None":
        raise AlgorithmClientError(
            f"SplitType {split} does not split {content_type.media} input: use SplitType RecordIO with "
            f"{RECORDIO}, and Line with text formats (or None)."
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
        split_records=split == "RecordIO",
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
    """Everything a transform job does after CreateTransformJob returned; returns describe fields."""
    try:
        return _transform(request, model_data_url, store, ctx)
    finally:
        release_free_memory()  # what the job's thread allocated and freed: not the process's to keep


def _transform(
    request: dict[str, Any], model_data_url: str, store: ObjectStore, ctx: JobContext
) -> dict[str, Any]:
    settings = settings_from(request)
    model = read_model(store, model_data_url)
    ctx.log(
        f"model loaded from {model_data_url}: {model.config.index_type} "
        f"({model.config.index_metric}), {model.index.ntotal} vectors, d={model.config.feature_dim}, "
        f"k={model.config.k}, {model.config.predictor_type}; exact search by {model.search_method}"
        if model.config.index_type == "faiss.Flat"
        else f"model loaded from {model_data_url}: {model.config.index_type} "
        f"({model.config.index_metric}), {model.index.ntotal} vectors, d={model.config.feature_dim}, "
        f"k={model.config.k}, {model.config.predictor_type}"
    )
    in_uri, keys = matched_keys(
        store, request["TransformInput"]["DataSource"]["S3DataSource"], "TransformInput"
    )
    out_uri = source_uri(request["TransformOutput"]["S3OutputPath"], "TransformOutput.S3OutputPath")
    ctx.log(f"{len(keys)} input object(s) under s3://{in_uri.bucket}/{in_uri.key}")
    for key in keys:
        target = output_key(in_uri.key, key, out_uri.key)
        _transform_object(store, model, settings, (in_uri.bucket, key), (out_uri.bucket, target), ctx)
    return {}


class _Progress:
    """Rate-limited "scored batch" lines for the job log (every batch would flood it); at the same pace,
    the memory the batches so far freed goes back to the operating system, so that a long stream's RSS
    stays flat instead of creeping with the allocator's fragmentation."""

    def __init__(self, ctx: JobContext) -> None:
        self._ctx = ctx
        self._last = -_PROGRESS_INTERVAL_S
        self.batches = 0
        self.rows = 0

    def scored(self, rows: int) -> None:
        self.batches += 1
        self.rows += rows
        now = time.monotonic()
        if now - self._last >= _PROGRESS_INTERVAL_S:
            self._last = now
            self._ctx.log(f"scored batch {self.batches}: {rows} rows ({self.rows} rows so far)")
            release_free_memory()


def _transform_object(
    store: ObjectStore,
    model: knn.KnnModel,
    settings: TransformSettings,
    source_obj: tuple[str, str],
    target: tuple[str, str],
    ctx: JobContext,
) -> None:
    """Stream one object through the model into its ``.out`` (atomic: all or nothing).

    Each payload (mini-batch) becomes one response document, written as soon as it is scored. With no
    payload limit (MaxPayloadInMB 0) a line-split object is one request: it is still read and scored in
    bounded chunks, and its single document is written piece by piece.
    """
    source = f"s3://{source_obj[0]}/{source_obj[1]}"
    ctx.log(f"reading {source}")
    fmt = settings.response
    progress = _Progress(ctx)
    per_record = settings.split_lines and settings.single_record
    one_document = settings.max_bytes == 0 and _line_based(settings) and not per_record
    with (
        open_object(store, *source_obj, settings.compression) as fh,
        store.open_write(*target) as out,
    ):
        if one_document:
            out.write(document_open(fmt).encode("utf-8"))
        first = True
        for payload in _payloads(fh, settings, source):
            ctx.checkpoint()
            prediction = _infer(model, settings, payload, source)
            if fmt.media == RECORDIO:  # binary records: each batch's records follow the last
                out.write(encode_response(fmt, prediction.predicted, prediction.distances, prediction.labels))
                progress.scored(len(prediction.predicted))
                continue
            entries = encode_entries(fmt, prediction.predicted, prediction.distances, prediction.labels)
            if one_document:
                if entries:
                    out.write(((entries_separator(fmt) if not first else "") + entries).encode("utf-8"))
                    first = False
            else:
                body = (document_open(fmt) + entries + document_close(fmt)).encode("utf-8")
                out.write(body)
                if settings.assemble_lines and not body.endswith(b"\n"):
                    out.write(b"\n")
            progress.scored(len(prediction.predicted))
        if one_document:
            closing = document_close(fmt).encode("utf-8")
            out.write(closing)
            if settings.assemble_lines and not closing.endswith(b"\n") and closing:
                out.write(b"\n")
        ctx.checkpoint()  # a stop requested while the last batch ran still leaves no output
    ctx.output_written(store, *target)
    target_uri = f"s3://{target[0]}/{target[1]}"
    ctx.log(f"wrote {target_uri} ({progress.rows} rows in {progress.batches} batches)")


def _line_based(settings: TransformSettings) -> bool:
    return settings.content_type.media in (CSV, JSONLINES)


def _payloads(fh: IO[bytes], settings: TransformSettings, source: str) -> Iterator[Payload]:
    try:
        if settings.split_records:
            blocks = recordio.iter_frame_blocks(fh, source)
            yield from record_payloads(blocks, settings.single_record, settings.max_bytes)
        elif settings.split_lines and settings.single_record:
            yield from line_payloads(object_lines(fh, source), True, settings.max_bytes)
        elif settings.split_lines or (settings.max_bytes == 0 and _line_based(settings)):
            yield from object_chunks(fh, source, settings.max_bytes)
        else:
            yield from whole_object_payload(fh, settings.max_bytes)
    except FormatError as err:
        raise AlgorithmClientError(f"{source}: {err}") from None


def record_payloads(
    blocks: Iterable[recordio.FrameBlock], single_record: bool, max_bytes: int
) -> Iterator[Payload]:
    """SplitType RecordIO: records packed into payloads of whole frames of at most ``max_bytes`` bytes
    (0: chunks of about :data:`.formats.STREAM_CHUNK_BYTES`), one record each with SingleRecord. A
    payload's ``first_line`` is the number of its first record; its ``records`` are the blocks (or parts
    of blocks) that hold them. Cuts are found by numpy over each block's frame sizes."""
    limit = max_bytes or STREAM_CHUNK_BYTES
    parts: list[recordio.FrameBlock] = []
    size = 0
    for block in blocks:
        framed = block.framed_sizes()
        if max_bytes and len(framed) and int(framed.max()) > max_bytes:
            number = block.first_number + int(np.argmax(framed > max_bytes))
            raise FormatError(f"record {number} is larger than MaxPayloadInMB ({max_bytes} bytes)")
        if single_record:
            for i in range(len(block)):
                yield Payload(b"", block.first_number + i, (block.part(i, i + 1),))
            continue
        ends = np.cumsum(framed)
        begin = 0
        while begin < len(block):
            before = int(ends[begin - 1]) if begin else 0
            end = int(np.searchsorted(ends, before + limit - size, side="right"))
            if end <= begin:  # the next record does not fit in this payload
                if parts:
                    yield Payload(b"", parts[0].first_number, tuple(parts))
                    parts, size = [], 0
                    continue
                end = begin + 1  # larger than the limit, and no MaxPayloadInMB: a payload of its own
            parts.append(block.part(begin, end))
            size += int(ends[end - 1]) - before
            begin = end
    if parts:
        yield Payload(b"", parts[0].first_number, tuple(parts))


def _infer(model: knn.KnnModel, settings: TransformSettings, payload: Payload, source: str) -> knn.Prediction:
    return model.predict(_decode(settings, payload, source, model.config.feature_dim))


def _decode(settings: TransformSettings, payload: Payload, source: str, dim: int) -> np.ndarray:
    """The (n, dim) float32 features of one payload; AlgorithmClientError naming what is wrong."""
    try:
        if payload.records is not None:
            parts = [recordio.decode_block(part, dim, source, labelled=False)[0] for part in payload.records]
            return parts[0] if len(parts) == 1 else np.concatenate(parts)
        return decode_request(payload.data, settings.content_type, dim, source, payload.first_line)
    except FormatError as err:
        raise AlgorithmClientError(f"Unable to parse the request: {err}") from None
