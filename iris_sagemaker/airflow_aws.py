"""The aws mode's SageMaker tasks: the Amazon provider's operators (imported only in that mode).

Their configs come from ``airflow_config.aws_configs``, the same builders as the Dagster assets'
requests, with Jinja where a value is per run.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerModelOperator,
    SageMakerTrainingOperator,
    SageMakerTransformOperator,
)
from botocore.exceptions import ClientError

from iris_sagemaker import airflow_config, sagemaker_steps
from iris_sagemaker.settings import Settings


class ReusingSageMakerModelOperator(SageMakerModelOperator):
    """``SageMakerModelOperator`` that survives a rerun: an existing model of the same name serving the
    same artifact is reused; one serving another artifact (e.g. after a retrained, suffixed job) makes a
    new, timestamp-suffixed model, as the provider does for jobs (``action_if_job_exists="timestamp"``)."""

    def execute(self, context: Any) -> dict:
        # The provider's execute, plus the reuse check (calling super().execute from here would trip
        # Airflow's "execute cannot be called outside TaskInstance" guard).
        self.preprocess_config()
        name = self.config["ModelName"]
        existing = self._describe_model_or_none(name)
        if existing is not None:
            wanted = self.config["PrimaryContainer"]["ModelDataUrl"]
            if existing.get("PrimaryContainer", {}).get("ModelDataUrl") == wanted:
                self.log.info("Model %s already exists with artifact %s: reusing it.", name, wanted)
                return {"Model": sagemaker_steps.json_safe(existing)}
            self.config["ModelName"] = self._get_unique_name(
                name,
                False,
                self.hook.describe_model,
                lambda candidate, describe: self._check_if_resource_exists(candidate, "model", describe),
                "model",
            )
        self.log.info("Creating SageMaker Model %s.", self.config["ModelName"])
        self.hook.create_model(self.config)
        return {"Model": sagemaker_steps.json_safe(self.hook.describe_model(self.config["ModelName"]))}

    def _describe_model_or_none(self, name: str) -> dict | None:
        try:
            return self.hook.describe_model(name)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "ValidationException":
                return None
            raise


def aws_operators(settings: Settings, conn: str, deferrable: bool) -> list[Any]:
    """train_model, create_model, test_model: the provider's operators, configs from the shared builders."""
    configs = airflow_config.aws_configs(settings)
    common: dict[str, Any] = {"aws_conn_id": conn, "region_name": settings.region}
    waiting: dict[str, Any] = {
        "wait_for_completion": True,
        "deferrable": deferrable,
        "check_interval": airflow_config.check_interval(),
        "check_if_job_exists": True,
        "action_if_job_exists": "timestamp",
    }
    return [
        SageMakerTrainingOperator(
            task_id="train_model",
            config=configs["training"],
            print_log=True,
            **waiting,
            **common,
        ),
        ReusingSageMakerModelOperator(task_id="create_model", config=configs["model"], **common),
        SageMakerTransformOperator(
            task_id="test_model",
            config=configs["transform"],
            **waiting,
            **common,
        ),
    ]
