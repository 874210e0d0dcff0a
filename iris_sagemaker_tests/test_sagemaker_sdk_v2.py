"""The SageMaker Python SDK v2 as a real client: its own KNN estimator trains, deploys and predicts offline
against ``iris-sagemaker serve``, with its RecordIO-protobuf, its manifest and its polling, unmodified.

These tests run in .venv-sdk2 (``make sdk-test``, part of ``make test``): v2 cannot share .venv with
Airflow 2.11 (sagemaker 2.257 needs packaging<25, Airflow 2.11 packaging>=25), nor .venv-sdk with v3 (both
import as ``sagemaker``). v3 has its own tests: test_sagemaker_sdk_v3.py.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from iris_sagemaker_tests.sdk_support import ROLE, brute_force_knn, iris, sdk_major_version

if sdk_major_version() != 2:  # absent, or v3 (which imports as `sagemaker` too)
    pytest.skip("the SageMaker Python SDK v2 runs in .venv-sdk2: make sdk-test", allow_module_level=True)

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
import boto3
import sagemaker
from botocore.exceptions import ClientError
from sagemaker.amazon import common as sdk_common
from sagemaker.amazon import record_pb2 as sdk_record_pb2

from iris_sagemaker.core.algorithm_images import KNN_REGISTRY_ACCOUNTS, knn_image_uri
from iris_sagemaker.local_sagemaker import recordio
from iris_sagemaker.serve.process import ServerProcess, start_server

pytestmark = [pytest.mark.sdk, pytest.mark.server, pytest.mark.slow]

PACKAGE = Path(recordio.__file__).parent


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerProcess]:
    running = start_server(tmp_path / "root")
    try:
        for name, value in running.client_env().items():
            monkeypatch.setenv(name, value)
        yield running
    finally:
        running.stop()


def test_the_sdk_knn_estimator_trains_deploys_and_predicts_offline(server, capsys) -> None:
    train_x, train_y, test_x, test_y = iris()
    session = sagemaker.Session()
    assert session.default_bucket() == "sagemaker-us-east-2-000000000000"  # no STS call to AWS
    knn = sagemaker.KNN(
        role=ROLE,
        instance_count=1,
        instance_type="ml.m5.large",
        k=3,
        sample_size=len(train_x),
        predictor_type="classifier",
        sagemaker_session=session,
    )
    records = knn.record_set(train_x, labels=train_y)
    assert records.s3_data_type == "ManifestFile" and records.s3_data.endswith("/.amazon.manifest")

    knn.fit(records, logs=True)
    printed = capsys.readouterr().out
    job = knn.latest_training_job.describe()
    assert job["TrainingJobStatus"] == "Completed"
    channel = job["InputDataConfig"][0]
    assert channel["DataSource"]["S3DataSource"]["S3DataType"] == "ManifestFile"
    assert channel["DataSource"]["S3DataSource"]["S3DataDistributionType"] == "ShardedByS3Key"
    assert "ContentType" not in channel  # k-NN's default: RecordIO-protobuf
    shard = records.s3_data.rsplit("/", 1)[0] + "/matrix_0.pbr"
    assert f"reading {shard} (channel train, application/x-recordio-protobuf)" in printed  # the job's log
    assert f"read {len(train_x)} rows (sampled {len(train_x)})" in printed
    assert "Completed - Training job completed" in printed
    # What a notebook reopened later does: attach to the job by name (DescribeTrainingJob, then ListTags).
    attached = sagemaker.KNN.attach(knn.latest_training_job.name, sagemaker_session=session)
    assert (attached.k, attached.predictor_type) == (3, "classifier")
    assert attached.model_data == job["ModelArtifacts"]["S3ModelArtifacts"]

    predictor = knn.deploy(initial_instance_count=1, instance_type="ml.m5.large")
    try:
        answers = predictor.predict(test_x)
        assert all(isinstance(a, sdk_record_pb2.Record) for a in answers)
        predicted = np.array([a.label["predicted_label"].float32_tensor.values[0] for a in answers])
        np.testing.assert_array_equal(predicted, brute_force_knn(train_x, train_y, test_x, k=3))
        assert np.mean(predicted == test_y) > 0.9
    finally:
        predictor.delete_endpoint()
    client = boto3.client("sagemaker")
    for call, name in (
        (client.describe_endpoint, {"EndpointName": predictor.endpoint_name}),
        (client.describe_endpoint_config, {"EndpointConfigName": predictor.endpoint_name}),
    ):
        with pytest.raises(ClientError) as raised:
            call(**name)
        assert raised.value.response["Error"]["Code"] == "ValidationException"


def test_a_bad_record_is_a_model_error_naming_it(server) -> None:
    """A request whose fourth record is not a Record message is refused naming that record (the three
    before it written by the SDK's own serializer, as float64 tensors), and the endpoint keeps serving."""
    train_x, train_y, test_x, _ = iris()
    session = sagemaker.Session()
    knn = sagemaker.KNN(
        ROLE,
        1,
        "ml.m5.large",
        k=3,
        sample_size=len(train_x),
        predictor_type="classifier",
        sagemaker_session=session,
    )
    knn.fit(knn.record_set(train_x, labels=train_y), logs=False)
    model = knn.create_model()
    model.name = "knn-bad-record"
    model.deploy(1, "ml.m5.large", endpoint_name="knn-bad-record", wait=False)
    client = boto3.client("sagemaker")
    client.get_waiter("endpoint_in_service").wait(
        EndpointName="knn-bad-record", WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
    runtime = boto3.client("sagemaker-runtime")
    body = io.BytesIO()
    sdk_common.write_numpy_to_dense_tensor(
        body, np.vstack([test_x[:2].astype(np.float64), [[1.0, 2.0, 3.0, 4.0]]])
    )
    bad = body.getvalue() + recordio.frame(b"\x08")  # a fourth record that is not a Record message
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(
            EndpointName="knn-bad-record", Body=bad, ContentType=recordio.RECORDIO, Accept=recordio.RECORDIO
        )
    error = raised.value.response
    assert error["Error"]["Code"] == "ModelError" and error["OriginalStatusCode"] == 400
    assert "record 4 of the request" in error["OriginalMessage"]
    fine = runtime.invoke_endpoint(
        EndpointName="knn-bad-record",
        Body=body.getvalue(),
        ContentType=recordio.RECORDIO,
        Accept=recordio.RECORDIO,
    )
    assert len(list(sdk_common.read_records(io.BytesIO(fine["Body"].read())))) == 3
    client.delete_endpoint(EndpointName="knn-bad-record")


# ---- the format, against the SDK's own implementation -----------------------------------------------------


def test_our_records_and_the_sdks_read_each_other() -> None:
    train_x, train_y, _, _ = iris()
    sdk_bytes = io.BytesIO()
    sdk_common.write_numpy_to_dense_tensor(sdk_bytes, train_x, train_y)
    frames = list(recordio.iter_frames(io.BytesIO(sdk_bytes.getvalue()), "sdk"))
    features, labels = recordio.decode_records(frames, 4, "sdk", labelled=True)
    np.testing.assert_array_equal(features, train_x)
    np.testing.assert_array_equal(labels, train_y)
    ours = list(sdk_common.read_records(io.BytesIO(recordio.encode_dense(train_x, train_y))))
    assert [list(r.features["values"].float32_tensor.values) for r in ours] == train_x.tolist()
    assert [r.label["values"].float32_tensor.values[0] for r in ours] == train_y.tolist()


def test_our_messages_equal_the_sdks_field_for_field() -> None:
    ours = recordio.Record.DESCRIPTOR.file
    theirs = sdk_record_pb2.DESCRIPTOR
    assert ours.package == theirs.package == "aialgs.data"

    def shape(file) -> dict:
        return {
            name: sorted((f.name, f.number, f.type, f.is_repeated) for f in message.fields)
            for name, message in file.message_types_by_name.items()
        }

    assert shape(ours) == shape(theirs)


def test_the_committed_descriptor_set_is_generated_from_record_proto(tmp_path: Path) -> None:
    out = tmp_path / "record.desc"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PACKAGE}",
            f"--descriptor_set_out={out}",
            "record.proto",
        ],
        check=True,
    )
    assert out.read_bytes() == (PACKAGE / "record.desc").read_bytes(), "run `make proto` and commit"


def test_our_knn_images_equal_the_sdks() -> None:
    from sagemaker import image_uris

    for region in sorted(KNN_REGISTRY_ACCOUNTS):
        assert image_uris.retrieve("knn", region) == knn_image_uri(region), region


def test_the_sdks_sparse_records_are_refused_naming_the_record() -> None:
    from scipy import sparse

    matrix = sparse.csr_matrix(np.array([[1.0, 0.0, 0.0, 2.0], [0.0, 3.0, 0.0, 0.0]], np.float32))
    body = io.BytesIO()
    sdk_common.write_spmatrix_to_sparse_tensor(body, matrix, np.array([0.0, 1.0], np.float32))
    frames = list(recordio.iter_frames(io.BytesIO(body.getvalue()), "s3://b/sparse.pbr"))
    with pytest.raises(recordio.FormatError, match=r"record 1 of s3://b/sparse.pbr: .* is a sparse tensor"):
        recordio.decode_records(frames, 4, "s3://b/sparse.pbr", labelled=True)
