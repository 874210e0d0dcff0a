"""The floor for bench/orchestration.py: four no-op tasks in the tutorial's order, on the same Airflow."""

from datetime import datetime

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

with DAG("noop_pipeline", start_date=datetime(2021, 7, 31), schedule=None, catchup=False) as dag:

    @task
    def data_prep() -> None:
        return None

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
