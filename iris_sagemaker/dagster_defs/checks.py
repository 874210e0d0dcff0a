"""Asset checks: the raw data's schema, and the model's accuracy (blocking)."""


import pandas as pd
from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check

from iris_sagemaker import dataset

ACCURACY_THRESHOLD = 0.9


@asset_check(asset="raw_iris", description="Five columns, float features, no nulls, all three species.")
def raw_iris_schema(raw_iris: pd.DataFrame) -> AssetCheckResult:
    problems = dataset.schema_problems(raw_iris)
    return AssetCheckResult(
        passed=not problems,
        metadata={"problems": MetadataValue.json(problems), "rows": len(raw_iris)},
    )


@asset_check(
    asset="test_predictions",
    blocking=True,
    description=f"Accuracy on the held-out test rows is at least {ACCURACY_THRESHOLD}.",
)
def accuracy_at_least_threshold(test_predictions: pd.DataFrame) -> AssetCheckResult:
    accuracy = float(test_predictions["correct"].mean()) if len(test_predictions) else 0.0
    return AssetCheckResult(
        passed=accuracy >= ACCURACY_THRESHOLD,
        severity=AssetCheckSeverity.ERROR,
        metadata={"accuracy": accuracy, "threshold": ACCURACY_THRESHOLD, "rows": len(test_predictions)},
    )
