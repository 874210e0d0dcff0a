"""The start-up gc.freeze of the code location's process, and its switch."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

import pytest

from iris_sagemaker.core.startup_heap import FREEZE_ENV, freeze_enabled, freeze_loaded_heap, frozen_heap

pytestmark = [pytest.mark.dagster]


@pytest.mark.parametrize("value", ["", "1", "true", "YES", " on "])
def test_freezing_is_on_unless_turned_off(value: str) -> None:
    assert freeze_enabled({FREEZE_ENV: value}) is True
    assert freeze_enabled({}) is True


@pytest.mark.parametrize("value", ["0", "false", "No", "off"])
def test_freezing_can_be_turned_off(value: str) -> None:
    before = gc.get_freeze_count()
    assert freeze_loaded_heap({FREEZE_ENV: value}) is False
    assert gc.get_freeze_count() == before


def test_a_value_that_is_not_yes_or_no_names_the_variable() -> None:
    words = r"\(yes/no words: 1, true, yes, on or 0, false, no, off\)"
    expected = rf"IRIS_SAGEMAKER_GC_FREEZE='maybe' is not true or false {words}; set it to 1"
    with pytest.raises(ValueError, match=expected):
        freeze_enabled({FREEZE_ENV: "maybe"})


def _frozen_after_loading_definitions(value: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != FREEZE_ENV}
    if value is not None:
        env[FREEZE_ENV] = value
    code = "import gc, iris_sagemaker.definitions; print(gc.get_freeze_count())"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_loading_the_definitions_freezes_what_was_loaded() -> None:
    frozen = _frozen_after_loading_definitions(None)
    assert frozen.returncode == 0, frozen.stderr
    assert int(frozen.stdout) > 50_000  # Dagster, pandas and the package: about 150,000 objects

    left_alone = _frozen_after_loading_definitions("0")
    assert left_alone.returncode == 0, left_alone.stderr
    assert int(left_alone.stdout) == 0


def test_a_bad_switch_stops_the_code_location_from_loading_with_the_reason() -> None:
    failed = _frozen_after_loading_definitions("sometimes")
    assert failed.returncode != 0
    assert "IRIS_SAGEMAKER_GC_FREEZE='sometimes' is not true or false" in failed.stderr


def test_a_frozen_block_freezes_what_was_loaded_before_it_and_what_it_loaded() -> None:
    counts = []
    with frozen_heap({}):
        counts.append(gc.get_freeze_count())
        made_inside = [[] for _ in range(1000)]  # container objects the collector tracks
    counts.append(gc.get_freeze_count())
    assert counts[1] - counts[0] >= len(made_inside) - 100  # less whatever died meanwhile
    assert counts[0] > 0
    gc.unfreeze()  # give this test process its collector back


def test_a_frozen_block_does_nothing_when_turned_off() -> None:
    gc.unfreeze()
    with frozen_heap({FREEZE_ENV: "0"}):
        assert gc.get_freeze_count() == 0
    assert gc.get_freeze_count() == 0
