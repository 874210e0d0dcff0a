"""The training job program: read channels, sample, build the k-NN index, score the test channel,
upload ``model.tar.gz``. Runs inside a job worker (see :mod:`.jobs`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from iris_sagemaker.storage import ObjectStore, S3Uri

from . import knn
from .channels import matched_keys, object_lines, open_object, source_uri
from .errors import AlgorithmClientError
from .formats import ColumnCountError, FormatError, numbered_batches, parse_csv_rows, parse_media_type
from .jobs import JobContext
from .records import now, to_json_time

CHANNELS = ("train", "test")
_DEFAULT_CONTENT_TYPE = "application/x-recordio-protobuf"  # k-NN's default when ContentType is unset


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
    params = knn.parse_hyperparameters(request.get("HyperParameters") or {})
    channels = _channels(request.get("InputDataConfig") or [])
    ctx.secondary_status("Downloading", "Downloading input data")
    sampler = knn.ReservoirSampler(params.sample_size)
    for labels, features in labelled_batches(store, channels["train"], params, ctx):
        sampler.add(labels, features)
    ctx.secondary_status("Training", "Training image download completed. Training in progress.")
    labels, features = sampler.result()
    model = knn.train(params, labels, features)
    metrics = []
    if "test" in channels:
        batches = labelled_batches(store, channels["test"], params, ctx)
        result = knn.evaluate(model, batches, ctx.checkpoint)
        if result is not None:
            metrics.append({"MetricName": result[0], "Value": result[1], "Timestamp": to_json_time(now())})
    ctx.checkpoint()
    ctx.secondary_status("Uploading", "Uploading generated training model")
    artifact = model_artifact_uri(request)
    store.put_bytes(artifact.bucket, artifact.key, knn.dump_model(model))
    return {"FinalMetricDataList": metrics}


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
        raise AlgorithmClientError("InputDataConfig must have a 'train' channel (text/csv, label first).")
    return channels


def _check_channel(name: str, spec: dict[str, Any]) -> None:
    media = parse_media_type(spec.get("ContentType"), _DEFAULT_CONTENT_TYPE)
    if media.media != "text/csv":
        raise AlgorithmClientError(
            f"channel {name!r}: content type {media.media} is not supported by the embedded engine; set "
            "ContentType to text/csv (label in the first column, no header)."
        )
    if media.params.get("label_size", "1") != "1":
        raise AlgorithmClientError(f"channel {name!r}: text/csv training data must have label_size=1.")
    if spec.get("RecordWrapperType", "None") != "None":
        raise AlgorithmClientError(
            f"channel {name!r}: RecordWrapperType {spec['RecordWrapperType']} is not supported by the "
            "embedded engine; use None."
        )
    if "S3DataSource" not in spec["DataSource"]:
        raise AlgorithmClientError(
            f"channel {name!r}: only S3DataSource is supported by the embedded engine."
        )


def labelled_batches(
    store: ObjectStore, channel: Channel, params: knn.KnnParams, ctx: JobContext
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(labels, features) float32 batches of at most ``mini_batch_size`` rows from every object."""
    uri, keys = matched_keys(store, channel.spec["DataSource"]["S3DataSource"], f"channel {channel.name!r}")
    compression = channel.spec.get("CompressionType")
    for key in keys:
        source = f"s3://{uri.bucket}/{key}"
        with open_object(store, uri.bucket, key, compression) as fh:
            lines = object_lines(fh, source)
            for first, rows in numbered_batches(lines, params.mini_batch_size):
                ctx.checkpoint()
                values = _parse(rows, first, source, params.feature_dim)
                yield values[:, 0].astype(np.float32), values[:, 1:].astype(np.float32)


def _parse(rows: list[bytes], first: int, source: str, feature_dim: int) -> np.ndarray:
    try:
        return parse_csv_rows(rows, first, source, feature_dim + 1)
    except ColumnCountError as err:
        raise AlgorithmClientError(
            f"feature_dim={feature_dim} does not match the data: row {err.row} of {err.source} has "
            f"{err.found - 1} feature columns after the label (expected {feature_dim}). Set the "
            "feature_dim hyperparameter to the number of features."
        ) from None
    except FormatError as err:
        raise AlgorithmClientError(f"Unable to read the training data: {err}") from None
