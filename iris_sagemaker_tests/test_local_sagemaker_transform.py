"""Batch transform: output naming, formats, assembly, failures, streaming."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from iris_sagemaker.local_sagemaker import knn
from iris_sagemaker.local_sagemaker import transform as transform_module
from iris_sagemaker.local_sagemaker.testing import iris_like, to_csv
from iris_sagemaker.local_sagemaker.transform import output_key


@pytest.fixture
def iris(lab):
    """A trained Iris model ("iris-knn"), the held-out features as CSV, and their true labels."""
    labels, features = iris_like()
    job = lab.train(train=to_csv(labels[:105], features[:105]))
    lab.model("iris-knn", job)
    return to_csv(features[105:]), labels[105:]


def _predictions(data: bytes) -> list[float]:
    return [p["predicted_label"] for p in json.loads(data)["predictions"]]


@pytest.mark.parametrize(
    ("input_key", "object_key", "output_prefix", "expected"),
    [
        (
            "iris/processed-input-data/test.csv",
            "iris/processed-input-data/test.csv",
            "iris/results",
            "iris/results/test.csv.out",
        ),
        ("in/", "in/a.csv", "out/", "out/a.csv.out"),
        ("in/", "in/sub/b.csv", "out", "out/sub/b.csv.out"),
        ("in/part", "in/part-1.csv", "", "part-1.csv.out"),
        ("test.csv", "test.csv", "results", "results/test.csv.out"),
    ],
)
def test_output_key(input_key, object_key, output_prefix, expected):
    assert output_key(input_key, object_key, output_prefix) == expected


def test_tutorial_transform_single_object(lab, iris):
    data, truth = iris
    uri = lab.put("iris/processed-input-data/test.csv", data)
    job = lab.transform("test-knn", "iris-knn", uri, "s3://bucket/iris/results")
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert job["TransformJobArn"] == "arn:aws:sagemaker:us-east-2:000000000000:transform-job/test-knn"
    assert job["ModelName"] == "iris-knn" and job["MaxPayloadInMB"] == 6
    assert job["TransformStartTime"] <= job["TransformEndTime"]
    assert job["TransformStartTime"].tzinfo is not None
    predictions = _predictions(lab.get("iris/results/test.csv.out"))
    assert len(predictions) == len(truth)
    assert (np.array(predictions) == truth).mean() >= 0.95


def test_prefix_maps_every_object(lab, iris):
    data, _ = iris
    lines = data.splitlines(keepends=True)
    lab.put("in/a.csv", b"".join(lines[:10]))
    lab.put("in/sub/b.csv", b"".join(lines[10:]))
    lab.put("elsewhere/c.csv", b"".join(lines[:3]))
    job = lab.transform("prefix-job", "iris-knn", "s3://bucket/in/", "s3://bucket/out")
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert lab.store.list_keys("bucket", "out/") == ["out/a.csv.out", "out/sub/b.csv.out"]
    assert len(_predictions(lab.get("out/a.csv.out"))) == 10


def test_output_order_is_input_order(lab, iris):
    data, truth = iris
    uri = lab.put("order/test.csv", data)
    lab.transform(
        "ordered", "iris-knn", uri, "s3://bucket/order-out", BatchStrategy="SingleRecord", AssembleWith="Line"
    )
    docs = lab.get("order-out/test.csv.out").decode().splitlines()
    assert len(docs) == len(truth)  # one JSON document per mini-batch (here: per record), one per line
    predicted = [json.loads(doc)["predictions"][0]["predicted_label"] for doc in docs]
    assert (np.array(predicted) == truth).mean() >= 0.95


def test_assemble_none_concatenates_documents(lab, iris):
    data, _ = iris
    uri = lab.put("cat/test.csv", b"".join(data.splitlines(keepends=True)[:2]))
    lab.transform("concat", "iris-knn", uri, "s3://bucket/cat-out", BatchStrategy="SingleRecord")
    out = lab.get("cat-out/test.csv.out")
    assert out.count(b'{"predictions"') == 2 and b"}{" in out and b"\n" not in out


def test_jsonlines_and_verbose(lab, iris):
    data, truth = iris
    uri = lab.put("jl/test.csv", data)
    lab.transform("jsonl", "iris-knn", uri, "s3://bucket/jl-out", Accept="application/jsonlines")
    rows = [json.loads(line) for line in lab.get("jl-out/test.csv.out").decode().splitlines()]
    assert len(rows) == len(truth) and set(rows[0]) == {"predicted_label"}
    lab.transform("verbose", "iris-knn", uri, "s3://bucket/v-out", Accept="application/json; verbose=true")
    entry = json.loads(lab.get("v-out/test.csv.out"))["predictions"][0]
    assert set(entry) == {"predicted_label", "distances", "labels"}
    assert len(entry["distances"]) == 3 and entry["distances"] == sorted(entry["distances"])
    assert entry["predicted_label"] in entry["labels"]


def test_json_and_jsonlines_requests(lab, iris):
    data, truth = iris
    rows = [[float(v) for v in line.split(",")] for line in data.decode().splitlines()]
    uri = lab.put("jreq/test.jsonl", "".join(json.dumps({"features": r}) + "\n" for r in rows).encode())
    job = lab.transform(
        "jsonl-in", "iris-knn", uri, "s3://bucket/jreq-out", ContentType="application/jsonlines"
    )
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert len(_predictions(lab.get("jreq-out/test.jsonl.out"))) == len(truth)
    uri = lab.put("jdoc/test.json", json.dumps({"instances": [{"features": r} for r in rows]}).encode())
    job = lab.transform(
        "json-in", "iris-knn", uri, "s3://bucket/jdoc-out", ContentType="application/json", SplitType="None"
    )
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert len(_predictions(lab.get("jdoc-out/test.json.out"))) == len(truth)


def test_gzip_input(lab, iris):
    data, truth = iris
    uri = lab.put("gz/test.csv.gz", gzip.compress(data))
    job = lab.transform("gz", "iris-knn", uri, "s3://bucket/gz-out", CompressionType="Gzip")
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert len(_predictions(lab.get("gz-out/test.csv.gz.out"))) == len(truth)


def test_bad_row_fails_and_writes_nothing(lab, iris, tmp_path):
    data, _ = iris
    lines = data.splitlines(keepends=True)
    uri = lab.put("bad/test.csv", b"".join(lines[:5]) + b"5.1,abc,1.4,0.2\n" + b"".join(lines[5:]))
    job = lab.transform("bad-row", "iris-knn", uri, "s3://bucket/bad-out", BatchStrategy="SingleRecord")
    assert job["TransformJobStatus"] == "Failed"
    assert job["FailureReason"] == (
        "ClientError: Unable to parse the request: "
        "row 6 of s3://bucket/bad/test.csv: column 2 value 'abc' is not a number"
    )
    assert not lab.store.exists("bucket", "bad-out/test.csv.out")
    assert not [p for p in (tmp_path / "s3").rglob(".tmp-*")]


def test_wrong_feature_count_fails(lab, iris):
    uri = lab.put("wide/test.csv", b"1,2,3,4,5\n")
    job = lab.transform("wide", "iris-knn", uri, "s3://bucket/wide-out")
    assert job["FailureReason"] == (
        "ClientError: Unable to parse the request: "
        "row 1 of s3://bucket/wide/test.csv has 5 columns, expected 4"
    )


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (
            {"SplitType": "TFRecord"},
            "ClientError: SplitType TFRecord is not supported by the embedded engine; use Line, RecordIO "
            "or None",
        ),
        (
            {"ContentType": "application/x-image"},
            "ClientError: ContentType application/x-image is not supported by the embedded engine",
        ),
        (
            {"Accept": "text/csv"},
            "ClientError: accept type 'text/csv' is not supported by the k-NN algorithm",
        ),
        ({"DataProcessing": {"JoinSource": "Input"}}, "ClientError: DataProcessing is not supported"),
    ],
)
def test_unsupported_options_fail_clearly(lab, iris, options, reason):
    uri = lab.put("opt/test.csv", iris[0])
    job = lab.transform("opt", "iris-knn", uri, "s3://bucket/opt-out", **options)
    assert job["TransformJobStatus"] == "Failed" and job["FailureReason"].startswith(reason)


def test_no_input_objects(lab, iris):
    job = lab.transform("empty", "iris-knn", "s3://bucket/nothing/", "s3://bucket/x")
    assert job["FailureReason"].startswith(
        'ClientError: No S3 objects found under S3 URL "s3://bucket/nothing/"'
    )


def test_model_loaded_once_per_job(lab, iris, monkeypatch):
    calls = []
    real = knn.load_model

    def counting(data):
        calls.append(1)
        return real(data)

    monkeypatch.setattr(transform_module.knn, "load_model", counting)
    lab.put("many/a.csv", iris[0])
    lab.put("many/b.csv", iris[0])
    job = lab.transform(
        "many", "iris-knn", "s3://bucket/many/", "s3://bucket/many-out", BatchStrategy="SingleRecord"
    )
    assert job["TransformJobStatus"] == "Completed" and len(calls) == 1


def test_duplicate_transform_name(lab, iris):
    from botocore.exceptions import ClientError

    uri = lab.put("dup/test.csv", iris[0])
    lab.transform("dup", "iris-knn", uri, "s3://bucket/dup-out")
    with pytest.raises(ClientError) as excinfo:
        lab.transform("dup", "iris-knn", uri, "s3://bucket/dup-out")
    assert excinfo.value.response["Error"]["Code"] == "ResourceInUse"
    assert "a transform job with this name already exists" in excinfo.value.response["Error"]["Message"]
    listing = lab.client.list_transform_jobs()
    assert [s["TransformJobName"] for s in listing["TransformJobSummaries"]] == ["dup"]


# ---- payload sizes, one-document streaming, multi-object failures ------------------------------------


def _repeated(data: bytes, min_bytes: int) -> tuple[bytes, int]:
    """``data`` repeated to at least ``min_bytes`` bytes, and the number of repeats."""
    times = min_bytes // len(data) + 1
    return data * times, times


def test_max_payload_splits_into_documents_in_input_order(lab, iris):
    data, times = _repeated(iris[0], 1_300_000)  # ~1.3 MB of text/csv: two 1 MB payloads
    uri = lab.put("big/test.csv", data)
    job = lab.transform("big", "iris-knn", uri, "s3://bucket/big-out", MaxPayloadInMB=1, AssembleWith="Line")
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    docs = lab.get("big-out/test.csv.out").decode().splitlines()
    assert len(docs) == 2
    multi = [p["predicted_label"] for doc in docs for p in json.loads(doc)["predictions"]]
    lab.transform("big-one", "iris-knn", uri, "s3://bucket/big-one", MaxPayloadInMB=0)
    single = _predictions(lab.get("big-one/test.csv.out"))  # no limit: one document
    lab.transform("big-each", "iris-knn", lab.put("each/test.csv", iris[0]), "s3://bucket/each-out")
    once = _predictions(lab.get("each-out/test.csv.out"))
    assert multi == single == once * times


def test_no_payload_limit_streams_one_document_in_chunks(lab, iris, monkeypatch):
    from iris_sagemaker.local_sagemaker import formats

    monkeypatch.setattr(formats, "STREAM_CHUNK_BYTES", 64)
    data, truth = iris
    uri = lab.put("nolimit/test.csv", data)
    for name, accept in (("nl-json", "application/json"), ("nl-jsonl", "application/jsonlines")):
        job = lab.transform(name, "iris-knn", uri, f"s3://bucket/{name}", MaxPayloadInMB=0, Accept=accept)
        assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert len(_predictions(lab.get("nl-json/test.csv.out"))) == len(truth)
    lines = lab.get("nl-jsonl/test.csv.out").decode().splitlines()
    assert [json.loads(line)["predicted_label"] for line in lines] == _predictions(
        lab.get("nl-json/test.csv.out")
    )
    job = lab.transform("nl-none", "iris-knn", uri, "s3://bucket/nl-none", MaxPayloadInMB=0, SplitType="None")
    assert _predictions(lab.get("nl-none/test.csv.out")) == _predictions(lab.get("nl-json/test.csv.out"))


def test_single_record_without_payload_limit_is_one_document_per_record(lab, iris):
    data, truth = iris
    uri = lab.put("sr0/test.csv", data)
    job = lab.transform(
        "sr0", "iris-knn", uri, "s3://bucket/sr0-out", MaxPayloadInMB=0, BatchStrategy="SingleRecord"
    )
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert lab.get("sr0-out/test.csv.out").count(b'{"predictions"') == len(truth)


def test_split_none_object_larger_than_the_payload_limit_fails(lab, iris):
    uri = lab.put("whole/test.csv", _repeated(iris[0], 1_100_000)[0])
    job = lab.transform("whole", "iris-knn", uri, "s3://bucket/whole-out", SplitType="None", MaxPayloadInMB=1)
    assert job["TransformJobStatus"] == "Failed"
    assert job["FailureReason"] == (
        "ClientError: s3://bucket/whole/test.csv: the object is larger than MaxPayloadInMB (1048576 bytes) "
        "and SplitType is None; use SplitType Line or a larger MaxPayloadInMB"
    )
    assert not lab.store.exists("bucket", "whole-out/test.csv.out")


def test_split_none_csv_within_the_limit_is_one_request(lab, iris):
    data, truth = iris
    uri = lab.put("whole-ok/test.csv", data)
    job = lab.transform("whole-ok", "iris-knn", uri, "s3://bucket/whole-ok-out", SplitType="None")
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert len(_predictions(lab.get("whole-ok-out/test.csv.out"))) == len(truth)


def test_bad_row_in_a_later_chunk_names_its_line(lab, iris, monkeypatch):
    from iris_sagemaker.local_sagemaker import formats

    monkeypatch.setattr(formats, "STREAM_CHUNK_BYTES", 40)
    lines = iris[0].splitlines(keepends=True)
    data = b"".join(lines[:20]) + b"\n5.1,3.5,1.4\n" + b"".join(lines[20:])
    uri = lab.put("late/test.csv", data)
    job = lab.transform("late", "iris-knn", uri, "s3://bucket/late-out", MaxPayloadInMB=0)
    assert job["FailureReason"] == (
        "ClientError: Unable to parse the request: "
        "row 22 of s3://bucket/late/test.csv has 3 columns, expected 4"
    )
    assert not lab.store.exists("bucket", "late-out/test.csv.out")


def test_only_objects_that_fully_succeeded_get_an_out(lab, iris):
    lab.put("mixed/a.csv", iris[0])
    lab.put("mixed/b.csv", iris[0] + b"1,2\n")
    job = lab.transform("mixed", "iris-knn", "s3://bucket/mixed/", "s3://bucket/mixed-out")
    assert job["TransformJobStatus"] == "Failed"
    assert "row 46 of s3://bucket/mixed/b.csv has 2 columns" in job["FailureReason"]
    assert lab.store.list_keys("bucket", "mixed-out/") == ["mixed-out/a.csv.out"]


def test_jsonlines_in_jsonlines_verbose_out(lab, iris):
    data, truth = iris
    rows = [[float(v) for v in line.split(",")] for line in data.decode().splitlines()]
    uri = lab.put("jv/test.jsonl", "".join(json.dumps({"features": r}) + "\n" for r in rows).encode())
    job = lab.transform(
        "jv",
        "iris-knn",
        uri,
        "s3://bucket/jv-out",
        ContentType="application/jsonlines",
        Accept="application/jsonlines; verbose=true",
    )
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    entries = [json.loads(line) for line in lab.get("jv-out/test.jsonl.out").decode().splitlines()]
    assert len(entries) == len(truth)
    for entry in entries:
        assert set(entry) == {"predicted_label", "distances", "labels"}
        assert entry["distances"] == sorted(entry["distances"]) and len(entry["labels"]) == 3


def test_multi_record_assemble_line_puts_each_document_on_a_line(lab, iris):
    data, truth = iris
    uri = lab.put("ml/test.csv", data)
    job = lab.transform(
        "ml", "iris-knn", uri, "s3://bucket/ml-out", AssembleWith="Line", BatchStrategy="MultiRecord"
    )
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    out = lab.get("ml-out/test.csv.out")
    assert out.endswith(b"]}\n") and out.count(b"\n") == 1
    assert len(json.loads(out)["predictions"]) == len(truth)


def test_list_transform_jobs_filters(lab, iris):
    uri = lab.put("lt/test.csv", iris[0])
    lab.transform("list-ok", "iris-knn", uri, "s3://bucket/lt-out")
    lab.transform("list-bad", "iris-knn", "s3://bucket/nothing-here/", "s3://bucket/lt-out2")
    listing = lab.client.list_transform_jobs
    assert [s["TransformJobName"] for s in listing(StatusEquals="Failed")["TransformJobSummaries"]] == [
        "list-bad"
    ]
    assert [s["TransformJobName"] for s in listing(NameContains="OK")["TransformJobSummaries"]] == ["list-ok"]
    failed = listing(StatusEquals="Failed")["TransformJobSummaries"][0]
    assert failed["FailureReason"].startswith("ClientError: No S3 objects found")
    page = listing(MaxResults=1, SortBy="Name")
    assert [s["TransformJobName"] for s in page["TransformJobSummaries"]] == ["list-bad"]
    assert page["NextToken"]
