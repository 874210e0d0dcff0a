"""RecordIO-protobuf and manifest files in the embedded engine: the format, training, batch transform and
real-time inference on it, and every refusal naming the record or entry at fault."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
from botocore.exceptions import ClientError

from iris_sagemaker.local_sagemaker import recordio
from iris_sagemaker.local_sagemaker.cloudwatch import LocalLogsClient
from iris_sagemaker.local_sagemaker.errors import FormatError
from iris_sagemaker.local_sagemaker.recordio import RECORDIO, Record, encode_dense, frame, iter_frames
from iris_sagemaker.local_sagemaker.runtime import LocalSageMakerRuntimeClient
from iris_sagemaker.local_sagemaker.testing import Lab, iris_like, to_csv, training_request, wait_for


def _decode(data: bytes, feature_dim: int = 4, labelled: bool = True):
    frames = list(iter_frames(io.BytesIO(data), "s3://b/x.pbr"))
    return recordio.decode_records(frames, feature_dim, "s3://b/x.pbr", labelled)


def _record(**tensors: tuple[str, str, list]) -> bytes:
    """A framed record; ``tensors`` maps "features"/"label" to (key, tensor kind, values)."""
    record = Record()
    for member, (key, kind, values) in tensors.items():
        getattr(getattr(record, member)[key], kind).values.extend(values)
    return frame(record.SerializeToString())


# ---- the format ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_rows_round_trip(dtype) -> None:
    labels, features = iris_like(rows_per_class=4)
    data = encode_dense(features.astype(dtype), labels)
    assert len(data) % 4 == 0 and struct.unpack_from("<I", data)[0] == 0xCED7230A
    decoded, decoded_labels = _decode(data)
    np.testing.assert_array_equal(decoded, features.astype(dtype).astype(np.float64))
    np.testing.assert_array_equal(decoded_labels, labels)


def test_int32_tensors_and_a_last_frame_without_padding_are_read() -> None:
    data = _record(features=("values", "int32_tensor", [1, 2, 3]), label=("values", "int32_tensor", [2]))
    record = Record()
    record.features["values"].float64_tensor.values.extend([4.0, 5.0, 6.0])
    record.uid = "r"
    record.label["values"].float64_tensor.values.append(1.0)
    body = record.SerializeToString()
    unpadded = struct.pack("<II", 0xCED7230A, len(body)) + body
    assert len(body) % 4  # the case under test: padding really is missing
    features, labels = _decode(data + unpadded, feature_dim=3)
    assert features.tolist() == [[1, 2, 3], [4, 5, 6]] and labels.tolist() == [2, 1]


def test_records_are_read_across_chunk_boundaries(monkeypatch) -> None:
    monkeypatch.setattr(recordio, "_READ_CHUNK", 7)  # every frame straddles reads
    labels, features = iris_like(rows_per_class=20)
    frames = list(iter_frames(io.BytesIO(encode_dense(features, labels)), "x"))
    assert [f.number for f in frames] == list(range(1, 61))
    assert frames[1].offset == 8 + len(frames[0].data) + (-len(frames[0].data) % 4)
    decoded, _ = recordio.decode_records(frames, 4, "x", labelled=True)
    np.testing.assert_array_equal(decoded, features)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("labelled", [True, False])
@pytest.mark.parametrize("d", [1, 4, 7])
def test_one_parse_per_block_reads_what_record_by_record_reads(dtype, labelled, d) -> None:
    rng = np.random.default_rng(d)
    features = rng.normal(size=(300, d)).astype(dtype)
    labels = rng.integers(0, 3, 300).astype(dtype)
    data = encode_dense(features, labels if labelled else None)
    [block] = recordio.iter_frame_blocks(io.BytesIO(data), "x")
    assert len(block) >= recordio.BULK_RECORDS
    assert recordio._decode_uniform(block, d, labelled) is not None  # the one-parse path
    got_features, got_labels = recordio.decode_block(block, d, "x", labelled)
    want_features, want_labels = recordio.decode_records(block.frames(), d, "x", labelled)
    assert got_features.dtype == np.float32
    np.testing.assert_array_equal(got_features, want_features.astype(np.float32))
    np.testing.assert_array_equal(got_features, features.astype(np.float32))
    if labelled:
        np.testing.assert_array_equal(got_labels, want_labels.astype(np.float32))
    else:
        assert got_labels is None


def test_a_record_unlike_its_block_is_still_read_or_named() -> None:
    """Equal lengths are not enough: a record that differs from the first one's layout anywhere but in
    its values sends the block record by record, which reads it (a uid, a float64 tensor) or names it."""
    labels, features = iris_like(rows_per_class=10)
    good = encode_dense(features, labels)
    assert len(features) >= recordio.BULK_RECORDS
    odd = Record()
    odd.features["values"].float64_tensor.values.extend([1.0, 2.0, 3.0, 4.0])
    odd.label["values"].float64_tensor.values.append(1.0)
    odd.uid = "x"
    decoded, decoded_labels = _decode(good[:120] + frame(odd.SerializeToString()) + good[120:])
    assert decoded[2].tolist() == [1, 2, 3, 4] and decoded_labels[2] == 1 and len(decoded) == 31
    # Same length as its neighbours, but the features' key is not "values": record 3 is named.
    renamed = _record(
        features=("valuez", "float32_tensor", [1, 2, 3, 4]), label=("values", "float32_tensor", [0])
    )
    assert len(renamed) == 60 == len(good) // 30
    with pytest.raises(FormatError, match=r"record 3 of s3://b/x.pbr has no features\['values'\]"):
        _decode(good[:120] + renamed + good[120:])
    nan = encode_dense(np.where(np.arange(30)[:, None] == 6, np.nan, features), labels)
    with pytest.raises(FormatError, match=r"record 7 of s3://b/x\.pbr holds a value that is not a finite"):
        _decode(nan)


def test_frames_with_padding_are_read_across_chunk_boundaries(monkeypatch) -> None:
    monkeypatch.setattr(recordio, "_READ_CHUNK", 5)  # reads end inside headers, records and padding
    records = []
    for i in range(40):
        record = Record()
        record.features["values"].float32_tensor.values.extend([float(i), 1.0, 2.0, 3.0])
        record.label["values"].float32_tensor.values.append(i % 3)
        record.uid = "u" * (i % 5)  # lengths 52..56: padding of 0 to 3 bytes
        records.append(record.SerializeToString())
    data = b"".join(frame(r) for r in records)
    frames = list(iter_frames(io.BytesIO(data), "x"))
    assert [f.data for f in frames] == records
    features, labels = recordio.decode_records(frames, 4, "x", labelled=True)
    assert features[:, 0].tolist() == list(range(40)) and labels.tolist() == [i % 3 for i in range(40)]
    # A read that ends right after a record, before its padding: the padding is skipped in the next read.
    monkeypatch.setattr(recordio, "_READ_CHUNK", 8 + len(records[1]))
    assert len(records[1]) % 4 and [f.data for f in iter_frames(io.BytesIO(frame(records[1]) * 3), "x")] == [
        records[1]
    ] * 3


def _good(n: int = 3) -> bytes:
    labels, features = iris_like(rows_per_class=1)
    return encode_dense(features[:n], labels[:n])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_good(2) + b"\x01\x02\x03\x04" + _good(1), "record 3 of s3://b/x.pbr (byte "),
        (_good(2) + b"\x01\x02\x03\x04" + _good(1), "does not start with the RecordIO magic number"),
        (_good(1) + b"\x0a\x23", "record 2 of s3://b/x.pbr (byte "),
        (_good(1) + b"\x0a\x23", "ends 2 bytes into a 8-byte RecordIO header"),
        (_good(1)[:-9], "its header announces"),
        (struct.pack("<II", 0xCED7230A, (1 << 29) | 4) + b"abcd", "multi-part RecordIO record"),
        (frame(b"\xff\xff\xff"), "record 1 of s3://b/x.pbr (byte 0) is not an aialgs.data.Record"),
        (
            _record(
                features=("values", "float32_tensor", [1, 2, 3]), label=("values", "float32_tensor", [0])
            ),
            "record 1 of s3://b/x.pbr has 3 features, expected feature_dim=4",
        ),
        (
            _good(1)
            + _record(
                features=("values", "float32_tensor", [1, float("nan"), 3, 4]),
                label=("values", "float32_tensor", [0]),
            ),
            "record 2 of s3://b/x.pbr holds a value that is not a finite number",
        ),
        (
            _record(
                features=("values", "float32_tensor", [1, 2, 3, 4]),
                label=("values", "float32_tensor", [float("inf")]),
            ),
            "record 1 of s3://b/x.pbr holds a value that is not a finite number",
        ),
        (
            _record(features=("data", "float32_tensor", [1, 2, 3, 4])),
            "has no features['values'] (its features keys: 'data')",
        ),
        (_record(features=("values", "float32_tensor", [1, 2, 3, 4])), "has no label['values']"),
        (
            _record(
                features=("values", "float32_tensor", [1, 2, 3, 4]),
                label=("values", "float32_tensor", [1, 2]),
            ),
            "has 2 values in label['values'], expected one",
        ),
    ],
)
def test_bad_records_are_named(data: bytes, message: str) -> None:
    with pytest.raises(FormatError) as raised:
        _decode(data)
    assert message in str(raised.value)


def test_sparse_and_bytes_values_are_refused_clearly() -> None:
    record = Record()
    tensor = record.features["values"].float32_tensor
    tensor.values.extend([1.0, 2.0, 3.0, 4.0])
    tensor.keys.extend([0, 1, 2, 3])
    tensor.shape.append(4)
    record.label["values"].float32_tensor.values.append(0.0)
    with pytest.raises(
        FormatError, match=r"record 1 .* is a sparse tensor \(keys are set\).*dense tensors only"
    ):
        _decode(frame(record.SerializeToString()))
    record = Record()
    record.features["values"].bytes.value.append(b"1,2,3,4")
    with pytest.raises(FormatError, match=r"features\['values'\] holds bytes; k-NN reads a Float32"):
        _decode(frame(record.SerializeToString()), labelled=False)


def test_predictions_encode_as_label_tensors() -> None:
    predicted = np.array([2.0, 0.0, 2.0], np.float32)
    distances = np.array([[0.1, 0.5], [0.2, 0.3], [0.0, 0.4]], np.float32)
    labels = np.array([[2, 1], [0, 0], [2, 2]], np.float32)
    plain = recordio.read_predictions(recordio.encode_predictions(predicted, distances, labels, False))
    assert plain == [{"predicted_label": [2.0]}, {"predicted_label": [0.0]}, {"predicted_label": [2.0]}]
    verbose = recordio.read_predictions(recordio.encode_predictions(predicted, distances, labels, True))
    assert verbose[1] == {"predicted_label": [0.0], "distances": pytest.approx([0.2, 0.3]), "labels": [0, 0]}


# ---- the SDK's training request: a manifest of RecordIO shards, no ContentType --------------------------


def _manifest_request(lab: Lab, name: str, entries: list, **channel: object) -> dict:
    """CreateTrainingJob as the SDK's KNN.fit sends it: a ManifestFile channel, ShardedByS3Key, no
    ContentType."""
    uri = lab.put(f"{name}/.amazon.manifest", json.dumps(entries).encode())
    request = training_request(name, uri, f"s3://{lab.bucket}/out")
    source = request["InputDataConfig"][0]["DataSource"]["S3DataSource"]
    source.update(S3DataType="ManifestFile", S3DataDistributionType="ShardedByS3Key")
    del request["InputDataConfig"][0]["ContentType"]
    request["InputDataConfig"][0].update(channel)
    return request


def _shards(lab: Lab, name: str, labels: np.ndarray, features: np.ndarray, shards: int = 3) -> list:
    entries: list = [{"prefix": f"s3://{lab.bucket}/{name}/"}]
    for i, (y, x) in enumerate(
        zip(np.array_split(labels, shards), np.array_split(features, shards), strict=True)
    ):
        lab.put(f"{name}/matrix_{i}.pbr", encode_dense(x.astype(np.float64), y))
        entries.append(f"matrix_{i}.pbr")
    return entries


def _job_log(lab: Lab, group: str, job: str) -> str:
    """The job's log as CloudWatch Logs serves it."""
    logs = LocalLogsClient(lab.client.root)
    streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=job + "/")["logStreams"]
    lines = []
    for stream in streams:
        events = logs.get_log_events(
            logGroupName=group, logStreamName=stream["logStreamName"], startFromHead=True
        )
        lines += [event["message"] for event in events["events"]]
    return "\n".join(lines)


def _train(lab: Lab, request: dict) -> dict:
    lab.client.create_training_job(**request)
    return lab.wait_training(request["TrainingJobName"])


def test_training_on_recordio_shards_listed_by_a_manifest_equals_training_on_csv(lab: Lab) -> None:
    labels, features = iris_like()
    csv_job = lab.train("csv", train=to_csv(labels[:120], features[:120]))
    lab.model("csv-model", csv_job)
    job = _train(lab, _manifest_request(lab, "rio", _shards(lab, "rio", labels[:120], features[:120])))
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    lab.model("rio-model", job)
    held_out = lab.put("held/x.pbr", encode_dense(features[120:]))
    for model in ("csv-model", "rio-model"):
        done = lab.transform(
            f"score-{model}",
            model,
            held_out,
            f"s3://{lab.bucket}/scored/{model}",
            ContentType=RECORDIO,
            SplitType="RecordIO",
            Accept="application/jsonlines",
        )
        assert done["TransformJobStatus"] == "Completed", done.get("FailureReason")
    csv_scores = lab.get("scored/csv-model/x.pbr.out")
    assert lab.get("scored/rio-model/x.pbr.out") == csv_scores
    predicted = [json.loads(line)["predicted_label"] for line in csv_scores.splitlines()]
    assert np.mean(np.array(predicted) == labels[120:]) > 0.9
    log = _job_log(lab, "/aws/sagemaker/TrainingJobs", "rio")
    assert "matrix_2.pbr (channel train, application/x-recordio-protobuf)" in log


def test_a_recordio_test_channel_reports_the_test_metric(lab: Lab) -> None:
    labels, features = iris_like()
    request = _manifest_request(lab, "with-test", _shards(lab, "with-test", labels[:100], features[:100]))
    test_uri = lab.put("with-test/test/t.pbr", encode_dense(features[100:], labels[100:]))
    request["InputDataConfig"].append(
        {"ChannelName": "test", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": test_uri}}}
    )
    job = _train(lab, request)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    metrics = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
    assert metrics["test:accuracy"] > 0.9


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        ("not a list", 'must be a JSON list whose first element is {"prefix"'),
        ([{"prefix": "s3://bucket/p/"}], "lists no objects"),
        ([{"prefix": "s3://bucket/p/"}, "../../etc/passwd"], "element 2 of the manifest file"),
        ([{"prefix": "s3://bucket/p/"}, 7], "(7) is not a key relative to s3://bucket/p/"),
        (
            [{"prefix": "s3://bucket/p/"}, "missing.pbr"],
            "lists s3://bucket/p/missing.pbr, which does not exist",
        ),
        ([{"prefix": "http://example.com/"}, "a"], "is not usable by the embedded engine"),
    ],
)
def test_bad_manifests_fail_the_job_naming_the_entry(lab: Lab, entries, reason: str) -> None:
    job = _train(lab, _manifest_request(lab, "bad-manifest", entries))
    assert job["TrainingJobStatus"] == "Failed"
    assert reason in job["FailureReason"] and job["FailureReason"].startswith("ClientError: ")


def test_unsupported_data_types_and_content_types_fail_clearly(lab: Lab) -> None:
    labels, features = iris_like(rows_per_class=5)
    request = _manifest_request(lab, "aug", _shards(lab, "aug", labels, features, shards=1))
    request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3DataType"] = "AugmentedManifestFile"
    job = _train(lab, request)
    assert "S3DataType AugmentedManifestFile is not supported by the embedded engine" in job["FailureReason"]
    request = _manifest_request(
        lab, "json", _shards(lab, "json", labels, features, shards=1), ContentType="application/json"
    )
    job = _train(lab, request)
    assert "content type application/json is not supported by k-NN" in job["FailureReason"]


def test_a_bad_training_record_fails_the_job_naming_it(lab: Lab) -> None:
    labels, features = iris_like(rows_per_class=5)
    entries = _shards(lab, "bad-rec", labels, features, shards=2)
    lab.put("bad-rec/matrix_1.pbr", encode_dense(features[:3], labels[:3]) + b"\x00" * 8)
    job = _train(lab, _manifest_request(lab, "bad-rec", entries))
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith(
        "ClientError: Unable to read the training data: record 4 of s3://bucket/bad-rec/matrix_1.pbr (byte "
    )
    assert not lab.store.list_keys("bucket", "out/bad-rec")  # no model artifact


# ---- batch transform on RecordIO ------------------------------------------------------------------------


@pytest.fixture
def iris_model(lab: Lab) -> tuple[np.ndarray, np.ndarray]:
    labels, features = iris_like()
    lab.model("iris-knn", lab.train(train=to_csv(labels[:105], features[:105])))
    return features[105:], labels[105:]


@pytest.mark.parametrize(
    ("options", "payloads"),
    [
        ({"MaxPayloadInMB": 6}, 1),
        ({"MaxPayloadInMB": 0}, 1),
        ({"BatchStrategy": "SingleRecord"}, 45),
    ],
)
def test_recordio_transform_writes_one_response_record_per_row(
    lab: Lab, iris_model, options, payloads
) -> None:
    features, truth = iris_model
    uri = lab.put("rio/in/test.pbr", encode_dense(features))
    done = lab.transform(
        "rio-t",
        "iris-knn",
        uri,
        "s3://bucket/rio/out",
        ContentType=RECORDIO,
        SplitType="RecordIO",
        Accept=RECORDIO + "; verbose=true",
        **options,
    )
    assert done["TransformJobStatus"] == "Completed", done.get("FailureReason")
    records = recordio.read_predictions(lab.get("rio/out/test.pbr.out"))
    assert len(records) == len(truth)
    assert all(len(r["distances"]) == 3 and len(r["labels"]) == 3 for r in records)
    predicted = np.array([r["predicted_label"][0] for r in records])
    csv_uri = lab.put("csv/in/test.csv", to_csv(features))
    lab.transform("csv-t", "iris-knn", csv_uri, "s3://bucket/csv/out", Accept="application/jsonlines")
    expected = [json.loads(line)["predicted_label"] for line in lab.get("csv/out/test.csv.out").splitlines()]
    assert predicted.tolist() == expected
    assert f"({len(truth)} rows in {payloads} batches)" in _job_log(
        lab, "/aws/sagemaker/TransformJobs", "rio-t"
    )


def test_a_bad_record_fails_the_transform_and_writes_nothing(lab: Lab, iris_model) -> None:
    features, _ = iris_model
    bad = encode_dense(features[:5]) + _record(features=("values", "float32_tensor", [1.0, 2.0]))
    uri = lab.put("bad/in/x.pbr", bad)
    done = lab.transform(
        "bad-t",
        "iris-knn",
        uri,
        "s3://bucket/bad/out",
        ContentType=RECORDIO,
        SplitType="RecordIO",
        Accept=RECORDIO,
    )
    assert done["TransformJobStatus"] == "Failed"
    assert (
        "record 6 of s3://bucket/bad/in/x.pbr has 2 features, expected feature_dim=4" in done["FailureReason"]
    )
    assert lab.store.list_keys("bucket", "bad/out") == []


def test_split_type_must_match_the_content_type(lab: Lab, iris_model) -> None:
    features, _ = iris_model
    uri = lab.put("mismatch/x.csv", to_csv(features))
    done = lab.transform("mismatch", "iris-knn", uri, "s3://bucket/mismatch/out", SplitType="RecordIO")
    assert done["TransformJobStatus"] == "Failed"
    assert "SplitType RecordIO does not split text/csv input" in done["FailureReason"]


def test_a_payload_limit_smaller_than_a_record_is_named() -> None:
    from iris_sagemaker.local_sagemaker import transform

    blocks = recordio.iter_frame_blocks(io.BytesIO(frame(b"x" * 8) + frame(b"x" * 20)), "x")
    with pytest.raises(FormatError, match=r"record 2 is larger than MaxPayloadInMB \(24 bytes\)"):
        list(transform.record_payloads(blocks, False, 24))


# ---- real-time inference on RecordIO --------------------------------------------------------------------


def test_an_endpoint_answers_recordio_requests_and_survives_bad_ones(lab: Lab, iris_model) -> None:
    features, truth = iris_model
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": "iris-knn",
        "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large",
    }
    lab.client.create_endpoint_config(EndpointConfigName="cfg", ProductionVariants=[variant])
    lab.client.create_endpoint(EndpointName="ep", EndpointConfigName="cfg")
    wait_for(
        lambda: lab.client.describe_endpoint(EndpointName="ep"),
        "EndpointStatus",
        until=lambda r: r["EndpointStatus"] != "Creating",
    )
    runtime = LocalSageMakerRuntimeClient(sagemaker=lab.client)

    def invoke(body: bytes) -> dict:
        return runtime.invoke_endpoint(EndpointName="ep", Body=body, ContentType=RECORDIO, Accept=RECORDIO)

    response = invoke(encode_dense(features.astype(np.float64)))
    assert response["ContentType"] == RECORDIO
    predicted = [r["predicted_label"][0] for r in recordio.read_predictions(response["Body"].read())]
    assert np.mean(np.array(predicted) == truth) > 0.9
    with pytest.raises(ClientError) as raised:
        invoke(encode_dense(features[:2]) + b"junk")
    error = raised.value.response
    assert error["Error"]["Code"] == "ModelError" and error["OriginalStatusCode"] == 400
    assert "record 3 of the request" in error["OriginalMessage"]
    assert len(recordio.read_predictions(invoke(encode_dense(features[:1]))["Body"].read())) == 1
