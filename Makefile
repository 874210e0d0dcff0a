# Two commands for users: `make run` and `make test`. Both create .venv (Python 3.11) when missing and
# reinstall only when pyproject.toml or setup.py changed.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster

.PHONY: install run test lint dev clean

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

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

dev: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
