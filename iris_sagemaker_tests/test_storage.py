from __future__ import annotations

import io
import json
import os
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from iris_sagemaker.core import storage
from iris_sagemaker.core.storage import (
    LocalObjectStore,
    ObjectNotFound,
    ObjectStoreError,
    parse_s3_uri,
    read_csv,
    release_free_memory,
    write_csv,
    write_json,
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


def _table(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(rows)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=rows).round(3),
            "species": rng.choice(["Iris-setosa", "Iris-versicolor", "Iris-virginica"], rows),
            "label": rng.integers(0, 3, rows),
            "ok": rng.random(rows) > 0.5,
            "id": [f"row-{i}" for i in range(rows)],
        }
    )
    frame.loc[3, "species"] = None
    frame["maybe"] = frame["label"].astype(float)
    frame.loc[rows - 2, "maybe"] = np.nan  # ints in the first chunks, a float in the last one
    return frame


@pytest.mark.parametrize("header", [True, False])
def test_tables_are_written_and_read_a_chunk_at_a_time(store, monkeypatch, header: bool) -> None:
    """Chunks of 7 rows: the object is exactly to_csv's text, and what comes back is read_csv's frame
    (values, dtypes, text columns, an int column widened by a missing value in a later chunk)."""
    monkeypatch.setattr(storage, "CSV_CHUNK_ROWS", 7)
    frame = _table(60)
    write_csv(store, "b-1", "t.csv", frame, header=header)
    text = store.get_bytes("b-1", "t.csv")
    assert text == frame.to_csv(index=False, header=header).encode()
    options = {} if header else {"header": None, "names": list(frame.columns)}
    expected = pd.read_csv(io.BytesIO(text), **options)
    got = read_csv(store, "b-1", "t.csv", **options)
    pd.testing.assert_frame_equal(got, expected)
    species = got["species"].dropna()
    assert len({id(value) for value in species}) <= 3 * (-(-60 // 7))  # a string object per value a chunk


def test_reading_odd_tables(store, monkeypatch) -> None:
    monkeypatch.setattr(storage, "CSV_CHUNK_ROWS", 4)
    for name, text in [
        ("empty.csv", b"a,b\n"),
        ("mixed.csv", b"a\n" + b"1\n" * 10 + b"x\n"),  # numbers, then text: read whole, as pandas does
        ("no-newline.csv", b"a,b\n1,x\n2,y"),
    ]:
        store.put_bytes("b-1", name, text)
        pd.testing.assert_frame_equal(read_csv(store, "b-1", name), pd.read_csv(io.BytesIO(text)))
    write_csv(store, "b-1", "none.csv", _table(10).iloc[:0])
    assert store.get_bytes("b-1", "none.csv") == b"x,species,label,ok,id,maybe\n"


def test_json_is_written_in_pieces_as_json_dumps_writes_it(store) -> None:
    value = {"b": [1.0, -0.0, 2.5] * 200_000, "a": {"when": datetime(2026, 1, 2), "none": None, "s": "é"}}
    write_json(store, "b-1", "v.json", value)
    expected = json.dumps(value, indent=2, sort_keys=True, default=str).encode()
    assert store.get_bytes("b-1", "v.json") == expected
    release_free_memory()  # harmless anywhere, any number of times
