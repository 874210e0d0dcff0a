"""The Airflow DAGs' configuration: settings, connection, job names, templates and operator configs.

What the DAG files need while they are parsed, and only that: no pandas, no engine, no Amazon provider,
so the scheduler's parse stays cheap. What the Python tasks do when they run lives in ``tasks``; the
provider's operators (thin subclasses) in ``operators``; the local server behind the connection in
``connection``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from iris_sagemaker.core import specs
from iris_sagemaker.core.run_objects import ROOT, RUNS_PREFIX, TUTORIAL_KEYS
from iris_sagemaker.core.settings import (
    AIRFLOW_CHECK_INTERVAL_VARIABLE,
    AIRFLOW_CONN_ID_VARIABLE,
    AIRFLOW_DEFERRABLE_HOW,
    AIRFLOW_DEFERRABLE_VARIABLE,
    DEFAULT_CONN_ID,
    DEFAULT_LOCAL_BUCKET,
    LOCAL_ROLE_ARN,
    Settings,
    check_interval_from_env,
    env_bool,
    env_text,
)

# As in the tutorial: Airflow Variables `s3_bucket` and `role`, connection `aws-sagemaker`.
BUCKET_VARIABLE = "s3_bucket"
ROLE_VARIABLE = "role"
# The connection, deferral and poll interval are settings (core.settings; README, "Run with Airflow");
# the exported DAG file reads the latter two by these names.
CONN_ID_ENV = AIRFLOW_CONN_ID_VARIABLE
DEFERRABLE_ENV = AIRFLOW_DEFERRABLE_VARIABLE
CHECK_INTERVAL_ENV = AIRFLOW_CHECK_INTERVAL_VARIABLE
# Jinja used by both modes; the macros are registered on the DAG (user_defined_macros).
MACROS_SETTINGS = "iris_settings"
MACROS_JOB_NAMES = "iris_job_names"
MACROS_RUN_FOLDER = "iris_run_folder"
RUN_FOLDER_TEMPLATE = "{{ iris_run_folder(run_id) }}"
BUCKET_TEMPLATE = "{{ iris_settings().bucket }}"
ROLE_TEMPLATE = "{{ iris_settings().role_arn }}"
TRAINING_JOB_TEMPLATE = "{{ iris_job_names(run_id).training_job }}"
MODEL_TEMPLATE = "{{ iris_job_names(run_id).model }}"
TRANSFORM_JOB_TEMPLATE = "{{ iris_job_names(run_id).transform_job }}"
MACROS_TUNING_JOB = "iris_tuning_job_name"
TUNING_JOB_TEMPLATE = "{{ iris_tuning_job_name(run_id) }}"
TUNED_K_TEMPLATE = (
    "{{ ti.xcom_pull(task_ids='tune_model')['Tuning']['BestTrainingJob']['TunedHyperParameters']['k'] }}"
)
MODEL_DATA_URL_TEMPLATE = (
    "{{ ti.xcom_pull(task_ids='train_model')['Training']['ModelArtifacts']['S3ModelArtifacts'] }}"
)
MODEL_NAME_TEMPLATE = "{{ ti.xcom_pull(task_ids='create_model')['Model']['ModelName'] }}"
# The deploy DAG: the model chosen by its first task, one endpoint config per deploy run.
DEPLOY_MODEL_TEMPLATE = "{{ ti.xcom_pull(task_ids='find_model')['ModelName'] }}"
ENDPOINT_CONFIG_TEMPLATE = "{{ iris_endpoint_config_name(run_id) }}"
ENDPOINT_NAME_TEMPLATE = "{{ iris_settings().endpoint_name }}"
MACROS_ENDPOINT_CONFIG = "iris_endpoint_config_name"
PREVIOUS_CONFIG_KEY = "previous_endpoint_config"  # XCom of deploy_endpoint: what served before it
TRANSFORM_NAME_TEMPLATE = "{{ ti.xcom_pull(task_ids='test_model')['Transform']['TransformJobName'] }}"

# --- settings -------------------------------------------------------------------------------------


def airflow_variable(key: str) -> str | None:
    """An Airflow Variable (environment ``AIRFLOW_VAR_*``, secrets backends, metastore) or None."""
    try:
        from airflow.sdk import Variable  # Airflow 3
    except ImportError:
        from airflow.models import Variable  # Airflow 2
    value = Variable.get(key, None)  # positional default: the keyword differs between the two lines
    text = "" if value is None else str(value).strip()
    return text or None


def resolve_settings(get_variable: Callable[[str], str | None] = airflow_variable) -> Settings:
    """Variables ``s3_bucket`` / ``role`` first, then the environment variables Dagster reads."""
    return Settings.from_env(bucket=get_variable(BUCKET_VARIABLE), role_arn=get_variable(ROLE_VARIABLE))


def parse_time_settings(backend: str | None = None) -> Settings:
    """What the DAG's shape needs when the file is parsed: backend, region, image, instance type.

    Bucket and role are not read here (Variables are read when a task runs, as in the tutorial), so a
    missing ``IRIS_SAGEMAKER_BUCKET`` never breaks the DagBag; the placeholders are never sent.
    """
    return Settings.from_env(backend=backend, bucket=DEFAULT_LOCAL_BUCKET, role_arn=LOCAL_ROLE_ARN)


def templated_settings(settings: Settings) -> Settings:
    """``settings`` with bucket and role as Jinja, rendered per task from the Variables/environment."""
    return replace(settings, bucket=BUCKET_TEMPLATE, role_arn=ROLE_TEMPLATE)


def conn_id() -> str:
    """The Airflow connection for S3 and SageMaker (``Settings.airflow_conn_id``)."""
    return env_text(CONN_ID_ENV) or DEFAULT_CONN_ID


def deferrable_default() -> bool:
    """Whether the provider operators wait in the triggerer (``Settings.airflow_deferrable``)."""
    return env_bool(DEFERRABLE_ENV, True, how=AIRFLOW_DEFERRABLE_HOW)


def check_interval(is_local: bool = False) -> int:
    """Seconds between the provider operators' status polls (``Settings.check_interval``)."""
    return check_interval_from_env(is_local)


def job_names(run_id: str) -> specs.JobNames:
    """One DAG run's names: the run id is unique per DAG, and a new run (manual or scheduled) gets a new
    one, so reruns never collide; a retried task within a run finds its own job (``operators``)."""
    return specs.job_names(run_id)


def endpoint_config_name(run_id: str) -> str:
    """The endpoint config of one deploy run (the endpoint's name is stable: ``Settings.endpoint_name``)."""
    return specs.endpoint_config_name(run_id)


def templated_scoped(key: str) -> str:
    """A tutorial key in the run's own folder, as Jinja: ``iris/runs/{{ iris_run_folder(run_id) }}/X``
    (``run_objects.scoped`` rendered per run)."""
    return f"{RUNS_PREFIX}{RUN_FOLDER_TEMPLATE}/{key[len(ROOT) :]}"


# --- requests (the provider operators' configs, in both modes) --------------------------------------


def operator_configs(settings: Settings) -> dict[str, dict[str, Any]]:
    """The pipeline's operator configs: the shared builders' bodies with Jinja where a value is per run.
    With ``settings.tune``, a tuning job's too, and training takes its best k."""
    templated = templated_settings(settings)
    tuned = {"k": TUNED_K_TEMPLATE} if settings.tune else None
    configs = {
        "training": specs.training_job_request(
            templated, TRAINING_JOB_TEMPLATE, tuned, train_key=templated_scoped(TUTORIAL_KEYS.train)
        ),
        "model": specs.model_request(templated, MODEL_TEMPLATE, MODEL_DATA_URL_TEMPLATE),
        "transform": specs.transform_job_request(
            templated,
            TRANSFORM_JOB_TEMPLATE,
            MODEL_NAME_TEMPLATE,
            input_key=templated_scoped(TUTORIAL_KEYS.test),
            output_prefix=templated_scoped(TUTORIAL_KEYS.output_prefix),
        ),
    }
    if settings.tune:
        configs["tuning"] = specs.tuning_job_request(
            templated,
            TUNING_JOB_TEMPLATE,
            fit_key=templated_scoped(specs.TUNING_FIT_KEY),
            validation_key=templated_scoped(specs.TUNING_VALIDATION_KEY),
        )
    return configs


def deploy_configs(settings: Settings) -> dict[str, dict[str, Any]]:
    """The deploy DAG's two operator configs (CreateEndpointConfig, CreateEndpoint), from the builders the
    Dagster asset ``knn_endpoint`` uses."""
    templated = templated_settings(settings)
    return {
        "endpoint_config": specs.endpoint_config_request(
            templated, ENDPOINT_CONFIG_TEMPLATE, DEPLOY_MODEL_TEMPLATE
        ),
        "endpoint": specs.endpoint_request(ENDPOINT_NAME_TEMPLATE, ENDPOINT_CONFIG_TEMPLATE),
    }


def macros() -> dict[str, Callable[..., Any]]:
    """The Jinja macros both DAGs register (``user_defined_macros``)."""
    from iris_sagemaker.core.run_objects import run_folder

    return {
        MACROS_SETTINGS: resolve_settings,
        MACROS_JOB_NAMES: job_names,
        MACROS_RUN_FOLDER: run_folder,
        MACROS_ENDPOINT_CONFIG: endpoint_config_name,
        MACROS_TUNING_JOB: specs.tuning_job_name,
    }
