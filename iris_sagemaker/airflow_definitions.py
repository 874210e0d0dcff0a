"""Code location ``iris_sagemaker_airflow``: the Airflow DAG ``sagemaker_pipeline`` as a Dagster job.

``dagster job execute -m iris_sagemaker.airflow_definitions -j sagemaker_pipeline``, or the UI through
workspace.yaml. Needs ``iris-sagemaker[dagster-airflow]`` (Airflow 2).
"""

from dagster import Definitions

from iris_sagemaker.airflow_defs.dagster_job import airflow_job

defs = Definitions(jobs=[airflow_job()])
