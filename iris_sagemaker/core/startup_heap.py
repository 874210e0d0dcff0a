"""Keep CPython's garbage collector off the objects a process loads once and keeps until it exits.

Loading the Dagster definitions imports Dagster, pandas and this package: about 150,000 container
objects (modules, classes, functions, the ``Definitions``) that stay alive for the whole process and
that hold, when loading ends, only a handful of unreachable cycles (6 when measured). CPython's collector
still walks all of them on every full collection, which the run's own imports (faiss, botocore) trigger
several times, and again during interpreter shutdown. ``gc.freeze()`` moves them to the permanent
generation, so later collections walk only objects created after loading. Nothing stops being
collected except those cycles; objects created afterwards are collected as before.

Who calls it:
- ``iris_sagemaker.definitions`` (the code location), at the end of loading, in every process that
  loads it: ``dagster asset materialize``, a run worker, a step process, a code server;
- the Airflow tasks, once per task process, when the first of them runs (``airflow_defs.pipeline.task_code``);
  never while the DAG file is parsed, since the scheduler's processes are long-lived.

``IRIS_SAGEMAKER_GC_FREEZE=0`` turns it off.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from iris_sagemaker.core.settings import GC_FREEZE_HOW, env_bool
from iris_sagemaker.core.settings import GC_FREEZE_VARIABLE as FREEZE_ENV


def freeze_enabled(env: Mapping[str, str] | None = None) -> bool:
    """``IRIS_SAGEMAKER_GC_FREEZE`` (a yes/no setting, default on; a bad value: SettingsError naming it)."""
    return env_bool(FREEZE_ENV, True, env, GC_FREEZE_HOW)


def freeze_loaded_heap(env: Mapping[str, str] | None = None) -> bool:
    """Freeze every object tracked so far, unless turned off; True if it froze."""
    if not freeze_enabled(env):
        return False
    gc.freeze()
    return True


@contextmanager
def frozen_heap(env: Mapping[str, str] | None = None) -> Iterator[None]:
    """Freeze what is loaded on entry (so the block's imports do not make the collector re-walk it),
    and what the block loaded on exit."""
    freeze_loaded_heap(env)
    yield
    freeze_loaded_heap(env)
