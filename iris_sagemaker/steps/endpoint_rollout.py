"""The tutorial's "next step", for both orchestrators: put a model on the stable endpoint and check it
online (``endpoint_steps`` does the SageMaker calls).

- Dagster's ``knn_endpoint``: :func:`deploy_run_model` deploys the run's model while holding the
  endpoint (unless a later run published since), checks the endpoint against the batch predictions, and
  publishes the endpoint's description beside the run's other objects;
- Airflow's ``sagemaker_deploy``: :func:`model_to_deploy` picks the model (the DAG param, else the latest
  published run's), the provider's operators deploy it, and :func:`check_online_accuracy` scores the
  endpoint on the published held-out rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd
from botocore.exceptions import ClientError

from iris_sagemaker.core import dataset, evaluation, run_objects, specs
from iris_sagemaker.core.settings import TEST_KEY, TEST_LABELS_KEY, Settings
from iris_sagemaker.core.storage import ObjectNotFound, ObjectStore, read_csv, write_json
from iris_sagemaker.steps import endpoint_steps, job_steps
from iris_sagemaker.steps.job_steps import Log, OnPoll

SLICE_ROWS = 20_000


class DeployError(RuntimeError):
    """There is nothing to deploy, or the endpoint failed the online check."""


# --- deploying a run's model (Dagster's knn_endpoint) ---------------------------------------------------


def invoke_in_slices(runtime: Any, name: str, rows: pd.DataFrame, step: int = SLICE_ROWS) -> Any:
    """``endpoint_steps.invoke_rows`` over ``rows`` a slice at a time: it formats every row it gets at
    once, so slices keep that (and each response) small. The first slice times the one-row requests; each
    later one adds one untimed warm-up request. Labels are shared floats (one object per class)."""
    online = endpoint_steps.invoke_rows(runtime, name, rows.iloc[:step].to_numpy())
    online.predicted[:] = evaluation.shared_floats(online.predicted)
    for start in range(step, len(rows), step):
        part = rows.iloc[start : start + step].to_numpy()
        more = endpoint_steps.invoke_rows(runtime, name, part, latency_rows=0).predicted
        online.predicted.extend(evaluation.shared_floats(more))
    return online


@dataclass(frozen=True)
class Rollout:
    """What :func:`deploy_run_model` did: deployed and checked (``value``: DescribeEndpoint with the
    online check), or not (``reason``)."""

    reason: str | None = None
    value: dict[str, Any] | None = None
    online: endpoint_steps.OnlineCheck | None = None

    @property
    def deployed(self) -> bool:
        return self.value is not None

    @property
    def agreement(self) -> float:
        """The share of test rows the endpoint predicts as the batch transform did."""
        assert self.value is not None
        check = self.value["OnlineCheck"]
        batch = check["batch"]
        return sum(a == b for a, b in zip(check["online"], batch, strict=True)) / len(batch)


def deploy_run_model(
    client: Any,
    runtime: Any,
    store: ObjectStore,
    settings: Settings,
    run: str,
    model_name: str,
    features: pd.DataFrame,
    batch_predictions: pd.Series,
    description_key: str,
    log: Log = print,
    on_poll: OnPoll | None = None,
) -> Rollout:
    """Deploy ``model_name`` (run ``run``'s) to ``settings.endpoint_name`` and check it online: every
    row of ``features`` must get the batch transform's answer (``batch_predictions``; the agreement is
    reported, the Dagster check judges it).

    Runs deploying to one endpoint take turns (``endpoint_steps.endpoint_lock``); holding it, a run
    whose model is no longer the published one (``iris/latest-run.json`` names another) does not deploy,
    so the endpoint ends on the model of the run that published last. The endpoint's description is
    written to the run's copy of ``description_key`` and published there (``run_objects.publish_more``)
    while the run still holds the endpoint.
    """
    name, bucket = settings.endpoint_name, settings.bucket
    config = specs.endpoint_config_request(settings, specs.endpoint_config_name(run), model_name)
    waiting = endpoint_steps.endpoint_waiting(settings.is_local)
    with endpoint_steps.endpoint_lock(store, bucket, name, run, waiting, log):
        latest = run_objects.latest_run(store, bucket)
        if latest.get("model_name") not in (None, model_name):
            return Rollout(
                reason=f"not deployed: run {latest.get('run')!r} published last (iris/latest-run.json), so "
                f"its model {latest['model_name']} is the one to serve; the endpoint is left to that run"
            )
        described = endpoint_steps.deploy(client, name, config, waiting, log=log, on_poll=on_poll)
        online = invoke_in_slices(runtime, name, features[dataset.FEATURES])
        endpoint_steps.check_still_serving(client, name, config["EndpointConfigName"])
        batch = evaluation.shared_floats(batch_predictions)
        check = {"online": online.predicted, "batch": batch}
        value = {**job_steps.json_safe(described), "OnlineCheck": check}
        own = run_objects.scoped(description_key, run)
        write_json(store, bucket, own, value)
        run_objects.publish_more(store, bucket, run, {description_key: own}, log)
    return Rollout(value=value, online=online)


# --- the deploy DAG (Airflow's sagemaker_deploy) ----------------------------------------------------------


def model_to_deploy(
    settings: Settings, store: ObjectStore, client: Any, model_name: str | None = None
) -> dict[str, str]:
    """The model to deploy: ``model_name`` when given, else the model of the latest published run
    (``iris/latest-run.json``); DeployError when there is none, or SageMaker has no such model."""
    source = "the DAG param model_name"
    latest_uri = settings.uri(run_objects.LATEST_KEY)
    if not model_name:
        source = f"named by {latest_uri}"
        try:
            latest = json.loads(store.get_bytes(settings.bucket, run_objects.LATEST_KEY))
        except ObjectNotFound:
            raise DeployError(
                f"nothing to deploy: {latest_uri} does not exist. Run the pipeline first (airflow dags test "
                "sagemaker_pipeline, or make airflow-run), or pass the DAG param model_name"
            ) from None
        model_name = latest.get("model_name")
        if not model_name:
            raise DeployError(
                f"{latest_uri} (run {latest.get('run')}) names no model: it was published by an older "
                "version; rerun the pipeline, or pass the DAG param model_name"
            )
    try:
        described = client.describe_model(ModelName=model_name)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") != "ValidationException":
            raise
        said = err.response["Error"].get("Message")
        raise DeployError(
            f"model {model_name} ({source}) does not exist in SageMaker: {said} "
            "Pass the name of an existing model (aws sagemaker list-models), or run the pipeline again"
        ) from None
    return {"ModelName": model_name, "ModelDataUrl": described["PrimaryContainer"]["ModelDataUrl"]}


def check_online_accuracy(
    settings: Settings,
    store: ObjectStore,
    runtime: Any,
    endpoint_name: str,
    previous_config: str | None = None,
    log: Log = print,
) -> dict[str, Any]:
    """Invoke the endpoint with the published held-out test rows; DeployError below
    ``settings.accuracy_threshold``, saying how to roll back to ``previous_config`` (what served before
    this deployment)."""
    bucket = settings.bucket
    try:
        features = read_csv(store, bucket, TEST_KEY, header=None, names=dataset.FEATURES)
        labels = read_csv(store, bucket, TEST_LABELS_KEY)["true_label"]
    except ObjectNotFound as err:
        raise DeployError(
            f"no published held-out test set to check the endpoint with ({err}): run the pipeline first "
            "(make airflow-run), so that a run publishes its test split"
        ) from None
    online = invoke_in_slices(runtime, endpoint_name, features)
    table = evaluation.join_predictions(features, labels, online.predicted)
    scores = evaluation.score(table)
    log(
        f"endpoint {endpoint_name}: accuracy {scores.accuracy:.4f} on {len(table)} held-out rows; "
        f"one-row latency p50 {online.p50_ms:.1f} ms, p99 {online.p99_ms:.1f} ms"
    )
    if scores.accuracy < settings.accuracy_threshold:
        undo = (
            f"aws sagemaker update-endpoint --endpoint-name {endpoint_name} --endpoint-config-name "
            f"{previous_config}"
            if previous_config
            else f"aws sagemaker delete-endpoint --endpoint-name {endpoint_name}"
        )
        raise DeployError(
            f"endpoint {endpoint_name}: accuracy {scores.accuracy:.4f} on {len(table)} held-out rows is "
            f"below {settings.accuracy_threshold}; it stays deployed. Roll it back: {undo}"
        )
    return {
        "endpoint_name": endpoint_name,
        "accuracy": scores.accuracy,
        "rows": len(table),
        "p50_ms": online.p50_ms,
        "p99_ms": online.p99_ms,
    }
