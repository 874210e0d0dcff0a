"""Reading S3 data sources through the object store: which objects a data source names, and their
lines (gunzipped when compressed), streamed in bounded chunks; and the model artifact a container names."""

from __future__ import annotations

import contextlib
import gzip
from collections.abc import Iterator
from typing import IO, Any

from iris_sagemaker.storage import ObjectNotFound, ObjectStore, ObjectStoreError, S3Uri, parse_s3_uri

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


def matched_keys(store: ObjectStore, s3_data_source: dict[str, Any], what: str) -> tuple[S3Uri, list[str]]:
    """The objects an ``S3Prefix`` data source names: every key starting with its URI's key."""
    data_type = s3_data_source.get("S3DataType", "S3Prefix")
    if data_type != "S3Prefix":
        raise AlgorithmClientError(
            f"{what}: S3DataType {data_type} is not supported by the embedded engine; use S3Prefix."
        )
    uri = source_uri(s3_data_source["S3Uri"], what)
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
