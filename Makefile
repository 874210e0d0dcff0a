# Two commands for users: `make run` and `make test`. Both create .venv (Python 3.11) when missing and
# reinstall only when pyproject.toml or setup.py changed.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster

.PHONY: install run test lint dev serve clean browser airflow-run airflow-test airflow3-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml setup.py
	$(BIN)/python -m pip install --disable-pip-version-check -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

$(DAGSTER_HOME)/dagster.yaml:
	mkdir -p $(DAGSTER_HOME)
	printf 'telemetry:\n  enabled: false\n' > $@

run: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster asset materialize -m iris_sagemaker --select '*'
	$(BIN)/python -m iris_sagemaker.report

# The UI browser test drives Debian's Chromium (never a browser downloaded by `playwright install`).
# `make test` installs it when missing and makes the test mandatory; without apt (e.g. macOS),
# `make test REQUIRE_BROWSER=0` lets the test skip instead.
CHROMIUM := /usr/bin/chromium
REQUIRE_BROWSER ?= 1
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "no $@ and no apt-get: install Chromium, or make test REQUIRE_BROWSER=0" >&2; exit 1; }
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

browser: $(CHROMIUM)

test: install airflow3-test $(if $(filter 1,$(REQUIRE_BROWSER)),$(CHROMIUM))
	$(BIN)/ruff check .
	IRIS_SAGEMAKER_REQUIRE_BROWSER=$(REQUIRE_BROWSER) $(BIN)/python -m pytest

# The Airflow mirror (airflow_dags/sagemaker_pipeline.py). `airflow-run`: `airflow dags test` offline on
# Airflow 2.11 (.venv) with its own SQLite home in ./.airflow. `airflow-test`: the DAG tests on Airflow
# 2.11 and, in a second venv without Dagster (.venv-airflow3), on Airflow 3; `make test` includes both.
AIRFLOW_TESTS := iris_sagemaker_tests/test_airflow_dag.py iris_sagemaker_tests/test_airflow_runs.py
AF3_VENV := .venv-airflow3
AF3_STAMP := $(AF3_VENV)/.installed

$(AF3_VENV)/bin/python:
	$(PYTHON) -m venv $(AF3_VENV)

$(AF3_STAMP): $(AF3_VENV)/bin/python pyproject.toml setup.py
	$(AF3_VENV)/bin/python -m pip install --disable-pip-version-check -q -e ".[test-airflow3]"
	touch $(AF3_STAMP)

airflow-run: install
	export AIRFLOW_HOME=$(CURDIR)/.airflow AIRFLOW__CORE__LOAD_EXAMPLES=False \
	  AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/airflow_dags && \
	$(BIN)/airflow db migrate >/dev/null && $(BIN)/airflow dags test sagemaker_pipeline

airflow3-test: $(AF3_STAMP)
	$(AF3_VENV)/bin/python -m pytest -p no:cacheprovider $(AIRFLOW_TESTS)

airflow-test: install airflow3-test
	$(BIN)/python -m pytest $(AIRFLOW_TESTS) iris_sagemaker_tests/test_airflow_dagster.py

dev: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml

# SageMaker's HTTP API (plus S3 and CloudWatch Logs) over the embedded engine: see README, "SageMaker over HTTP".
serve: install
	$(BIN)/iris-sagemaker serve $(SERVE_ARGS)

clean:
	rm -rf $(VENV) $(AF3_VENV) .pytest_cache .ruff_cache
