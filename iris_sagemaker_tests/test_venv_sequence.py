"""One .venv, one locked set, whatever order the make targets come in (issue 26, item 1).

uv.lock resolves the extras in forks, and the run set (`--extra dagster --extra serve`) on its own used to
fall in another fork than the test set: after `make test`, a changed uv.lock and `make run`, .venv held
SQLAlchemy 2.1 and Flask 3.1 beside Airflow 2.11, and the dagster-airflow job failed to import. These tests
drive the Makefile in a copy of the project with a venv of its own (hardlinked from uv's cache: seconds, no
network):

- the run set is a part of the test set, at the same versions, whichever is installed first;
- test set, changed lock, run set: nothing in .venv changes, and the dagster-airflow job runs to success;
- a wrong install is diagnosed by the import that failed and the versions that do not fit, not as "not
  installed".

The job in a fresh venv takes a minute or two (every module is compiled once); `make test` runs it, like the
other end-to-end tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UV = REPO / ".tools" / "bin" / "uv"
PROJECT_FILES = ("Makefile", "pyproject.toml", "setup.py", "uv.lock", "README.md", "workspace.yaml")
PROJECT_DIRS = ("iris_sagemaker", "airflow_dags")

pytestmark = [
    pytest.mark.dagster,
    pytest.mark.slow,
    pytest.mark.skipif(
        not UV.exists() or shutil.which("make") is None,
        reason="needs make and the project's uv (.tools/bin/uv, installed by make)",
    ),
]


def _copy_project(dest: Path) -> Path:
    dest.mkdir()
    for name in PROJECT_FILES:
        shutil.copy2(REPO / name, dest / name)
    for name in PROJECT_DIRS:
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return dest


def _make(project: Path, *targets: str) -> str:
    python = getattr(sys, "_base_executable", None) or sys.executable
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "MAKEFLAGS", "MAKELEVEL")}
    result = subprocess.run(
        ["make", "--no-print-directory", f"UV={UV}", f"PYTHON={python}", *targets],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"make {' '.join(targets)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def _installed(project: Path) -> dict[str, str]:
    """{distribution: version} of the copy's .venv (the project itself left out)."""
    out = subprocess.run(
        [str(UV), "pip", "freeze", "--python", str(project / ".venv" / "bin" / "python")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("==", 1) for line in out.splitlines() if "==" in line)


def _change_lock(project: Path) -> None:
    """What a `git pull` that changes uv.lock does to make: the lock is newer than every stamp."""
    later = time.time() + 5
    os.utime(project / "uv.lock", (later, later))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _copy_project(tmp_path_factory.mktemp("venv-sequence") / "project")


def test_run_set_then_test_set_then_run_set(project: Path) -> None:
    _make(project, "install-run")
    run_set = _installed(project)
    assert "dagster" in run_set and "moto" in run_set
    assert "apache-airflow" not in run_set and "pytest" not in run_set, "the run set installs only what runs"

    _make(project, "install")
    test_set = _installed(project)
    assert "apache-airflow" in test_set and "dagster-airflow" in test_set
    moved = {name: (v, test_set.get(name)) for name, v in run_set.items() if test_set.get(name) != v}
    assert not moved, f"installing the test set moved run-set versions (before, after): {moved}"


def test_test_set_changed_lock_run_set_then_dagster_airflow_job(project: Path, tmp_path: Path) -> None:
    _make(project, "install")
    test_set = _installed(project)
    _change_lock(project)
    _make(project, "install-run")
    after = _installed(project)
    assert after == test_set, {
        name: (test_set.get(name), after.get(name))
        for name in set(test_set) | set(after)
        if test_set.get(name) != after.get(name)
    }

    dagster_home = tmp_path / "dagster-home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["DAGSTER_HOME"] = str(dagster_home)
    result = subprocess.run(
        [
            str(project / ".venv" / "bin" / "dagster"),
            "job",
            "execute",
            "-m",
            "iris_sagemaker.airflow_definitions",
            "-j",
            "sagemaker_pipeline",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "RUN_SUCCESS" in output, output[-6000:]


def test_a_mismatched_install_names_the_failed_import_and_the_versions() -> None:
    pytest.importorskip("dagster_airflow", reason="dagster-airflow is not installed (or Airflow 3 is)")
    from iris_sagemaker.airflow_defs.dagster_job import import_failure, unmet_requirements

    assert unmet_requirements("apache-airflow") == [], "the test venv itself is consistent"
    err = ImportError("cannot import name '_app_ctx_stack' from 'flask'")
    message = import_failure(err)
    assert "are installed, but importing them failed with ImportError: cannot import name" in message
    assert "not installed" not in message and "make install" in message
