"""``iris-sagemaker serve`` through the real clients: boto3 over HTTP, its waiters, its error parsing.

One server (a child process on a free loopback port, its own root) serves the module; it is stopped when
the module ends.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from botocore.exceptions import ClientError, WaiterError

from iris_sagemaker.core import specs
from iris_sagemaker.core.settings import PREDICTIONS_KEY, TEST_KEY
from iris_sagemaker.local_sagemaker.client import ACCOUNT_ID
from iris_sagemaker.local_sagemaker.testing import iris_like, model_request, to_csv, training_request
from iris_sagemaker.serve.process import ServerProcess, start_server
from iris_sagemaker.steps.log_tails import CloudWatchLogTail

from .serve_support import BUCKET, REGION, client, tutorial_settings, upload_tutorial_split, variant

pytestmark = [pytest.mark.server]

FAST = {"Delay": 0.2, "MaxAttempts": 150}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve-root")


@pytest.fixture(scope="module")
def server(root: Path, tmp_path_factory: pytest.TempPathFactory):
    cache = tmp_path_factory.mktemp("cache")
    proc = start_server(root, {"IRIS_SAGEMAKER_CACHE_DIR": str(cache)})
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def clients(server: ServerProcess):
    s3 = client(server, "s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return {name: client(server, name) for name in ("s3", "sagemaker", "sagemaker-runtime", "logs", "sts")}


@pytest.fixture(scope="module")
def tutorial(root: Path, clients):
    """The tutorial's train, model and transform, through boto3 over HTTP, with its own request bodies."""
    s3, sm = clients["s3"], clients["sagemaker"]
    settings = tutorial_settings(root)
    split = upload_tutorial_split(s3, settings)
    names = specs.job_names("http-e2e")
    sm.create_training_job(**specs.training_job_request(settings, names.training_job))
    sm.get_waiter("training_job_completed_or_stopped").wait(
        TrainingJobName=names.training_job, WaiterConfig=FAST
    )
    training = sm.describe_training_job(TrainingJobName=names.training_job)
    url = training["ModelArtifacts"]["S3ModelArtifacts"]
    sm.create_model(**specs.model_request(settings, names.model, url))
    sm.create_transform_job(**specs.transform_job_request(settings, names.transform_job, names.model))
    sm.get_waiter("transform_job_completed_or_stopped").wait(
        TransformJobName=names.transform_job, WaiterConfig=FAST
    )
    return {"settings": settings, "split": split, "names": names, "training": training}


@pytest.fixture(scope="module")
def endpoint(clients, tutorial) -> str:
    sm = clients["sagemaker"]
    sm.create_endpoint_config(
        EndpointConfigName="iris-config-1", ProductionVariants=variant(tutorial["names"].model)
    )
    sm.create_endpoint(EndpointName="iris-knn", EndpointConfigName="iris-config-1")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="iris-knn", WaiterConfig=FAST)
    return "iris-knn"


def _predictions(body: bytes) -> list[float]:
    return [p["predicted_label"] for p in json.loads(body)["predictions"]]


# ---- the server itself -----------------------------------------------------------------------------


def test_it_prints_the_url_and_the_export_line(server: ServerProcess, root: Path) -> None:
    assert server.url.startswith("http://127.0.0.1:")
    assert f"export AWS_ENDPOINT_URL={server.url}" in server.output
    assert str(root) in server.text()
    # The SageMaker Python SDK's defaults: the bucket it would name after the account, telemetry off.
    config = root / "sagemaker" / "sdk-config.yaml"
    assert f"export SAGEMAKER_USER_CONFIG_OVERRIDE={config}" in server.output
    assert server.client_env()["SAGEMAKER_USER_CONFIG_OVERRIDE"] == str(config)
    modules = json.loads(config.read_text())["SageMaker"]["PythonSDK"]["Modules"]
    assert modules == {
        "Session": {"DefaultS3Bucket": "sagemaker-us-east-2-000000000000"},
        "TelemetryOptOut": True,
    }


def test_a_second_server_on_the_same_root_refuses_to_start(server: ServerProcess, root: Path) -> None:
    with pytest.raises(RuntimeError) as err:
        start_server(root, timeout=30)
    message = str(err.value)
    assert f"another iris-sagemaker serve (pid {server.process.pid}, {server.url}) already serves" in message
    assert str(root) in message


def test_sts_answers_for_the_engines_account(clients) -> None:
    assert clients["sts"].get_caller_identity()["Account"] == ACCOUNT_ID


def test_aws_endpoint_url_alone_points_every_client_here(server: ServerProcess, monkeypatch, clients) -> None:
    import boto3

    for name, value in server.client_env().items():
        monkeypatch.setenv(name, value)
    assert boto3.client("sagemaker").list_models()["Models"] is not None
    assert BUCKET in [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", server.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", server.url)
    assert boto3.client("sagemaker").meta.endpoint_url == server.url
    boto3.client("s3").head_bucket(Bucket=BUCKET)


# ---- the tutorial, end to end ----------------------------------------------------------------------


def test_the_tutorials_requests_train_and_score_for_real(root: Path, clients, tutorial) -> None:
    training = tutorial["training"]
    assert training["TrainingJobStatus"] == "Completed"
    for key in ("TrainingStartTime", "TrainingEndTime", "SecondaryStatusTransitions"):
        assert training[key]
    assert training["ResourceConfig"]["InstanceCount"] == 1
    out = root / "s3" / BUCKET / PREDICTIONS_KEY
    assert out.is_file()  # in the local bucket, where `make run` leaves it
    body = clients["s3"].get_object(Bucket=BUCKET, Key=PREDICTIONS_KEY)["Body"].read()
    assert body == out.read_bytes()
    predicted = np.array(_predictions(body))
    truth = tutorial["split"].test_labels.to_numpy()
    assert len(predicted) == len(truth) == 45
    assert (predicted == truth).mean() > 0.9
    model_url = training["ModelArtifacts"]["S3ModelArtifacts"]
    assert (root / "s3" / model_url.removeprefix("s3://")).is_file()


def test_an_endpoint_answers_like_the_batch_transform(clients, tutorial, endpoint) -> None:
    sm, rt = clients["sagemaker"], clients["sagemaker-runtime"]
    described = sm.describe_endpoint(EndpointName=endpoint)
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointArn"] == f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:endpoint/{endpoint}"
    assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 1
    test_csv = clients["s3"].get_object(Bucket=BUCKET, Key=TEST_KEY)["Body"].read()
    response = rt.invoke_endpoint(EndpointName=endpoint, Body=test_csv, ContentType="text/csv")
    assert response["ContentType"] == "application/json"
    assert response["InvokedProductionVariant"] == "AllTraffic"
    batch = clients["s3"].get_object(Bucket=BUCKET, Key=PREDICTIONS_KEY)["Body"].read()
    assert _predictions(response["Body"].read()) == _predictions(batch)
    lines = rt.invoke_endpoint(
        EndpointName=endpoint, Body=test_csv, ContentType="text/csv", Accept="application/jsonlines"
    )["Body"].read()
    assert [json.loads(line)["predicted_label"] for line in lines.splitlines()] == _predictions(batch)


def test_verbose_output_equals_the_neighbours_computed_independently(clients, tutorial, endpoint) -> None:
    train = tutorial["split"].train.to_numpy(dtype=np.float64)
    labels, points = train[:, 0], train[:, 1:]
    queries = tutorial["split"].test_features.to_numpy(dtype=np.float64)[:10]
    body = "\n".join(",".join(repr(float(v)) for v in row) for row in queries).encode()
    response = clients["sagemaker-runtime"].invoke_endpoint(
        EndpointName=endpoint, Body=body, ContentType="text/csv", Accept="application/json; verbose=true"
    )
    got = json.loads(response["Body"].read())["predictions"]
    squared = ((queries[:, None, :] - points[None, :, :]) ** 2).sum(axis=2)
    for row, entry in zip(squared, got, strict=True):
        nearest = np.sort(row)[:3]
        np.testing.assert_allclose(entry["distances"], nearest, rtol=1e-4, atol=1e-5)
        assert sorted(entry["labels"]) == sorted(labels[np.argsort(row, kind="stable")[:3]].tolist())
        values, counts = np.unique(entry["labels"], return_counts=True)
        assert entry["predicted_label"] == values[counts.argmax()]


def test_update_endpoint_serves_the_new_model_and_delete_is_waitable(clients, tutorial, endpoint) -> None:
    sm = clients["sagemaker"]
    sm.create_endpoint_config(
        EndpointConfigName="iris-config-2", ProductionVariants=variant(tutorial["names"].model)
    )
    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName="iris-config-2")
    sm.get_waiter("endpoint_in_service").wait(EndpointName=endpoint, WaiterConfig=FAST)
    assert sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"] == "iris-config-2"
    names = [e["EndpointName"] for e in sm.list_endpoints(NameContains="iris")["Endpoints"]]
    assert names == [endpoint]
    configs = sm.list_endpoint_configs(SortBy="Name")["EndpointConfigs"]
    assert [c["EndpointConfigName"] for c in configs][:2] == ["iris-config-1", "iris-config-2"]
    described = sm.describe_endpoint_config(EndpointConfigName="iris-config-2")
    assert described["ProductionVariants"][0]["ModelName"] == tutorial["names"].model

    sm.create_endpoint(EndpointName="short-lived", EndpointConfigName="iris-config-2")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="short-lived", WaiterConfig=FAST)
    sm.delete_endpoint(EndpointName="short-lived")
    sm.get_waiter("endpoint_deleted").wait(EndpointName="short-lived", WaiterConfig=FAST)
    sm.delete_endpoint_config(EndpointConfigName="iris-config-2")
    with pytest.raises(ClientError, match="Could not find endpoint configuration"):
        sm.describe_endpoint_config(EndpointConfigName="iris-config-2")


def test_a_deploy_that_cannot_load_fails_with_a_reason_and_the_waiter_says_so(clients, root: Path) -> None:
    sm = clients["sagemaker"]
    clients["s3"].put_object(Bucket=BUCKET, Key="broken/model.tar.gz", Body=b"not a model")
    sm.create_model(**model_request("broken-model", f"s3://{BUCKET}/broken/model.tar.gz"))
    sm.create_endpoint_config(EndpointConfigName="broken-config", ProductionVariants=variant("broken-model"))
    sm.create_endpoint(EndpointName="broken", EndpointConfigName="broken-config")
    with pytest.raises(WaiterError, match="terminal failure state"):
        sm.get_waiter("endpoint_in_service").wait(EndpointName="broken", WaiterConfig=FAST)
    described = sm.describe_endpoint(EndpointName="broken")
    assert described["EndpointStatus"] == "Failed"
    assert "not a readable model.tar.gz" in described["FailureReason"]


# ---- logs ------------------------------------------------------------------------------------------


def test_job_logs_are_cloudwatch_streams_with_stable_forward_tokens(clients, tutorial) -> None:
    logs, name = clients["logs"], tutorial["names"].training_job
    streams = logs.describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{name}/", orderBy="LogStreamName"
    )["logStreams"]
    created = int(tutorial["training"]["CreationTime"].timestamp())
    assert [s["logStreamName"] for s in streams] == [f"{name}/algo-1-{created}"]
    first = logs.get_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs",
        logStreamName=streams[0]["logStreamName"],
        startFromHead=True,
    )
    messages = [e["message"] for e in first["events"]]
    assert messages[0].startswith(f"Training job {name} started")
    assert messages[-1] == "job Completed"
    again = logs.get_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs",
        logStreamName=streams[0]["logStreamName"],
        startFromHead=True,
        nextToken=first["nextForwardToken"],
    )
    assert again["events"] == [] and again["nextForwardToken"] == first["nextForwardToken"]
    # The project's own CloudWatch tail (the aws backend's) reads them too.
    tail = CloudWatchLogTail(logs, name)
    assert tail.poll()[-1].endswith("job Completed") and tail.poll() == []
    transform = logs.describe_log_streams(
        logGroupName="/aws/sagemaker/TransformJobs", logStreamNamePrefix=f"{tutorial['names'].transform_job}/"
    )["logStreams"]
    assert len(transform) == 1


def test_endpoint_logs_and_missing_groups(clients, endpoint) -> None:
    logs = clients["logs"]
    group = f"/aws/sagemaker/Endpoints/{endpoint}"
    (stream,) = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert stream["logStreamName"].startswith("AllTraffic/i-")
    events = logs.get_log_events(
        logGroupName=group, logStreamName=stream["logStreamName"], startFromHead=True
    )
    assert any(e["message"].startswith("endpoint InService") for e in events["events"])
    with pytest.raises(ClientError) as err:
        logs.describe_log_streams(logGroupName="/aws/sagemaker/Endpoints/never-made")
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as err:
        logs.get_log_events(logGroupName=group, logStreamName="AllTraffic/i-nope")
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"


# ---- errors, as boto3 parses them ------------------------------------------------------------------


def _code(err: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    return err.value.response["Error"]["Code"], err.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_sagemaker_errors_have_sagemakers_codes(clients, tutorial) -> None:
    sm = clients["sagemaker"]
    with pytest.raises(ClientError, match="Requested resource not found") as err:
        sm.describe_training_job(TrainingJobName="never-created")
    assert _code(err) == ("ValidationException", 400)
    with pytest.raises(ClientError) as err:
        sm.create_training_job(
            **specs.training_job_request(tutorial["settings"], tutorial["names"].training_job)
        )
    assert _code(err) == ("ResourceInUse", 400)
    with pytest.raises(ClientError, match="failed to satisfy constraint") as err:
        sm.describe_model(ModelName="bad_name!")
    assert _code(err) == ("ValidationException", 400)
    with pytest.raises(ClientError, match="Could not find endpoint") as err:
        sm.describe_endpoint(EndpointName="never-created")
    assert _code(err) == ("ValidationException", 400)
    with pytest.raises(
        ClientError, match="does not implement sagemaker operation CreateProcessingJob"
    ) as err:
        sm.create_processing_job(
            ProcessingJobName="p",
            ProcessingResources={
                "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}
            },
            AppSpecification={"ImageUri": "x"},
            RoleArn="arn:aws:iam::123456789012:role/r",
        )
    assert _code(err) == ("UnknownOperationException", 400)


def test_fields_the_sdk_sends_are_accepted_and_fields_the_engine_cannot_honour_fail(
    clients, tutorial
) -> None:
    sm = clients["sagemaker"]
    request = specs.training_job_request(tutorial["settings"], "sdk-fields")
    request.update(
        DebugHookConfig={"S3OutputPath": f"s3://{BUCKET}/debug"},
        ProfilerConfig={"S3OutputPath": f"s3://{BUCKET}/profiler"},
        EnableNetworkIsolation=False,
    )
    sm.create_training_job(**request)
    sm.get_waiter("training_job_completed_or_stopped").wait(TrainingJobName="sdk-fields", WaiterConfig=FAST)
    assert sm.describe_training_job(TrainingJobName="sdk-fields")["TrainingJobStatus"] == "Completed"
    with pytest.raises(ClientError, match="DataCaptureConfig is not supported"):
        sm.create_endpoint_config(
            EndpointConfigName="capture",
            ProductionVariants=variant(tutorial["names"].model),
            DataCaptureConfig={
                "InitialSamplingPercentage": 100,
                "DestinationS3Uri": f"s3://{BUCKET}/capture",
                "CaptureOptions": [{"CaptureMode": "Input"}],
            },
        )
    with pytest.raises(ClientError, match="one production variant"):
        one = variant(tutorial["names"].model)
        two = [*one, {**one[0], "VariantName": "B"}]
        sm.create_endpoint_config(EndpointConfigName="two", ProductionVariants=two)
    with pytest.raises(ClientError, match="Could not find model"):
        sm.create_endpoint_config(EndpointConfigName="nomodel", ProductionVariants=variant("no-such-model"))


def test_a_failed_job_ends_the_waiter_with_its_reason(clients) -> None:
    sm = clients["sagemaker"]
    labels, features = iris_like()
    clients["s3"].put_object(Bucket=BUCKET, Key="bad/train.csv", Body=to_csv(labels, features))
    request = training_request(
        "bad-hp", f"s3://{BUCKET}/bad/train.csv", f"s3://{BUCKET}/out", {"feature_dim": "4", "k": "0"}
    )
    sm.create_training_job(**request)
    with pytest.raises(WaiterError):
        sm.get_waiter("training_job_completed_or_stopped").wait(TrainingJobName="bad-hp", WaiterConfig=FAST)
    described = sm.describe_training_job(TrainingJobName="bad-hp")
    assert described["TrainingJobStatus"] == "Failed"
    assert described["FailureReason"].startswith("ClientError:")


def test_invocation_errors_name_the_problem_and_the_endpoint_keeps_serving(clients, endpoint) -> None:
    rt = clients["sagemaker-runtime"]
    with pytest.raises(ClientError, match=f"Endpoint nope of account {ACCOUNT_ID} not found.") as err:
        rt.invoke_endpoint(EndpointName="nope", Body=b"1,2,3,4", ContentType="text/csv")
    assert _code(err) == ("ValidationError", 400)
    with pytest.raises(ClientError) as err:
        rt.invoke_endpoint(
            EndpointName=endpoint, Body=b"5.1,3.5,1.4,0.2\n5.1,3.5,1.4", ContentType="text/csv"
        )
    assert _code(err) == ("ModelError", 424)
    assert err.value.response["OriginalStatusCode"] == 400
    assert err.value.response["OriginalMessage"] == "row 2 of the request has 3 columns, expected 4"
    with pytest.raises(ClientError) as err:
        rt.invoke_endpoint(EndpointName=endpoint, Body=b"5.1,3.5,abc,0.2", ContentType="text/csv")
    assert "row 1" in err.value.response["OriginalMessage"]
    with pytest.raises(ClientError) as err:
        rt.invoke_endpoint(EndpointName=endpoint, Body=b"1," * (3 * 1024 * 1024 + 8), ContentType="text/csv")
    assert _code(err) == ("ValidationError", 413)
    with pytest.raises(ClientError, match="content type 'image/png' is not supported"):
        rt.invoke_endpoint(EndpointName=endpoint, Body=b"x", ContentType="image/png")
    ok = rt.invoke_endpoint(EndpointName=endpoint, Body=b"5.1,3.5,1.4,0.2", ContentType="text/csv")
    assert _predictions(ok["Body"].read()) == [2.0]  # setosa


def test_request_bodies_are_bounded(server: ServerProcess) -> None:
    response = requests.post(
        server.url,
        data=b"{" + b" " * (9 * 1024 * 1024) + b"}",
        headers={"X-Amz-Target": "SageMaker.ListModels", "Content-Type": "application/x-amz-json-1.1"},
        timeout=30,
    )
    assert response.status_code == 413
    assert response.json()["__type"] == "ValidationException"
    bad = requests.post(
        server.url, data=b"{not json", headers={"X-Amz-Target": "SageMaker.ListModels"}, timeout=30
    )
    assert bad.status_code == 400 and bad.json()["__type"] == "SerializationException"
    assert requests.post(f"{server.url}/moto-api/reset", timeout=30).status_code == 404
    extra = requests.post(
        server.url,
        data=b'{"TrainingJobName": "x", "NoSuchMember": 1}',
        headers={"X-Amz-Target": "SageMaker.DescribeTrainingJob"},
        timeout=30,
    )
    assert extra.status_code == 400 and "NoSuchMember" in extra.json()["message"]


# ---- S3: moto's implementation on the local bucket folder ------------------------------------------


def test_multipart_upload_and_ranged_download_of_a_large_object(clients, root: Path, tmp_path: Path) -> None:
    s3 = clients["s3"]
    data = np.random.default_rng(1).bytes(20 * 1024 * 1024 + 123)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    s3.upload_file(str(source), BUCKET, "big/big.bin")  # above 8 MB: a multipart upload
    assert (root / "s3" / BUCKET / "big/big.bin").read_bytes() == data
    head = s3.head_object(Bucket=BUCKET, Key="big/big.bin")
    assert head["ContentLength"] == len(data) and "-" in head["ETag"]  # a multipart ETag
    ranged = s3.get_object(Bucket=BUCKET, Key="big/big.bin", Range="bytes=1000-1999")["Body"].read()
    assert ranged == data[1000:2000]
    target = tmp_path / "back.bin"
    s3.download_file(BUCKET, "big/big.bin", str(target))  # ranged GETs in parallel
    assert target.read_bytes() == data


def test_checksums_of_current_botocore_are_verified(clients) -> None:
    s3 = clients["s3"]
    put = s3.put_object(Bucket=BUCKET, Key="sums/a.txt", Body=b"hello", ChecksumAlgorithm="SHA256")
    assert put["ChecksumSHA256"]
    got = s3.get_object(Bucket=BUCKET, Key="sums/a.txt", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"hello"


def test_the_folder_is_the_bucket(clients, root: Path) -> None:
    s3 = clients["s3"]
    folder = root / "s3" / BUCKET
    (folder / "direct").mkdir(exist_ok=True)
    (folder / "direct" / "written-by-make-run.csv").write_bytes(b"1,2,3\n")
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="direct/")["Contents"]
    assert [o["Key"] for o in listed] == ["direct/written-by-make-run.csv"]
    assert s3.get_object(Bucket=BUCKET, Key="direct/written-by-make-run.csv")["Body"].read() == b"1,2,3\n"
    (folder / "direct" / "written-by-make-run.csv").write_bytes(b"changed\n")
    assert s3.get_object(Bucket=BUCKET, Key="direct/written-by-make-run.csv")["Body"].read() == b"changed\n"
    s3.delete_object(Bucket=BUCKET, Key="direct/written-by-make-run.csv")
    assert not (folder / "direct" / "written-by-make-run.csv").exists()
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="direct/")["KeyCount"] == 0
    # A bucket made as a folder (as `make run` does) is a bucket too.
    (root / "s3" / "made-by-folder").mkdir()
    s3.head_bucket(Bucket="made-by-folder")
    s3.copy_object(Bucket="made-by-folder", Key="copy.csv", CopySource={"Bucket": BUCKET, "Key": TEST_KEY})
    assert (root / "s3" / "made-by-folder" / "copy.csv").read_bytes() == (folder / TEST_KEY).read_bytes()


def test_the_server_keeps_no_copy_of_the_objects_it_serves(
    clients, server: ServerProcess, root: Path
) -> None:
    """moto would keep every object's bytes: in memory, or above 5 MB in a temporary file held open. The
    server reads them from the bucket folder instead: writing and reading 8 objects of 6 MB leaves no
    descriptor open, and each reads back intact, also after its file changed underneath."""
    s3 = clients["s3"]
    fds = Path(f"/proc/{server.process.pid}/fd")
    before = len(list(fds.iterdir()))
    blobs = {f"held/{i}.bin": np.random.default_rng(i).bytes(6 * 1024 * 1024 + i) for i in range(8)}
    for key, data in blobs.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    for key, data in blobs.items():
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == data
        head = s3.head_object(Bucket=BUCKET, Key=key)
        assert head["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert len(list(fds.iterdir())) < before + 4  # not one per object
    assert s3.get_object(Bucket=BUCKET, Key="held/3.bin", Range="bytes=10-19")["Body"].read() == blobs[
        "held/3.bin"
    ][10:20]
    (root / "s3" / BUCKET / "held" / "3.bin").write_bytes(b"rewritten by another process")
    assert s3.get_object(Bucket=BUCKET, Key="held/3.bin")["Body"].read() == b"rewritten by another process"
    s3.copy_object(Bucket=BUCKET, Key="held/copy.bin", CopySource={"Bucket": BUCKET, "Key": "held/5.bin"})
    assert s3.get_object(Bucket=BUCKET, Key="held/copy.bin")["Body"].read() == blobs["held/5.bin"]


def test_versions_written_before_versioning_keep_their_bytes(clients) -> None:
    """The folder holds an object's latest bytes only: a version moto keeps must not read them."""
    s3 = clients["s3"]
    bucket = "iris-versioned"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket=bucket, Key="a.txt", Body=b"first, unversioned")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket, Key="a.txt", Body=b"second")
    s3.put_object(Bucket=bucket, Key="a.txt", Body=b"third")
    versions = s3.list_object_versions(Bucket=bucket, Prefix="a.txt")["Versions"]
    bodies = {
        v["VersionId"]: s3.get_object(Bucket=bucket, Key="a.txt", VersionId=v["VersionId"])["Body"].read()
        for v in versions
    }
    assert sorted(bodies.values()) == [b"first, unversioned", b"second", b"third"]
    assert bodies["null"] == b"first, unversioned"
    s3.delete_object(Bucket=bucket, Key="a.txt")  # a delete marker; the versions stay readable
    assert s3.get_object(Bucket=bucket, Key="a.txt", VersionId="null")["Body"].read() == b"first, unversioned"


def test_no_key_reaches_outside_the_root(clients, root: Path) -> None:
    s3 = clients["s3"]
    for key in ("../../escaped.txt", "a/../../../escaped.txt", "folder-marker/"):
        with pytest.raises(ClientError) as err:
            s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
        assert _code(err)[0] == "InvalidArgument"
    assert not list(root.parent.glob("**/escaped.txt"))
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="../../../../etc/")["KeyCount"] == 0


# ---- many clients at once --------------------------------------------------------------------------


@pytest.mark.slow
def test_concurrent_invocations_and_jobs(clients, server: ServerProcess, endpoint, tutorial) -> None:
    rows = tutorial["split"].test_features.to_numpy()
    expected = _predictions(clients["s3"].get_object(Bucket=BUCKET, Key=PREDICTIONS_KEY)["Body"].read())

    def invoke(worker: int) -> list[float]:
        rt = client(server, "sagemaker-runtime")
        got = []
        for i in range(worker, len(rows), 8):
            body = ",".join(repr(float(v)) for v in rows[i]).encode()
            response = rt.invoke_endpoint(EndpointName=endpoint, Body=body, ContentType="text/csv")
            got.append((i, _predictions(response["Body"].read())[0]))
        return got

    def train(worker: int) -> str:
        sm = client(server, "sagemaker")
        name = f"concurrent-{worker}"
        sm.create_training_job(**specs.training_job_request(tutorial["settings"], name))
        sm.get_waiter("training_job_completed_or_stopped").wait(TrainingJobName=name, WaiterConfig=FAST)
        return sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"]

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        invocations = [pool.submit(invoke, w) for w in range(8)]
        jobs = [pool.submit(train, w) for w in range(4)]
        answers = dict(pair for future in invocations for pair in future.result())
        statuses = [future.result() for future in jobs]
    assert [answers[i] for i in range(len(rows))] == expected
    assert statuses == ["Completed"] * 4


def test_list_operations_filter_and_page(clients, tutorial) -> None:
    sm = clients["sagemaker"]
    page = sm.list_training_jobs(MaxResults=1, SortBy="Name", SortOrder="Ascending")
    assert len(page["TrainingJobSummaries"]) == 1 and page["NextToken"]
    after = sm.list_training_jobs(CreationTimeAfter=time.time() + 3600)["TrainingJobSummaries"]
    assert after == []
    assert sm.list_models(NameContains="Iris-KNN")["Models"][0]["ModelName"] == tutorial["names"].model
    assert sm.list_transform_jobs(StatusEquals="Completed")["TransformJobSummaries"]


def test_in_process_and_http_answer_alike(root: Path, clients, tutorial) -> None:
    from iris_sagemaker.local_sagemaker import LocalSageMakerClient

    name = tutorial["names"].training_job
    local = LocalSageMakerClient(root, region=REGION).describe_training_job(TrainingJobName=name)
    remote = clients["sagemaker"].describe_training_job(TrainingJobName=name)
    local.pop("ResponseMetadata"), remote.pop("ResponseMetadata")
    assert remote.keys() == local.keys()
    for key, value in local.items():
        if hasattr(value, "timestamp"):
            assert abs(remote[key].timestamp() - value.timestamp()) < 1e-5, key
        elif key != "SecondaryStatusTransitions":
            assert remote[key] == value, key


def test_models_delete_and_iam_answers(clients, tutorial, server: ServerProcess) -> None:
    sm = clients["sagemaker"]
    url = tutorial["training"]["ModelArtifacts"]["S3ModelArtifacts"]
    sm.create_model(**model_request("to-delete", url))
    sm.delete_model(ModelName="to-delete")
    with pytest.raises(ClientError, match="Could not find model"):
        sm.describe_model(ModelName="to-delete")
    iam = client(server, "iam")
    role = iam.create_role(RoleName="local-sagemaker", AssumeRolePolicyDocument="{}")["Role"]
    assert role["Arn"] == f"arn:aws:iam::{ACCOUNT_ID}:role/local-sagemaker"
    assert iam.get_role(RoleName="local-sagemaker")["Role"]["RoleName"] == "local-sagemaker"
