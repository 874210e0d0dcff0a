"""``airflow dags test DAG_ID`` whose deferred tasks wait in a running ``airflow triggerer`` (Airflow 3).

    python -m iris_sagemaker_tests.airflow_dag_test_with_triggerer DAG_ID

Airflow 2.11's ``dags test`` does this by itself when a triggerer is healthy. Airflow 3's always runs a
deferred task's trigger inline, in its own process, so no triggerer ever sees it, and nothing can cancel
it as a triggerer does. This runs ``DAG.test()`` with its task runner told not to
(``_run_task(run_triggerer=False)``): a task that defers stays ``deferred`` in the metadata database, the
triggerer runs its trigger, and ``DAG.test()`` runs the task again once it is scheduled (the trigger
fired) or cleared, as it does for any task a triggerer marks scheduled. Only the tests use it.
"""

from __future__ import annotations

import sys


def main(dag_id: str) -> int:
    import airflow.sdk.definitions.dag as sdk_dag

    from iris_sagemaker_tests.airflow_support import dagbag

    run_task = sdk_dag._run_task

    def run_task_leaving_triggers_to_the_triggerer(*, ti: object, task: object, run_triggerer: bool = False):
        return run_task(ti=ti, task=task, run_triggerer=False)

    sdk_dag._run_task = run_task_leaving_triggers_to_the_triggerer
    dag = dagbag().get_dag(dag_id)
    run = dag.test()
    print(f"DAG run {run.run_id} ended {run.state}", flush=True)
    return 0 if str(run.state) in ("success", "DagRunState.SUCCESS") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
