"""The Airflow floor with the project's freeze in its first task (bench/noop_dag_build.py)."""

from noop_dag_build import noop_pipeline

dag = noop_pipeline("noop_pipeline_frozen", freeze_first=True)
