"""Quiet by default (issue 26, item 3): `make run` prints a line per step and the report, not Dagster's
event log; IRIS_SAGEMAKER_VERBOSE=1 brings the event log back. The UI's event log is complete either way."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance

from iris_sagemaker.core.settings import SettingsError
from iris_sagemaker.dagster_defs.code_location import build_definitions
from iris_sagemaker.dagster_defs.console import RUN_CONFIG

pytestmark = [pytest.mark.dagster]

REPO = Path(__file__).resolve().parents[1]
STEPS = [
    "raw_iris",
    "split_iris",
    "knn_tuning_job",
    "knn_training_job",
    "knn_model",
    "test_predictions",
    "knn_endpoint",
    "knn_endpoint_online_matches_batch",
]


def make_run_commands() -> list[str]:
    """The `run` target's recipe in the Makefile, continuation lines joined, $(BIN) this interpreter's."""
    lines = (REPO / "Makefile").read_text().splitlines()
    start = lines.index(next(line for line in lines if line.startswith("run:"))) + 1
    recipe = []
    for line in lines[start:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    joined = "\n".join(recipe).replace("\\\n", " ")
    bin_dir = str(Path(sys.executable).parent)
    return [command.replace("$(BIN)", bin_dir) for command in joined.splitlines()]


@pytest.mark.slow
def test_make_run_prints_a_line_per_step_then_the_report(dagster_home) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    output = []
    for command in make_run_commands():
        done = subprocess.run(
            command, shell=True, cwd=REPO, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-3000:]
        output += (done.stderr + done.stdout).splitlines()
    steps = [line.split(":")[0] for line in output if re.match(r"^\w+: ", line)]
    assert steps[: len(STEPS)] == STEPS, output
    assert len(output) == len(STEPS) + 5, output  # a line per step, then the report's five
    assert "accuracy: " in output[-2]
    assert not [line for line in output if "DEBUG" in line or "Warning" in line]
    assert "test_predictions: accuracy 0.9778 on 45 test rows [accuracy_at_least_threshold passed]" in (
        "\n".join(output)
    )


def _materialize():
    """All assets with `make run`'s run config, through the definitions' own job (and so their loggers)."""
    job = build_definitions().resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        run_config=RUN_CONFIG, instance=DagsterInstance.ephemeral(), raise_on_error=False
    )


def test_verbose_brings_back_dagsters_event_log(monkeypatch, capsys) -> None:
    monkeypatch.setenv("IRIS_SAGEMAKER_VERBOSE", "1")
    monkeypatch.setenv("IRIS_SAGEMAKER_DEPLOY_ENDPOINT", "false")
    assert _materialize().success
    captured = capsys.readouterr()
    printed = captured.err + captured.out
    assert " - dagster - DEBUG - " in printed and "STEP_SUCCESS" in printed
    assert not re.search(r"^raw_iris: ", printed, re.MULTILINE)


def test_a_failed_step_prints_its_error_without_a_traceback(monkeypatch, capsys, tmp_path) -> None:
    bad = tmp_path / "iris.csv"
    bad.write_text("5.1,3.5,1.4,0.2\n")
    monkeypatch.setenv("IRIS_SAGEMAKER_DATA_URL", bad.as_uri())
    assert not _materialize().success
    printed = capsys.readouterr().err.splitlines()
    assert printed[0] == (
        f"raw_iris: FAILED: {bad.as_uri()}, line 1: 4 fields, expected 5 (sepal_length, sepal_width, "
        "petal_length, petal_width, species)"
    )
    assert printed[1:] == ["run: Execution of run for \"__ASSET_JOB\" failed. Steps failed: ['raw_iris']."]


@pytest.mark.parametrize("verbose", ["", "0"])
def test_a_settings_error_is_its_lines_once(monkeypatch, capsys, verbose: str) -> None:
    monkeypatch.setenv("IRIS_SAGEMAKER_VERBOSE", verbose)
    monkeypatch.setenv("IRIS_SAGEMAKER_K", "0")
    assert not _materialize().success
    printed = capsys.readouterr().err
    assert printed.count("IRIS_SAGEMAKER_K='0': Invalid hyperparameter k='0'") == 1, printed
    assert "Traceback" not in printed


def test_a_verbose_value_that_is_not_yes_or_no_stops_the_run_naming_it(monkeypatch) -> None:
    monkeypatch.setenv("IRIS_SAGEMAKER_VERBOSE", "sometimes")
    with pytest.raises(SettingsError, match=r"IRIS_SAGEMAKER_VERBOSE='sometimes' is not true or false"):
        _materialize()
