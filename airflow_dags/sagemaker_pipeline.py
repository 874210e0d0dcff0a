"""Airflow DAG `sagemaker_pipeline`: the iris-sagemaker asset graph as an Airflow DAG.

Built by ``iris_sagemaker.airflow_dag`` from the same data preparation and SageMaker request builders as
the Dagster assets. ``airflow dags test sagemaker_pipeline`` runs it offline (local backend); set
``IRIS_SAGEMAKER_BACKEND=aws`` and the Variables ``s3_bucket`` / ``role`` (and the connection
``aws-sagemaker``) to run it on SageMaker.
"""

from iris_sagemaker.airflow_dag import build_dag

dag = build_dag()
