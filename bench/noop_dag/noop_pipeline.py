"""The Airflow floor: four no-op tasks in the tutorial's order (bench/noop_dag_build.py)."""

from noop_dag_build import noop_pipeline

dag = noop_pipeline("noop_pipeline")
