"""The Airflow floor with the project's freeze: four no-op tasks, the first freezing the heap as the
project's first task does (``iris_sagemaker.airflow_dag._task_code``). Comparing against it separates
the freeze's gain from the project's own overhead."""

from datetime import datetime

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

with DAG("noop_pipeline_frozen", start_date=datetime(2021, 7, 31), schedule=None, catchup=False) as dag:

    @task
    def data_prep() -> None:
        from iris_sagemaker.startup_heap import freeze_loaded_heap

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
