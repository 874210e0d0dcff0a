"""``watcher``: the system tests make it downstream of every task. Teardown tasks run with trigger rule
``all_done``, so a failed task would not fail the DAG run by itself; the watcher runs only when an upstream
task failed (or could not run because one failed), and then fails, which fails the run."""

from __future__ import annotations

from airflow.exceptions import AirflowException

try:
    from airflow.sdk import TriggerRule, task  # Airflow >= 3.1
except ImportError:
    from airflow.decorators import task
    from airflow.utils.trigger_rule import TriggerRule


@task(trigger_rule=TriggerRule.ONE_FAILED, retries=0)
def watcher() -> None:
    raise AirflowException("Failing task because one or more upstream tasks failed.")
