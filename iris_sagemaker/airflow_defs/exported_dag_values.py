"""The values the exported DAG is written with: iris-sagemaker's own constants, request bodies and names.

``dag_values(settings)`` gives each value by the name the template (``exported_dag_template``) uses; the
export writes them into the file as literals. The module-level names are the same values for the default
settings: the template imports them, so that in this repository it is a DAG file that runs as exported.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from iris_sagemaker.airflow_defs import config
from iris_sagemaker.core import dataset, run_objects, specs
from iris_sagemaker.core.settings import DEFAULT_CHECK_INTERVAL, DEFAULT_CONN_ID, DEFAULT_REGION, Settings

DAG_ID = "sagemaker_pipeline"  # the tutorial's: the file is meant for another deployment
CONN_ID = DEFAULT_CONN_ID  # the tutorial's connection (S3 and SageMaker)
# The tutorial's data source (its `data_url`): the Iris data at the UCI Machine Learning Repository.
DEFAULT_DATA_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/iris/iris.data"
DATA_URL_VARIABLE = "iris_data_url"
HTTP_TIMEOUT_SECONDS = dataset.HTTP_TIMEOUT_SECONDS
TRAIN_FRACTION = dataset.TRAIN_FRACTION
CHECK_INTERVAL_ENV = config.CHECK_INTERVAL_ENV
DEFERRABLE_ENV = config.DEFERRABLE_ENV
MACROS_JOB_NAMES = config.MACROS_JOB_NAMES
MACROS_RUN_FOLDER = config.MACROS_RUN_FOLDER
RUNS_PREFIX = run_objects.RUNS_PREFIX
# A run's objects relative to its folder iris/runs/<run>/ (``run_objects.run_keys``).
RUN_KEYS = {
    name: key[len(run_objects.ROOT) :] for name, key in vars(run_objects.TUTORIAL_KEYS).items()
}
# The tutorial's Variables, rendered per task.
BUCKET = f"{{{{ var.value.{config.BUCKET_VARIABLE} }}}}"
ROLE = f"{{{{ var.value.{config.ROLE_VARIABLE} }}}}"


def export_settings(region: str = DEFAULT_REGION) -> Settings:
    """The settings the file is generated for: the defaults (the tutorial's instance type, the built-in
    k-NN image of ``region``), never the environment, so that an export is reproducible."""
    return Settings(region=region).validated()


def request_bodies(settings: Settings) -> dict[str, dict[str, Any]]:
    """The three operator configs: the shared builders' bodies, with the tutorial's Variables for bucket
    and role and the project's templates for names and the run's folder."""
    templated = replace(settings, bucket=BUCKET, role_arn=ROLE)
    keys = run_objects.TUTORIAL_KEYS
    return {
        "TRAINING_CONFIG": specs.training_job_request(
            templated, config.TRAINING_JOB_TEMPLATE, train_key=config.templated_scoped(keys.train)
        ),
        "MODEL_CONFIG": specs.model_request(templated, config.MODEL_TEMPLATE, config.MODEL_DATA_URL_TEMPLATE),
        "TRANSFORM_CONFIG": specs.transform_job_request(
            templated,
            config.TRANSFORM_JOB_TEMPLATE,
            config.MODEL_NAME_TEMPLATE,
            input_key=config.templated_scoped(keys.test),
            output_prefix=config.templated_scoped(keys.output_prefix),
        ),
    }


def dag_values(settings: Settings) -> dict[str, Any]:
    """Every value the template may import from this module, by name, for ``settings``."""
    return {
        "DAG_ID": DAG_ID,
        "CONN_ID": CONN_ID,
        "REGION": settings.region,
        "DEFAULT_DATA_URL": DEFAULT_DATA_URL,
        "DATA_URL_VARIABLE": DATA_URL_VARIABLE,
        "HTTP_TIMEOUT_SECONDS": HTTP_TIMEOUT_SECONDS,
        "SPLIT_SEED": settings.split_seed,
        "TRAIN_FRACTION": TRAIN_FRACTION,
        "ACCURACY_THRESHOLD": settings.accuracy_threshold,
        "CHECK_INTERVAL_ENV": CHECK_INTERVAL_ENV,
        "DEFAULT_CHECK_INTERVAL": DEFAULT_CHECK_INTERVAL,
        "DEFERRABLE_ENV": DEFERRABLE_ENV,
        "MACROS_JOB_NAMES": MACROS_JOB_NAMES,
        "MACROS_RUN_FOLDER": MACROS_RUN_FOLDER,
        "RUNS_PREFIX": RUNS_PREFIX,
        "RUN_KEYS": RUN_KEYS,
        "BUCKET": BUCKET,
        **request_bodies(settings),
    }


_DEFAULTS = dag_values(export_settings())
REGION: str = _DEFAULTS["REGION"]  # the region of the k-NN image in the bodies
SPLIT_SEED: int = _DEFAULTS["SPLIT_SEED"]
ACCURACY_THRESHOLD: float = _DEFAULTS["ACCURACY_THRESHOLD"]
TRAINING_CONFIG: dict[str, Any] = _DEFAULTS["TRAINING_CONFIG"]
MODEL_CONFIG: dict[str, Any] = _DEFAULTS["MODEL_CONFIG"]
TRANSFORM_CONFIG: dict[str, Any] = _DEFAULTS["TRANSFORM_CONFIG"]
