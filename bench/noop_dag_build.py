"""The Airflow floors of bench/orchestration.py: four no-op tasks in the tutorial's order.

``freeze_first``: the first task freezes the heap as the project's first task does
(``iris_sagemaker.airflow_defs.pipeline.task_code``), the floor that separates that freeze's gain from the
project's own overhead.
"""

from datetime import datetime

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task


def noop_pipeline(dag_id: str, freeze_first: bool = False) -> DAG:
    with DAG(dag_id, start_date=datetime(2021, 7, 31), schedule=None, catchup=False) as dag:

        @task
        def data_prep() -> None:
            if freeze_first:
                from iris_sagemaker.core.startup_heap import freeze_loaded_heap

                freeze_loaded_heap()

        @task
        def train_model() -> None:
            return None

        @task
        def create_model() -> None:
            return None

        @task
        def test_model() -> None:
            return None

        data_prep() >> train_model() >> create_model() >> test_model()
    return dag
