"""What the Airflow mirror's tasks do, and where their settings come from (no Airflow import at load).

``airflow_dag`` only wires these into a DAG. Every request body comes from ``specs`` and every object
key from ``settings``, exactly as for the Dagster assets, so both orchestrators send identical requests
and leave identical objects. Task results are JSON (``sagemaker_steps.json_safe``): no XCom pickling.

The local tasks return the same XCom shapes as the Amazon provider's operators
(``{"Training": ...}``, ``{"Model": ...}``, ``{"Transform": ...}``), so downstream templates read the
same paths in both modes.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pandas as pd

from iris_sagemaker import dataset, evaluation, sagemaker_steps, specs
from iris_sagemaker.backends import make_sagemaker_client, make_store
from iris_sagemaker.settings import (
    DEFAULT_LOCAL_BUCKET,
    LOCAL_ROLE_ARN,
    RAW_KEY,
    SCORED_KEY,
    TEST_KEY,
    TEST_LABELS_KEY,
    TRAIN_KEY,
    Settings,
    SettingsError,
)
from iris_sagemaker.storage import ObjectStore, S3ObjectStore

logger = logging.getLogger(__name__)

# As in the tutorial: Airflow Variables `s3_bucket` and `role`, connection `aws-sagemaker`.
BUCKET_VARIABLE = "s3_bucket"
ROLE_VARIABLE = "role"
DEFAULT_CONN_ID = "aws-sagemaker"
CONN_ID_ENV = "IRIS_SAGEMAKER_AIRFLOW_CONN_ID"
DEFERRABLE_ENV = "IRIS_SAGEMAKER_AIRFLOW_DEFERRABLE"
CHECK_INTERVAL_ENV = "IRIS_SAGEMAKER_AIRFLOW_CHECK_INTERVAL"
DEFAULT_CHECK_INTERVAL = 30  # seconds, the provider's default
# The same bar as the Dagster asset check `accuracy_at_least_threshold`.
ACCURACY_THRESHOLD = evaluation.ACCURACY_THRESHOLD

# Jinja used by both modes; the macros are registered on the DAG (user_defined_macros).
MACROS_SETTINGS = "iris_settings"
MACROS_JOB_NAMES = "iris_job_names"
BUCKET_TEMPLATE = "{{ iris_settings().bucket }}"
ROLE_TEMPLATE = "{{ iris_settings().role_arn }}"
TRAINING_JOB_TEMPLATE = "{{ iris_job_names(run_id).training_job }}"
MODEL_TEMPLATE = "{{ iris_job_names(run_id).model }}"
TRANSFORM_JOB_TEMPLATE = "{{ iris_job_names(run_id).transform_job }}"
MODEL_DATA_URL_TEMPLATE = (
    "{{ ti.xcom_pull(task_ids='train_model')['Training']['ModelArtifacts']['S3ModelArtifacts'] }}"
)
MODEL_NAME_TEMPLATE = "{{ ti.xcom_pull(task_ids='create_model')['Model']['ModelName'] }}"
TRANSFORM_NAME_TEMPLATE = "{{ ti.xcom_pull(task_ids='test_model')['Transform']['TransformJobName'] }}"

Log = Callable[[str], None]


# --- settings -------------------------------------------------------------------------------------


def airflow_variable(key: str) -> str | None:
    """An Airflow Variable (environment ``AIRFLOW_VAR_*``, secrets backends, metastore) or None."""
    try:
        from airflow.sdk import Variable  # Airflow 3
    except ImportError:
        from airflow.models import Variable  # Airflow 2
    value = Variable.get(key, None)  # positional default: the keyword differs between the two lines
    text = "" if value is None else str(value).strip()
    return text or None


def resolve_settings(get_variable: Callable[[str], str | None] = airflow_variable) -> Settings:
    """Variables ``s3_bucket`` / ``role`` first, then the environment variables Dagster reads."""
    return Settings.from_env(bucket=get_variable(BUCKET_VARIABLE), role_arn=get_variable(ROLE_VARIABLE))


def parse_time_settings(backend: str | None = None) -> Settings:
    """What the DAG's shape needs when the file is parsed: backend, region, image, instance type.

    Bucket and role are not read here (Variables are read when a task runs, as in the tutorial), so a
    missing ``IRIS_SAGEMAKER_BUCKET`` never breaks the DagBag; the placeholders are never sent.
    """
    return Settings.from_env(backend=backend, bucket=DEFAULT_LOCAL_BUCKET, role_arn=LOCAL_ROLE_ARN)


def templated_settings(settings: Settings) -> Settings:
    """``settings`` with bucket and role as Jinja, rendered per task from the Variables/environment."""
    return replace(settings, bucket=BUCKET_TEMPLATE, role_arn=ROLE_TEMPLATE)


def conn_id() -> str:
    return os.environ.get(CONN_ID_ENV, "").strip() or DEFAULT_CONN_ID


def deferrable_default() -> bool:
    value = os.environ.get(DEFERRABLE_ENV, "").strip().lower() or "true"
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise SettingsError(f"{DEFERRABLE_ENV}={value!r} is not a boolean; use true or false")
    return value in ("true", "1", "yes")


def check_interval() -> int:
    """Seconds between the provider operators' status polls (aws mode)."""
    text = os.environ.get(CHECK_INTERVAL_ENV, "").strip() or str(DEFAULT_CHECK_INTERVAL)
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise SettingsError(f"{CHECK_INTERVAL_ENV}={text!r} is not a positive number of seconds")
    return value


def job_names(run_id: str) -> specs.JobNames:
    """One DAG run's names: the run id is unique per DAG, and a new run (manual or scheduled) gets a new
    one, so reruns never collide; a retried task within a run finds its own job (local) or starts a
    timestamp-suffixed one (the provider's ``action_if_job_exists="timestamp"``)."""
    return specs.job_names(run_id)


# --- requests (aws mode: the provider operators' configs) ------------------------------------------


def aws_configs(settings: Settings) -> dict[str, dict[str, Any]]:
    """The three operator configs: the shared builders' bodies with Jinja where a value is per run."""
    templated = templated_settings(settings)
    return {
        "training": specs.training_job_request(templated, TRAINING_JOB_TEMPLATE),
        "model": specs.model_request(templated, MODEL_TEMPLATE, MODEL_DATA_URL_TEMPLATE),
        "transform": specs.transform_job_request(templated, TRANSFORM_JOB_TEMPLATE, MODEL_NAME_TEMPLATE),
    }


# --- backends seen from Airflow -------------------------------------------------------------------


def object_store(settings: Settings, aws_conn_id: str) -> ObjectStore:
    """Local: the same store as Dagster. AWS: S3 through the Airflow connection (as the tutorial's S3Hook)."""
    if settings.is_local:
        return make_store(settings)
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3ObjectStore(S3Hook(aws_conn_id=aws_conn_id, region_name=settings.region).get_conn())


def sagemaker_client(settings: Settings, aws_conn_id: str, store: ObjectStore) -> Any:
    if settings.is_local:
        return make_sagemaker_client(settings, store=store)
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

    return SageMakerHook(aws_conn_id=aws_conn_id, region_name=settings.region).get_conn()


def waiting_for(settings: Settings) -> sagemaker_steps.Waiting:
    if settings.is_local:
        return sagemaker_steps.Waiting(first=0.02, max_interval=0.5)
    return sagemaker_steps.Waiting(first=5.0, max_interval=30.0)


# --- the tasks ------------------------------------------------------------------------------------


def data_prep(settings: Settings, store: ObjectStore, log: Log = logger.info) -> dict[str, Any]:
    """Read, validate and split Iris; write what Dagster's raw_iris / train_csv / test_csv write."""
    source, data = dataset.read_source(settings.data_url)
    frame = dataset.parse_iris(data, source)
    parts = dataset.split(frame, seed=settings.split_seed)
    bucket = settings.bucket
    store.put_bytes(bucket, RAW_KEY, frame.to_csv(index=False).encode())
    store.put_bytes(bucket, TRAIN_KEY, dataset.to_sagemaker_csv(parts.train))
    store.put_bytes(bucket, TEST_LABELS_KEY, parts.test_labels.to_frame().to_csv(index=False).encode())
    store.put_bytes(bucket, TEST_KEY, dataset.to_sagemaker_csv(parts.test_features))
    log(
        f"read {len(frame)} rows from {source}; wrote {len(parts.train)} train / {len(parts.test_features)} "
        f"test rows to {store.describe()}"
    )
    return {
        "source": source,
        "rows": len(frame),
        "train_rows": len(parts.train),
        "test_rows": len(parts.test_features),
        "split_seed": settings.split_seed,
        "train_uri": settings.uri(TRAIN_KEY),
        "test_uri": settings.uri(TEST_KEY),
        "labels_uri": settings.uri(TEST_LABELS_KEY),
    }


def train_model(settings: Settings, client: Any, run_id: str, log: Log = logger.info) -> dict[str, Any]:
    request = specs.training_job_request(settings, job_names(run_id).training_job)
    description = sagemaker_steps.run_training_job(client, request, waiting_for(settings), log=log)
    return {"Training": sagemaker_steps.json_safe(description)}


def create_model(
    settings: Settings, client: Any, run_id: str, model_data_url: str, log: Log = logger.info
) -> dict[str, Any]:
    request = specs.model_request(settings, job_names(run_id).model, model_data_url)
    return {"Model": sagemaker_steps.json_safe(sagemaker_steps.ensure_model(client, request, log=log))}


def test_model(
    settings: Settings, client: Any, run_id: str, model_name: str, log: Log = logger.info
) -> dict[str, Any]:
    request = specs.transform_job_request(settings, job_names(run_id).transform_job, model_name)
    description = sagemaker_steps.run_transform_job(client, request, waiting_for(settings), log=log)
    return {"Transform": sagemaker_steps.json_safe(description)}


def score_predictions(
    settings: Settings, store: ObjectStore, client: Any, transform_job_name: str, log: Log = logger.info
) -> dict[str, Any]:
    """Join the transform's predictions with the held-out labels, as Dagster's test_predictions does.

    Fails (like the blocking asset check) when accuracy is below ``ACCURACY_THRESHOLD``.
    """
    bucket = settings.bucket
    description = client.describe_transform_job(TransformJobName=transform_job_name)
    output_key = specs.transform_output_key(TEST_KEY)
    predicted = sagemaker_steps.read_transform_output(store, bucket, output_key, description)
    features = pd.read_csv(io.BytesIO(store.get_bytes(bucket, TEST_KEY)), header=None, names=dataset.FEATURES)
    labels = pd.read_csv(io.BytesIO(store.get_bytes(bucket, TEST_LABELS_KEY)))["true_label"]
    table = evaluation.join_predictions(features, labels, evaluation.parse_predictions(predicted))
    scores = evaluation.score(table)
    store.put_bytes(bucket, SCORED_KEY, table.to_csv(index=False).encode())
    log(
        f"accuracy {scores.accuracy:.4f} on {len(table)} test rows\n"
        f"{evaluation.confusion_markdown(scores.confusion)}"
    )
    if scores.accuracy < ACCURACY_THRESHOLD:
        raise ValueError(
            f"accuracy {scores.accuracy:.4f} on {len(table)} test rows is below {ACCURACY_THRESHOLD}"
        )
    return {
        "accuracy": scores.accuracy,
        "rows": len(table),
        "correct": int(table["correct"].sum()),
        "predictions_uri": settings.uri(output_key),
        "scored_uri": settings.uri(SCORED_KEY),
        "transform_job_name": transform_job_name,
    }
