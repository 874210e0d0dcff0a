"""What the DAGs' Python tasks do when they run (imported by the task callables, never at parse time).

``data_prep`` and ``score_predictions`` (the pipeline) and ``find_model`` / ``check_endpoint`` (the
deploy DAG). SageMaker's own steps are the provider's operators (``operators``). Every task reaches S3 and
SageMaker through the ``aws-sagemaker`` connection, in both modes: in local mode it names
``iris-sagemaker serve`` (``connection``), whose S3 is the local bucket folder Dagster uses.

Only orchestration lives here: the work is the steps the Dagster assets call too (``steps``:
``data_preparation``, ``batch_scoring``, ``endpoint_rollout``), so both orchestrators split, score and
publish alike. Results are JSON: no XCom pickling.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from iris_sagemaker.airflow_defs.config import resolve_settings
from iris_sagemaker.airflow_defs.connection import ensure_connection
from iris_sagemaker.core import evaluation, run_objects
from iris_sagemaker.core.settings import PREDICTIONS_KEY, SCORED_KEY, Settings
from iris_sagemaker.core.storage import BucketNotFound, ObjectStore, S3ObjectStore
from iris_sagemaker.steps import batch_scoring, data_preparation, endpoint_rollout, job_steps

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
    run's own folder (``data_preparation``)."""
    return data_preparation.prepare_run_data(settings, store, run_id, log)


def score_predictions(
    settings: Settings,
    store: ObjectStore,
    client: Any,
    transform_job_name: str,
    run_id: str,
    log: Log = logger.info,
) -> dict[str, Any]:
    """Join the transform's predictions with the held-out labels, as Dagster's test_predictions does,
    then publish the run's objects to the tutorial's keys (``batch_scoring``).

    Fails (like the blocking asset check) when accuracy is below ``settings.accuracy_threshold``
    (IRIS_SAGEMAKER_ACCURACY_THRESHOLD, default ``ACCURACY_THRESHOLD``); nothing is published then.
    """
    bucket, keys = settings.bucket, run_objects.run_keys(run_id)
    transform = client.describe_transform_job(TransformJobName=transform_job_name)
    test = batch_scoring.read_test_split(store, bucket, keys.test, keys.labels)
    scored = batch_scoring.score_transform(store, bucket, transform, test)
    batch_scoring.store_scored_table(store, bucket, keys.scored, scored.table)
    log(
        f"accuracy {scored.scores.accuracy:.4f} on {len(scored.table)} test rows\n"
        f"{evaluation.confusion_markdown(scored.scores.confusion)}"
    )
    problem = scored.verdict(settings.accuracy_threshold, run_id, settings)
    if problem:
        raise ValueError(problem)
    batch_scoring.publish_scored_run(store, client, settings, run_id, scored, log)
    return {
        "accuracy": scored.scores.accuracy,
        "rows": len(scored.table),
        "correct": int(scored.table["correct"].sum()),
        "predictions_uri": settings.uri(scored.output_key),
        "scored_uri": settings.uri(keys.scored),
        "published_predictions_uri": settings.uri(PREDICTIONS_KEY),
        "published_scored_uri": settings.uri(SCORED_KEY),
        "transform_job_name": transform_job_name,
        "model_name": scored.model_name,
    }


# --- the deploy DAG -------------------------------------------------------------------------------

DeployError = endpoint_rollout.DeployError


def find_model(settings: Settings, store: ObjectStore, client: Any, model_name: str | None = None) -> dict:
    """The model to deploy: ``model_name`` (the DAG's param) when given, else the model of the latest
    published pipeline run (``iris/latest-run.json``)."""
    return endpoint_rollout.model_to_deploy(settings, store, client, model_name)


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
    return endpoint_rollout.check_online_accuracy(
        settings, store, runtime, endpoint_name, previous_config, log
    )
