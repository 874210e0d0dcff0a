"""S3 for ``iris-sagemaker serve``: moto's S3 implementation, bound to the local bucket folder.

moto speaks the protocol (SigV4, multipart uploads, ranges, flexible checksums, XML); the folder
``ROOT/s3/BUCKET/KEY`` stays the one source of truth that ``make run``, the embedded engine and the
Airflow mirror read and write directly. So moto's in-memory objects are only a cache of the folder:

* **writes go through first**: every object moto would store (PutObject, CopyObject,
  CompleteMultipartUpload, POST uploads all end in ``put_object``) is written to its file atomically
  (:class:`LocalObjectStore`) before moto keeps it; if the file cannot be written (a key that cannot be
  a path inside the bucket folder, a full disk) the request fails and moto keeps nothing. Deletes
  remove the file first.
* **reads look at the folder first**: before moto answers a GET, HEAD or listing, the keys it names
  are compared with their files (one ``stat`` each; a listing walks only the prefix's folder) and
  loaded, refreshed or dropped. Objects written to the folder by another process, or by the engine
  inside this one, are therefore served at once, and nothing needs loading at start-up.

This beats loading the folder at start and writing through: start-up costs nothing for any bucket
size, and nothing the folder gains while the server runs is ever missed.

moto keeps each key's bytes in a spooled temporary file: in memory up to 5 MB, an open descriptor above.
Left so, the server's memory would grow with every object it ever wrote or served. Once a key's file is
known to hold the same bytes (just written, or just loaded), the key reads them from the file instead
(:class:`FileValue`), so moto keeps only each key's metadata. Versioned buckets keep moto's copies: the
folder holds only an object's latest version.
"""

from __future__ import annotations

import io
import os
import shutil
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from iris_sagemaker.core.storage import LocalObjectStore, ObjectStoreError, validate_bucket

# A file's (size, mtime_ns) as it was when moto's copy was made from it (or it from moto's).
Signature = tuple[int, int]


class LocalBucketS3:
    """Binds one moto S3 backend to ``LocalObjectStore(root)`` (see the module's docstring)."""

    def __init__(self, backend: Any, store: LocalObjectStore, region: str) -> None:
        self.backend = backend
        self.store = store
        self.region = region
        self._lock = threading.RLock()
        self._synced: dict[tuple[str, str], Signature] = {}
        self._original: dict[str, Callable[..., Any]] = {}

    def install(self) -> None:
        """Wrap the backend's methods (once)."""
        if self._original:
            return
        wrappers: dict[str, Callable[..., Any]] = {
            "put_object": self._put_object,
            "delete_object": self._delete_object,
            "create_bucket": self._create_bucket,
            "delete_bucket": self._delete_bucket,
            "get_bucket": self._get_bucket,
            "list_buckets": self._list_buckets,
            "get_object": self._get_object,
            "list_objects": self._list_objects,
            "list_objects_v2": self._list_objects_v2,
        }
        for name, wrapper in wrappers.items():
            self._original[name] = getattr(self.backend, name)
            setattr(self.backend, name, wrapper)

    # ---- writes: the folder first ---------------------------------------------------------------

    def _put_object(self, bucket_name: str, key_name: str, value: bytes, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            bucket = self._get_bucket(bucket_name)  # NoSuchBucket before anything is written
            path = self._path(bucket_name, key_name)
            _keep_versions_in_memory(bucket, key_name)
            try:
                self.store.put_bytes(bucket_name, key_name, bytes(value))
            except (NotADirectoryError, IsADirectoryError, FileExistsError):
                raise _invalid_key(
                    key_name, "it collides with a folder or file of the same name in the local bucket folder"
                ) from None
            except OSError as err:
                raise _internal_error(f"could not write {path}: {err.strerror or err}") from None
            key = self._original["put_object"](bucket_name, key_name, value, *args, **kwargs)
            self._remember(bucket_name, key_name, key)
            return key

    def _delete_object(self, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            try:
                path = self.store.path_for(bucket_name, key_name)
            except ObjectStoreError:
                path = None  # no such file can exist
            if path is not None and path.is_file():
                _keep_versions_in_memory(self.backend.buckets.get(bucket_name), key_name)
                try:
                    path.unlink()
                except OSError as err:
                    raise _internal_error(f"could not delete {path}: {err.strerror or err}") from None
                _prune_empty_folders(path.parent, self.store.bucket_dir(bucket_name))
            self._synced.pop((bucket_name, key_name), None)
            return self._original["delete_object"](bucket_name, key_name, *args, **kwargs)

    def _create_bucket(self, bucket_name: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            try:
                folder = self.store.bucket_dir(bucket_name)
            except ObjectStoreError as err:
                raise _s3_error("InvalidBucketName", str(err)) from None
            bucket = self._original["create_bucket"](bucket_name, *args, **kwargs)
            folder.mkdir(parents=True, exist_ok=True)
            return bucket

    def _delete_bucket(self, bucket_name: str) -> Any:
        with self._lock:
            bucket = self._get_bucket(bucket_name)
            self._sync_prefix(bucket, "")  # moto must see every file to refuse a non-empty bucket
            deleted = self._original["delete_bucket"](bucket_name)
            folder = self.store.bucket_dir(bucket_name)
            if folder.is_dir() and not any(path.is_file() for path in folder.rglob("*")):
                shutil.rmtree(folder)
            return deleted

    # ---- reads: the folder first ----------------------------------------------------------------

    def _get_bucket(self, bucket_name: str) -> Any:
        with self._lock:
            if bucket_name not in self.backend.buckets and self._folder_exists(bucket_name):
                self._original["create_bucket"](bucket_name, self.region)
            return self._original["get_bucket"](bucket_name)

    def _list_buckets(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            base = self.store.root / "s3"
            if base.is_dir():
                for folder in sorted(base.iterdir()):
                    if folder.is_dir():
                        self._get_bucket_if_valid(folder.name)
            return self._original["list_buckets"](*args, **kwargs)

    def _get_object(self, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self._sync_key(self._get_bucket(bucket_name), key_name)
            return self._original["get_object"](bucket_name, key_name, *args, **kwargs)

    def _list_objects(self, bucket: Any, prefix: str | None, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self._sync_prefix(bucket, prefix or "")
            return self._original["list_objects"](bucket, prefix, *args, **kwargs)

    def _list_objects_v2(self, bucket: Any, prefix: str | None, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self._sync_prefix(bucket, prefix or "")
            return self._original["list_objects_v2"](bucket, prefix, *args, **kwargs)

    # ---- reconciliation -------------------------------------------------------------------------

    def _sync_key(self, bucket: Any, key_name: str) -> None:
        try:
            path = self.store.path_for(bucket.name, key_name)
        except ObjectStoreError:
            return  # a key no file can hold: only moto can have it (it never does, see _put_object)
        signature = _signature(path)
        if signature is not None and signature == self._synced.get((bucket.name, key_name)):
            return
        if signature is None:
            versions = bucket.keys.getlist(key_name, [])
            if versions and getattr(bucket, "is_versioned", False) and not hasattr(versions[-1], "value"):
                return  # deleted through S3: its versions stay, under their delete marker
            if key_name in bucket.keys:
                bucket.keys.pop(key_name)
            self._synced.pop((bucket.name, key_name), None)
            return
        try:
            data = path.read_bytes()
        except OSError:
            return  # replaced or removed while we looked: the next request sees it settled
        key = self._original["put_object"](bucket.name, key_name, data, disable_notification=True)
        key.last_modified = datetime.fromtimestamp(signature[1] / 1e9, UTC).replace(tzinfo=None)
        self._synced[(bucket.name, key_name)] = signature
        _read_from_file(key, path, bucket)

    def _sync_prefix(self, bucket: Any, prefix: str) -> None:
        try:
            on_disk = set(self.store.list_keys(bucket.name, prefix))
        except ObjectStoreError:
            on_disk = set()
        in_moto = {key for key in bucket.keys if key.startswith(prefix)}
        for key_name in sorted(on_disk | in_moto):
            self._sync_key(bucket, key_name)

    def _remember(self, bucket_name: str, key_name: str, key: Any) -> None:
        path = self._path(bucket_name, key_name)
        signature = _signature(path)
        if signature is not None:
            key.last_modified = datetime.fromtimestamp(signature[1] / 1e9, UTC).replace(tzinfo=None)
            self._synced[(bucket_name, key_name)] = signature
            _read_from_file(key, path, self.backend.buckets.get(bucket_name))

    def _path(self, bucket_name: str, key_name: str) -> os.PathLike[str]:
        if key_name.endswith("/"):
            raise _invalid_key(key_name, "keys ending in '/' (folder markers) cannot be files")
        try:
            return self.store.path_for(bucket_name, key_name)
        except ObjectStoreError as err:
            raise _invalid_key(key_name, str(err)) from None

    def _folder_exists(self, bucket_name: str) -> bool:
        try:
            return self.store.bucket_dir(bucket_name).is_dir()
        except ObjectStoreError:
            return False

    def _get_bucket_if_valid(self, bucket_name: str) -> None:
        try:
            validate_bucket(bucket_name)
        except ObjectStoreError:
            return
        self._get_bucket(bucket_name)


class FileValue:
    """A moto key's value buffer that reads the bytes from the key's file in the bucket folder.

    It stands in for the ``SpooledTemporaryFile`` moto reads a key's value and etag through (``seek``,
    ``read``), holding nothing but the path and a position. A write (moto rewriting the key's value in
    place) turns it back into an in-memory buffer holding what was written.
    """

    def __init__(self, path: os.PathLike[str]) -> None:
        self.path = path
        self._position = 0
        self._memory: io.BytesIO | None = None

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if self._memory is not None:
            return self._memory.seek(offset, whence)
        if whence == os.SEEK_CUR:
            offset += self._position
        elif whence == os.SEEK_END:
            offset += os.stat(self.path).st_size
        self._position = max(0, offset)
        return self._position

    def read(self, size: int = -1) -> bytes:
        if self._memory is not None:
            return self._memory.read(size)
        with open(self.path, "rb") as file:
            file.seek(self._position)
            data = file.read() if size is None or size < 0 else file.read(size)
        self._position += len(data)
        return data

    def truncate(self, size: int | None = None) -> int:
        return self.in_memory().truncate(size)

    def write(self, data: bytes) -> int:
        return self.in_memory().write(data)

    def in_memory(self) -> io.BytesIO:
        """From now on, the bytes live in memory (a copy of the file's, at the same position)."""
        if self._memory is None:
            with open(self.path, "rb") as file:
                self._memory = io.BytesIO(file.read())
            self._memory.seek(self._position)
        return self._memory

    def close(self) -> None:
        self._memory = None


def _read_from_file(key: Any, path: os.PathLike[str], bucket: Any) -> None:
    """Let moto's ``key`` read its bytes from ``path`` (same bytes, just written or loaded) and free its
    own copy; versioned buckets keep moto's copies (older versions have no file)."""
    if bucket is None or getattr(bucket, "is_versioned", False) or isinstance(key._value_buffer, FileValue):
        return
    with key.lock:
        old, key._value_buffer = key._value_buffer, FileValue(path)
    old.close()


def _keep_versions_in_memory(bucket: Any, key_name: str) -> None:
    """Before a versioned bucket's file of ``key_name`` is replaced or deleted: the versions moto keeps
    that read from it (written before versioning was enabled) take their bytes into memory."""
    if bucket is None or not getattr(bucket, "is_versioned", False):
        return
    for key in bucket.keys.getlist(key_name, []):
        buffer = getattr(key, "_value_buffer", None)
        if isinstance(buffer, FileValue):
            with key.lock:
                buffer.in_memory()


def _signature(path: os.PathLike[str]) -> Signature | None:
    try:
        stat = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not os.path.isfile(path):
        return None
    return stat.st_size, stat.st_mtime_ns


def _prune_empty_folders(folder: Any, stop: Any) -> None:
    while folder != stop and folder.is_relative_to(stop):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _s3_error(code: str, message: str) -> Exception:
    from moto.s3.exceptions import S3ClientError

    return S3ClientError(code, message)


def _invalid_key(key: str, why: str) -> Exception:
    from moto.s3.exceptions import InvalidArgumentError

    return InvalidArgumentError(
        f"The key {key!r} cannot be stored in the local bucket folder: {why}.", "Key", key
    )


def _internal_error(message: str) -> Exception:
    """S3's ``InternalError`` (HTTP 500, which clients retry) for a write the folder refused."""
    from xml.etree import ElementTree

    from werkzeug.exceptions import InternalServerError

    error = ElementTree.Element("Error")
    ElementTree.SubElement(error, "Code").text = "InternalError"
    ElementTree.SubElement(error, "Message").text = f"The local bucket folder refused the write: {message}"
    body = ElementTree.tostring(error, encoding="unicode", xml_declaration=True)

    class FolderWriteFailed(InternalServerError):
        def get_body(self, *args: Any, **kwargs: Any) -> str:
            return body

        def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
            return [("Content-Type", "application/xml")]

    return FolderWriteFailed()
