"""Asset checks: the raw data's schema, and the model's accuracy (blocking, compared with the last run)."""

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    MetadataValue,
    asset_check,
)

from iris_sagemaker import dataset

ACCURACY_THRESHOLD = 0.9


@asset_check(asset="raw_iris", description="Five columns, float features, no nulls, all three species.")
def raw_iris_schema(raw_iris: pd.DataFrame) -> AssetCheckResult:
    problems = dataset.schema_problems(raw_iris)
    return AssetCheckResult(
        passed=not problems,
        metadata={"problems": MetadataValue.json(problems), "rows": len(raw_iris)},
    )


def previous_accuracy(context: AssetCheckExecutionContext) -> float | None:
    """Accuracy of the latest test_predictions materialization made by another run, if any."""
    records = context.instance.fetch_materializations(AssetKey("test_predictions"), limit=10).records
    for record in records:
        if record.run_id == context.run.run_id or record.asset_materialization is None:
            continue
        value = record.asset_materialization.metadata.get("accuracy")
        if value is not None:
            return float(value.value)
    return None


@asset_check(
    asset="test_predictions",
    blocking=True,
    description=f"Accuracy on the held-out test rows is at least {ACCURACY_THRESHOLD}; a drop since the "
    "previous materialization is reported.",
)
def accuracy_at_least_threshold(
    context: AssetCheckExecutionContext, test_predictions: pd.DataFrame
) -> AssetCheckResult:
    accuracy = float(test_predictions["correct"].mean()) if len(test_predictions) else 0.0
    metadata: dict[str, object] = {
        "accuracy": accuracy,
        "threshold": ACCURACY_THRESHOLD,
        "rows": len(test_predictions),
    }
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
        passed=accuracy >= ACCURACY_THRESHOLD,
        severity=AssetCheckSeverity.ERROR,
        metadata=metadata,
    )
