"""The training job program: read channels, sample, build the k-NN index, score the test channel,
upload ``model.tar.gz``. Runs inside a job worker (see :mod:`.jobs`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from iris_sagemaker.core.storage import ObjectStore, S3Uri, release_free_memory

from . import knn, recordio
from .channels import matched_keys, object_chunks, open_object, source_uri
from .errors import AlgorithmClientError
from .formats import CSV, ColumnCountError, FormatError, parse_csv, parse_media_type
from .jobs import JobContext
from .records import now, to_json_time

CHANNELS = ("train", "test")
_DEFAULT_CONTENT_TYPE = recordio.RECORDIO  # k-NN's default when ContentType is unset
_CONTENT_TYPES = (CSV, recordio.RECORDIO)


@dataclass(frozen=True)
class Channel:
    name: str
    spec: dict[str, Any]


def model_artifact_uri(request: dict[str, Any]) -> S3Uri:
    out = source_uri(request["OutputDataConfig"]["S3OutputPath"], "OutputDataConfig.S3OutputPath")
    prefix = out.key.rstrip("/")
    key = f"{request['TrainingJobName']}/output/model.tar.gz"
    return S3Uri(out.bucket, f"{prefix}/{key}" if prefix else key)


def run_training(request: dict[str, Any], store: ObjectStore, ctx: JobContext) -> dict[str, Any]:
    """Everything a training job does after CreateTrainingJob returned; returns describe fields."""
    try:
        return _train(request, store, ctx)
    finally:
        release_free_memory()  # what the job's thread allocated and freed: not the process's to keep


def _train(request: dict[str, Any], store: ObjectStore, ctx: JobContext) -> dict[str, Any]:
    params = knn.parse_hyperparameters(request.get("HyperParameters") or {})
    channels = _channels(request.get("InputDataConfig") or [])
    ctx.secondary_status("Downloading", "Downloading input data")
    ctx.log("hyperparameters: " + ", ".join(f"{k}={v}" for k, v in sorted(_hp(request).items())))
    sampler = knn.ReservoirSampler(params.sample_size)
    for labels, features in labelled_batches(store, channels["train"], params, ctx):
        sampler.add(labels, features)
    ctx.secondary_status("Training", "Training image download completed. Training in progress.")
    labels, features = sampler.result()
    ctx.log(f"read {sampler.seen} rows (sampled {len(labels)})")
    model = knn.train(params, labels, features)
    ctx.log(
        f"index {params.index_type} built: {model.index.ntotal} vectors, d={params.feature_dim}, "
        f"metric {params.index_metric}"
        + (
            f", {params.dimension_reduction_type} reduction to {params.dimension_reduction_target}"
            if params.dimension_reduction_type
            else ""
        )
    )
    metrics = []
    if "test" in channels:
        batches = labelled_batches(store, channels["test"], params, ctx)
        result = knn.evaluate(model, batches, ctx.checkpoint)
        if result is not None:
            metrics.append({"MetricName": result[0], "Value": result[1], "Timestamp": to_json_time(now())})
            ctx.log(f"{result[0]} = {result[1]:.6g}")
        else:
            ctx.log("the test channel holds no rows: no test metric")
    ctx.checkpoint()
    ctx.secondary_status("Uploading", "Uploading generated training model")
    artifact = model_artifact_uri(request)
    store.put_bytes(artifact.bucket, artifact.key, knn.dump_model(model))
    ctx.output_written(store, artifact.bucket, artifact.key)
    ctx.log(f"wrote {artifact}")
    return {"FinalMetricDataList": metrics}


def _hp(request: dict[str, Any]) -> dict[str, str]:
    return dict(request.get("HyperParameters") or {})


def _channels(config: list[dict[str, Any]]) -> dict[str, Channel]:
    channels: dict[str, Channel] = {}
    for spec in config:
        name = spec["ChannelName"]
        if name not in CHANNELS:
            raise AlgorithmClientError(
                f"Channel {name!r} is not used by k-NN: use 'train' (required) and 'test' (optional)."
            )
        _check_channel(name, spec)
        channels[name] = Channel(name, spec)
    if "train" not in channels:
        raise AlgorithmClientError(
            "InputDataConfig must have a 'train' channel (RecordIO-protobuf, or text/csv with the label "
            "first)."
        )
    return channels


def _check_channel(name: str, spec: dict[str, Any]) -> None:
    declared = parse_media_type(spec.get("ContentType"), _DEFAULT_CONTENT_TYPE)
    media = declared.media
    if media not in _CONTENT_TYPES:
        raise AlgorithmClientError(
            f"channel {name!r}: content type {media} is not supported by k-NN; use "
            f"{recordio.RECORDIO} (the default) or text/csv (label in the first column, no header)."
        )
    if media == CSV and declared.params.get("label_size", "1") != "1":
        raise AlgorithmClientError(f"channel {name!r}: text/csv training data must have label_size=1.")
    wrapper = spec.get("RecordWrapperType", "None")
    if wrapper not in ("None", "RecordIO") or (wrapper == "RecordIO" and media == CSV):
        raise AlgorithmClientError(
            f"channel {name!r}: RecordWrapperType {wrapper} is not supported with {media} by the "
            "embedded engine; use None."
        )
    if "S3DataSource" not in spec["DataSource"]:
        raise AlgorithmClientError(
            f"channel {name!r}: only S3DataSource is supported by the embedded engine."
        )


def content_type(spec: dict[str, Any]) -> str:
    """The channel's media type; k-NN's RecordIO-protobuf when ContentType is not set."""
    return parse_media_type(spec.get("ContentType"), _DEFAULT_CONTENT_TYPE).media


def labelled_batches(
    store: ObjectStore, channel: Channel, params: knn.KnnParams, ctx: JobContext
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(labels, features) float32 batches of at most ``mini_batch_size`` rows from every object, parsed
    a bounded chunk of whole lines (or records) at a time."""
    uri, keys = matched_keys(store, channel.spec["DataSource"]["S3DataSource"], f"channel {channel.name!r}")
    compression = channel.spec.get("CompressionType")
    media = content_type(channel.spec)
    size = params.mini_batch_size
    for key in keys:
        source = f"s3://{uri.bucket}/{key}"
        ctx.log(f"reading {source} (channel {channel.name}, {media})")
        with open_object(store, uri.bucket, key, compression) as fh:
            parsed = (
                _record_batches(fh, source, params.feature_dim)
                if media == recordio.RECORDIO
                else _csv_batches(fh, source, params.feature_dim)
            )
            for labels, features in parsed:
                for start in range(0, len(labels), size):
                    ctx.checkpoint()
                    yield labels[start : start + size], features[start : start + size]


def _csv_batches(fh: Any, source: str, feature_dim: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for i, chunk in enumerate(object_chunks(fh, source)):
        values = _parse(chunk.data, chunk.first_line, source, feature_dim, first_chunk=i == 0)
        yield values[:, 0].copy(), values[:, 1:]


def _record_batches(fh: Any, source: str, feature_dim: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    try:
        yield from recordio.labelled_batches(fh, source, feature_dim)
    except FormatError as err:
        raise AlgorithmClientError(f"Unable to read the training data: {err}") from None
    except (OSError, EOFError) as err:  # a corrupt gzip stream
        raise AlgorithmClientError(f"{source} cannot be read: {err}") from None


def _parse(data: bytes, first: int, source: str, feature_dim: int, first_chunk: bool) -> np.ndarray:
    """The chunk's rows. A row whose column count is not 1 + feature_dim fails the job: when every row
    of the object agrees with it, on feature_dim; otherwise (ragged rows) on that row."""
    try:
        return parse_csv(data, feature_dim + 1, source, first)
    except ColumnCountError as err:
        if first_chunk and _column_counts(data) == {err.found}:  # every row agrees: feature_dim does not
            raise AlgorithmClientError(
                f"feature_dim={feature_dim} does not match the data: row {err.row} of {err.source} has "
                f"{err.found - 1} feature columns after the label (expected {feature_dim}). Set the "
                "feature_dim hyperparameter to the number of features."
            ) from None
        raise AlgorithmClientError(  # ragged rows: no feature_dim would fit them all
            f"Unable to read the training data: row {err.row} of {err.source} has {err.found} columns, "
            f"expected {err.expected} (the label, then feature_dim={feature_dim} features); every row of a "
            "text/csv channel must have the same number of columns."
        ) from None
    except FormatError as err:
        raise AlgorithmClientError(f"Unable to read the training data: {err}") from None


def _column_counts(data: bytes) -> set[int]:
    """The column counts of the non-blank lines of CSV text (split as :func:`.formats.parse_csv_rows`
    splits them)."""
    return {line.count(b",") + 1 for line in data.split(b"\n") if line.strip()}
