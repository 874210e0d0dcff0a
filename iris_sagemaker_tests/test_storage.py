from __future__ import annotations

import os

import pytest

from iris_sagemaker.storage import (
    LocalObjectStore,
    ObjectNotFound,
    ObjectStoreError,
    parse_s3_uri,
)


@pytest.fixture()
def store(tmp_path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path)


def test_objects_live_at_root_s3_bucket_key(store: LocalObjectStore, tmp_path) -> None:
    store.put_bytes("my-bucket", "iris/processed-input-data/train.csv", b"1,2\n")
    assert (tmp_path / "s3/my-bucket/iris/processed-input-data/train.csv").read_bytes() == b"1,2\n"
    assert store.get_bytes("my-bucket", "iris/processed-input-data/train.csv") == b"1,2\n"
    assert store.exists("my-bucket", "iris/processed-input-data/train.csv")
    assert not store.exists("my-bucket", "iris/nothing")


def test_list_keys_is_a_prefix_match_like_s3(store: LocalObjectStore) -> None:
    for key in ["in/a.csv", "in/b.csv", "in/sub/c.csv", "input.csv", "other/x"]:
        store.put_bytes("b-1", key, b"x")
    assert store.list_keys("b-1", "in/") == ["in/a.csv", "in/b.csv", "in/sub/c.csv"]
    assert store.list_keys("b-1", "in") == ["in/a.csv", "in/b.csv", "in/sub/c.csv", "input.csv"]
    assert store.list_keys("b-1", "in/a") == ["in/a.csv"]
    assert store.list_keys("no-such-bucket", "") == []


@pytest.mark.parametrize("key", ["../escape", "a/../../b", "/etc/passwd", "a\\b", "", "a/./b"])
def test_keys_escaping_the_bucket_are_rejected(store: LocalObjectStore, key: str) -> None:
    with pytest.raises(ObjectStoreError):
        store.put_bytes("bucket", key, b"x")


def test_symlink_out_of_the_bucket_is_rejected(store: LocalObjectStore, tmp_path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    bucket_dir = tmp_path / "s3" / "bucket"
    bucket_dir.mkdir(parents=True)
    os.symlink(outside, bucket_dir / "link")
    with pytest.raises(ObjectStoreError, match="escapes bucket"):
        store.put_bytes("bucket", "link/x", b"x")


@pytest.mark.parametrize("bucket", ["UPPER", "a", "has_underscore", "-dash", "a..b"])
def test_bad_bucket_names_are_rejected(store: LocalObjectStore, bucket: str) -> None:
    with pytest.raises(ObjectStoreError, match="not a valid S3 bucket name"):
        store.put_bytes(bucket, "k", b"x")


def test_failed_write_leaves_no_object_and_no_temp_file(store: LocalObjectStore, tmp_path) -> None:
    store.put_bytes("bucket", "data/out.csv", b"old")
    with pytest.raises(RuntimeError), store.open_write("bucket", "data/out.csv") as fh:
        fh.write(b"half of the new")
        raise RuntimeError("worker died")
    assert store.get_bytes("bucket", "data/out.csv") == b"old"
    assert sorted(p.name for p in (tmp_path / "s3/bucket/data").iterdir()) == ["out.csv"]
    assert store.list_keys("bucket", "") == ["data/out.csv"]


def test_missing_object_error_names_the_uri(store: LocalObjectStore) -> None:
    with pytest.raises(ObjectNotFound, match=r"s3://bucket/missing.csv does not exist"):
        store.get_bytes("bucket", "missing.csv")


def test_parse_s3_uri() -> None:
    uri = parse_s3_uri("s3://my-bucket/iris/results")
    assert (uri.bucket, uri.key) == ("my-bucket", "iris/results")
    assert str(uri) == "s3://my-bucket/iris/results"
    with pytest.raises(ObjectStoreError, match="not an S3 URI"):
        parse_s3_uri("https://my-bucket/x")


def test_a_dead_writers_temporary_file_is_removed_by_the_next_write(tmp_path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put_bytes("bucket", "results/a.out", b"first")
    folder = tmp_path / "s3" / "bucket" / "results"
    dead = folder / ".tmp-99999999-abcd"  # above Linux's largest pid_max (2**22): never a live process
    dead.write_bytes(b"")
    live = folder / f".tmp-{os.getppid()}-efgh"  # a running process's (our parent): kept
    live.write_bytes(b"")
    assert store.list_keys("bucket", "results/") == ["results/a.out"]
    store.put_bytes("bucket", "results/b.out", b"second")
    assert not dead.exists() and live.exists()
    assert sorted(p.name for p in folder.iterdir()) == [live.name, "a.out", "b.out"]
