"""The Airflow DAG ``sagemaker_pipeline`` as a Dagster job (dagster-airflow), in its own code location.

Run it from the Dagster UI (code location ``iris_sagemaker_airflow``, job ``sagemaker_pipeline``) or the
CLI: ``dagster job execute -m iris_sagemaker.airflow_definitions -j sagemaker_pipeline``. Each op runs
its Airflow task in the Dagster run against an ephemeral Airflow database (SQLite, in a temp folder), so
no Airflow deployment is needed. dagster-airflow supports Airflow 2 only.

It is a separate code location so that loading the assets never imports Airflow (about 1.5 s and a
burst of Airflow logging on every load), and so that a broken Airflow install cannot hide the assets.

The DAG is built non-deferrable here: nothing runs Airflow's triggerer inside a Dagster run.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

from iris_sagemaker.core.settings import local_root_from_env

JOB_NAME = "sagemaker_pipeline"  # dagster-airflow names the job after the DAG id


INSTALL_HINT = "pip install 'iris-sagemaker[dagster-airflow]' (in a checkout: make install)"
# The packages that make up the Dagster + Airflow 2 pairing, by distribution name (for the diagnosis).
_PACKAGES = ("dagster-airflow", "apache-airflow")


def _installed(distribution: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def unmet_requirements(distribution: str) -> list[str]:
    """The requirements of ``distribution`` (its base ones, markers evaluated) that the installed versions
    do not meet, e.g. ``sqlalchemy 2.1.9 (apache-airflow 2.11.2 needs sqlalchemy<2.0,>=1.4.49)``."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import distribution as dist

    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:  # packaging is a dependency of Airflow; without it, no details
        return []
    try:
        installed = dist(distribution)
    except PackageNotFoundError:
        return []
    unmet = []
    for line in installed.requires or []:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        version = _installed(requirement.name)
        if version is not None and not requirement.specifier.contains(version, prereleases=True):
            unmet.append(
                f"{requirement.name} {version} ({distribution} {installed.version} needs "
                f"{requirement.name}{requirement.specifier})"
            )
    return unmet


def import_failure(err: BaseException) -> str:
    """Why the DAG cannot run as a Dagster job, from the exception its imports raised.

    Three different cases, three different fixes: a package is missing (install the extra); Airflow 3 is
    installed (dagster-airflow supports Airflow 2 only); or everything is installed but importing it fails,
    which means the environment's versions do not fit together (for example SQLAlchemy 2 or Flask 3 beside
    Airflow 2.11): then the message names the error that import raised, not a missing package.
    """
    versions = {name: _installed(name) for name in _PACKAGES}
    missing = [name for name, installed in versions.items() if installed is None]
    first_line = (str(err).strip().splitlines() or [""])[0]
    if len(first_line) > 160:
        first_line = first_line[:157].rstrip() + "..."
    cause = f"{type(err).__module__}.{type(err).__name__}: {first_line}".removeprefix("builtins.")
    if missing:
        return (
            "the Airflow DAG runs in Dagster through dagster-airflow, which needs Airflow 2; "
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed: {INSTALL_HINT}"
        )
    airflow = versions["apache-airflow"] or ""
    if not airflow.startswith("2."):
        return (
            f"dagster-airflow supports Airflow 2 only, and this environment has Airflow {airflow}: "
            f"use a venv with {INSTALL_HINT} ({cause})"
        )
    installed = ", ".join(f"{name} {version}" for name, version in versions.items())
    unmet = [line for name in _PACKAGES for line in unmet_requirements(name)]
    mismatch = f"; installed against their requirements: {'; '.join(unmet)}" if unmet else ""
    return (
        f"{installed} are installed, but importing them failed with {cause}{mismatch}. The environment's "
        "packages do not fit together; reinstall the locked set: make install (or "
        f"{INSTALL_HINT.split(' (')[0]} in a fresh venv)"
    )


def airflow_job() -> Any:
    """The DAG as a Dagster job; an ImportError says what is missing, or which import failed and why."""
    # Importing Airflow writes $AIRFLOW_HOME/airflow.cfg; without a deployment's AIRFLOW_HOME keep it in
    # the project's local folder instead of creating ~/airflow. dagster-airflow points AIRFLOW_HOME at
    # its ephemeral database when a run starts.
    os.environ.setdefault("AIRFLOW_HOME", str(local_root_from_env() / "airflow"))
    # Airflow 2 warns, at each import of its metrics loggers (once per task here), that timers publish in
    # seconds unless timer_unit_consistency is on; Airflow 3's behaviour, and nothing reads them here.
    os.environ.setdefault("AIRFLOW__METRICS__TIMER_UNIT_CONSISTENCY", "True")
    quiet_dagster_airflow_supersession()
    try:
        from dagster import SupersessionWarning
        from dagster_airflow import make_dagster_job_from_airflow_dag

        from iris_sagemaker.airflow_defs.pipeline import build_dag
    except Exception as err:  # ImportError, or whatever a mismatched install raises while importing
        raise ImportError(import_failure(err)) from err
    quiet_ephemeral_airflow_logs()
    dag = build_dag(deferrable=False)
    # dagster-airflow is marked superseded by dagster-airlift, which needs a running Airflow; this
    # project wants the DAG runnable inside Dagster without one, so it keeps dagster-airflow.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SupersessionWarning)
        return make_dagster_job_from_airflow_dag(dag)


def quiet_dagster_airflow_supersession() -> None:
    """dagster-airflow's own classes (its Airflow plugin's ``DagsterLink``, loaded by Airflow for every
    task) say on each load that they are superseded by dagster-airlift: known upstream noise, dropped by
    category and module (dagster-airflow's), not globally."""
    from dagster import SupersessionWarning

    warnings.filterwarnings("ignore", category=SupersessionWarning, module=r"dagster_airflow(\.|$)")


# Airflow log lines that only describe dagster-airflow's ephemeral Airflow (a temporary database without a
# Fernet key, whose task instances are never queued): (logger, the message's start).
EPHEMERAL_AIRFLOW_NOISE = (
    ("airflow.models.crypto", "empty cryptography key"),
    ("airflow.task", "cannot record queued_duration"),
)


class _DropMessage(logging.Filter):
    def __init__(self, start: str) -> None:
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.start)


def quiet_ephemeral_airflow_logs() -> None:
    """Drop :data:`EPHEMERAL_AIRFLOW_NOISE`, on those two loggers only (every other warning stays)."""
    for name, start in EPHEMERAL_AIRFLOW_NOISE:
        log = logging.getLogger(name)
        if not any(isinstance(f, _DropMessage) and f.start == start for f in log.filters):
            log.addFilter(_DropMessage(start))
