"""The DAG in-process, no database: it imports on both Airflow lines, has the tutorial's tasks, uses the
provider operators in aws mode, and renders the same request bodies as the shared builders.

Runs in .venv (Airflow 2.11) and .venv-airflow3 (Airflow 3.x); skipped where Airflow is absent.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from iris_sagemaker import run_objects, specs
from iris_sagemaker.settings import DEFAULT_LOCAL_BUCKET, LOCAL_ROLE_ARN, Settings
from iris_sagemaker_tests.airflow_support import (
    DAGS_FOLDER,
    airflow_env,
    dagbag,
    rendered_requests,
    require_airflow,
)

require_airflow()

from iris_sagemaker import airflow_config  # noqa: E402
from iris_sagemaker.airflow_dag import DAG_ID, TASK_IDS, build_dag  # noqa: E402

BUCKET = "iris-airflow-test"
ROLE = "arn:aws:iam::123456789012:role/iris-airflow-test"
NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


def _chain(dag) -> list[str]:
    """Task ids in dependency order; every task has exactly one upstream (a straight line)."""
    roots = [t for t in dag.tasks if not t.upstream_task_ids]
    assert len(roots) == 1
    order, task = [roots[0].task_id], roots[0]
    while task.downstream_task_ids:
        assert len(task.downstream_task_ids) == 1
        task = dag.get_task(next(iter(task.downstream_task_ids)))
        order.append(task.task_id)
    return order


@pytest.mark.parametrize("backend", ["local", "aws"])
def test_dagbag_imports_the_dag_without_errors(monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    monkeypatch.setenv("IRIS_SAGEMAKER_BACKEND", backend)  # aws needs no bucket/role at parse time
    bag = dagbag()
    assert bag.import_errors == {}
    dag = bag.dags[DAG_ID]
    assert _chain(dag) == list(TASK_IDS)
    assert _chain(dag)[:4] == ["data_prep", "train_model", "create_model", "test_model"]


HEAVY_MODULES = (
    "pandas",
    "faiss",
    "iris_sagemaker.airflow_tasks",
    "iris_sagemaker.local_sagemaker",
    "airflow.providers.amazon.aws.operators.sagemaker",
)


def _modules_loaded_by_parsing_the_dag_file(tmp_path, backend: str) -> list[str]:
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1]); "
        f"print(','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))"
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


def test_the_scheduler_parses_the_local_dag_without_pandas_the_engine_or_the_provider(tmp_path) -> None:
    """The scheduler re-parses DAG files every ``min_file_process_interval``; the tasks import the rest."""
    assert _modules_loaded_by_parsing_the_dag_file(tmp_path, "local") == []


def test_the_aws_dag_imports_the_provider_but_not_the_local_engine(tmp_path) -> None:
    loaded = _modules_loaded_by_parsing_the_dag_file(tmp_path, "aws")
    assert "airflow.providers.amazon.aws.operators.sagemaker" in loaded
    assert "iris_sagemaker.local_sagemaker" not in loaded and "pandas" not in loaded


def test_a_bad_backend_is_an_import_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRIS_SAGEMAKER_BACKEND", "gcp")
    errors = dagbag().import_errors
    assert len(errors) == 1
    assert "IRIS_SAGEMAKER_BACKEND='gcp'" in next(iter(errors.values()))


def test_aws_mode_uses_the_amazon_providers_operators(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.amazon.aws.operators.sagemaker import (
        SageMakerModelOperator,
        SageMakerTrainingOperator,
        SageMakerTransformOperator,
    )

    dag = build_dag(backend="aws")
    train, model, transform = (dag.get_task(t) for t in ("train_model", "create_model", "test_model"))
    assert isinstance(train, SageMakerTrainingOperator)
    assert isinstance(model, SageMakerModelOperator)
    assert isinstance(transform, SageMakerTransformOperator)
    for task in (train, model, transform):
        assert task.aws_conn_id == "aws-sagemaker"
    assert train.deferrable and transform.deferrable  # deferrable by default
    assert train.action_if_job_exists == transform.action_if_job_exists == "timestamp"

    monkeypatch.setenv("IRIS_SAGEMAKER_AIRFLOW_DEFERRABLE", "false")
    monkeypatch.setenv("IRIS_SAGEMAKER_AIRFLOW_CONN_ID", "my-aws")
    dag = build_dag(backend="aws")
    assert not dag.get_task("train_model").deferrable
    assert dag.get_task("test_model").aws_conn_id == "my-aws"


def test_local_mode_runs_python_tasks_only() -> None:
    dag = build_dag(backend="local")
    assert {type(t).__name__ for t in dag.tasks} == {"_PythonDecoratedOperator"}


def test_rendered_configs_equal_the_shared_builders_bodies(monkeypatch: pytest.MonkeyPatch) -> None:
    # The Variables, as AIRFLOW_VAR_* (Airflow reads them before its database).
    monkeypatch.setenv("AIRFLOW_VAR_S3_BUCKET", BUCKET)
    monkeypatch.setenv("AIRFLOW_VAR_ROLE", ROLE)
    monkeypatch.setenv("IRIS_SAGEMAKER_BACKEND", "aws")
    run_id = "manual__2026-01-02T03:04:05.678901+00:00"
    artifact = f"s3://{BUCKET}/iris/results/x/output/model.tar.gz"
    rendered = rendered_requests(run_id, artifact)

    settings = Settings.from_env(bucket=BUCKET, role_arn=ROLE)
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


def test_create_model_reuses_its_model_on_a_rerun_and_never_collides(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto import mock_aws

    from iris_sagemaker.airflow_aws import ReusingSageMakerModelOperator

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-2")
    settings = Settings.from_env(backend="aws", bucket=BUCKET, role_arn=ROLE)
    artifact = f"s3://{BUCKET}/iris/results/train-iris-x/output/model.tar.gz"

    def run(model_data_url: str) -> dict:
        config = specs.model_request(settings, "Iris-KNN-x", model_data_url)
        operator = ReusingSageMakerModelOperator(
            task_id="create_model", config=config, aws_conn_id=None, region_name="us-east-2"
        )
        return operator.execute({})["Model"]

    with mock_aws():
        first = run(artifact)
        again = run(artifact)  # a retry of the task: same name, same artifact -> the same model
        retrained = run(artifact.replace("train-iris-x", "train-iris-x-1700000000"))
    assert first["ModelName"] == again["ModelName"] == "Iris-KNN-x"
    assert again["ModelArn"] == first["ModelArn"]
    assert retrained["ModelName"].startswith("Iris-KNN-x-") and NAME_RE.match(retrained["ModelName"])
    assert isinstance(first["CreationTime"], str)  # JSON-safe for XCom
