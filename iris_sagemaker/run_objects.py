"""Where one run keeps its objects, and how a finished run publishes them to the tutorial's keys.

The tutorial's keys are fixed per bucket (``iris/processed-input-data/train.csv``, ``.../test.csv``,
``iris/results/test.csv.out``, ...). Two runs at once on one bucket that both worked there would train
and score on each other's files and still succeed (DESIGN section 14). So no run works there:

* **A run works in its own folder**, ``iris/runs/<run>/``, laid out like the tutorial's keys
  (``iris/runs/<run>/processed-input-data/train.csv``, ``.../holdout/test_labels.csv``,
  ``.../results/test.csv.out``, ...). Its SageMaker jobs read and write there, nothing else writes there,
  and so a run computes from its own data whatever else runs on the bucket. ``<run>`` is the
  orchestrator's run (Dagster's root run id, so a re-execution finds its objects again; Airflow's run id).
* **A run that scored and passed its accuracy check publishes**: the objects it used and made are copied
  to the tutorial's keys, then ``iris/latest-run.json`` names the run. So the tutorial's keys always hold
  the latest successful run's objects. Publishing holds a lock object (written only if absent: S3's
  conditional write, a hard link locally), so two runs that finish together take turns and the published
  set is never a mix of both.

Run folders are kept (they are the runs' provenance); deleting old ones is safe once no run uses them.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from iris_sagemaker.settings import (
    OUTPUT_PREFIX,
    PREDICTIONS_KEY,
    RAW_KEY,
    SCORED_KEY,
    TEST_KEY,
    TEST_LABELS_KEY,
    TRAIN_KEY,
)
from iris_sagemaker.storage import ObjectNotFound, ObjectStore, ObjectStoreError

ROOT = "iris/"
RUNS_PREFIX = "iris/runs/"
LATEST_KEY = "iris/latest-run.json"
LOCK_KEY = "iris/.publish-lock"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class PublishError(RuntimeError):
    """Publishing could not take its lock; the message says who holds it and what to do."""


def run_folder(run: str) -> str:
    """The folder name of a run id: S3- and file-name-safe characters only (Airflow's run ids hold ``:``
    and ``+``)."""
    folder = _UNSAFE.sub("-", run).strip("-.")
    if not folder:
        raise ValueError(f"run id {run!r} has no letters or digits to name its folder with")
    return folder


def scoped(key: str, run: str) -> str:
    """The run's own copy of a tutorial key: ``iris/X`` -> ``iris/runs/<run>/X``."""
    if not key.startswith(ROOT) or key.startswith(RUNS_PREFIX):
        raise ValueError(f"{key!r} is not one of the tutorial's keys (under {ROOT!r})")
    return f"{RUNS_PREFIX}{run_folder(run)}/{key[len(ROOT):]}"


def published(key: str) -> str:
    """The tutorial key a run's object publishes to: ``iris/runs/<run>/X`` -> ``iris/X``."""
    if not key.startswith(RUNS_PREFIX):
        return key
    rest = key[len(RUNS_PREFIX) :].partition("/")[2]
    return ROOT + rest


def folder_of(key: str) -> str | None:
    """The run folder a key lives in, or None for a tutorial (published) key."""
    if not key.startswith(RUNS_PREFIX):
        return None
    return key[len(RUNS_PREFIX) :].partition("/")[0] or None


def sibling(key: str, tutorial_key: str) -> str:
    """``tutorial_key`` in the same place as ``key``: the same run's folder, or the published keys."""
    folder = folder_of(key)
    return f"{RUNS_PREFIX}{folder}/{tutorial_key[len(ROOT):]}" if folder else tutorial_key


@dataclass(frozen=True)
class RunKeys:
    """One run's objects, at the tutorial's relative places."""

    raw: str
    train: str
    test: str
    labels: str
    output_prefix: str
    predictions: str
    scored: str


TUTORIAL_KEYS = RunKeys(
    RAW_KEY, TRAIN_KEY, TEST_KEY, TEST_LABELS_KEY, OUTPUT_PREFIX, PREDICTIONS_KEY, SCORED_KEY
)


def run_keys(run: str) -> RunKeys:
    return RunKeys(*(scoped(key, run) for key in vars(TUTORIAL_KEYS).values()))


def publish_sources(train: str, test: str, predictions: str, scored: str) -> dict[str, str]:
    """What a run publishes, tutorial key -> the run's object: the split it trained on and scored (with
    the raw table and held-out labels beside them, in whatever folder they came from), its predictions
    and its scored table."""
    return {
        RAW_KEY: sibling(train, RAW_KEY),
        TRAIN_KEY: train,
        TEST_KEY: test,
        TEST_LABELS_KEY: sibling(test, TEST_LABELS_KEY),
        PREDICTIONS_KEY: predictions,
        SCORED_KEY: scored,
    }


def choose(store: ObjectStore, bucket: str, candidates: list[str | None]) -> str:
    """The first candidate key that exists; the last one (for its not-found message) when none does."""
    keys = [key for key in candidates if key]
    for key in keys:
        if store.exists(bucket, key):
            return key
    return keys[-1]


# ---- publishing ---------------------------------------------------------------------------------------


def publish(
    store: ObjectStore,
    bucket: str,
    run: str,
    sources: Mapping[str, str],
    log: Callable[[str], None],
    lock_timeout: float = 120.0,
    stale_after: float = 600.0,
    model_name: str | None = None,
) -> dict[str, str]:
    """Copy each source object to its tutorial key (``sources``: tutorial key -> the run's key), then
    write ``iris/latest-run.json`` (naming the run, and the SageMaker model that made its predictions,
    which the deploy DAG serves); returns what was published."""
    with _publish_lock(store, bucket, run, log, lock_timeout, stale_after):
        for target, source in sources.items():
            if source != target:
                _copy(store, bucket, source, target)
        store.put_bytes(
            bucket,
            LATEST_KEY,
            json.dumps(
                {
                    "run": run,
                    "published_at": datetime.now(UTC).isoformat(),
                    "objects": dict(sources),
                    "model_name": model_name,
                },
                indent=2,
                sort_keys=True,
            ).encode(),
        )
    log(f"published run {run}'s objects to the tutorial's keys: {', '.join(sorted(sources))}")
    return dict(sources)


def _copy(store: ObjectStore, bucket: str, source: str, target: str) -> None:
    with store.open_read(bucket, source) as src, store.open_write(bucket, target) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)


@contextlib.contextmanager
def _publish_lock(
    store: ObjectStore, bucket: str, run: str, log: Callable[[str], None], timeout: float, stale_after: float
) -> Iterator[None]:
    token = json.dumps({"run": run, "at": time.time()}).encode()
    deadline = time.monotonic() + timeout
    while not store.create_exclusive(bucket, LOCK_KEY, token):
        holder = _lock_holder(store, bucket)
        age = time.time() - holder.get("at", 0.0)
        if age > stale_after:
            log(f"removing a stale publish lock of run {holder.get('run')!r} ({age:.0f} s old)")
            store.delete(bucket, LOCK_KEY)
            continue
        if time.monotonic() > deadline:
            raise PublishError(
                f"run {holder.get('run')!r} has held s3://{bucket}/{LOCK_KEY} for {age:.0f} s while "
                f"publishing; this run's objects stay in its folder {RUNS_PREFIX}{run_folder(run)}/. "
                f"Retry the step, or delete the lock object if that run is dead (it is ignored after "
                f"{stale_after:.0f} s)."
            )
        time.sleep(0.2)
    try:
        yield
    finally:
        if _lock_holder(store, bucket).get("run") == run:
            store.delete(bucket, LOCK_KEY)


def _lock_holder(store: ObjectStore, bucket: str) -> dict:
    try:
        holder = json.loads(store.get_bytes(bucket, LOCK_KEY))
        return holder if isinstance(holder, dict) else {}
    except (ObjectNotFound, ObjectStoreError, ValueError):  # gone meanwhile, or torn: no holder we know
        return {}
