"""The IO manager: where and how assets are stored in the bucket, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetKey, build_input_context, build_output_context

from iris_sagemaker.core.storage import ObjectNotFound
from iris_sagemaker.dagster_defs.resources import (
    COLUMNS,
    HEADER,
    KEY,
    LABEL_COLUMN,
    LABEL_KEY,
    IrisS3IOManager,
    SageMakerResource,
)

pytestmark = [pytest.mark.dagster]

TEST_META = {
    KEY: "iris/processed-input-data/test.csv",
    HEADER: False,
    COLUMNS: ["a", "b"],
    LABEL_COLUMN: "true_label",
    LABEL_KEY: "iris/holdout/test_labels.csv",
}


@pytest.fixture()
def io_manager(tmp_path: Path) -> IrisS3IOManager:
    return IrisS3IOManager(backend=SageMakerResource(local_root=str(tmp_path), bucket="b-1"))


def _output(asset: str, metadata: dict, run: str = "run-1"):
    return build_output_context(asset_key=AssetKey(asset), definition_metadata=metadata, run_id=run)


def _input(asset: str, metadata: dict, run: str = "run-1"):
    return build_input_context(asset_key=AssetKey(asset), upstream_output=_output(asset, metadata, run))


def test_labels_are_stored_apart_and_joined_back(io_manager: IrisS3IOManager, tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0], "true_label": [2, 0]})
    io_manager.handle_output(_output("test_csv", TEST_META), frame)
    bucket = tmp_path / "s3" / "b-1"
    # What the transform reads: features only, no header; the labels elsewhere; all in the run's folder.
    assert (bucket / "iris/runs/run1/processed-input-data/test.csv").read_text() == "1.0,3.0\n2.0,4.0\n"
    assert (bucket / "iris/runs/run1/holdout/test_labels.csv").read_text() == "true_label\n2\n0\n"
    assert not (bucket / "iris/processed-input-data/test.csv").exists()  # only publishing writes there
    loaded = io_manager.load_input(_input("test_csv", TEST_META))
    pd.testing.assert_frame_equal(loaded, frame)


def test_a_run_reads_its_own_copy_else_the_published_one(io_manager: IrisS3IOManager, tmp_path: Path) -> None:
    ours = pd.DataFrame({"a": [1.0], "b": [2.0], "true_label": [1]})
    theirs = pd.DataFrame({"a": [9.0], "b": [9.0], "true_label": [0]})
    io_manager.handle_output(_output("test_csv", TEST_META, "run-1"), ours)
    io_manager.handle_output(_output("test_csv", TEST_META, "run-2"), theirs)  # another run, same bucket
    pd.testing.assert_frame_equal(io_manager.load_input(_input("test_csv", TEST_META, "run-1")), ours)
    bucket = tmp_path / "s3" / "b-1"
    (bucket / "iris/processed-input-data").mkdir(parents=True)
    (bucket / "iris/holdout").mkdir(parents=True)
    (bucket / "iris/processed-input-data/test.csv").write_text("5.0,6.0\n")
    (bucket / "iris/holdout/test_labels.csv").write_text("true_label\n2\n")
    published = io_manager.load_input(_input("test_csv", TEST_META, "run-3"))  # made nothing itself
    assert published.to_dict("records") == [{"a": 5.0, "b": 6.0, "true_label": 2}]


def test_dicts_are_json(io_manager: IrisS3IOManager, tmp_path: Path) -> None:
    meta = {KEY: "iris/dagster/job.json"}
    io_manager.handle_output(_output("knn_training_job", meta), {"TrainingJobName": "x", "n": 1})
    assert json.loads((tmp_path / "s3/b-1/iris/runs/run1/dagster/job.json").read_text()) == {
        "TrainingJobName": "x",
        "n": 1,
    }
    assert io_manager.load_input(_input("knn_training_job", meta)) == {"TrainingJobName": "x", "n": 1}


def test_an_asset_without_a_key_is_refused(io_manager: IrisS3IOManager) -> None:
    with pytest.raises(ValueError, match="asset raw_iris has no 'iris_sagemaker/s3_key' metadata"):
        io_manager.handle_output(_output("raw_iris", {}), pd.DataFrame())


def test_unsupported_values_are_refused(io_manager: IrisS3IOManager) -> None:
    with pytest.raises(TypeError, match="stores DataFrames and dicts; asset x returned list"):
        io_manager.handle_output(_output("x", {KEY: "k.csv"}), [1, 2])


def test_loading_an_unmaterialized_asset_says_so(io_manager: IrisS3IOManager) -> None:
    with pytest.raises(
        ObjectNotFound, match=r"s3://b-1/iris/raw/iris.csv does not exist; materialize raw_iris"
    ):
        io_manager.load_input(_input("raw_iris", {KEY: "iris/raw/iris.csv"}))
