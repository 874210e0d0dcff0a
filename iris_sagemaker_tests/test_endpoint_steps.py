"""Deploying to an endpoint (create, update, retry, failures) on the embedded engine, which answers as
SageMaker does: the same code runs against boto3."""

from __future__ import annotations

import pytest

from iris_sagemaker.core.settings import Settings
from iris_sagemaker.core.specs import endpoint_config_request
from iris_sagemaker.local_sagemaker.testing import Lab, iris_like, model_request, to_csv
from iris_sagemaker.steps import endpoint_steps
from iris_sagemaker.steps.job_steps import SageMakerJobError

WAITING = endpoint_steps.endpoint_waiting(is_local=True)


@pytest.fixture
def lab(tmp_path) -> Lab:
    lab = Lab(tmp_path)
    labels, features = iris_like()
    lab.model("good", lab.train(train=to_csv(labels, features)))
    lab.put("broken/model.tar.gz", b"not a model")
    lab.client.create_model(**model_request("broken", f"s3://{lab.bucket}/broken/model.tar.gz"))
    return lab


def _config(name: str, model: str) -> dict:
    return endpoint_config_request(Settings(), name, model)


def _deploy(lab: Lab, config: str, model: str, logged: list[str] | None = None) -> dict:
    log = logged.append if logged is not None else (lambda _: None)
    return endpoint_steps.deploy(lab.client, "iris-knn", _config(config, model), WAITING, log=log)


def test_first_create_then_update_then_a_retry_reuses(lab: Lab) -> None:
    logged: list[str] = []
    assert _deploy(lab, "cfg-1", "good", logged)["EndpointConfigName"] == "cfg-1"
    assert "creating endpoint iris-knn with endpoint config cfg-1" in logged
    assert _deploy(lab, "cfg-2", "good", logged)["EndpointConfigName"] == "cfg-2"
    assert "updating endpoint iris-knn from endpoint config cfg-1 to cfg-2" in logged
    again = _deploy(lab, "cfg-2", "good", logged)
    assert again["EndpointStatus"] == "InService"
    assert "endpoint config cfg-2 already exists with model good: using it" in logged
    assert "endpoint iris-knn already serves endpoint config cfg-2 (a retry): using it" in logged
    assert len(lab.client.list_endpoints()["Endpoints"]) == 1


def test_a_failed_update_fails_the_step_and_keeps_the_old_model_serving(lab: Lab) -> None:
    _deploy(lab, "cfg-1", "good")
    with pytest.raises(SageMakerJobError) as err:
        _deploy(lab, "cfg-broken", "broken")
    message = str(err.value)
    assert "updating endpoint iris-knn to endpoint config cfg-broken failed" in message
    assert "not a readable model.tar.gz" in message
    assert "It still serves endpoint config cfg-1" in message
    described = lab.client.describe_endpoint(EndpointName="iris-knn")
    assert described["EndpointStatus"] == "InService" and described["EndpointConfigName"] == "cfg-1"


def test_a_failed_create_fails_with_the_reason_and_the_next_deploy_starts_over(lab: Lab) -> None:
    with pytest.raises(SageMakerJobError, match=r"endpoint iris-knn failed: ClientError: .*not a readable"):
        _deploy(lab, "cfg-broken", "broken")
    logged: list[str] = []
    assert _deploy(lab, "cfg-good", "good", logged)["EndpointStatus"] == "InService"
    assert any(line.startswith("endpoint iris-knn is Failed") and "deleting it" in line for line in logged)


def test_a_config_name_taken_by_another_model_is_refused(lab: Lab) -> None:
    _deploy(lab, "cfg-1", "good")
    with pytest.raises(SageMakerJobError, match="endpoint config cfg-1 already exists but serves model good"):
        _deploy(lab, "cfg-1", "broken")


def test_online_rows_and_their_latency(lab: Lab) -> None:
    from iris_sagemaker.local_sagemaker import LocalSageMakerRuntimeClient

    _deploy(lab, "cfg-1", "good")
    runtime = LocalSageMakerRuntimeClient(sagemaker=lab.client)
    check = endpoint_steps.invoke_rows(runtime, "iris-knn", [[5.0, 3.4, 1.5, 0.2], [6.6, 3.0, 5.6, 2.0]])
    assert check.predicted == [2.0, 0.0]
    assert len(check.latencies_ms) == 2 and 0 < check.p50_ms <= check.p99_ms
    assert endpoint_steps.describe_endpoint(lab.client, "never-made") is None


def test_every_row_is_checked_online_in_batched_requests(lab: Lab, monkeypatch) -> None:
    from iris_sagemaker.local_sagemaker import LocalSageMakerRuntimeClient

    _deploy(lab, "cfg-1", "good")
    _, features = iris_like(rows_per_class=20, seed=3)
    runtime = LocalSageMakerRuntimeClient(sagemaker=lab.client)
    sizes: list[int] = []
    real = runtime.invoke_endpoint

    def counting(**request):
        sizes.append(request["Body"].count(b"\n") + 1)
        return real(**request)

    monkeypatch.setattr(runtime, "invoke_endpoint", counting)
    monkeypatch.setattr(endpoint_steps, "MAX_REQUEST_BYTES", 200)
    check = endpoint_steps.invoke_rows(runtime, "iris-knn", features.tolist(), latency_rows=5)
    assert len(check.predicted) == 60 and len(check.latencies_ms) == 5
    assert sizes[:6] == [1] * 6 and all(1 < n <= 12 for n in sizes[6:]) and sum(sizes[1:]) == 60
    expected = lab.client.served.get("iris-knn", lab.client.endpoint_record("iris-knn")["model_data_url"])
    assert check.predicted == expected.predict(features).predicted.tolist()


def test_an_endpoint_switched_by_another_run_fails_the_online_check(lab: Lab) -> None:
    """Two runs deploying to one endpoint: the run whose config no longer serves says so."""
    _deploy(lab, "run-a", "good")
    endpoint_steps.check_still_serving(lab.client, "iris-knn", "run-a")  # still its own: passes
    _deploy(lab, "run-b", "good")  # the other run deploys meanwhile
    with pytest.raises(SageMakerJobError, match=r"endpoint iris-knn was switched to endpoint config run-b"):
        endpoint_steps.check_still_serving(lab.client, "iris-knn", "run-a")
