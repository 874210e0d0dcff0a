"""Reading S3 data sources through the object store: which objects a data source names (an ``S3Prefix``,
or a ``ManifestFile`` listing them), and their lines (gunzipped when compressed), streamed in bounded
chunks; and the model artifact a container names."""

from __future__ import annotations

import contextlib
import gzip
import json
from collections.abc import Iterator
from typing import IO, Any

from iris_sagemaker.core.storage import (
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    S3Uri,
    parse_s3_uri,
    validate_key,
)

from . import knn
from .errors import AlgorithmClientError
from .formats import Payload, iter_lines, line_chunks


def source_uri(uri: str, what: str) -> S3Uri:
    try:
        return parse_s3_uri(uri)
    except ObjectStoreError as err:
        raise AlgorithmClientError(f"{what} {uri!r} is not usable by the embedded engine: {err}") from None


def read_model(store: ObjectStore, url: str) -> knn.KnnModel:
    """The k-NN model at ``url`` (a ModelDataUrl); AlgorithmClientError when it cannot be read."""
    uri = source_uri(url, "ModelDataUrl")
    try:
        data = store.get_bytes(uri.bucket, uri.key)
    except (ObjectNotFound, ObjectStoreError) as err:
        raise AlgorithmClientError(f"Could not read the model data at {url}: {err}") from None
    return knn.load_model(data)


SUPPORTED_DATA_TYPES = ("S3Prefix", "ManifestFile")
MAX_MANIFEST_BYTES = 64 * 1024 * 1024


def matched_keys(store: ObjectStore, s3_data_source: dict[str, Any], what: str) -> tuple[S3Uri, list[str]]:
    """The objects a data source names, and the prefix their output names are relative to.

    ``S3Prefix``: every key starting with the URI's key. ``ManifestFile``: the URI names a JSON manifest,
    ``[{"prefix": "s3://BUCKET/PREFIX"}, "relative/key", ...]``, whose keys are relative to its prefix.
    """
    data_type = s3_data_source.get("S3DataType", "S3Prefix")
    if data_type not in SUPPORTED_DATA_TYPES:
        raise AlgorithmClientError(
            f"{what}: S3DataType {data_type} is not supported by the embedded engine; use S3Prefix or "
            "ManifestFile."
        )
    uri = source_uri(s3_data_source["S3Uri"], what)
    if data_type == "ManifestFile":
        return manifest_keys(store, uri, what)
    try:
        keys = [key for key in store.list_keys(uri.bucket, uri.key) if not key.endswith("/")]
    except (ObjectStoreError, FileNotFoundError) as err:
        raise AlgorithmClientError(f"{what}: cannot list {uri}: {err}") from None
    if not keys:
        raise AlgorithmClientError(
            f'No S3 objects found under S3 URL "{uri}" given in {what}. Please ensure that the bucket '
            "exists and that objects exist under that S3 prefix."
        )
    return uri, keys


def manifest_keys(store: ObjectStore, manifest: S3Uri, what: str) -> tuple[S3Uri, list[str]]:
    """The prefix and the full keys a manifest file lists; AlgorithmClientError naming the entry that is
    wrong, or an object the manifest lists but the bucket does not hold."""
    try:
        with store.open_read(manifest.bucket, manifest.key) as fh:
            data = fh.read(MAX_MANIFEST_BYTES + 1)
    except (ObjectNotFound, ObjectStoreError) as err:
        raise AlgorithmClientError(f"{what}: cannot read the manifest file {manifest}: {err}") from None
    if len(data) > MAX_MANIFEST_BYTES:
        raise AlgorithmClientError(f"{what}: the manifest file {manifest} is larger than 64 MB.")
    try:
        entries = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AlgorithmClientError(f"{what}: the manifest file {manifest} is not valid JSON: {err}") from None
    head = entries[0] if isinstance(entries, list) and entries else None
    if not isinstance(head, dict) or not isinstance(head.get("prefix"), str):
        raise AlgorithmClientError(
            f'{what}: the manifest file {manifest} must be a JSON list whose first element is '
            '{"prefix": "s3://BUCKET/PREFIX/"}, followed by the keys relative to that prefix.'
        )
    prefix = source_uri(head["prefix"], f"the prefix of the manifest file {manifest}")
    keys = []
    for number, relative in enumerate(entries[1:], start=2):
        key = prefix.key + relative if isinstance(relative, str) else None
        try:
            if key is None or not relative:
                raise ObjectStoreError("it must be a non-empty string")
            validate_key(key)
        except ObjectStoreError as err:
            raise AlgorithmClientError(
                f"{what}: element {number} of the manifest file {manifest} ({relative!r}) is not a key "
                f"relative to {prefix}: {err}"
            ) from None
        if not store.exists(prefix.bucket, key):
            raise AlgorithmClientError(
                f"{what}: the manifest file {manifest} lists s3://{prefix.bucket}/{key}, which does not "
                "exist."
            )
        keys.append(key)
    if not keys:
        raise AlgorithmClientError(f"{what}: the manifest file {manifest} lists no objects.")
    return prefix, keys


@contextlib.contextmanager
def open_object(store: ObjectStore, bucket: str, key: str, compression: str | None) -> Iterator[IO[bytes]]:
    """The object's bytes, gunzipped when ``compression`` is ``Gzip``."""
    if compression not in (None, "None", "Gzip"):
        raise AlgorithmClientError(f"CompressionType {compression} is not supported; use None or Gzip.")
    with store.open_read(bucket, key) as raw:
        if compression == "Gzip":
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                yield unzipped  # type: ignore[misc]
        else:
            yield raw


def object_lines(fh: IO[bytes], source: str) -> Iterator[bytes]:
    try:
        yield from iter_lines(fh)
    except (OSError, EOFError) as err:  # a corrupt gzip stream
        raise AlgorithmClientError(f"{source} cannot be read: {err}") from None


def object_chunks(fh: IO[bytes], source: str, max_bytes: int = 0) -> Iterator[Payload]:
    """Whole-line chunks of the object (see :func:`.formats.line_chunks`)."""
    try:
        yield from line_chunks(fh, max_bytes)
    except (OSError, EOFError) as err:  # a corrupt gzip stream
        raise AlgorithmClientError(f"{source} cannot be read: {err}") from None
