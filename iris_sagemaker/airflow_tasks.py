"""What the Airflow mirror's tasks do when they run (imported by the task callables, not at parse time).

``airflow_dag`` only wires these into a DAG. Every request body comes from ``specs`` and every object
key from ``run_objects`` (the run's own folder, published to the tutorial's keys once it scored), exactly
as for the Dagster assets, so both orchestrators send identical requests and leave identical objects.
Task results are JSON (``sagemaker_steps.json_safe``): no XCom pickling.

The local tasks return the same XCom shapes as the Amazon provider's operators
(``{"Training": ...}``, ``{"Model": ...}``, ``{"Transform": ...}``), so downstream templates read the
same paths in both modes.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import pandas as pd

from iris_sagemaker import dataset, evaluation, run_objects, sagemaker_steps, specs
from iris_sagemaker.airflow_config import job_names, resolve_settings
from iris_sagemaker.backends import make_sagemaker_client, make_store
from iris_sagemaker.settings import PREDICTIONS_KEY, SCORED_KEY, Settings
from iris_sagemaker.storage import ObjectStore, S3ObjectStore

logger = logging.getLogger(__name__)

# The same bar as the Dagster asset check `accuracy_at_least_threshold`.
ACCURACY_THRESHOLD = evaluation.ACCURACY_THRESHOLD

Log = sagemaker_steps.Log


# --- backends seen from Airflow -------------------------------------------------------------------


def object_store(settings: Settings, aws_conn_id: str) -> ObjectStore:
    """Local: the same store as Dagster. AWS: S3 through the Airflow connection (as the tutorial's S3Hook)."""
    if settings.is_local:
        return make_store(settings)
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3ObjectStore(S3Hook(aws_conn_id=aws_conn_id, region_name=settings.region).get_conn())


def backends(aws_conn_id: str) -> tuple[Settings, ObjectStore, Any]:
    """Settings, object store and SageMaker client, resolved when the task runs."""
    settings = resolve_settings()
    store = object_store(settings, aws_conn_id)
    return settings, store, sagemaker_client(settings, aws_conn_id, store)


def sagemaker_client(settings: Settings, aws_conn_id: str, store: ObjectStore) -> Any:
    if settings.is_local:
        return make_sagemaker_client(settings, store=store)
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

    return SageMakerHook(aws_conn_id=aws_conn_id, region_name=settings.region).get_conn()


# --- the tasks ------------------------------------------------------------------------------------


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
    }


def train_model(settings: Settings, client: Any, run_id: str, log: Log = logger.info) -> dict[str, Any]:
    keys = run_objects.run_keys(run_id)
    request = specs.training_job_request(settings, job_names(run_id).training_job, train_key=keys.train)
    description = sagemaker_steps.run_training_job(
        client, request, sagemaker_steps.waiting_for(settings.is_local), log=log
    )
    return {"Training": sagemaker_steps.json_safe(description)}


def create_model(
    settings: Settings, client: Any, run_id: str, model_data_url: str, log: Log = logger.info
) -> dict[str, Any]:
    request = specs.model_request(settings, job_names(run_id).model, model_data_url)
    return {"Model": sagemaker_steps.json_safe(sagemaker_steps.ensure_model(client, request, log=log))}


def test_model(
    settings: Settings, client: Any, run_id: str, model_name: str, log: Log = logger.info
) -> dict[str, Any]:
    keys = run_objects.run_keys(run_id)
    request = specs.transform_job_request(
        settings,
        job_names(run_id).transform_job,
        model_name,
        input_key=keys.test,
        output_prefix=keys.output_prefix,
    )
    description = sagemaker_steps.run_transform_job(
        client, request, sagemaker_steps.waiting_for(settings.is_local), log=log
    )
    return {"Transform": sagemaker_steps.json_safe(description)}


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

    Fails (like the blocking asset check) when accuracy is below ``ACCURACY_THRESHOLD``; nothing is
    published then.
    """
    bucket = settings.bucket
    keys = run_objects.run_keys(run_id)
    description = client.describe_transform_job(TransformJobName=transform_job_name)
    output_key = specs.transform_output_key(keys.test, keys.output_prefix)
    predicted = sagemaker_steps.read_transform_output(store, bucket, output_key, description)
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
    if scores.accuracy < ACCURACY_THRESHOLD:
        raise ValueError(
            f"accuracy {scores.accuracy:.4f} on {len(table)} test rows is below {ACCURACY_THRESHOLD}; the "
            f"run's objects stay in {settings.uri(keys.raw.rpartition('/raw/')[0])}/ and are not published"
        )
    sources = run_objects.publish_sources(keys.train, keys.test, output_key, keys.scored)
    run_objects.publish(store, bucket, run_id, sources, log)
    return {
        "accuracy": scores.accuracy,
        "rows": len(table),
        "correct": int(table["correct"].sum()),
        "predictions_uri": settings.uri(output_key),
        "scored_uri": settings.uri(keys.scored),
        "published_predictions_uri": settings.uri(PREDICTIONS_KEY),
        "published_scored_uri": settings.uri(SCORED_KEY),
        "transform_job_name": transform_job_name,
    }
