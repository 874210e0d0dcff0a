# Two commands for users: `make run` and `make test`. Both install into .venv exactly the versions in uv.lock,
# and reinstall only when pyproject.toml, setup.py or uv.lock changed. `make run` installs what running needs
# (Dagster and its `dg` CLI, dagster-aws, the server); `make test` adds Airflow, moto, the test tools, a second
# venv for Airflow 3, and two for the SageMaker Python SDK (v3 and v2). uv (pinned below) is installed from
# PyPI into .tools/ the first time: no curl installer, nothing global.
#
# Python: the newest of SUPPORTED_PYTHONS found on PATH as python3.X (one that runs: a pyenv shim for a
# version pyenv does not provide is skipped); `make run PYTHON=python3.12` (or a path) picks one. uv.lock
# holds one resolution for all of them. 3.10 is out: numpy 2.4 needs 3.11.
SUPPORTED_PYTHONS := 3.13 3.12 3.11
empty :=
comma := ,
# "3.12 /path/to/python3.12" for an interpreter that runs, nothing otherwise.
py_probe = $(shell $(1) -c 'import sys; print("%d.%d" % sys.version_info[:2], sys.executable)' 2>/dev/null)
$(foreach v,$(SUPPORTED_PYTHONS),$(eval PY_FOUND_$(v) := $(call py_probe,python$(v))))
PYTHONS_FOUND := $(foreach v,$(SUPPORTED_PYTHONS),$(if $(filter $(v),$(firstword $(PY_FOUND_$(v)))),$(v)))
ifeq ($(origin PYTHON),undefined)
PY_VERSION := $(firstword $(PYTHONS_FOUND))
PYTHON := $(word 2,$(PY_FOUND_$(PY_VERSION)))
PYTHON_ERROR := no Python for iris-sagemaker: looked for \
  $(subst $(empty) ,$(comma) ,$(SUPPORTED_PYTHONS:%=python%)) on PATH. Install one (Ubuntu: sudo apt-get \
  install python3.12-venv; pyenv: pyenv install 3.12; macOS: brew install python@3.12), or name one: \
  make run PYTHON=/path/to/python3.12
else
PY_REQUESTED := $(PYTHON)
PY_VERSION := $(firstword $(call py_probe,$(PY_REQUESTED)))
override PYTHON := $(word 2,$(call py_probe,$(PY_REQUESTED)))
PYTHON_ERROR := $(if $(PY_VERSION),PYTHON=$(PY_REQUESTED) is Python $(PY_VERSION); iris-sagemaker runs on \
  Python $(subst $(empty) ,$(comma) ,$(SUPPORTED_PYTHONS)),PYTHON=$(PY_REQUESTED) does not run here \
  ($(PY_REQUESTED) -V fails); name an interpreter that does: make run PYTHON=/path/to/python3.12)
endif
# Whatever needs the interpreter stops here, with one line, when there is none (`make clean` does not).
ifeq ($(filter $(PY_VERSION),$(SUPPORTED_PYTHONS)),)
override PYTHON = $(error $(PYTHON_ERROR))
endif
# The other supported interpreters on the machine: `make test` runs the core tests on each (core-test-py3.X).
OTHER_PYTHONS := $(filter-out $(PY_VERSION),$(PYTHONS_FOUND))

VENV := .venv
BIN := $(VENV)/bin
# Stamps name the interpreter: switching PYTHON reinstalls (uv replaces a venv made by another Python).
STAMP := $(VENV)/.installed-py$(PY_VERSION)
RUN_STAMP := $(VENV)/.installed-run-py$(PY_VERSION)
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
SYNC = $(UV) sync --frozen --python $(PYTHON) -q
export DAGSTER_HOME ?= $(CURDIR)/.dagster
export UV_PYTHON_DOWNLOADS := never
# Python caches compiled bytecode (__pycache__) by default; some machines turn that off in the environment,
# which makes every dagster/airflow process recompile thousands of modules. Our commands keep the default.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install install-run run test lint dev serve clean browser lock lock-check airflow-run airflow-deploy \
  airflow-test airflow3-test sdk-venv sdk-test proto export-dag core-test quick-test

# uv into .tools with the interpreter's own pip (no venv to create); a venv where that pip is missing.
$(UV):
	$(PYTHON) -m pip install --disable-pip-version-check -q --target $(TOOLS) uv==$(UV_VERSION) \
	  || { $(PYTHON) -m venv $(TOOLS)/venv && $(TOOLS)/venv/bin/pip install -q uv==$(UV_VERSION) \
	       && mkdir -p $(TOOLS)/bin && ln -sf ../venv/bin/uv $(UV); }

# One resolution for .venv. uv.lock resolves the extras in forks (Airflow 2 and 3, SDK v2 and v3 cannot share
# a venv), and `--extra dagster --extra serve` on its own falls in another fork than `--extra test` (the one
# the SDK v2 venv uses: SQLAlchemy 2, Flask 3, packaging 24), which Airflow 2.11 in the same .venv cannot
# import. So every set installed here is the `test` extra's resolution or a part of it: the run set is the
# test set pruned of what only the tests and the Airflow mirror need (`uv export --prune`), installed at the
# test set's versions with `uv sync --extra test --no-install-package` for the rest.
TEST_ONLY := apache-airflow apache-airflow-providers-amazon aiobotocore dagster-airflow playwright pytest ruff
EXPORT_TEST = $(UV) export --frozen --python $(PYTHON) -q --extra test --no-hashes --no-emit-project \
  --no-header --no-annotate
# $(call sync_part,VENV,PRUNED,PYTHON): sync VENV with the test set minus PRUNED and what only PRUNED needs.
define sync_part
@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
names() { sed -n 's/^\([A-Za-z0-9][A-Za-z0-9._-]*\).*==.*/\1/p' | LC_ALL=C sort; }; \
$(EXPORT_TEST) | names > "$$tmp/test-set"; \
$(EXPORT_TEST) $(2:%=--prune %) | names > "$$tmp/part-set"; \
skip=$$(LC_ALL=C comm -23 "$$tmp/test-set" "$$tmp/part-set" | sed 's/^/--no-install-package /'); \
echo "UV_PROJECT_ENVIRONMENT=$(1) $(UV) sync --frozen --python $(3) -q --extra test" \
  "(without $(2) and what only they need: $$(echo $$skip | wc -w | awk '{print $$1/2}') packages)"; \
UV_PROJECT_ENVIRONMENT=$(1) $(UV) sync --frozen --python $(3) -q --extra test $$skip
endef

VENV_HAS_TEST_SET = $(and $(wildcard $(BIN)/airflow),\
  $(shell grep -sq '^version_info = $(PY_VERSION)\.' $(VENV)/pyvenv.cfg && echo y))
SYNC_RUN_SET = $(call sync_part,$(VENV),$(TEST_ONLY),$(PYTHON))
# What running needs. Once the test set is in .venv (Airflow is there), `make run` brings the whole test set
# up to date instead, so .venv never mixes two locks' versions.
$(RUN_STAMP): $(UV) pyproject.toml setup.py uv.lock
	$(if $(VENV_HAS_TEST_SET),UV_PROJECT_ENVIRONMENT=$(VENV) $(SYNC) --extra test,$(SYNC_RUN_SET))
	touch $@ $(if $(VENV_HAS_TEST_SET),$(STAMP))

# Everything, exactly as locked (a superset of the run set, so it satisfies `make run` too).
$(STAMP): $(UV) pyproject.toml setup.py uv.lock
	UV_PROJECT_ENVIRONMENT=$(VENV) $(SYNC) --extra test
	touch $@ $(RUN_STAMP)

install: $(STAMP)
install-run: $(RUN_STAMP)

# Re-resolve every transitive version (after editing pyproject.toml); commit the new uv.lock.
lock: $(UV)
	$(UV) lock --python $(PYTHON)

# Fails when uv.lock no longer matches pyproject.toml (run `make lock`); `make test` runs it first.
lock-check: $(UV)
	@$(UV) lock --check --python $(PYTHON) \
	  || { echo "uv.lock does not match pyproject.toml: run 'make lock' and commit uv.lock" >&2; exit 1; }

# The instance's SQLite storage is created here, once: two runs started together on a new DAGSTER_HOME
# would otherwise race to create it ("table run_tags already exists").
$(DAGSTER_HOME)/dagster.yaml:
	mkdir -p $(DAGSTER_HOME)
	printf 'telemetry:\n  enabled: false\n' > $@
	$(BIN)/dagster instance migrate >/dev/null || { rm -f $@; exit 1; }

# A line per step (iris_sagemaker/dagster_defs/console.py); IRIS_SAGEMAKER_VERBOSE=1 prints the full event log.
# The design card's command. `.venv/bin/dg launch --assets '*'` does the same with Dagster's own log; -W drops
# the notice the `dagster` CLI prints on every call, that `asset materialize` is superseded by `dg launch`.
run: install-run $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -W ignore::FutureWarning:click.core -m dagster asset materialize -m iris_sagemaker \
	  --select '*' --config-json '{"loggers": {"console": {}}}'
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

# `dg check defs`: the code location loads as Dagster's `dg` CLI loads it ([tool.dg] in pyproject.toml).
test: lock-check install airflow3-test sdk-test $(DAGSTER_HOME)/dagster.yaml \
  $(if $(filter 1,$(REQUIRE_BROWSER)),$(CHROMIUM))
	$(BIN)/ruff check .
	$(BIN)/dg check defs
	IRIS_SAGEMAKER_REQUIRE_BROWSER=$(REQUIRE_BROWSER) $(BIN)/python -m pytest
	@$(MAKE) --no-print-directory core-test

# The quick loop while editing (README, "Development"): the tests not marked `slow`, in .venv, about a minute.
quick-test: install
	$(BIN)/python -m pytest -m "not slow"

# The core tests on every other supported Python found on the machine (OTHER_PYTHONS; `make test` runs them,
# about a minute each; `make test OTHER_PYTHONS=` skips them): the engine, the settings, the data and a whole
# pipeline materialization (what `make run` does), in .venv-py3.X with the run set plus pytest and moto, at
# the versions .venv has. `make core-test-py3.12` runs one.
CORE_TESTS := $(addprefix iris_sagemaker_tests/,test_settings.py test_dataset.py test_evaluation.py \
  test_storage.py test_local_sagemaker_knn.py test_local_sagemaker_validation.py test_serve_units.py \
  test_pipeline_end_to_end.py)
CORE_PRUNED := $(filter-out pytest,$(TEST_ONLY))

.venv-py%/.installed: $(UV) pyproject.toml setup.py uv.lock
	$(if $(PY_FOUND_$*),,$(error no python$* runs here: looked for python$* on PATH))
	$(call sync_part,.venv-py$*,$(CORE_PRUNED),$(word 2,$(PY_FOUND_$*)))
	touch $@

.PRECIOUS: .venv-py%/.installed
core-test-py%: .venv-py%/.installed
	.venv-py$*/bin/python -m pytest -p no:cacheprovider -q $(CORE_TESTS)

core-test: $(OTHER_PYTHONS:%=core-test-py%)
	@echo "core tests on other interpreters: $(if $(OTHER_PYTHONS),Python $(OTHER_PYTHONS),none found \
	  (looked for $(filter-out python$(PY_VERSION),$(SUPPORTED_PYTHONS:%=python%))))"

# The Airflow mirror (airflow_dags/). `airflow-run`: `airflow dags test` offline on Airflow 2.11 (.venv)
# with its own SQLite home in ./.airflow, against a server started for it. `airflow-test`: the DAG tests on
# Airflow 2.11 and, in a second venv without Dagster (.venv-airflow3), on Airflow 3; `make test` runs both.
# The test venvs other than .venv run lists of files, not marker expressions (`-m airflow`, `-m sdk`): pytest
# imports every module it collects before -m deselects, and modules that need Dagster (or the other SDK)
# fail to import there.
AIRFLOW_TESTS := iris_sagemaker_tests/test_airflow_dag.py iris_sagemaker_tests/test_airflow_runs.py \
  iris_sagemaker_tests/test_airflow_export.py iris_sagemaker_tests/test_airflow_connection.py \
  iris_sagemaker_tests/test_airflow_retries.py iris_sagemaker_tests/test_provider_system_tests.py \
  iris_sagemaker_tests/test_airflow_tuning.py \
  iris_sagemaker_tests/test_airflow_cancellation.py
AF3_VENV := .venv-airflow3
AF3_STAMP := $(AF3_VENV)/.installed

$(AF3_STAMP): $(UV) pyproject.toml setup.py uv.lock
	UV_PROJECT_ENVIRONMENT=$(AF3_VENV) $(SYNC) --extra test-airflow3
	touch $(AF3_STAMP)

AIRFLOW_ENV := AIRFLOW_HOME=$(CURDIR)/.airflow AIRFLOW__CORE__LOAD_EXAMPLES=False \
  AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/airflow_dags
# The server runs for the command only: `with-server` stops it when the DAG run ends, fails or is
# interrupted. Objects land in IRIS_SAGEMAKER_LOCAL_ROOT (default ~/.iris-sagemaker), where `make run` puts them.
airflow-run: install
	export $(AIRFLOW_ENV) && $(BIN)/airflow db migrate >/dev/null && \
	  $(BIN)/iris-sagemaker with-server -- $(BIN)/airflow dags test sagemaker_pipeline

# The tutorial's "next step": the latest published model on a real-time endpoint, checked online.
airflow-deploy: install
	export $(AIRFLOW_ENV) && $(BIN)/airflow db migrate >/dev/null && \
	  $(BIN)/iris-sagemaker with-server -- $(BIN)/airflow dags test sagemaker_deploy

airflow3-test: $(AF3_STAMP)
	$(AF3_VENV)/bin/python -m pytest -p no:cacheprovider $(AIRFLOW_TESTS)

airflow-test: install airflow3-test
	$(BIN)/python -m pytest $(AIRFLOW_TESTS) iris_sagemaker_tests/test_airflow_dagster.py

dev: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml

# The SageMaker Python SDK as a client of `serve`, one venv per major version (both import as `sagemaker`),
# apart from .venv (see pyproject.toml). .venv-sdk: v3, what `pip install sagemaker` gives today, and the aws
# CLI (iris_sagemaker_tests/test_sagemaker_sdk_v3.py). .venv-sdk2: v2, its KNN estimator and RecordIO-protobuf
# (test_sagemaker_sdk_v2.py; sagemaker 2.257 needs packaging<25, Airflow 2.11 packaging>=25), grpcio-tools.
SDK_VENV := .venv-sdk
SDK_STAMP := $(SDK_VENV)/.installed
SDK2_VENV := .venv-sdk2
SDK2_STAMP := $(SDK2_VENV)/.installed

$(SDK_STAMP): $(UV) pyproject.toml setup.py uv.lock
	UV_PROJECT_ENVIRONMENT=$(SDK_VENV) $(SYNC) --extra test-sdk
	touch $(SDK_STAMP)

$(SDK2_STAMP): $(UV) pyproject.toml setup.py uv.lock
	UV_PROJECT_ENVIRONMENT=$(SDK2_VENV) $(SYNC) --extra test-sdk2
	touch $(SDK2_STAMP)

sdk-venv: $(SDK_STAMP) $(SDK2_STAMP)

sdk-test: $(SDK_STAMP) $(SDK2_STAMP)
	$(SDK_VENV)/bin/python -m pytest -p no:cacheprovider iris_sagemaker_tests/test_sagemaker_sdk_v3.py
	$(SDK2_VENV)/bin/python -m pytest -p no:cacheprovider iris_sagemaker_tests/test_sagemaker_sdk_v2.py

# Regenerate the RecordIO-protobuf descriptor set from record.proto with protoc (grpcio-tools); commit both.
PROTO_DIR := iris_sagemaker/local_sagemaker
proto: $(SDK2_STAMP)
	$(SDK2_VENV)/bin/python -m grpc_tools.protoc -I$(PROTO_DIR) --descriptor_set_out=$(PROTO_DIR)/record.desc record.proto

# The self-contained DAG file for other Airflow deployments (README, "Export the DAG"); commit the result: a
# test fails while the committed copy is stale.
export-dag: $(RUN_STAMP)
	$(BIN)/iris-sagemaker export-airflow-dag --out docs/exported_dag/sagemaker_pipeline.py

# SageMaker's HTTP API (plus S3 and CloudWatch Logs) over the embedded engine: see README, "SageMaker over HTTP".
serve: $(RUN_STAMP)
	$(BIN)/iris-sagemaker serve $(SERVE_ARGS)

clean:
	rm -rf $(VENV) $(AF3_VENV) $(SDK_VENV) $(SDK2_VENV) $(SUPPORTED_PYTHONS:%=.venv-py%) $(TOOLS) .pytest_cache \
	  .ruff_cache
