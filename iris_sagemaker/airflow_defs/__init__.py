"""The Airflow adapter, as ``dagster_defs`` is the Dagster one: two DAGs over the same specs and steps.

- ``config``: what parsing needs (settings, connection id, job names, Jinja templates, operator configs);
- ``pipeline``: ``sagemaker_pipeline`` (the tutorial's DAG); ``deploy``: ``sagemaker_deploy``;
- ``operators``: the Amazon provider's SageMaker operators, thin subclasses (retries, Stopped, the server);
- ``tasks``: the Python tasks' bodies (imported when a task runs);
- ``connection``: the ``aws-sagemaker`` connection in local mode (``iris-sagemaker serve``);
- ``export``: ``iris-sagemaker export-airflow-dag``, a self-contained DAG file from the same specs:
  ``exported_dag_template`` (a real DAG file) with ``core/portable.py`` copied in verbatim and
  ``exported_dag_values`` written as literals.

``airflow_dags/`` only calls ``pipeline.build_dag()`` and ``deploy.build_deploy_dag()``.
"""
