"""Asset checks: the raw data's schema, the model's accuracy (blocking, compared with the last run), and
the live endpoint's agreement with the batch predictions (blocking).

The first two run inside the steps that materialize their assets (``check_specs``): they see the value
just computed, and cost no extra step, process or reload of the data. ``online_matches_batch`` is a step
of its own, so that it is skipped, not judged, when knn_endpoint does not deploy.
"""

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    MetadataValue,
    asset_check,
)

from iris_sagemaker.core import dataset
from iris_sagemaker.core.evaluation import ACCURACY_THRESHOLD

raw_iris_schema = AssetCheckSpec(
    "raw_iris_schema",
    asset="raw_iris",
    blocking=True,
    description="Five columns, float features, no nulls, all three species with at least "
    f"{dataset.MIN_ROWS_PER_SPECIES} rows each. Blocking: no job starts on data that fails it.",
)
splits_hold_all_species = AssetCheckSpec(
    "splits_hold_all_species",
    asset="test_csv",
    blocking=True,
    description="Both the train and the test split hold all three species. Blocking.",
)
accuracy_at_least_threshold = AssetCheckSpec(
    "accuracy_at_least_threshold",
    asset="test_predictions",
    blocking=True,
    description=f"Accuracy on the held-out test rows is at least the threshold ({ACCURACY_THRESHOLD} unless "
    "IRIS_SAGEMAKER_ACCURACY_THRESHOLD, the sagemaker resource or test_predictions' run config sets it); a "
    "drop since the previous materialization is reported.",
)


@asset_check(
    asset="knn_endpoint",
    blocking=True,
    description="The live endpoint predicts every test row as the batch transform did. Skipped when "
    "knn_endpoint did not deploy.",
)
def online_matches_batch(knn_endpoint: dict) -> AssetCheckResult:
    """Passes when the endpoint's answer for each test row equals the batch transform's.

    A check of its own (not a check spec of the asset): when knn_endpoint skips deploying, it
    materializes nothing and this check is skipped with it, rather than reported passed or failed.
    """
    online, batch = knn_endpoint["OnlineCheck"]["online"], knn_endpoint["OnlineCheck"]["batch"]
    mismatched = [
        {"row": row, "online": got, "batch": want}
        for row, (got, want) in enumerate(zip(online, batch, strict=True))
        if got != want
    ]
    return AssetCheckResult(
        passed=not mismatched,
        severity=AssetCheckSeverity.ERROR,
        metadata={"rows": len(batch), "mismatched": MetadataValue.json(mismatched[:20])},
    )


def schema_result(context: AssetExecutionContext, raw_iris: pd.DataFrame) -> AssetCheckResult:
    problems = dataset.schema_problems(raw_iris)
    if problems:
        context.log.error("raw_iris fails raw_iris_schema; no job will start: " + "; ".join(problems))
    return AssetCheckResult(
        check_name=raw_iris_schema.name,
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        metadata={"problems": MetadataValue.json(problems), "rows": len(raw_iris)},
    )


def split_result(context: AssetExecutionContext, parts: dataset.IrisSplit) -> AssetCheckResult:
    problems = dataset.split_problems(parts)
    if problems:
        context.log.error(
            "the split fails splits_hold_all_species; no job will start: " + "; ".join(problems)
        )
    return AssetCheckResult(
        check_name=splits_hold_all_species.name,
        asset_key="test_csv",
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "problems": MetadataValue.json(problems),
            "train_rows": len(parts.train),
            "test_rows": len(parts.test_labels),
        },
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


def accuracy_result(
    context: AssetExecutionContext, accuracy: float, rows: int, threshold: float = ACCURACY_THRESHOLD
) -> AssetCheckResult:
    metadata: dict[str, object] = {"accuracy": accuracy, "threshold": threshold, "rows": rows}
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
        passed=accuracy >= threshold,
        severity=AssetCheckSeverity.ERROR,
        metadata=metadata,
    )
