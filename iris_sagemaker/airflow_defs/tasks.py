"""What the DAGs' Python tasks do when they run (imported by the task callables, never at parse time).

``data_prep`` and ``score_predictions`` (the pipeline) and ``find_model`` / ``check_endpoint`` (the
deploy DAG). SageMaker's own steps are the provider's operators (``operators``). Every task reaches S3 and
SageMaker through the ``aws-sagemaker`` connection, in both modes: in local mode it names
``iris-sagemaker serve`` (``connection``), whose S3 is the local bucket folder Dagster uses. Object keys
come from ``run_objects`` (the run's own folder, published to the tutorial's keys once it scored), data
from ``dataset``, scores from ``evaluation``, as for the Dagster assets. Results are JSON: no XCom
pickling.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd
from botocore.exceptions import ClientError

from iris_sagemaker.airflow_defs.config import resolve_settings
from iris_sagemaker.airflow_defs.connection import ensure_connection
from iris_sagemaker.core import dataset, evaluation, run_objects, specs
from iris_sagemaker.core.settings import PREDICTIONS_KEY, SCORED_KEY, TEST_KEY, TEST_LABELS_KEY, Settings
from iris_sagemaker.core.storage import BucketNotFound, ObjectNotFound, ObjectStore, S3ObjectStore
from iris_sagemaker.steps import endpoint_steps, job_steps, tuning_steps

logger = logging.getLogger(__name__)

# The same bar as the Dagster asset check `accuracy_at_least_threshold`.
ACCURACY_THRESHOLD = evaluation.ACCURACY_THRESHOLD

Log = job_steps.Log


@dataclass(frozen=True)
class Backends:
    """What a task talks to, all through one Airflow connection."""

    settings: Settings
    store: ObjectStore
    sagemaker: Any
    conn_id: str

    def runtime(self) -> Any:
        """A ``sagemaker-runtime`` client (InvokeEndpoint) on the same connection."""
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        hook = AwsBaseHook(aws_conn_id=self.conn_id, client_type="sagemaker-runtime")
        return hook.get_client_type(region_name=self.settings.region)


def backends(conn_id: str, log: Log = logger.info) -> Backends:
    """Settings (Variables, then the environment), and S3 and SageMaker through ``conn_id``."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

    settings = resolve_settings()
    ensure_connection(conn_id, settings, log)
    s3 = S3Hook(aws_conn_id=conn_id, region_name=settings.region).get_conn()
    sagemaker = SageMakerHook(aws_conn_id=conn_id, region_name=settings.region).get_conn()
    return Backends(settings, S3ObjectStore(s3), sagemaker, conn_id)


def ensure_local_bucket(store: S3ObjectStore, settings: Settings, log: Log = logger.info) -> None:
    """Local mode: create the bucket on the local server when it is missing (a folder under the root).
    On AWS the bucket is the user's (the tutorial's Variable ``s3_bucket``) and is never created."""
    if not settings.is_local:
        return
    try:
        store.check_bucket(settings.bucket)
        return
    except BucketNotFound:
        pass
    config = {} if settings.region == "us-east-1" else {"LocationConstraint": settings.region}
    store.client.create_bucket(Bucket=settings.bucket, CreateBucketConfiguration=config)
    log(f"created local bucket {settings.bucket}")


# --- the pipeline ---------------------------------------------------------------------------------


def data_prep(settings: Settings, store: ObjectStore, run_id: str, log: Log = logger.info) -> dict[str, Any]:
    """Read, validate and split Iris; write what Dagster's raw_iris / train_csv / test_csv write, in the
    run's own folder (``run_objects``)."""
    keys = run_objects.run_keys(run_id)
    source, data = dataset.read_source(settings.data_url)
    frame = dataset.parse_iris(data, source)
    parts = dataset.split(frame, seed=settings.split_seed)
    bucket = settings.bucket
    store.put_bytes(bucket, keys.raw, frame.to_csv(index=False).encode())
    store.put_bytes(bucket, keys.train, dataset.to_sagemaker_csv(parts.train))
    store.put_bytes(bucket, keys.labels, parts.test_labels.to_frame().to_csv(index=False).encode())
    store.put_bytes(bucket, keys.test, dataset.to_sagemaker_csv(parts.test_features))
    tuning = {}
    if settings.tune:  # tune_model's data: carved from the training rows, as knn_tuning_job does
        data = tuning_steps.write_tuning_data(store, bucket, parts.train, run_id, settings.split_seed)
        tuning = {"fit_uri": settings.uri(data.fit_key), "validation_uri": settings.uri(data.validation_key)}
    log(
        f"read {len(frame)} rows from {source}; wrote {len(parts.train)} train / {len(parts.test_features)} "
        f"test rows to {store.describe()}, under {settings.uri(keys.raw.rpartition('/raw/')[0])}/"
    )
    return {
        "source": source,
        "rows": len(frame),
        "train_rows": len(parts.train),
        "test_rows": len(parts.test_features),
        "split_seed": settings.split_seed,
        "train_uri": settings.uri(keys.train),
        "test_uri": settings.uri(keys.test),
        "labels_uri": settings.uri(keys.labels),
        **tuning,
    }


def score_predictions(
    settings: Settings,
    store: ObjectStore,
    client: Any,
    transform_job_name: str,
    run_id: str,
    log: Log = logger.info,
) -> dict[str, Any]:
    """Join the transform's predictions with the held-out labels, as Dagster's test_predictions does,
    then publish the run's objects to the tutorial's keys.

    Fails (like the blocking asset check) when accuracy is below ``settings.accuracy_threshold``
    (IRIS_SAGEMAKER_ACCURACY_THRESHOLD, default ``ACCURACY_THRESHOLD``); nothing is
    published then.
    """
    bucket = settings.bucket
    keys = run_objects.run_keys(run_id)
    description = client.describe_transform_job(TransformJobName=transform_job_name)
    output_key = specs.transform_output_key(keys.test, keys.output_prefix)
    predicted = job_steps.read_transform_output(store, bucket, output_key, description)
    test_csv = store.get_bytes(bucket, keys.test)
    features = pd.read_csv(io.BytesIO(test_csv), header=None, names=dataset.FEATURES)
    labels = pd.read_csv(io.BytesIO(store.get_bytes(bucket, keys.labels)))["true_label"]
    table = evaluation.join_predictions(features, labels, evaluation.parse_predictions(predicted))
    scores = evaluation.score(table)
    store.put_bytes(bucket, keys.scored, table.to_csv(index=False).encode())
    log(
        f"accuracy {scores.accuracy:.4f} on {len(table)} test rows\n"
        f"{evaluation.confusion_markdown(scores.confusion)}"
    )
    if scores.accuracy < settings.accuracy_threshold:
        raise ValueError(
            f"accuracy {scores.accuracy:.4f} on {len(table)} test rows is below "
            f"{settings.accuracy_threshold}; the run's objects stay in "
            f"{settings.uri(keys.raw.rpartition('/raw/')[0])}/ and are not published"
        )
    sources = run_objects.publish_sources(keys.train, keys.test, output_key, keys.scored)
    run_objects.publish(store, bucket, run_id, sources, log, model_name=description["ModelName"])
    return {
        "accuracy": scores.accuracy,
        "rows": len(table),
        "correct": int(table["correct"].sum()),
        "predictions_uri": settings.uri(output_key),
        "scored_uri": settings.uri(keys.scored),
        "published_predictions_uri": settings.uri(PREDICTIONS_KEY),
        "published_scored_uri": settings.uri(SCORED_KEY),
        "transform_job_name": transform_job_name,
        "model_name": description["ModelName"],
    }


# --- the deploy DAG -------------------------------------------------------------------------------


class DeployError(RuntimeError):
    """The deploy DAG has nothing to deploy, or its endpoint failed the online check."""


def find_model(settings: Settings, store: ObjectStore, client: Any, model_name: str | None = None) -> dict:
    """The model to deploy: ``model_name`` (the DAG's param) when given, else the model of the latest
    published pipeline run (``iris/latest-run.json``)."""
    source = "the DAG param model_name"
    if not model_name:
        source = f"named by {settings.uri(run_objects.LATEST_KEY)}"
        try:
            latest = json.loads(store.get_bytes(settings.bucket, run_objects.LATEST_KEY))
        except ObjectNotFound:
            raise DeployError(
                f"nothing to deploy: {settings.uri(run_objects.LATEST_KEY)} does not exist. Run the pipeline "
                "first (airflow dags test sagemaker_pipeline, or make airflow-run), or pass the DAG param "
                "model_name"
            ) from None
        model_name = latest.get("model_name")
        if not model_name:
            raise DeployError(
                f"{settings.uri(run_objects.LATEST_KEY)} (run {latest.get('run')}) names no model: it was "
                "published by an older version; rerun the pipeline, or pass the DAG param model_name"
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


def check_endpoint(
    settings: Settings,
    store: ObjectStore,
    runtime: Any,
    endpoint_name: str,
    previous_config: str | None = None,
    log: Log = logger.info,
) -> dict[str, Any]:
    """Invoke the endpoint with the published held-out test rows; fail below ``settings.accuracy_threshold``,
    saying how to roll back to ``previous_config`` (what served before this deployment)."""
    bucket = settings.bucket
    try:
        test_csv, labels_csv = store.get_bytes(bucket, TEST_KEY), store.get_bytes(bucket, TEST_LABELS_KEY)
    except ObjectNotFound as err:
        raise DeployError(
            f"no published held-out test set to check the endpoint with ({err}): run the pipeline first "
            "(make airflow-run), so that a run publishes its test split"
        ) from None
    features = pd.read_csv(io.BytesIO(test_csv), header=None, names=dataset.FEATURES)
    labels = pd.read_csv(io.BytesIO(labels_csv))["true_label"]
    online = endpoint_steps.invoke_rows(runtime, endpoint_name, features.to_numpy().tolist())
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
