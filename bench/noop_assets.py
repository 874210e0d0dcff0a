"""The floor for bench/orchestration.py: seven no-op assets with the project's lineage, and the one asset
check that is a step of its own (knn_endpoint's), in-process."""

from dagster import (
    AssetCheckResult,
    AssetOut,
    Definitions,
    asset,
    asset_check,
    in_process_executor,
    multi_asset,
)


@asset
def raw_iris() -> None:
    return None


@multi_asset(outs={"train_csv": AssetOut(), "test_csv": AssetOut()}, deps=[raw_iris])
def split_iris():  # type: ignore[no-untyped-def]
    return None, None


@asset(deps=["train_csv"])
def knn_training_job() -> None:
    return None


@asset(deps=[knn_training_job])
def knn_model() -> None:
    return None


@asset(deps=[knn_model, "test_csv"])
def test_predictions() -> None:
    return None


@asset(deps=[knn_model, "test_csv", test_predictions])
def knn_endpoint() -> None:
    return None


@asset_check(asset=knn_endpoint)
def online_matches_batch() -> AssetCheckResult:
    return AssetCheckResult(passed=True)


defs = Definitions(
    assets=[raw_iris, split_iris, knn_training_job, knn_model, test_predictions, knn_endpoint],
    asset_checks=[online_matches_batch],
    executor=in_process_executor,
)
