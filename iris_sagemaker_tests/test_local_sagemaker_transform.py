"""Batch transform: output naming, formats, assembly, failures, streaming."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from iris_sagemaker.local_sagemaker import knn
from iris_sagemaker.local_sagemaker import transform as transform_module
from iris_sagemaker.local_sagemaker.testing import Lab, iris_like, to_csv
from iris_sagemaker.local_sagemaker.transform import output_key


@pytest.fixture
def lab(tmp_path):
    return Lab(tmp_path)


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
            {"SplitType": "RecordIO"},
            "ClientError: SplitType RecordIO is not supported by the embedded engine",
        ),
        (
            {"ContentType": "application/x-recordio-protobuf"},
            "ClientError: ContentType application/x-recordio",
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
