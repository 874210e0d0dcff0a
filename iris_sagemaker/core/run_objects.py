"""Where one run keeps its objects, and how a finished run publishes them to the tutorial's keys.

The tutorial's keys are fixed per bucket (``iris/processed-input-data/train.csv``, ``.../test.csv``,
``iris/results/test.csv.out``, ...). Two runs at once on one bucket that both worked there would train
and score on each other's files and still succeed (README: "Runs that share a bucket"). So no run
works there:

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
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from iris_sagemaker.core.portable import run_folder  # portable: the exported DAG copies it
from iris_sagemaker.core.settings import (
    OUTPUT_PREFIX,
    PREDICTIONS_KEY,
    RAW_KEY,
    SCORED_KEY,
    TEST_KEY,
    TEST_LABELS_KEY,
    TRAIN_KEY,
)
from iris_sagemaker.core.storage import ObjectNotFound, ObjectStore, ObjectStoreError

ROOT = "iris/"
RUNS_PREFIX = "iris/runs/"
LATEST_KEY = "iris/latest-run.json"
LOCK_KEY = "iris/.publish-lock"
DESCRIPTIONS_PREFIX = "iris/dagster/"  # the Dagster assets' JSON descriptions (DescribeModel, ...)


class PublishError(RuntimeError):
    """Publishing could not take its lock; the message says who holds it and what to do."""


def run_prefix(run: str) -> str:
    """The run's own folder, without the trailing '/': ``iris/runs/<run>``."""
    return f"{RUNS_PREFIX}{run_folder(run)}"


def scoped(key: str, run: str) -> str:
    """The run's own copy of a tutorial key: ``iris/X`` -> ``iris/runs/<run>/X``."""
    if not key.startswith(ROOT) or key.startswith(RUNS_PREFIX):
        raise ValueError(f"{key!r} is not one of the tutorial's keys (under {ROOT!r})")
    return f"{run_prefix(run)}/{key[len(ROOT):]}"


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
    which the deploy DAG serves); returns what was published. Published descriptions under
    ``iris/dagster/`` that are not in ``sources`` are another run's and are removed."""
    with _publish_lock(store, bucket, run, log, lock_timeout, stale_after):
        _copy_all(store, bucket, sources)
        for key in store.list_keys(bucket, DESCRIPTIONS_PREFIX):
            if key not in sources:  # another run's (an Airflow run makes none): not part of this set
                store.delete(bucket, key)
        latest = {
            "run": run,
            "published_at": datetime.now(UTC).isoformat(),
            "objects": dict(sources),
            "model_name": model_name,
        }
        _write_latest(store, bucket, latest)
    log(f"published run {run}'s objects to the tutorial's keys: {', '.join(sorted(sources))}")
    return dict(sources)


def latest_run(store: ObjectStore, bucket: str) -> dict:
    """``iris/latest-run.json``: the run that published last (empty when none has)."""
    try:
        latest = json.loads(store.get_bytes(bucket, LATEST_KEY))
    except (ObjectNotFound, ValueError):
        return {}
    return latest if isinstance(latest, dict) else {}


def publish_more(
    store: ObjectStore,
    bucket: str,
    run: str,
    sources: Mapping[str, str],
    log: Callable[[str], None],
    lock_timeout: float = 120.0,
    stale_after: float = 600.0,
) -> bool:
    """Add objects a run made after it published (its endpoint's description) to the published set, if
    the run is still the one ``iris/latest-run.json`` names; False (nothing done) when a later run has
    published since, so the published keys stay one run's set."""
    with _publish_lock(store, bucket, run, log, lock_timeout, stale_after):
        latest = latest_run(store, bucket)
        if latest.get("run") != run:
            log(f"not publishing {', '.join(sorted(sources))}: run {latest.get('run')!r} published since")
            return False
        _copy_all(store, bucket, sources)
        latest["objects"] = {**latest.get("objects", {}), **sources}
        _write_latest(store, bucket, latest)
    log(f"published run {run}'s {', '.join(sorted(sources))}")
    return True


def _copy_all(store: ObjectStore, bucket: str, sources: Mapping[str, str]) -> None:
    """Copy each run's object to its tutorial key (``sources``: tutorial key -> the run's key)."""
    for target, source in sources.items():
        if source != target:
            _copy(store, bucket, source, target)


def _write_latest(store: ObjectStore, bucket: str, latest: dict) -> None:
    store.put_bytes(bucket, LATEST_KEY, json.dumps(latest, indent=2, sort_keys=True).encode())


def _copy(store: ObjectStore, bucket: str, source: str, target: str) -> None:
    with store.open_read(bucket, source) as src, store.open_write(bucket, target) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)


@contextlib.contextmanager
def _publish_lock(
    store: ObjectStore, bucket: str, run: str, log: Callable[[str], None], timeout: float, stale_after: float
) -> Iterator[None]:
    def busy(holder: str | None, age: float) -> Exception:
        return PublishError(
            f"run {holder!r} has held s3://{bucket}/{LOCK_KEY} for {age:.0f} s while "
            f"publishing; this run's objects stay in its folder {RUNS_PREFIX}{run_folder(run)}/. "
            f"Retry the step, or delete the lock object if that run is dead (it is ignored after "
            f"{stale_after:.0f} s)."
        )

    with object_lock(store, bucket, LOCK_KEY, run, "publish lock", log, timeout, stale_after, busy):
        yield


@contextlib.contextmanager
def object_lock(
    store: ObjectStore,
    bucket: str,
    key: str,
    run: str,
    what: str,
    log: Callable[[str], None],
    timeout: float,
    stale_after: float,
    busy: Callable[[str | None, float], Exception],
    on_wait: Callable[[str | None], None] | None = None,
    heartbeat: float | None = None,
) -> Iterator[None]:
    """Hold the lock object ``key`` (written only if absent: S3's conditional write, a hard link
    locally) for ``run``. Waits while another run holds it, up to ``timeout`` s (then raises
    ``busy(holder, age)``); ``on_wait(holder)`` is called once when it starts waiting. A lock whose
    holder has not refreshed it for ``stale_after`` s is removed. With ``heartbeat``, the holder refreshes
    the lock every ``heartbeat`` s while it holds it, so that a long hold is never taken for a dead one."""
    deadline = time.monotonic() + timeout
    waited = False
    while not store.create_exclusive(bucket, key, _token(run)):
        holder = _lock_holder(store, bucket, key)
        age = time.time() - holder.get("at", 0.0)
        if age > stale_after:
            log(f"removing a stale {what} of run {holder.get('run')!r} ({age:.0f} s old)")
            store.delete(bucket, key)
            continue
        if time.monotonic() > deadline:
            raise busy(holder.get("run"), age)
        if not waited and on_wait is not None:
            on_wait(holder.get("run"))
        waited = True
        time.sleep(0.2)
    stop = threading.Event()
    beat = None
    if heartbeat is not None:
        beat = threading.Thread(
            target=_refresh, args=(store, bucket, key, run, heartbeat, stop), name=f"{what} heartbeat"
        )
        beat.daemon = True
        beat.start()
    try:
        yield
    finally:
        stop.set()
        if beat is not None:
            beat.join()
        if _lock_holder(store, bucket, key).get("run") == run:
            store.delete(bucket, key)


def _token(run: str) -> bytes:
    return json.dumps({"run": run, "at": time.time()}).encode()


def _refresh(
    store: ObjectStore, bucket: str, key: str, run: str, every: float, stop: threading.Event
) -> None:
    while not stop.wait(every):
        try:
            if _lock_holder(store, bucket, key).get("run") != run:
                return  # taken from us (we stalled past stale_after): never overwrite another holder
            store.put_bytes(bucket, key, _token(run))
        except Exception:  # a failed refresh is retried at the next beat
            continue


def _lock_holder(store: ObjectStore, bucket: str, key: str = LOCK_KEY) -> dict:
    try:
        holder = json.loads(store.get_bytes(bucket, key))
        return holder if isinstance(holder, dict) else {}
    except (ObjectNotFound, ObjectStoreError, ValueError):  # gone meanwhile, or torn: no holder we know
        return {}
