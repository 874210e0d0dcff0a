"""Retraining as declarative automation (iris_sagemaker/dagster_defs/automation.py): a weekly retrain that
never runs on data failing a blocking check, and a retrain when the Iris source changes; both off until a
user turns them on. The conditions are evaluated with Dagster's own testing API against a real instance."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import warnings
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import dagster as dg
import pytest

from iris_sagemaker.core.dataset import IrisDataError
from iris_sagemaker.core.source_version import source_version
from iris_sagemaker.dagster_defs import assets, automation
from iris_sagemaker.dagster_defs.code_location import build_definitions
from iris_sagemaker.dagster_defs.resources import SageMakerResource

ASSETS = {
    "raw_iris",
    "train_csv",
    "test_csv",
    "knn_tuning_job",
    "knn_training_job",
    "knn_model",
    "test_predictions",
    "knn_endpoint",
}
MONDAY_TICK = dt.datetime(2026, 11, 30, 6, 0, tzinfo=dt.UTC)  # "0 6 * * 1" in UTC
BEFORE_TICK = MONDAY_TICK - dt.timedelta(minutes=1)
AFTER_TICK = MONDAY_TICK + dt.timedelta(minutes=1)


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    return build_definitions()


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


def _requested(defs: dg.Definitions, result: dg.EvaluateAutomationConditionsResult) -> set[str]:
    return {
        key.to_user_string()
        for key in defs.resolve_asset_graph().get_all_asset_keys()
        if result.get_num_requested(key)
    }


def _evaluate(
    defs: dg.Definitions, instance: dg.DagsterInstance, at: dt.datetime, cursor: object = None
) -> dg.EvaluateAutomationConditionsResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # the testing API's own selection
        return dg.evaluate_automation_conditions(
            defs=defs, instance=instance, evaluation_time=at, cursor=cursor
        )


def _raw_iris_fetched(instance: dg.DagsterInstance, schema_passed: bool) -> None:
    """raw_iris materialized (say by a manual run after the tick) and its blocking schema check's verdict."""
    instance.report_runless_asset_event(dg.AssetMaterialization("raw_iris"))
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey("raw_iris"), check_name="raw_iris_schema", passed=schema_passed
        )
    )


def test_every_asset_retrains_weekly_only_on_data_that_passed_its_blocking_checks(
    defs: dg.Definitions,
) -> None:
    graph = defs.resolve_asset_graph()
    conditions = {
        key.to_user_string(): graph.get(key).automation_condition for key in graph.get_all_asset_keys()
    }
    assert set(conditions) == ASSETS
    assert all(condition == automation.WEEKLY_RETRAIN for condition in conditions.values())
    parts = {child.get_label() for child in automation.WEEKLY_RETRAIN.children}
    assert parts == {"on_cron(0 6 * * 1, UTC)", "all_deps_blocking_checks_passed"}
    # What the composition guards: every check in the graph blocks what is downstream of it.
    checks = graph.asset_check_keys
    assert {check.name for check in checks} == {
        "raw_iris_schema",
        "splits_hold_all_species",
        "accuracy_at_least_threshold",
        "online_matches_batch",
    }
    assert all(graph.get(check).blocking for check in checks)


def test_both_sensors_are_off_until_a_user_turns_them_on(defs: dg.Definitions) -> None:
    sensors = {sensor.name: sensor for sensor in defs.sensors}
    assert set(sensors) == {"retrain_weekly", "retrain_on_new_data"}
    assert all(sensor.default_status == dg.DefaultSensorStatus.STOPPED for sensor in sensors.values())
    assert isinstance(sensors["retrain_weekly"], dg.AutomationConditionSensorDefinition)
    # The automation sensor covers every asset, so Dagster adds no default (running) one of its own.
    weekly_targets = sensors["retrain_weekly"].asset_selection.resolve(defs.resolve_asset_graph())
    assert {key.to_user_string() for key in weekly_targets} == ASSETS
    assert not defs.schedules
    assert sensors["retrain_on_new_data"].job_name == "retrain_iris_knn"


def test_the_cron_tick_requests_the_whole_graph_once(
    defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    before = _evaluate(defs, instance, BEFORE_TICK)
    assert _requested(defs, before) == set()
    at_tick = _evaluate(defs, instance, AFTER_TICK, before.cursor)
    assert _requested(defs, at_tick) == ASSETS  # one run, raw_iris first: its checks run in it
    later = _evaluate(defs, instance, AFTER_TICK + dt.timedelta(minutes=5), at_tick.cursor)
    assert _requested(defs, later) == set()  # once per tick


def test_after_the_tick_fresh_data_with_passing_checks_retrains_what_is_downstream(
    defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    before = _evaluate(defs, instance, BEFORE_TICK)
    _raw_iris_fetched(instance, schema_passed=True)
    result = _evaluate(defs, instance, AFTER_TICK, before.cursor)
    assert _requested(defs, result) == ASSETS - {"raw_iris"}  # raw_iris already updated since the tick


def test_after_the_tick_data_failing_a_blocking_check_retrains_nothing(
    defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    before = _evaluate(defs, instance, BEFORE_TICK)
    _raw_iris_fetched(instance, schema_passed=False)
    result = _evaluate(defs, instance, AFTER_TICK, before.cursor)
    assert _requested(defs, result) == set()
    # on_cron alone would have retrained on it: the blocking-checks half is what holds it back.
    cron_only = dg.Definitions(
        assets=[
            asset.with_attributes(automation_condition=dg.AutomationCondition.on_cron(automation.WEEKLY_CRON))
            for asset in (assets.raw_iris, assets.split_iris, assets.knn_tuning_job)
        ],
        resources={"sagemaker": SageMakerResource()},
    )
    with dg.DagsterInstance.ephemeral() as other:
        before = _evaluate(cron_only, other, BEFORE_TICK)
        _raw_iris_fetched(other, schema_passed=False)
        assert "train_csv" in _requested(cron_only, _evaluate(cron_only, other, AFTER_TICK, before.cursor))


# retrain_on_new_data


@pytest.fixture
def iris_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "iris.data"
    with resources.as_file(resources.files("iris_sagemaker").joinpath("data/iris.data")) as packaged:
        shutil.copyfile(packaged, path)
    monkeypatch.setenv("IRIS_SAGEMAKER_DATA_URL", path.as_uri())
    return path


def _tick(cursor: str | None) -> dg.SensorExecutionData:
    context = dg.build_sensor_context(cursor=cursor, resources={"sagemaker": SageMakerResource()})
    return automation.retrain_on_new_data.evaluate_tick(context)


def test_the_data_sensor_notes_the_source_on_its_first_tick_and_retrains_only_when_it_changes(
    iris_file: Path,
) -> None:
    first = _tick(None)
    assert first.run_requests == [] and "first look at" in (first.skip_message or "")
    assert first.cursor == hashlib.sha256(iris_file.read_bytes()).hexdigest()

    unchanged = _tick(first.cursor)
    assert unchanged.run_requests == [] and "unchanged" in (unchanged.skip_message or "")

    with iris_file.open("a") as fh:
        fh.write("5.9,3.0,5.1,1.8,Iris-virginica\n")
    changed = _tick(first.cursor)
    assert len(changed.run_requests) == 1
    assert changed.cursor == hashlib.sha256(iris_file.read_bytes()).hexdigest() != first.cursor
    assert changed.run_requests[0].tags[automation.SOURCE_VERSION_TAG] == changed.cursor

    assert _tick(changed.cursor).run_requests == []  # the same change retrains once


def test_the_data_sensor_skips_saying_why_when_the_source_cannot_be_read(iris_file: Path) -> None:
    original = iris_file.read_bytes()
    seen = _tick(None).cursor
    iris_file.unlink()
    result = _tick(seen)
    assert result.run_requests == []
    assert "could not check the Iris source for changes" in (result.skip_message or "")
    assert str(iris_file) in (result.skip_message or "")
    assert result.cursor == seen  # the last version seen is kept: the same file back is no change
    iris_file.write_bytes(original)
    assert _tick(result.cursor).run_requests == []


def test_source_version_is_the_sha256_of_the_source_the_assets_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packaged = resources.files("iris_sagemaker").joinpath("data/iris.data").read_bytes()
    assert source_version(None) == hashlib.sha256(packaged).hexdigest()
    path = tmp_path / "big.data"
    monkeypatch.setattr("iris_sagemaker.core.source_version.READ_BYTES", 7)  # read in several blocks
    path.write_bytes(packaged * 3)
    assert source_version(path.as_uri()) == hashlib.sha256(packaged * 3).hexdigest()
    with pytest.raises(IrisDataError, match=r"could not read IRIS_SAGEMAKER_DATA_URL=file://.*missing"):
        source_version((tmp_path / "missing").as_uri())
    with pytest.raises(IrisDataError, match="unsupported scheme"):
        source_version("ftp://example.invalid/iris.data")
