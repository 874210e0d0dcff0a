"""Asset checks: the raw data's schema, and the model's accuracy (blocking, compared with the last run).

The checks run inside the steps that materialize their assets (``check_specs``): they see the value just
computed, and cost no extra step, process or reload of the data.
"""

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    MetadataValue,
)

from iris_sagemaker import dataset
from iris_sagemaker.evaluation import ACCURACY_THRESHOLD

raw_iris_schema = AssetCheckSpec(
    "raw_iris_schema",
    asset="raw_iris",
    description="Five columns, float features, no nulls, all three species.",
)
accuracy_at_least_threshold = AssetCheckSpec(
    "accuracy_at_least_threshold",
    asset="test_predictions",
    blocking=True,
    description=f"Accuracy on the held-out test rows is at least {ACCURACY_THRESHOLD}; a drop since the "
    "previous materialization is reported.",
)


def schema_result(raw_iris: pd.DataFrame) -> AssetCheckResult:
    problems = dataset.schema_problems(raw_iris)
    return AssetCheckResult(
        check_name=raw_iris_schema.name,
        passed=not problems,
        metadata={"problems": MetadataValue.json(problems), "rows": len(raw_iris)},
    )


def previous_accuracy(context: AssetExecutionContext) -> float | None:
    """Accuracy of the latest test_predictions materialization made by another run, if any."""
    records = context.instance.fetch_materializations(AssetKey("test_predictions"), limit=10).records
    for record in records:
        if record.run_id == context.run.run_id or record.asset_materialization is None:
            continue
        value = record.asset_materialization.metadata.get("accuracy")
        if value is not None:
            return float(value.value)
    return None


def accuracy_result(context: AssetExecutionContext, accuracy: float, rows: int) -> AssetCheckResult:
    metadata: dict[str, object] = {"accuracy": accuracy, "threshold": ACCURACY_THRESHOLD, "rows": rows}
    previous = previous_accuracy(context)
    if previous is not None:
        metadata["previous_accuracy"] = previous
        metadata["accuracy_change"] = accuracy - previous
        if accuracy < previous:
            metadata["accuracy_drop"] = MetadataValue.md(
                f"**Accuracy dropped** from {previous:.4f} to {accuracy:.4f} ({accuracy - previous:+.4f})."
            )
            context.log.warning(f"accuracy dropped from {previous:.4f} to {accuracy:.4f}")
    return AssetCheckResult(
        check_name=accuracy_at_least_threshold.name,
        passed=accuracy >= ACCURACY_THRESHOLD,
        severity=AssetCheckSeverity.ERROR,
        metadata=metadata,
    )
