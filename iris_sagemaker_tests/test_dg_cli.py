"""Dagster's `dg` CLI answers on this project ([tool.dg] in pyproject.toml): `dg check defs` loads the code
location, `dg list defs` lists its assets, checks, job and sensors. Run as a user runs them, in the repo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
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
DG_SECONDS = 180


@pytest.fixture(scope="module")
def dg() -> str:
    """The `dg` of the venv running the tests (dagster-dg-cli, in the `dagster` extra)."""
    found = shutil.which("dg", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip(
            f"dagster-dg-cli is not installed beside {sys.executable} (`make install` puts it in .venv)"
        )
    return found


@pytest.fixture
def dagster_env(tmp_path: Path) -> dict[str, str]:
    """A DAGSTER_HOME of its own with the instance created, as the Makefile prepares one."""
    home = tmp_path / "dagster-home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {**os.environ, "DAGSTER_HOME": str(home), "NO_COLOR": "1"}


def _dg(dg: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [dg, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=DG_SECONDS, check=False
    )
    assert done.returncode == 0, f"dg {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def test_dg_check_defs_loads_the_code_location(dg: str, dagster_env: dict[str, str]) -> None:
    done = _dg(dg, dagster_env, "check", "defs")
    assert "All definitions loaded successfully" in done.stdout + done.stderr


def test_dg_list_defs_lists_the_assets_checks_job_and_sensor(dg: str, dagster_env: dict[str, str]) -> None:
    listed = json.loads(_dg(dg, dagster_env, "list", "defs", "--json").stdout)
    assets = {asset["asset_key"]: asset for asset in listed["assets"]}
    assert set(assets) == ASSETS
    assert {asset["group_name"] for asset in assets.values()} == {"iris"}
    assert {asset["automation_condition"]["label"] for asset in assets.values()} == {
        "weekly retrain on checked data"
    }
    assert {check["name"] for check in listed["asset_checks"]} == {
        "raw_iris_schema",
        "splits_hold_all_species",
        "accuracy_at_least_threshold",
        "online_matches_batch",
    }
    assert [job["name"] for job in listed["jobs"]] == ["retrain_iris_knn"]
    assert listed["schedules"] == []
    assert {sensor["name"] for sensor in listed["sensors"]} == {"retrain_weekly", "retrain_on_new_data"}
