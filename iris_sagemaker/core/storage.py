"""The object store: a local folder laid out like a bucket, or S3 through boto3.

Both stores speak in ``(bucket, key)`` pairs and share one interface, so the assets, the embedded
SageMaker engine and the Airflow tasks never ask where objects live.

Local layout: object ``s3://BUCKET/KEY`` is the file ``ROOT/s3/BUCKET/KEY``. Writes go to a temporary
file in the same folder and are renamed into place, so a reader never sees a half-written object. A write
that runs out of space removes its temporary file and raises :class:`DiskFull`, which names the object's
path (a bare ``write`` error names no file, so the caller could not say which disk to free).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_TMP_PREFIX = ".tmp-"


DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class DiskFull(OSError):
    """No space (or quota) left on the device while writing ``filename``: an ``OSError`` whose errno is
    ENOSPC or EDQUOT, so code that handles OSError still does, and whose filename is the file meant."""

    def __init__(self, path: str | os.PathLike[str], code: int = errno.ENOSPC) -> None:
        super().__init__(code, os.strerror(code), os.fspath(path))


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` means the file system has no room left (ENOSPC, EDQUOT)."""
    return isinstance(err, OSError) and err.errno in DISK_FULL_ERRNOS


@contextlib.contextmanager
def naming_disk_full(path: str | os.PathLike[str]) -> Iterator[None]:
    """Re-raise a disk-full error inside the block as :class:`DiskFull` naming ``path``."""
    try:
        yield
    except OSError as err:
        if is_disk_full(err) and not isinstance(err, DiskFull):
            raise DiskFull(path, err.errno or errno.ENOSPC) from err
        raise


class ObjectStoreError(ValueError):
    """A bucket name, key or URI that cannot name an object."""


class ObjectNotFound(FileNotFoundError):
    """The object does not exist."""

    def __init__(self, bucket: str, key: str, hint: str = "") -> None:
        super().__init__(f"s3://{bucket}/{key} does not exist{'; ' + hint if hint else ''}")
        self.bucket = bucket
        self.key = key

    def with_hint(self, hint: str) -> ObjectNotFound:
        return ObjectNotFound(self.bucket, self.key, hint)


class BucketNotFound(FileNotFoundError):
    """The bucket does not exist (S3 only; local buckets are folders created on first write)."""

    def __init__(self, bucket: str, hint: str = "") -> None:
        super().__init__(f"bucket {bucket!r} does not exist{hint}")
        self.bucket = bucket


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_s3_uri(uri: str) -> S3Uri:
    """Split ``s3://bucket/key`` into its parts; the key may be empty (a whole bucket)."""
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise ObjectStoreError(f"{uri!r} is not an S3 URI: expected s3://BUCKET/KEY")
    bucket, _, key = uri[len("s3://") :].partition("/")
    validate_bucket(bucket)
    return S3Uri(bucket, key)


def validate_bucket(bucket: str) -> str:
    if not _BUCKET_RE.match(bucket or "") or ".." in bucket:
        raise ObjectStoreError(
            f"{bucket!r} is not a valid S3 bucket name: use 3-63 lowercase letters, digits, '.' or '-', "
            "starting and ending with a letter or digit"
        )
    return bucket


def validate_key(key: str) -> str:
    """Reject keys that would escape the bucket folder or cannot be a file path."""
    if not key:
        raise ObjectStoreError("an object key must not be empty")
    if key.startswith("/") or "\\" in key or "\x00" in key:
        raise ObjectStoreError(f"object key {key!r} must be relative, without backslashes or NUL bytes")
    parts = key.split("/")
    if any(part in ("..", ".") for part in parts):
        raise ObjectStoreError(f"object key {key!r} must not contain '.' or '..' segments")
    if any(part.startswith(_TMP_PREFIX) for part in parts):
        raise ObjectStoreError(f"object key {key!r} uses the reserved prefix {_TMP_PREFIX!r}")
    return key


class ObjectStore(Protocol):
    """What every part of the project needs from S3."""

    def put_bytes(self, bucket: str, key: str, data: bytes) -> None: ...

    def get_bytes(self, bucket: str, key: str) -> bytes: ...

    def exists(self, bucket: str, key: str) -> bool: ...

    def last_modified(self, bucket: str, key: str) -> datetime: ...

    def list_keys(self, bucket: str, prefix: str) -> list[str]: ...

    def open_read(self, bucket: str, key: str) -> contextlib.AbstractContextManager[IO[bytes]]: ...

    def open_write(self, bucket: str, key: str) -> contextlib.AbstractContextManager[IO[bytes]]: ...

    def create_exclusive(self, bucket: str, key: str, data: bytes) -> bool:
        """Write the object only if it does not exist (atomically); False when it already did."""
        ...

    def delete(self, bucket: str, key: str) -> None:
        """Remove the object; a missing one is not an error (as S3's DeleteObject)."""
        ...

    def describe(self) -> str: ...


class LocalObjectStore:
    """Objects as files under ``root/s3/<bucket>/<key>``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()

    def describe(self) -> str:
        return f"local folder {self.root / 's3'}"

    def bucket_dir(self, bucket: str) -> Path:
        return self.root / "s3" / validate_bucket(bucket)

    def path_for(self, bucket: str, key: str) -> Path:
        base = self.bucket_dir(bucket)
        path = base / validate_key(key)
        # validate_key already refuses ".." and absolute keys; this catches symlinks out of the bucket.
        if not path.resolve().is_relative_to(base.resolve()):
            raise ObjectStoreError(f"object key {key!r} escapes bucket {bucket!r}")
        return path

    def put_bytes(self, bucket: str, key: str, data: bytes) -> None:
        with self.open_write(bucket, key) as fh:
            fh.write(data)

    def get_bytes(self, bucket: str, key: str) -> bytes:
        with self.open_read(bucket, key) as fh:
            return fh.read()

    def create_exclusive(self, bucket: str, key: str, data: bytes) -> bool:
        # Written in full under a temporary name, then linked in: link() fails if the name exists, so
        # exactly one of several writers wins and nobody ever sees a partial object.
        path = self.path_for(bucket, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def exists(self, bucket: str, key: str) -> bool:
        return self.path_for(bucket, key).is_file()

    def last_modified(self, bucket: str, key: str) -> datetime:
        try:
            mtime = self.path_for(bucket, key).stat().st_mtime
        except FileNotFoundError:
            raise ObjectNotFound(bucket, key) from None
        return datetime.fromtimestamp(mtime, tz=UTC)

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        base = self.bucket_dir(bucket)
        if not base.is_dir():
            return []
        # Walk only the folder the prefix points into; S3 prefixes need not end at a "/".
        folder = base / prefix.rpartition("/")[0] if "/" in prefix else base
        if not folder.resolve().is_relative_to(base.resolve()) or not folder.is_dir():
            return []  # a prefix that climbs out of the bucket ("../") matches nothing in it
        keys = []
        for path in folder.rglob("*"):
            if not path.is_file() or any(p.startswith(_TMP_PREFIX) for p in path.relative_to(base).parts):
                continue
            key = path.relative_to(base).as_posix()
            if key.startswith(prefix):
                keys.append(key)
        return sorted(keys)

    @contextlib.contextmanager
    def open_read(self, bucket: str, key: str) -> Iterator[IO[bytes]]:
        path = self.path_for(bucket, key)
        try:
            fh = path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(bucket, key) from None
        with fh:
            yield fh

    @contextlib.contextmanager
    def open_write(self, bucket: str, key: str) -> Iterator[IO[bytes]]:
        """Yield a file to write; the object appears (atomically) only if the block succeeds."""
        path = self.path_for(bucket, key)
        with naming_disk_full(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            remove_orphaned_temps(path.parent)
            fd, tmp = tempfile.mkstemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-", dir=path.parent)
        try:
            with naming_disk_full(path), os.fdopen(fd, "wb") as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def delete(self, bucket: str, key: str) -> None:
        """Remove the object (nothing happens if it does not exist, as in S3)."""
        with contextlib.suppress(FileNotFoundError):
            self.path_for(bucket, key).unlink()


def remove_orphaned_temps(folder: Path) -> None:
    """Delete the temporary files of writers that died (``.tmp-<pid>-*`` of a pid no longer running).

    A killed writer (kill -9 during a transform) cannot remove its temporary file; the next write into
    the same folder does. Files of live processes, and temporary files without a pid, are left alone.
    """
    import psutil

    try:
        names = [entry.name for entry in os.scandir(folder) if entry.name.startswith(_TMP_PREFIX)]
    except OSError:
        return
    for name in names:
        pid_text = name[len(_TMP_PREFIX) :].split("-", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not psutil.pid_exists(int(pid_text)):
            with contextlib.suppress(OSError):
                os.unlink(folder / name)


class S3ObjectStore:
    """Objects in S3 (or anything speaking its API: MinIO, moto, LocalStack) through a boto3 client."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def describe(self) -> str:
        return f"S3 at {self.client.meta.endpoint_url}"

    def _translate(self, err: Exception, bucket: str, key: str) -> Exception:
        code = getattr(err, "response", {}).get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            return BucketNotFound(bucket, hint=f" at {self.client.meta.endpoint_url}: create it first")
        if code in ("NoSuchKey", "404", "NotFound"):
            return ObjectNotFound(bucket, key)
        return err

    def check_bucket(self, bucket: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=validate_bucket(bucket))
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", ""))
            where = f" at {self.client.meta.endpoint_url}"
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise BucketNotFound(
                    bucket, hint=f"{where}: create it, or set IRIS_SAGEMAKER_BUCKET to an existing bucket"
                ) from None
            if code in ("403", "AccessDenied", "Forbidden"):
                raise BucketNotFound(
                    bucket, hint=f"{where} or is not accessible with these credentials (403 Forbidden)"
                ) from None
            raise

    def put_bytes(self, bucket: str, key: str, data: bytes) -> None:
        # S3 PUTs are atomic: the object is visible whole or not at all.
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(Bucket=validate_bucket(bucket), Key=validate_key(key), Body=data)
        except ClientError as err:
            raise self._translate(err, bucket, key) from err

    def get_bytes(self, bucket: str, key: str) -> bytes:
        with self.open_read(bucket, key) as fh:
            return fh.read()

    def create_exclusive(self, bucket: str, key: str, data: bytes) -> bool:
        # S3's conditional write (If-None-Match: *): 412 PreconditionFailed when the key exists.
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(
                Bucket=validate_bucket(bucket), Key=validate_key(key), Body=data, IfNoneMatch="*"
            )
            return True
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", ""))
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                return False
            raise self._translate(err, bucket, key) from err

    def exists(self, bucket: str, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=validate_bucket(bucket), Key=validate_key(key))
        except ClientError as err:
            translated = self._translate(err, bucket, key)
            if isinstance(translated, ObjectNotFound):
                return False
            raise translated from err
        return True

    def last_modified(self, bucket: str, key: str) -> datetime:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=validate_bucket(bucket), Key=validate_key(key))
        except ClientError as err:
            raise self._translate(err, bucket, key) from err
        return head["LastModified"]

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        from botocore.exceptions import ClientError

        keys: list[str] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=validate_bucket(bucket), Prefix=prefix
            ):
                keys.extend(obj["Key"] for obj in page.get("Contents", []))
        except ClientError as err:
            raise self._translate(err, bucket, prefix) from err
        return sorted(keys)

    @contextlib.contextmanager
    def open_read(self, bucket: str, key: str) -> Iterator[IO[bytes]]:
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=validate_bucket(bucket), Key=validate_key(key))["Body"]
        except ClientError as err:
            raise self._translate(err, bucket, key) from err
        with contextlib.closing(body):
            yield body

    def delete(self, bucket: str, key: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.delete_object(Bucket=validate_bucket(bucket), Key=validate_key(key))
        except ClientError as err:
            raise self._translate(err, bucket, key) from err

    @contextlib.contextmanager
    def open_write(self, bucket: str, key: str) -> Iterator[IO[bytes]]:
        """Spool to a local temp file, then upload once: a failed block uploads nothing."""
        from botocore.exceptions import ClientError

        validate_bucket(bucket)
        validate_key(key)
        with tempfile.TemporaryFile() as spool:
            yield spool
            spool.seek(0)
            try:
                self.client.upload_fileobj(spool, bucket, key)
            except ClientError as err:
                raise self._translate(err, bucket, key) from err


# ---- tables as CSV objects, a slice of rows at a time ---------------------------------------------------

CSV_CHUNK_ROWS = 65536  # rows formatted or parsed at a time: whole tables never exist as text


def write_csv(store: ObjectStore, bucket: str, key: str, frame: Any, header: bool = True) -> None:
    """``frame`` (a pandas DataFrame) as the CSV object ``key``: exactly ``frame.to_csv(index=False,
    header=header)``, formatted and written :data:`CSV_CHUNK_ROWS` rows at a time, so that the table's
    text never exists whole (pandas formats every value on its own, so the slices join into the same
    text). Atomic, as every write."""
    with store.open_write(bucket, key) as fh:
        if not len(frame):
            fh.write(frame.to_csv(index=False, header=header).encode("utf-8"))
        for start in range(0, len(frame), CSV_CHUNK_ROWS):
            part = frame.iloc[start : start + CSV_CHUNK_ROWS]
            fh.write(part.to_csv(index=False, header=header and not start).encode("utf-8"))
    release_free_memory()  # a step's transients, once it has stored what it made


def write_json(store: ObjectStore, bucket: str, key: str, value: Any) -> None:
    """``json.dumps(value, indent=2, sort_keys=True, default=str)`` as the object ``key``, encoded and
    written in pieces of about a megabyte: a document holding long lists (the endpoint's online check:
    a prediction per test row) never exists whole as text, nor as the millions of small strings the
    encoder joins. Atomic, as every write."""
    import json

    pending: list[str] = []
    size = 0
    with store.open_write(bucket, key) as fh:
        for piece in json.JSONEncoder(indent=2, sort_keys=True, default=str).iterencode(value):
            pending.append(piece)
            size += len(piece)
            if size >= 1 << 20:
                fh.write("".join(pending).encode("utf-8"))
                pending, size = [], 0
        fh.write("".join(pending).encode("utf-8"))


def read_csv(store: ObjectStore, bucket: str, key: str, **options: Any) -> Any:
    """The CSV object ``key`` as a pandas DataFrame (``options`` go to ``pandas.read_csv``), parsed from
    the stream :data:`CSV_CHUNK_ROWS` rows at a time, so that neither the object's bytes nor a text
    column's cells ever exist whole. Each chunk's columns are appended to one growing array per column
    (:class:`ColumnBuffer`) and the chunk is dropped, so the table exists once, not once in pieces and
    again joined; text columns keep one string object per distinct value (pandas alone makes one per
    cell: 2M rows of a species name are 16 MB of references instead of 120 MB of strings). Values and
    dtypes are ``pandas.read_csv``'s (numbers widened across chunks as pandas widens them); the columns
    are not consolidated into one block."""
    import pandas as pd

    buffers: dict[Any, ColumnBuffer] = {}
    text_dtypes: dict[Any, Any] = {}
    with store.open_read(bucket, key) as fh:
        capacity = line_count(fh) + 1 if fh.seekable() else 1 << 16  # a file: its lines bound its rows
        for part in pd.read_csv(fh, chunksize=CSV_CHUNK_ROWS, **options):
            for name in part.columns:
                column = part[name]
                if _is_text(column):
                    text_dtypes.setdefault(name, column.dtype)
                    values = _shared_strings(column).to_numpy(dtype=object)
                elif column.dtype.kind in "biuf":
                    values = column.to_numpy()
                else:
                    values = None
                if values is None or (name in buffers and not buffers[name].accepts(values)):
                    return _read_csv_whole(store, bucket, key, **options)  # a column of mixed kinds
                buffers.setdefault(name, ColumnBuffer(values.dtype, capacity)).extend(values)
            del part, column
    if not buffers or not len(next(iter(buffers.values()))):  # no rows: the header (or nothing) alone
        return _read_csv_whole(store, bucket, key, **options)
    columns = {}
    for name in list(buffers):
        values = buffers.pop(name).array()
        dtype = text_dtypes.get(name)
        columns[name] = pd.array(values, dtype=dtype) if isinstance(dtype, pd.StringDtype) else values
    frame = pd.DataFrame(columns, copy=False)
    release_free_memory()  # the chunks' and the buffers' growth's
    return frame


def line_count(fh: IO[bytes]) -> int:
    """The newlines of a seekable stream, read from its start; the stream is left at its start."""
    fh.seek(0)
    lines = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b""))
    fh.seek(0)
    return lines


def _read_csv_whole(store: ObjectStore, bucket: str, key: str, **options: Any) -> Any:
    import pandas as pd

    with store.open_read(bucket, key) as fh:
        return pd.read_csv(fh, **options)


class ColumnBuffer:
    """A 1-D numpy array filled a piece at a time. Its capacity doubles when full: the old array is
    copied once and freed, and the unused end of the last one is never touched (so never resident)."""

    def __init__(self, dtype: Any, capacity: int = 1 << 16) -> None:
        import numpy as np

        self._data = np.empty(capacity, dtype)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def accepts(self, values: Any) -> bool:
        """Whether ``values`` are of the same kind (numbers, or text objects) as the buffer's."""
        return (values.dtype == object) == (self._data.dtype == object)

    def extend(self, values: Any) -> None:
        import numpy as np

        dtype = np.result_type(self._data.dtype, values.dtype)
        if dtype != self._data.dtype:  # ints meeting floats (a chunk with a missing value): widen, as pandas
            self._data = self._data.astype(dtype)
        end = self._size + len(values)
        if end > len(self._data):
            grown = np.empty(max(end, 2 * len(self._data)), dtype)
            grown[: self._size] = self._data[: self._size]
            self._data = grown
        self._data[self._size : end] = values
        self._size = end

    def array(self) -> Any:
        return self._data[: self._size]


def _is_text(column: Any) -> bool:
    import pandas as pd

    return column.dtype == object or isinstance(column.dtype, pd.StringDtype)


def _shared_strings(column: Any) -> Any:
    """A text column (object or pandas' ``str``) whose equal strings are one object, same dtype."""
    import pandas as pd

    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    if len(uniques) * 2 > len(column):  # mostly distinct values: nothing to share
        return column
    values = uniques.to_numpy(dtype=object).take(codes)
    missing = codes < 0
    if missing.any():
        values[missing] = column.to_numpy(dtype=object)[missing]
    array = values if column.dtype == object else pd.array(values, dtype=column.dtype)
    return pd.Series(array, index=column.index, name=column.name, dtype=column.dtype, copy=False)


def release_free_memory() -> None:
    """Hand the C allocator's free memory back to the operating system (glibc's ``malloc_trim``).

    Python frees a dropped table at once, but glibc keeps what it got back for reuse: memory freed in
    the middle of its heap, or in a worker thread's arena (every engine job runs in a thread), stays
    resident, and each later step of a run would start from the previous steps' high-water mark. Called
    where a step or a job has let go of its tables (loading a step's inputs, the end of an engine job);
    costs a few milliseconds. Does nothing where the C library is not glibc."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    import ctypes

    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        return None
