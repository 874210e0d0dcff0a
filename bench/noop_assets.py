"""The floor for bench/orchestration.py: six no-op assets with the project's lineage, in-process."""

from dagster import AssetOut, Definitions, asset, in_process_executor, multi_asset


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


defs = Definitions(
    assets=[raw_iris, split_iris, knn_training_job, knn_model, test_predictions],
    executor=in_process_executor,
)
