"""The DAGs in-process, no database: they import on both Airflow lines, have the tutorial's tasks, use the
provider's operators in both modes, and render the same request bodies as the shared builders.

Runs in .venv (Airflow 2.11) and .venv-airflow3 (Airflow 3.x); skipped where Airflow is absent.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from iris_sagemaker.core import run_objects, specs
from iris_sagemaker.core.settings import DEFAULT_LOCAL_BUCKET, LOCAL_ROLE_ARN, Settings
from iris_sagemaker_tests.airflow_support import (
    DAGS_FOLDER,
    airflow_env,
    chain,
    dagbag,
    rendered_requests,
    require_airflow,
)

require_airflow()

from iris_sagemaker.airflow_defs import config as airflow_config  # noqa: E402
from iris_sagemaker.airflow_defs import deploy  # noqa: E402
from iris_sagemaker.airflow_defs.pipeline import DAG_ID, TASK_IDS, build_dag  # noqa: E402

pytestmark = [pytest.mark.airflow]

BUCKET = "iris-airflow-test"
ROLE = "arn:aws:iam::123456789012:role/iris-airflow-test"
NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


@pytest.mark.parametrize("backend", ["local", "aws"])
def test_dagbag_imports_the_dag_without_errors(monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    monkeypatch.setenv("IRIS_SAGEMAKER_BACKEND", backend)  # aws needs no bucket/role at parse time
    bag = dagbag()
    assert bag.import_errors == {}
    dag = bag.dags[DAG_ID]
    assert chain(dag) == list(TASK_IDS)
    assert chain(dag)[:4] == ["data_prep", "train_model", "create_model", "test_model"]
    assert chain(bag.dags[deploy.DAG_ID]) == list(deploy.TASK_IDS)
    assert type(bag.dags[deploy.DAG_ID].timetable).__name__ == "NullTimetable"  # no schedule


HEAVY_MODULES = (
    "pandas",
    "faiss",
    "iris_sagemaker.airflow_defs.tasks",
    "iris_sagemaker.local_sagemaker",
    "iris_sagemaker.serve.server",
    "aiobotocore",
)
PROVIDER_OPERATORS = "airflow.providers.amazon.aws.operators.sagemaker"


def _modules_loaded_by_parsing_the_dag_file(tmp_path, backend: str) -> list[str]:
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1]); "
        f"print(','.join(m for m in {(*HEAVY_MODULES, PROVIDER_OPERATORS)!r} if m in sys.modules))"
    )
    env = airflow_env(tmp_path / "home", IRIS_SAGEMAKER_BACKEND=backend)
    done = subprocess.run(
        [sys.executable, "-c", code, str(DAGS_FOLDER / "sagemaker_pipeline.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [m for m in done.stdout.strip().splitlines()[-1].split(",") if m] if done.stdout.strip() else []


@pytest.mark.parametrize("backend", ["local", "aws"])
def test_parsing_loads_the_provider_operators_but_not_pandas_the_engine_or_the_server(
    tmp_path, backend: str
) -> None:
    """The scheduler re-parses DAG files every ``min_file_process_interval``; the tasks import the rest.
    The provider's operator module is the one import the DAG's shape needs (its tasks are those classes)."""
    loaded = _modules_loaded_by_parsing_the_dag_file(tmp_path, backend)
    assert loaded == [PROVIDER_OPERATORS]


def test_a_bad_backend_is_an_import_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRIS_SAGEMAKER_BACKEND", "gcp")
    errors = dagbag().import_errors
    assert sorted(Path(f).name for f in errors) == ["sagemaker_deploy.py", "sagemaker_pipeline.py"]
    assert all("IRIS_SAGEMAKER_BACKEND='gcp'" in text for text in errors.values())


@pytest.mark.parametrize("backend", ["local", "aws"])
def test_both_modes_use_the_amazon_providers_operators(monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    from airflow.providers.amazon.aws.operators.sagemaker import (
        SageMakerEndpointConfigOperator,
        SageMakerEndpointOperator,
        SageMakerModelOperator,
        SageMakerTrainingOperator,
        SageMakerTransformOperator,
    )

    dag = build_dag(backend=backend)
    train, model, transform = (dag.get_task(t) for t in ("train_model", "create_model", "test_model"))
    assert isinstance(train, SageMakerTrainingOperator)
    assert isinstance(model, SageMakerModelOperator)
    assert isinstance(transform, SageMakerTransformOperator)
    for task in (train, model, transform):
        assert task.aws_conn_id == "aws-sagemaker"
    assert train.deferrable and transform.deferrable  # deferrable by default
    assert not train.check_if_job_exists  # an existing job is reused / waited for / failed, never renamed
    assert train.check_interval == (1 if backend == "local" else 30)
    # The deferred wait lasts as long as the blocking one (MaxRuntimeInSeconds plus setup), not 60 polls.
    assert train.max_attempts * train.check_interval >= specs.MAX_RUNTIME_SECONDS
    deployment = deploy.build_deploy_dag(backend=backend)
    assert isinstance(deployment.get_task("create_endpoint_config"), SageMakerEndpointConfigOperator)
    assert isinstance(deployment.get_task("deploy_endpoint"), SageMakerEndpointOperator)

    monkeypatch.setenv("IRIS_SAGEMAKER_AIRFLOW_DEFERRABLE", "false")
    monkeypatch.setenv("IRIS_SAGEMAKER_AIRFLOW_CONN_ID", "my-aws")
    dag = build_dag(backend=backend)
    assert not dag.get_task("train_model").deferrable
    assert dag.get_task("test_model").aws_conn_id == "my-aws"


@pytest.mark.parametrize("backend", ["local", "aws"])
def test_rendered_configs_equal_the_shared_builders_bodies(monkeypatch: pytest.MonkeyPatch, backend) -> None:
    # The Variables, as AIRFLOW_VAR_* (Airflow reads them before its database).
    monkeypatch.setenv("AIRFLOW_VAR_S3_BUCKET", BUCKET)
    monkeypatch.setenv("AIRFLOW_VAR_ROLE", ROLE)
    monkeypatch.setenv("IRIS_SAGEMAKER_BACKEND", backend)
    run_id = "manual__2026-01-02T03:04:05.678901+00:00"
    artifact = f"s3://{BUCKET}/iris/results/x/output/model.tar.gz"
    rendered = rendered_requests(run_id, artifact, backend)

    settings = Settings.from_env(backend=backend, bucket=BUCKET, role_arn=ROLE)
    names = specs.job_names(run_id)
    own = run_objects.run_keys(run_id)  # the run's own folder, as the local tasks and Dagster use
    assert rendered["train_model"] == specs.training_job_request(
        settings, names.training_job, train_key=own.train
    )
    assert rendered["create_model"] == specs.model_request(settings, names.model, artifact)
    assert rendered["test_model"] == specs.transform_job_request(
        settings, names.transform_job, names.model, input_key=own.test, output_prefix=own.output_prefix
    )
    assert rendered["train_model"]["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == (
        f"s3://{BUCKET}/iris/runs/manual__2026-01-02T03-04-05.678901-00-00/processed-input-data/train.csv"
    )
    assert rendered["train_model"]["RoleArn"] == ROLE


def test_variables_fall_back_to_the_environment_dagster_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRIS_SAGEMAKER_BUCKET", "env-bucket")
    monkeypatch.setenv("IRIS_SAGEMAKER_ROLE_ARN", ROLE)
    monkeypatch.setenv("IRIS_SAGEMAKER_BACKEND", "aws")
    settings = airflow_config.resolve_settings(lambda key: None)
    assert (settings.bucket, settings.role_arn, settings.backend) == ("env-bucket", ROLE, "aws")
    variables = {"s3_bucket": BUCKET, "role": "arn:aws:iam::210987654321:role/other"}
    settings = airflow_config.resolve_settings(variables.get)
    assert (settings.bucket, settings.role_arn) == (BUCKET, variables["role"])


def test_local_defaults_need_no_variables() -> None:
    settings = airflow_config.resolve_settings(lambda key: None)
    assert (settings.backend, settings.bucket, settings.role_arn) == (
        "local",
        DEFAULT_LOCAL_BUCKET,
        LOCAL_ROLE_ARN,
    )


@pytest.mark.parametrize(
    "run_id",
    [
        "manual__2026-01-02T03:04:05.678901+00:00",
        "scheduled__2021-07-31T00:00:00+00:00",
        "dagster_airflow_run_2026-01-02 03:04:05+00:00",
        "a" * 300,
    ],
)
def test_job_names_per_run_are_valid_and_distinct(run_id: str) -> None:
    names = airflow_config.job_names(run_id)
    for name in (names.training_job, names.model, names.transform_job):
        assert NAME_RE.match(name), name
    other = airflow_config.job_names(run_id.replace("0", "1") + "-rerun")
    assert other.training_job != names.training_job


def test_deploy_configs_equal_the_endpoint_assets_bodies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_S3_BUCKET", BUCKET)
    monkeypatch.setenv("AIRFLOW_VAR_ROLE", ROLE)
    run_id = "manual__2026-01-02T03:04:05+00:00"
    dag = deploy.build_deploy_dag(backend="local")
    from iris_sagemaker_tests.airflow_support import FakeTaskInstance

    context = {"run_id": run_id, "ti": FakeTaskInstance({"find_model": {"ModelName": "Iris-KNN-x"}})}
    rendered = {
        t: dag.get_task(t).render_template(dag.get_task(t).config, context, jinja_env=dag.get_template_env())
        for t in ("create_endpoint_config", "deploy_endpoint")
    }
    settings = Settings.from_env(bucket=BUCKET, role_arn=ROLE)
    config_name = specs.endpoint_config_name(run_id)
    wanted = specs.endpoint_config_request(settings, config_name, "Iris-KNN-x")
    assert rendered["create_endpoint_config"] == wanted
    assert rendered["deploy_endpoint"] == specs.endpoint_request(settings.endpoint_name, config_name)
