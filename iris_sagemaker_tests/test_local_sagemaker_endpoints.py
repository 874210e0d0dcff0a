"""Real-time endpoints in the embedded engine, in process: lifecycle, supervision, the runtime client,
and the CloudWatch view of their logs."""

from __future__ import annotations

import io
import json

import pytest
from botocore.exceptions import ClientError

from iris_sagemaker.local_sagemaker import jobs
from iris_sagemaker.local_sagemaker.client import ACCOUNT_ID
from iris_sagemaker.local_sagemaker.cloudwatch import LocalLogsClient
from iris_sagemaker.local_sagemaker.records import ENDPOINTS
from iris_sagemaker.local_sagemaker.runtime import LocalSageMakerRuntimeClient
from iris_sagemaker.local_sagemaker.testing import Lab, iris_like, to_csv, wait_for


def _variant(model: str) -> list[dict]:
    return [
        {
            "VariantName": "AllTraffic",
            "ModelName": model,
            "InitialInstanceCount": 1,
            "InstanceType": "ml.m5.large",
        }
    ]


def _deploy(lab: Lab, endpoint: str = "ep", config: str = "cfg", model: str = "m") -> dict:
    lab.client.create_endpoint_config(EndpointConfigName=config, ProductionVariants=_variant(model))
    lab.client.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
    return _settled(lab, endpoint)


def _settled(lab: Lab, endpoint: str) -> dict:
    return wait_for(
        lambda: lab.client.describe_endpoint(EndpointName=endpoint),
        "EndpointStatus",
        until=lambda r: r["EndpointStatus"] not in ("Creating", "Updating"),
    )


@pytest.fixture
def served(lab: Lab) -> Lab:
    labels, features = iris_like()
    lab.model("m", lab.train(train=to_csv(labels, features)))
    assert _deploy(lab)["EndpointStatus"] == "InService"
    return lab


def _invoke(lab: Lab, body: bytes | str | io.BytesIO, **kwargs) -> dict:
    runtime = LocalSageMakerRuntimeClient(sagemaker=lab.client)
    response = runtime.invoke_endpoint(EndpointName="ep", Body=body, ContentType="text/csv", **kwargs)
    return json.loads(response["Body"].read())


def test_the_runtime_client_takes_bytes_text_and_files_like_boto3(served: Lab) -> None:
    setosa = "5.0,3.4,1.5,0.2"
    expected = {"predictions": [{"predicted_label": 2.0}]}
    assert _invoke(served, setosa.encode()) == expected
    assert _invoke(served, setosa) == expected
    assert _invoke(served, io.BytesIO(setosa.encode())) == expected
    json_body = json.dumps({"instances": [{"features": [5.0, 3.4, 1.5, 0.2]}]})
    runtime = LocalSageMakerRuntimeClient(served.client.root)  # another process's view of the same root
    response = runtime.invoke_endpoint(EndpointName="ep", Body=json_body, ContentType="application/json")
    assert json.loads(response["Body"].read()) == expected
    assert response["InvokedProductionVariant"] == "AllTraffic"


def test_runtime_refusals(served: Lab) -> None:
    runtime = LocalSageMakerRuntimeClient(sagemaker=served.client)
    cases = [
        ({"TargetVariant": "Other"}, "has no production variant 'Other'"),
        ({"TargetModel": "model.tar.gz"}, "TargetModel is not supported"),
        ({"Accept": "text/html"}, "accept type 'text/html' is not supported"),
        ({"ContentType": None}, "no ContentType given"),
    ]
    for extra, message in cases:
        request = {"EndpointName": "ep", "Body": b"5.0,3.4,1.5,0.2", "ContentType": "text/csv", **extra}
        request = {k: v for k, v in request.items() if v is not None}
        with pytest.raises(ClientError, match=message):
            runtime.invoke_endpoint(**request)
    with pytest.raises(ClientError, match="failed to satisfy constraint"):
        runtime.invoke_endpoint(EndpointName="bad name!", Body=b"1", ContentType="text/csv")
    with pytest.raises(ClientError, match="row 1 of the request holds a value that is not a finite number"):
        runtime.invoke_endpoint(EndpointName="ep", Body=b"5.0,nan,1.5,0.2", ContentType="text/csv")
    assert _invoke(served, b"5.0,3.4,1.5,0.2")["predictions"][0]["predicted_label"] == 2.0


def test_a_failed_update_keeps_the_previous_model_serving(served: Lab) -> None:
    client = served.client
    served.put("broken/model.tar.gz", b"garbage")
    client.create_model(**{**_model_request(served, "broken"), "ModelName": "broken"})
    client.create_endpoint_config(EndpointConfigName="cfg-broken", ProductionVariants=_variant("broken"))
    client.update_endpoint(EndpointName="ep", EndpointConfigName="cfg-broken")
    settled = _settled(served, "ep")
    assert settled["EndpointStatus"] == "InService"
    assert settled["EndpointConfigName"] == "cfg"
    assert "not a readable model.tar.gz" in settled["FailureReason"]
    assert _invoke(served, b"5.0,3.4,1.5,0.2")["predictions"][0]["predicted_label"] == 2.0
    # A later good update clears the reason.
    client.create_endpoint_config(EndpointConfigName="cfg-2", ProductionVariants=_variant("m"))
    client.update_endpoint(EndpointName="ep", EndpointConfigName="cfg-2")
    settled = _settled(served, "ep")
    assert settled["EndpointConfigName"] == "cfg-2" and "FailureReason" not in settled


def _model_request(lab: Lab, name: str) -> dict:
    from iris_sagemaker.local_sagemaker.testing import model_request

    return model_request(name, f"s3://{lab.bucket}/broken/model.tar.gz")


def test_endpoint_api_refusals(served: Lab) -> None:
    client = served.client
    arn = f"arn:aws:sagemaker:us-east-2:{ACCOUNT_ID}"
    with pytest.raises(ClientError, match=f'Cannot create already existing endpoint "{arn}:endpoint/ep"'):
        client.create_endpoint(EndpointName="ep", EndpointConfigName="cfg")
    with pytest.raises(ClientError, match="Cannot create already existing endpoint configuration"):
        client.create_endpoint_config(EndpointConfigName="cfg", ProductionVariants=_variant("m"))
    with pytest.raises(ClientError, match="Could not find endpoint configuration"):
        client.create_endpoint(EndpointName="ep2", EndpointConfigName="missing")
    with pytest.raises(ClientError, match="Could not find endpoint "):
        client.update_endpoint(EndpointName="missing", EndpointConfigName="cfg")
    with pytest.raises(ClientError, match="Could not find endpoint "):
        client.delete_endpoint(EndpointName="missing")
    with pytest.raises(ClientError, match="Could not find endpoint configuration"):
        client.delete_endpoint_config(EndpointConfigName="missing")
    with pytest.raises(ClientError, match="AsyncInferenceConfig is not supported"):
        client.create_endpoint_config(
            EndpointConfigName="async",
            ProductionVariants=_variant("m"),
            AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": "s3://bucket/async"}},
        )


def test_a_loader_that_died_leaves_no_endpoint_creating(served: Lab) -> None:
    store = served.client._records
    dead = {"host": jobs.owner_stamp()["host"], "pid": 2**22 + 7, "create_time": 1.0, "token": "gone"}

    def creating(record: dict) -> bool:
        record.update(owner=dead, loading="cfg", deployed=None)
        record["state"]["EndpointStatus"] = "Creating"
        return True

    store.update(ENDPOINTS, "ep", creating)
    described = served.client.describe_endpoint(EndpointName="ep")
    assert described["EndpointStatus"] == "Failed"
    assert "stopped before the model of endpoint config cfg was loaded" in described["FailureReason"]
    with pytest.raises(ClientError, match="is Failed, not InService"):
        _invoke(served, b"5.0,3.4,1.5,0.2")


def test_endpoint_log_streams_through_the_logs_client(served: Lab) -> None:
    logs = LocalLogsClient(served.client.root)
    group = "/aws/sagemaker/Endpoints/ep"
    (stream,) = logs.describe_log_streams(logGroupName=group)["logStreams"]
    name = stream["logStreamName"]
    page = logs.get_log_events(logGroupName=group, logStreamName=name, startFromHead=True, limit=1)
    assert page["events"][0]["message"].startswith("loading model m from s3://")
    rest = logs.get_log_events(logGroupName=group, logStreamName=name, nextToken=page["nextForwardToken"])
    assert rest["events"][-1]["message"] == "endpoint InService with endpoint config cfg"
    latest = logs.get_log_events(logGroupName=group, logStreamName=name, limit=1)  # newest first by default
    assert latest["events"] == rest["events"][-1:]
    back = logs.get_log_events(logGroupName=group, logStreamName=name, nextToken=latest["nextBackwardToken"])
    assert [e["message"] for e in back["events"]][-1] == rest["events"][-2]["message"]
    future = logs.get_log_events(logGroupName=group, logStreamName=name, startTime=2**42, startFromHead=True)
    assert future["events"] == []
    with pytest.raises(ClientError, match="nextToken is invalid"):
        logs.get_log_events(logGroupName=group, logStreamName=name, nextToken="x/1")
    with pytest.raises(ClientError, match="Cannot order by LastEventTime with a logStreamNamePrefix"):
        logs.describe_log_streams(logGroupName=group, logStreamNamePrefix="All", orderBy="LastEventTime")
