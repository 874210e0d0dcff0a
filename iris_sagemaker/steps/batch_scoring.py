"""The tutorial's test step, for both orchestrators: batch-transform the test split, read what the job
wrote, score it against the held-out labels, and publish the run to the tutorial's keys when it passed.

Dagster's ``test_predictions`` runs the transform itself (:func:`transform_and_score`); Airflow's
``score_predictions`` scores the job its ``test_model`` operator ran (:func:`score_transform`). Both
publish with :func:`publish_scored_run`, so the same objects reach the same keys (``run_objects``):
the split the model trained on (with the raw table beside it), the test split and its labels, the
predictions and the scored table; Dagster adds its JSON descriptions (``iris/dagster/``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
from botocore.exceptions import ClientError

from iris_sagemaker.core import dataset, evaluation, run_objects, specs
from iris_sagemaker.core.settings import Settings
from iris_sagemaker.core.storage import ObjectStore, parse_s3_uri, read_csv, write_csv
from iris_sagemaker.steps import job_steps
from iris_sagemaker.steps.job_steps import Log, OnPoll


@dataclass(frozen=True)
class ScoredBatch:
    """A Completed transform job's predictions, joined with the held-out labels and scored."""

    transform: dict[str, Any]  # the job's DescribeTransformJob
    test_key: str  # what it read
    output_key: str  # what it wrote: the predictions
    table: pd.DataFrame  # one row per test row: features, true and predicted label and species, correct
    scores: evaluation.Scores

    @property
    def model_name(self) -> str:
        return str(self.transform["ModelName"])

    def verdict(self, threshold: float, run: str, settings: Settings) -> str | None:
        """Why the run is not published (below ``threshold``), or None: it publishes."""
        kept_in = settings.uri(run_objects.run_prefix(run))
        return evaluation.below_threshold(self.scores.accuracy, len(self.table), threshold, kept_in)


def read_test_split(store: ObjectStore, bucket: str, test_key: str, labels_key: str) -> pd.DataFrame:
    """The test split as the transform reads it (header-less features) with its held-out labels as
    ``true_label``: what Dagster's IO manager loads for ``test_csv``."""
    features = read_csv(store, bucket, test_key, header=None, names=dataset.FEATURES)
    labels = read_csv(store, bucket, labels_key)["true_label"]
    return features.assign(true_label=labels.to_numpy())


def score_transform(
    store: ObjectStore, bucket: str, transform: dict[str, Any], test: pd.DataFrame
) -> ScoredBatch:
    """Read the ``.out`` the Completed transform job ``transform`` wrote (never a missing or stale one:
    ``job_steps.read_transform_output``) and join it with ``test`` (features and ``true_label``)."""
    test_key, output_key = specs.transform_keys(transform)
    predicted = job_steps.read_transform_output(store, bucket, output_key, transform)
    table = evaluation.join_predictions(
        test[dataset.FEATURES], test["true_label"], evaluation.parse_predictions(predicted)
    )
    del predicted  # the output's bytes: parsed, no longer needed
    return ScoredBatch(transform, test_key, output_key, table, evaluation.score(table))


def transform_and_score(
    client: Any,
    store: ObjectStore,
    settings: Settings,
    request: dict[str, Any],
    test: pd.DataFrame,
    log: Log = print,
    on_poll: OnPoll | None = None,
) -> ScoredBatch:
    """Start (or find) the transform job of ``request``, wait for it, and score what it wrote."""
    transform = job_steps.run_transform_job(
        client, request, job_steps.waiting_for(settings.is_local), log=log, on_poll=on_poll
    )
    return score_transform(store, settings.bucket, transform, test)


def store_scored_table(store: ObjectStore, bucket: str, key: str, table: pd.DataFrame) -> None:
    """The scored table as a CSV with a header: what Dagster's IO manager writes for test_predictions."""
    write_csv(store, bucket, key, table, header=True)


def trained_on_key(client: Any, model_name: str) -> str | None:
    """The key of the train channel of the training job whose artifact ``model_name`` serves; None when
    that cannot be told (a model built from another artifact, or the job is gone)."""
    try:
        model = client.describe_model(ModelName=model_name)
        job = specs.training_job_of_artifact(str(model.get("PrimaryContainer", {}).get("ModelDataUrl", "")))
        if job is None:
            return None
        described = client.describe_training_job(TrainingJobName=job)
    except ClientError:
        return None
    return parse_s3_uri(str(described["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"])).key


def publish_scored_run(
    store: ObjectStore,
    client: Any,
    settings: Settings,
    run: str,
    batch: ScoredBatch,
    log: Log = print,
    more: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Publish run ``run``'s objects to the tutorial's keys (``run_objects.publish``, under its lock):
    the split the model trained on (the run's own when that cannot be told), the split the transform
    read, its predictions, the run's scored table, and ``more`` (tutorial key -> the run's object).
    Objects that do not exist are left out. Returns what was published."""
    bucket = settings.bucket
    train_key = trained_on_key(client, batch.model_name) or run_objects.run_keys(run).train
    scored_key = run_objects.run_keys(run).scored
    sources = {
        **run_objects.publish_sources(train_key, batch.test_key, batch.output_key, scored_key),
        **(more or {}),
    }
    present = {target: source for target, source in sources.items() if store.exists(bucket, source)}
    return run_objects.publish(store, bucket, run, present, log, model_name=batch.model_name)
