"""Airflow DAG `sagemaker_deploy`: the latest published model on a real-time endpoint, checked online.

Built by ``iris_sagemaker.airflow_defs.deploy`` on the provider's endpoint operators; no schedule. Run
it after ``sagemaker_pipeline`` (``make airflow-deploy`` offline). On AWS the endpoint bills by the hour
until deleted.
"""

from iris_sagemaker.airflow_defs.deploy import build_deploy_dag

dag = build_deploy_dag()
