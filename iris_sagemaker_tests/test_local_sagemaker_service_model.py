"""The engine's cut-down, cached copy of botocore's SageMaker model: same answers, and never stale."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import pytest
from botocore.loaders import Loader
from botocore.model import ServiceModel

from iris_sagemaker.core.settings import CACHE_DIR_VARIABLE
from iris_sagemaker.local_sagemaker import client as client_module
from iris_sagemaker.local_sagemaker import service_model as sm
from iris_sagemaker.local_sagemaker.testing import training_request, transform_request
from iris_sagemaker.local_sagemaker.validation import check_value


@pytest.fixture(scope="module")
def full() -> dict:
    return Loader().load_service_model(sm.SERVICE, sm.TYPE_NAME)


class CountingLoader(Loader):
    """botocore's loader, counting full parses of the model."""

    parses = 0

    def load_service_model(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        type(self).parses += 1
        return super().load_service_model(*args, **kwargs)


@pytest.fixture
def loader() -> CountingLoader:
    CountingLoader.parses = 0
    return CountingLoader()


def test_every_operation_the_client_serves_is_in_the_cut_down_model() -> None:
    served = set(re.findall(r'\bop = "(\w+)"', inspect.getsource(client_module)))
    assert served and served <= set(sm.OPERATIONS)


def test_the_cut_down_model_holds_every_shape_its_operations_reach_unchanged(full: dict) -> None:
    pruned = sm.prune(full, sm.OPERATIONS)
    assert set(pruned["operations"]) == set(sm.OPERATIONS)
    assert len(pruned["shapes"]) < len(full["shapes"]) / 5
    assert all(pruned["shapes"][name] == full["shapes"][name] for name in pruned["shapes"])
    model = ServiceModel(pruned, service_name=sm.SERVICE)
    for operation in sm.OPERATIONS:  # resolving every nested shape raises if one is missing
        op = model.operation_model(operation)
        for shape in (op.input_shape, op.output_shape, *op.error_shapes):
            _walk(shape, set())


def _walk(shape, seen: set[str]) -> None:  # type: ignore[no-untyped-def]
    if shape is None or shape.name in seen:
        return
    seen.add(shape.name)
    children = list(getattr(shape, "members", {}).values())
    children += [getattr(shape, attr) for attr in ("member", "key", "value") if hasattr(shape, attr)]
    for child in children:
        _walk(child, seen)


@pytest.mark.parametrize(
    ("operation", "request_"),
    [
        (
            "CreateTrainingJob",
            {
                **training_request("bad_name", "s3://b/train.csv", "s3://b/out"),
                "Tags": [{"Key": "a|b", "Value": "x"}],
            },
        ),
        (
            "CreateTransformJob",
            {**transform_request("t" * 70, "m", "s3://b/test.csv", "s3://b/out"), "MaxPayloadInMB": 500},
        ),
    ],
)
def test_validation_with_the_cut_down_model_says_what_the_full_model_says(
    full: dict, operation: str, request_: dict
) -> None:
    pruned = ServiceModel(sm.prune(full, sm.OPERATIONS), service_name=sm.SERVICE)
    whole = ServiceModel(full, service_name=sm.SERVICE)
    problems = list(check_value(whole.operation_model(operation).input_shape, request_, ""))
    assert problems  # the requests are bad on purpose
    assert list(check_value(pruned.operation_model(operation).input_shape, request_, "")) == problems


def test_the_first_load_writes_the_cache_and_later_loads_read_it(
    tmp_path: Path, loader: CountingLoader
) -> None:
    first = sm.load_model_data(tmp_path, loader)
    assert CountingLoader.parses == 1 and len(first["shapes"]) > 3000
    assert (tmp_path / sm.CACHE_FILE).is_file()

    again = sm.load_model_data(tmp_path, loader)
    assert CountingLoader.parses == 1  # not parsed again
    assert set(again["operations"]) == set(sm.OPERATIONS)
    assert again["metadata"] == first["metadata"]


def test_a_cache_from_another_botocore_is_replaced(tmp_path: Path, loader: CountingLoader) -> None:
    sm.load_model_data(tmp_path, loader)
    cache = tmp_path / sm.CACHE_FILE
    stored = json.loads(cache.read_text())
    stored["source"]["botocore"] = "0.0.1"
    stored["model"]["operations"]["CreateTrainingJob"]["http"]["requestUri"] = "/stale"
    cache.write_text(json.dumps(stored))

    data = sm.load_model_data(tmp_path, loader)
    assert CountingLoader.parses == 2
    assert data["operations"]["CreateTrainingJob"]["http"]["requestUri"] == "/"
    assert json.loads(cache.read_text())["source"] == sm.source_signature(loader)


@pytest.mark.parametrize("content", ["{not json", "[]", '{"format": 1}', ""])
def test_a_damaged_cache_is_ignored_and_rewritten(
    tmp_path: Path, loader: CountingLoader, content: str
) -> None:
    (tmp_path / sm.CACHE_FILE).write_text(content)
    data = sm.load_model_data(tmp_path, loader)
    assert CountingLoader.parses == 1 and "CreateTrainingJob" in data["operations"]
    assert set(json.loads((tmp_path / sm.CACHE_FILE).read_text())["model"]["operations"]) == set(
        sm.OPERATIONS
    )


def test_a_cache_folder_that_cannot_be_written_only_costs_the_full_parse(
    tmp_path: Path, loader: CountingLoader
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    for _ in range(2):
        data = sm.load_model_data(blocked / "cache", loader)
        assert "CreateTrainingJob" in data["operations"]
    assert CountingLoader.parses == 2
    assert blocked.read_text() == "not a folder"


def test_the_cache_folder_follows_the_environment(tmp_path: Path) -> None:
    assert sm.default_cache_dir({CACHE_DIR_VARIABLE: str(tmp_path)}) == tmp_path
    assert sm.default_cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "iris-sagemaker"
    assert sm.default_cache_dir({}) == Path("~/.cache/iris-sagemaker").expanduser()
