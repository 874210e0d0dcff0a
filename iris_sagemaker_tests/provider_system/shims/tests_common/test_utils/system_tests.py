"""``get_test_run(dag)``: the system test files end with ``test_run = get_test_run(dag)`` so that pytest can
run them in the Airflow repository. Here they run under ``airflow dags test``, which never calls it; the
function it returns still does what its name says: test the DAG and fail unless the run succeeded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def get_test_run(dag: Any, **test_kwargs: Any) -> Callable[[], None]:
    def test_run() -> None:
        from airflow.utils.state import DagRunState

        dag_run = dag.test(**test_kwargs)
        assert dag_run.state == DagRunState.SUCCESS, f"DAG run {dag_run.run_id} ended {dag_run.state}"

    return test_run
