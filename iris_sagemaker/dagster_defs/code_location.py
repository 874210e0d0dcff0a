"""One ``Definitions`` for every backend: only the resources' settings differ, never the assets."""

from __future__ import annotations

from dagster import Definitions, in_process_executor, multiprocess_executor

from iris_sagemaker.core.settings import executor_from_env
from iris_sagemaker.dagster_defs.assets import (
    knn_endpoint,
    knn_model,
    knn_training_job,
    knn_tuning_job,
    raw_iris,
    split_iris,
    test_predictions,
)
from iris_sagemaker.dagster_defs.automation import (
    retrain_iris_knn,
    retrain_on_new_data,
    retrain_weekly,
    with_weekly_retrain,
)
from iris_sagemaker.dagster_defs.checks import online_matches_batch
from iris_sagemaker.dagster_defs.console import step_lines_console
from iris_sagemaker.dagster_defs.resources import IrisS3IOManager, SageMakerResource

EXECUTORS = {"in_process": in_process_executor, "multiprocess": multiprocess_executor}


def executor_for_environment() -> object:
    """In-process on the local backend (the steps are a chain; a process per step only costs start-up),
    multiprocess on aws; ``IRIS_SAGEMAKER_EXECUTOR`` (in_process | multiprocess) overrides
    (``Settings.executor_name``). A bad value stops the definitions from loading, naming it."""
    return EXECUTORS[executor_from_env()]


def build_definitions() -> Definitions:
    backend = SageMakerResource()
    return Definitions(
        assets=with_weekly_retrain(
            [
                raw_iris,
                split_iris,
                knn_tuning_job,
                knn_training_job,
                knn_model,
                test_predictions,
                knn_endpoint,
            ]
        ),
        asset_checks=[online_matches_batch],
        jobs=[retrain_iris_knn],
        sensors=[retrain_weekly, retrain_on_new_data],
        resources={"sagemaker": backend, "io_manager": IrisS3IOManager(backend=backend)},
        executor=executor_for_environment(),
        # Used when the run config names it (`make run`); other runs keep Dagster's default console log.
        loggers={"console": step_lines_console},
    )
