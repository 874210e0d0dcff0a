"""The AWS surface around the engine, through boto3 over HTTP: CloudWatch Logs (moto's, bound to the engine's
log files), IAM as clients check it, SageMaker tags, the List* probes of kinds the engine never creates, and
errors in each service's own shape (docs/ARCHITECTURE.md would draw it; the README's "SageMaker over HTTP"
section says it).

One server serves the module; the restart tests start their own, on their own root.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from iris_sagemaker.local_sagemaker import LocalSageMakerClient
from iris_sagemaker.local_sagemaker.client import ACCOUNT_ID
from iris_sagemaker.local_sagemaker.testing import iris_like, model_request, to_csv, training_request
from iris_sagemaker.serve.process import ServerProcess, start_server

from .serve_support import BUCKET, REGION, client, variant

pytestmark = [pytest.mark.server, pytest.mark.slow]

FAST = {"Delay": 0.2, "MaxAttempts": 150}
JOBS_GROUP = "/aws/sagemaker/TrainingJobs"
ROLE = "arn:aws:iam::000000000000:role/service-role/AmazonSageMaker-ExecutionRole-20261203T000000"


def _code(err: pytest.ExceptionInfo[ClientError]) -> str:
    return err.value.response["Error"]["Code"]


def _train(sm: Any, s3: Any, name: str, tags: list[dict[str, str]] | None = None) -> dict[str, Any]:
    labels, features = iris_like()
    s3.put_object(Bucket=BUCKET, Key=f"{name}/train.csv", Body=to_csv(labels, features))
    request = training_request(name, f"s3://{BUCKET}/{name}/train.csv", f"s3://{BUCKET}/out")
    if tags:
        request["Tags"] = tags
    sm.create_training_job(**request)
    sm.get_waiter("training_job_completed_or_stopped").wait(TrainingJobName=name, WaiterConfig=FAST)
    return sm.describe_training_job(TrainingJobName=name)


def _stream_of(logs: Any, job: str) -> str:
    (stream,) = logs.describe_log_streams(logGroupName=JOBS_GROUP, logStreamNamePrefix=f"{job}/")[
        "logStreams"
    ]
    return stream["logStreamName"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("surface-root")
    proc = start_server(root, {"IRIS_SAGEMAKER_CACHE_DIR": str(tmp_path_factory.mktemp("cache"))})
    try:
        client(proc, "s3").create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def jobs(server: ServerProcess) -> dict[str, dict[str, Any]]:
    """Three completed training jobs, created a little apart, so their logs interleave in time."""
    sm, s3 = client(server, "sagemaker"), client(server, "s3")
    return {name: _train(sm, s3, name) for name in ("logs-a", "logs-b", "logs-c")}


# ---- CloudWatch Logs ------------------------------------------------------------------------------


def test_the_engines_log_groups_are_listed_and_paged(server: ServerProcess, jobs) -> None:
    logs = client(server, "logs")
    groups = logs.describe_log_groups(logGroupNamePrefix="/aws/sagemaker/")["logGroups"]
    assert JOBS_GROUP in [g["logGroupName"] for g in groups]
    first = logs.describe_log_groups(logGroupNamePrefix="/aws/sagemaker/", limit=1)
    assert len(first["logGroups"]) == 1
    paged = list(
        logs.get_paginator("describe_log_groups")
        .paginate(logGroupNamePrefix="/aws/sagemaker/", PaginationConfig={"PageSize": 1})
        .search("logGroups[].logGroupName")
    )
    assert paged == [g["logGroupName"] for g in groups]


def test_log_streams_by_prefix_order_and_pages(server: ServerProcess, jobs) -> None:
    logs = client(server, "logs")
    names = [_stream_of(logs, job) for job in jobs]
    created = {job: int(described["CreationTime"].timestamp()) for job, described in jobs.items()}
    assert names == [f"{job}/algo-1-{created[job]}" for job in jobs]
    by_name = logs.describe_log_streams(logGroupName=JOBS_GROUP, logStreamNamePrefix="logs-")["logStreams"]
    assert [s["logStreamName"] for s in by_name] == names
    latest = logs.describe_log_streams(logGroupName=JOBS_GROUP, orderBy="LastEventTime", descending=True)
    ordered = [s["logStreamName"] for s in latest["logStreams"] if s["logStreamName"].startswith("logs-")]
    assert ordered == names[::-1]  # logs-c wrote last
    assert all(s["lastEventTimestamp"] >= s["firstEventTimestamp"] for s in latest["logStreams"])
    paged = list(
        logs.get_paginator("describe_log_streams")
        .paginate(logGroupName=JOBS_GROUP, logStreamNamePrefix="logs-", PaginationConfig={"PageSize": 1})
        .search("logStreams[].logStreamName")
    )
    assert paged == names
    with pytest.raises(ClientError) as err:
        logs.describe_log_streams(logGroupName=JOBS_GROUP, orderBy="LastEventTime", logStreamNamePrefix="x")
    assert _code(err) == "InvalidParameterException"


def test_get_log_events_both_ways_with_tokens_and_times(server: ServerProcess, jobs) -> None:
    logs = client(server, "logs")
    stream = _stream_of(logs, "logs-a")
    whole = logs.get_log_events(logGroupName=JOBS_GROUP, logStreamName=stream, startFromHead=True)
    events = whole["events"]
    assert events[0]["message"].startswith("Training job logs-a started")
    assert events[-1]["message"] == "job Completed"
    # Forward, two at a time, until the token stops moving: every event once, in order.
    seen, token = [], None
    while True:
        extra = {"nextToken": token} if token else {}
        page = logs.get_log_events(
            logGroupName=JOBS_GROUP, logStreamName=stream, startFromHead=True, limit=2, **extra
        )
        seen += page["events"]
        if page["nextForwardToken"] == token:
            break
        token = page["nextForwardToken"]
    assert [e["message"] for e in seen] == [e["message"] for e in events]
    # Backward from the end: the newest first page, then older ones.
    last = logs.get_log_events(logGroupName=JOBS_GROUP, logStreamName=stream, limit=2)
    assert [e["message"] for e in last["events"]] == [e["message"] for e in events[-2:]]
    older = logs.get_log_events(
        logGroupName=JOBS_GROUP, logStreamName=stream, limit=2, nextToken=last["nextBackwardToken"]
    )
    assert [e["message"] for e in older["events"]] == [e["message"] for e in events[-4:-2]]
    # A time window keeps the events inside it.
    start = events[len(events) // 2]["timestamp"]
    windowed = logs.get_log_events(
        logGroupName=JOBS_GROUP, logStreamName=stream, startTime=start, startFromHead=True
    )["events"]
    assert windowed and all(e["timestamp"] >= start for e in windowed)
    assert len(windowed) < len(events) or events[0]["timestamp"] == start


def test_filter_log_events_across_streams(server: ServerProcess, jobs) -> None:
    logs = client(server, "logs")
    everything = logs.filter_log_events(logGroupName=JOBS_GROUP, logStreamNamePrefix="logs-")["events"]
    streams = {e["logStreamName"].split("/")[0] for e in everything}
    assert streams == set(jobs)
    stamps = [e["timestamp"] for e in everything]
    assert stamps == sorted(stamps)  # interleaved in time, across the three jobs
    finished = logs.filter_log_events(logGroupName=JOBS_GROUP, filterPattern='"job Completed"')["events"]
    assert {e["logStreamName"].split("/")[0] for e in finished} >= set(jobs)
    assert all(e["message"] == "job Completed" for e in finished)
    one = logs.filter_log_events(
        logGroupName=JOBS_GROUP, logStreamNames=[_stream_of(logs, "logs-b")], filterPattern="index built"
    )["events"]
    assert one and all("index" in e["message"] and "built" in e["message"] for e in one)
    assert {e["logStreamName"] for e in one} == {_stream_of(logs, "logs-b")}
    paged = list(
        logs.get_paginator("filter_log_events")
        .paginate(logGroupName=JOBS_GROUP, logStreamNamePrefix="logs-", PaginationConfig={"PageSize": 3})
        .search("events[].message")
    )
    assert paged == [e["message"] for e in everything]
    with pytest.raises(ClientError) as err:
        logs.filter_log_events(
            logGroupName=JOBS_GROUP, logStreamNamePrefix="logs-", logStreamNames=["logs-a/x"]
        )
    assert _code(err) == "InvalidParameterException"


def test_filter_by_prefix_sees_a_log_written_since_the_last_call(server: ServerProcess) -> None:
    """The first Logs call after a job ran may be a prefixed filter (the aws CLI's, the SDK's endpoint
    log): it reads the files as every other call does."""
    sm, s3, logs = client(server, "sagemaker"), client(server, "s3"), client(server, "logs")
    _train(sm, s3, "fresh-log")
    events = logs.filter_log_events(logGroupName=JOBS_GROUP, logStreamNamePrefix="fresh-log/")["events"]
    assert events and events[-1]["message"] == "job Completed"


def test_user_code_logs_to_its_own_groups(server: ServerProcess) -> None:
    logs = client(server, "logs")
    logs.create_log_group(logGroupName="/my/app")
    logs.create_log_stream(logGroupName="/my/app", logStreamName="run-1")
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName="/my/app",
        logStreamName="run-1",
        logEvents=[{"timestamp": now, "message": "hello"}, {"timestamp": now + 1, "message": "world"}],
    )
    got = logs.get_log_events(logGroupName="/my/app", logStreamName="run-1", startFromHead=True)
    assert [e["message"] for e in got["events"]] == ["hello", "world"]
    with pytest.raises(ClientError) as err:
        logs.create_log_group(logGroupName="/my/app")
    assert _code(err) == "ResourceAlreadyExistsException"
    logs.delete_log_group(logGroupName="/my/app")


def test_unknown_groups_and_streams_are_resource_not_found(server: ServerProcess, jobs) -> None:
    logs = client(server, "logs")
    missing = "/aws/sagemaker/Endpoints/never-made"
    for call in (
        lambda: logs.describe_log_streams(logGroupName=missing),
        lambda: logs.get_log_events(logGroupName=missing, logStreamName="AllTraffic/i-0"),
        lambda: logs.filter_log_events(logGroupName=missing),
        lambda: logs.delete_log_group(logGroupName=missing),
        lambda: logs.delete_log_stream(logGroupName=missing, logStreamName="x"),
        lambda: logs.put_retention_policy(logGroupName=missing, retentionInDays=1),
        lambda: logs.get_log_events(logGroupName=JOBS_GROUP, logStreamName="logs-a/algo-1-0"),
    ):
        with pytest.raises(ClientError) as err:
            call()
        assert _code(err) == "ResourceNotFoundException"


def test_retention_on_an_engine_group(server: ServerProcess, jobs) -> None:
    logs = client(server, "logs")
    logs.put_retention_policy(logGroupName=JOBS_GROUP, retentionInDays=7)
    (group,) = logs.describe_log_groups(logGroupNamePrefix=JOBS_GROUP)["logGroups"]
    assert group["retentionInDays"] == 7
    logs.delete_retention_policy(logGroupName=JOBS_GROUP)
    (group,) = logs.describe_log_groups(logGroupNamePrefix=JOBS_GROUP)["logGroups"]
    assert "retentionInDays" not in group


def test_a_deleted_stream_is_gone_everywhere_and_after_a_restart(tmp_path: Path) -> None:
    root = tmp_path / "root"
    proc = start_server(root)
    try:
        client(proc, "s3").create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        sm, s3, logs = client(proc, "sagemaker"), client(proc, "s3"), client(proc, "logs")
        for name in ("kept", "dropped"):
            _train(sm, s3, name)
        dropped = _stream_of(logs, "dropped")
        logs.delete_log_stream(logGroupName=JOBS_GROUP, logStreamName=dropped)
        assert (
            logs.describe_log_streams(logGroupName=JOBS_GROUP, logStreamNamePrefix="dropped/")["logStreams"]
            == []
        )
        with pytest.raises(ClientError) as err:
            logs.get_log_events(logGroupName=JOBS_GROUP, logStreamName=dropped)
        assert _code(err) == "ResourceNotFoundException"
        assert not [
            e
            for e in logs.filter_log_events(logGroupName=JOBS_GROUP)["events"]
            if "dropped" in e["logStreamName"]
        ]
        # The engine's own reader (what the Dagster resource tails in local mode) no longer has it either.
        engine = LocalSageMakerClient(root, region=REGION)
        assert engine.read_job_log("TrainingJob", "dropped") == ([], 0)
        assert engine.read_job_log("TrainingJob", "kept")[0][-1] == "job Completed"
        # The job itself is not deleted: only its log.
        assert sm.describe_training_job(TrainingJobName="dropped")["TrainingJobStatus"] == "Completed"
    finally:
        proc.stop()
    proc = start_server(root)
    try:
        logs = client(proc, "logs")
        names = [s["logStreamName"] for s in logs.describe_log_streams(logGroupName=JOBS_GROUP)["logStreams"]]
        assert [name.split("/")[0] for name in names] == ["kept"]
        kept = logs.get_log_events(logGroupName=JOBS_GROUP, logStreamName=names[0], startFromHead=True)
        assert kept["events"][-1]["message"] == "job Completed"
        logs.delete_log_group(logGroupName=JOBS_GROUP)
        with pytest.raises(ClientError) as err:
            logs.describe_log_streams(logGroupName=JOBS_GROUP)
        assert _code(err) == "ResourceNotFoundException"
    finally:
        proc.stop()
    assert not list((root / "sagemaker" / "logs" / "training-jobs").glob("*.log"))


def test_a_running_jobs_log_grows_in_place(server: ServerProcess) -> None:
    """Lines a job writes after the first read are appended to its stream, each once."""
    sm, s3, logs = client(server, "sagemaker"), client(server, "s3"), client(server, "logs")
    labels, features = iris_like(rows_per_class=3000)
    s3.put_object(Bucket=BUCKET, Key="grow/train.csv", Body=to_csv(labels, features))
    sm.create_training_job(**training_request("grow", f"s3://{BUCKET}/grow/train.csv", f"s3://{BUCKET}/out"))
    messages: list[str] = []
    token = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            stream = _stream_of(logs, "grow")
        except ValueError:  # not written yet
            time.sleep(0.05)
            continue
        extra = {"nextToken": token} if token else {}
        page = logs.get_log_events(logGroupName=JOBS_GROUP, logStreamName=stream, startFromHead=True, **extra)
        messages += [e["message"] for e in page["events"]]
        token = page["nextForwardToken"]
        if messages and messages[-1].startswith("job "):
            break
        time.sleep(0.05)
    assert messages[-1] == "job Completed"
    whole = logs.get_log_events(logGroupName=JOBS_GROUP, logStreamName=stream, startFromHead=True)["events"]
    assert messages == [e["message"] for e in whole]


# ---- IAM ------------------------------------------------------------------------------------------


def test_policy_simulation_allows_everything(server: ServerProcess) -> None:
    iam = client(server, "iam")
    actions = ["sagemaker:CreateTrainingJob", "s3:GetObject"]
    principal = iam.simulate_principal_policy(
        PolicySourceArn=ROLE, ActionNames=actions, ResourceArns=["arn:aws:s3:::b/k", "*"]
    )
    results = principal["EvaluationResults"]
    assert [(r["EvalActionName"], r["EvalResourceName"], r["EvalDecision"]) for r in results] == [
        (action, resource, "allowed") for action in actions for resource in ("arn:aws:s3:::b/k", "*")
    ]
    assert principal["IsTruncated"] is False
    custom = iam.simulate_custom_policy(PolicyInputList=["{}"], ActionNames=["sagemaker:CreateModel"])
    assert [r["EvalDecision"] for r in custom["EvaluationResults"]] == ["allowed"]


def test_any_role_named_trusts_sagemaker(server: ServerProcess) -> None:
    iam = client(server, "iam")
    role = iam.get_role(RoleName=ROLE.rsplit("/", 1)[1])["Role"]
    statements = role["AssumeRolePolicyDocument"]["Statement"]
    assert {"Service": "sagemaker.amazonaws.com"} in [s["Principal"] for s in statements]
    assert role["Arn"].startswith(f"arn:aws:iam::{ACCOUNT_ID}:role/")
    again = iam.get_role(RoleName=ROLE.rsplit("/", 1)[1])["Role"]
    assert again["RoleId"] == role["RoleId"]  # one role, not a new one per call


# ---- tags -----------------------------------------------------------------------------------------


def test_tags_on_every_resource_kind(server: ServerProcess) -> None:
    sm, s3 = client(server, "sagemaker"), client(server, "s3")
    job = _train(sm, s3, "tagged", tags=[{"Key": "team", "Value": "iris"}])
    arn = job["TrainingJobArn"]
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "iris"}]
    added = sm.add_tags(ResourceArn=arn, Tags=[{"Key": "team", "Value": "ml"}, {"Key": "cost", "Value": "1"}])
    assert added["Tags"] == [{"Key": "team", "Value": "ml"}, {"Key": "cost", "Value": "1"}]
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [
        {"Key": "team", "Value": "ml"},
        {"Key": "cost", "Value": "1"},
    ]
    sm.delete_tags(ResourceArn=arn, TagKeys=["team", "not-there"])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "cost", "Value": "1"}]
    model_arn = sm.create_model(
        **model_request("tagged-model", job["ModelArtifacts"]["S3ModelArtifacts"]),
        Tags=[{"Key": "stage", "Value": "test"}],
    )["ModelArn"]
    config_arn = sm.create_endpoint_config(
        EndpointConfigName="tagged-config", ProductionVariants=variant("tagged-model")
    )["EndpointConfigArn"]
    for resource in (model_arn, config_arn):
        sm.add_tags(ResourceArn=resource, Tags=[{"Key": "k", "Value": "v"}])
    assert sm.list_tags(ResourceArn=model_arn)["Tags"] == [
        {"Key": "stage", "Value": "test"},
        {"Key": "k", "Value": "v"},
    ]
    assert sm.list_tags(ResourceArn=config_arn)["Tags"] == [{"Key": "k", "Value": "v"}]


def test_list_tags_pages_and_limits(server: ServerProcess) -> None:
    sm, s3 = client(server, "sagemaker"), client(server, "s3")
    arn = _train(sm, s3, "many-tags")["TrainingJobArn"]
    tags = [{"Key": f"k{i:02d}", "Value": str(i)} for i in range(50)]
    sm.add_tags(ResourceArn=arn, Tags=tags)
    assert list(sm.get_paginator("list_tags").paginate(ResourceArn=arn).search("Tags[]")) == tags
    first = sm.list_tags(ResourceArn=arn, MaxResults=50)
    assert first["Tags"] == tags and "NextToken" not in first
    with pytest.raises(ClientError) as err:
        sm.add_tags(ResourceArn=arn, Tags=[{"Key": "one-too-many", "Value": "x"}])
    assert _code(err) == "ValidationException" and "at most 50 tags" in str(err.value)
    with pytest.raises(ClientError) as err:
        sm.add_tags(ResourceArn=arn, Tags=[{"Key": "aws:owner", "Value": "x"}])
    assert _code(err) == "ValidationException" and "reserved" in str(err.value)


def test_tags_of_unknown_resources(server: ServerProcess) -> None:
    sm = client(server, "sagemaker")
    for arn in (
        f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:training-job/never-made",
        f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:pipeline/some-pipeline",
        f"arn:aws:sagemaker:eu-west-1:{ACCOUNT_ID}:model/elsewhere",
    ):
        for method, extra in (
            ("list_tags", {}),
            ("add_tags", {"Tags": [{"Key": "k", "Value": "v"}]}),
            ("delete_tags", {"TagKeys": ["k"]}),
        ):
            with pytest.raises(ClientError) as err:
                getattr(sm, method)(ResourceArn=arn, **extra)
            assert _code(err) == "ValidationException" and arn in str(err.value)


def test_tags_survive_a_restart(tmp_path: Path) -> None:
    root = tmp_path / "root"
    proc = start_server(root)
    try:
        client(proc, "s3").create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        sm = client(proc, "sagemaker")
        arn = _train(sm, client(proc, "s3"), "restarted", tags=[{"Key": "a", "Value": "1"}])["TrainingJobArn"]
        sm.add_tags(ResourceArn=arn, Tags=[{"Key": "b", "Value": "2"}])
    finally:
        proc.stop()
    proc = start_server(root)
    try:
        tags = client(proc, "sagemaker").list_tags(ResourceArn=arn)["Tags"]
        assert tags == [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]
    finally:
        proc.stop()


# ---- what clients probe -----------------------------------------------------------------------------


def test_list_of_kinds_never_created_is_empty(server: ServerProcess, tmp_path: Path) -> None:
    sm = client(server, "sagemaker")
    assert sm.list_monitoring_schedules()["MonitoringScheduleSummaries"] == []
    assert sm.list_monitoring_schedules(EndpointName="iris-knn")["MonitoringScheduleSummaries"] == []
    assert sm.list_inference_components()["InferenceComponents"] == []
    assert sm.list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"] == []
    with pytest.raises(ClientError) as err:
        sm.list_pipeline_executions(PipelineName="nightly")
    assert _code(err) == "ResourceNotFound" and "'nightly' does not exist" in str(err.value)
    # In-process, the engine answers alike.
    engine = LocalSageMakerClient(tmp_path, region=REGION)
    assert engine.list_monitoring_schedules()["MonitoringScheduleSummaries"] == []
    with pytest.raises(AttributeError):
        engine.create_monitoring_schedule  # noqa: B018


def test_unsupported_kinds_fail_clearly(server: ServerProcess) -> None:
    sm = client(server, "sagemaker")
    with pytest.raises(ClientError) as err:
        sm.describe_monitoring_schedule(MonitoringScheduleName="nightly")
    assert _code(err) == "UnknownOperationException"
    message = str(err.value)
    assert "DescribeMonitoringSchedule" in message and "CreateTrainingJob" in message and "List*" in message


def test_a_serverless_variant_deploys_and_answers(server: ServerProcess, jobs) -> None:
    sm, runtime = client(server, "sagemaker"), client(server, "sagemaker-runtime")
    url = jobs["logs-a"]["ModelArtifacts"]["S3ModelArtifacts"]
    sm.create_model(**model_request("serverless-model", url))
    sm.create_endpoint_config(
        EndpointConfigName="serverless-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "serverless-model",
                "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
            }
        ],
    )
    config = sm.describe_endpoint_config(EndpointConfigName="serverless-config")
    assert config["ProductionVariants"][0]["ServerlessConfig"] == {
        "MemorySizeInMB": 2048,
        "MaxConcurrency": 5,
    }
    sm.create_endpoint(EndpointName="serverless", EndpointConfigName="serverless-config")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="serverless", WaiterConfig=FAST)
    answer = runtime.invoke_endpoint(
        EndpointName="serverless", ContentType="text/csv", Body=b"5.0,3.4,1.5,0.2\n6.6,3.0,5.6,2.0\n"
    )
    predictions = [p["predicted_label"] for p in json.loads(answer["Body"].read())["predictions"]]
    assert predictions == [2.0, 0.0]
    sm.delete_endpoint(EndpointName="serverless")


# ---- errors in the service's own shape --------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "call", "operation"),
    [
        (
            "logs",
            lambda c: c.create_log_anomaly_detector(logGroupArnList=["arn:x"]),
            "CreateLogAnomalyDetector",
        ),
        ("iam", lambda c: c.change_password(OldPassword="a", NewPassword="b"), "ChangePassword"),
    ],
)
def test_operations_moto_lacks_answer_in_the_services_shape(
    server: ServerProcess, service, call, operation
) -> None:
    with pytest.raises(ClientError) as err:
        call(client(server, service))
    response = err.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert _code(err) in ("UnknownOperationException", "InvalidAction")
    assert operation in response["Error"]["Message"] and "does not implement" in response["Error"]["Message"]


@pytest.mark.parametrize(
    ("service", "headers", "form", "operation"),
    [
        ("logs", {"X-Amz-Target": "Logs_20140328.DescribeLogGroups"}, None, "DescribeLogGroups"),
        ("iam", {}, {"Action": "GetRole", "RoleName": "r"}, "GetRole"),
        ("s3", {}, None, "GET /bucket/key"),
    ],
)
def test_a_fault_inside_moto_is_an_internal_failure_clients_parse(service, headers, form, operation) -> None:
    """Whatever raises inside moto leaves as InternalFailure (500) in the service's own shape, naming it."""
    from botocore.parsers import create_parser
    from flask import Flask

    from iris_sagemaker.local_sagemaker.validation import other_service_model
    from iris_sagemaker.serve.moto_services import _service_error

    path = "/bucket/key" if service == "s3" else "/"
    method = "POST" if form else "GET"
    with Flask(__name__).test_request_context(path, method=method, headers=headers, data=form):
        response = _service_error(service, KeyError("boom"))
    assert response.status_code == 500
    model = other_service_model(service)
    op = model.operation_model(operation if operation in model.operation_names else model.operation_names[0])
    parsed = create_parser(model.protocol).parse(
        {"status_code": 500, "headers": dict(response.headers), "body": response.get_data()}, op.output_shape
    )
    assert parsed["Error"]["Code"] == "InternalFailure"
    assert f"failed on {service} operation {operation}: KeyError" in parsed["Error"]["Message"]


def test_a_service_moto_lacks_answers_in_its_shape(server: ServerProcess) -> None:
    """ecr-public (the provider's example_sagemaker.py logs in to it): not served, said parseably."""
    with pytest.raises(ClientError) as err:
        client(server, "ecr-public").get_authorization_token()
    response = err.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert _code(err) == "UnknownOperationException"
    assert "does not serve ecr-public (operation GetAuthorizationToken)" in response["Error"]["Message"]
