"""Airflow DAG `sagemaker_pipeline`: the iris-sagemaker asset graph as an Airflow DAG.

Built by ``iris_sagemaker.airflow_defs.pipeline`` from the same data preparation and SageMaker request
builders as the Dagster assets, on the Amazon provider's SageMaker operators. ``make airflow-run`` runs it
offline (local backend, through ``iris-sagemaker serve``); set ``IRIS_SAGEMAKER_BACKEND=aws``, the
Variables ``s3_bucket`` / ``role`` and the connection ``aws-sagemaker`` to run it on SageMaker.
"""

from iris_sagemaker.airflow_defs.pipeline import build_dag

dag = build_dag()
