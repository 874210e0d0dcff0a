"""The tutorial's data preparation in one step, for an orchestrator without an IO manager (Airflow's
``data_prep``): read, validate and split Iris, and write what Dagster's raw_iris / train_csv / test_csv
(and, with tuning on, knn_tuning_job's validation split) write, in the run's own folder (``run_objects``).
"""

from __future__ import annotations

from typing import Any

from iris_sagemaker.core import dataset, run_objects
from iris_sagemaker.core.settings import Settings
from iris_sagemaker.core.storage import ObjectStore
from iris_sagemaker.steps import tuning_steps
from iris_sagemaker.steps.job_steps import Log


def prepare_run_data(settings: Settings, store: ObjectStore, run: str, log: Log = print) -> dict[str, Any]:
    """Read the Iris source (``settings.data_url``, else the packaged copy), split it (seeded by
    ``settings.split_seed``) and write the raw table, the train split (label first), the test features and
    the held-out labels to run ``run``'s folder; with ``settings.tune``, the fit and validation sets
    tuning trains and scores on too. Returns what it wrote (JSON: an XCom value)."""
    keys = run_objects.run_keys(run)
    source, data = dataset.read_source(settings.data_url)
    frame = dataset.parse_iris(data, source)
    parts = dataset.split(frame, seed=settings.split_seed)
    bucket = settings.bucket
    store.put_bytes(bucket, keys.raw, frame.to_csv(index=False).encode())
    store.put_bytes(bucket, keys.train, dataset.to_sagemaker_csv(parts.train))
    store.put_bytes(bucket, keys.labels, parts.test_labels.to_frame().to_csv(index=False).encode())
    store.put_bytes(bucket, keys.test, dataset.to_sagemaker_csv(parts.test_features))
    tuning = {}
    if settings.tune:  # carved from the training rows, as knn_tuning_job does
        carved = tuning_steps.write_tuning_data(store, bucket, parts.train, run, settings.split_seed)
        tuning = {
            "fit_uri": settings.uri(carved.fit_key),
            "validation_uri": settings.uri(carved.validation_key),
        }
    log(
        f"read {len(frame)} rows from {source}; wrote {len(parts.train)} train / {len(parts.test_features)} "
        f"test rows to {store.describe()}, under {settings.uri(run_objects.run_prefix(run))}/"
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
