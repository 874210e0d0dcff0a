"""The Amazon provider's own system tests ``example_sagemaker_endpoint.py`` and ``example_sagemaker.py`` (its
k-NN steps), unmodified, under ``airflow dags test`` against ``iris-sagemaker serve``: clients nobody on this
project wrote.

The DAG file and its helper package ``system.amazon.aws.utils`` come from the installed provider version's
source distribution, fetched from the package index on the first run and cached (``provider_system``);
only the Airflow repository's ``tests_common.test_utils`` modules they import are shims of ours. The run
must succeed with every task, teardown included: training, model, endpoint config, endpoint, the endpoint
sensor, InvokeEndpoint, then the deletes and the CloudWatch Logs clean-up (``prune_logs``,
``archive_logs``). Its ``watcher`` task fails the run when any task failed; a second DAG shows the shim does.

Runs in .venv (Airflow 2.11) and .venv-airflow3 (Airflow 3.x); skipped where Airflow is absent.
"""

from __future__ import annotations

import ast
import json
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from iris_sagemaker.local_sagemaker.service_model import default_cache_dir
from iris_sagemaker_tests.airflow_support import airflow_env, require_airflow, run_airflow
from iris_sagemaker_tests.provider_system import SHIMS, dag_layout, sdist
from iris_sagemaker_tests.sdk_support import brute_force_knn

pytestmark = [pytest.mark.airflow, pytest.mark.server, pytest.mark.slow]

require_airflow()

# Read at import: the autouse fixture points IRIS_SAGEMAKER_CACHE_DIR at a fresh folder for every test, and
# the sdist (2.4 MB) is fetched once per machine, not once per run.
CACHE_DIR = default_cache_dir()
REGION = "us-east-1"  # the DAG knows k-NN images for us-east-1 and us-west-2 only
DAG_ID = "example_sagemaker_endpoint"
ENV_ID = "irisendpoint"  # SYSTEM_TESTS_ENV_ID: the prefix of every name the DAG creates
ROLE = "arn:aws:iam::123456789012:role/provider-system-test"
_EXCEPTION = re.compile(r"^[\w.]+(Error|Exception): ")
TEARDOWN = {
    "delete_endpoint_config",
    "delete_endpoint",
    "delete_model",
    "delete_bucket",
    "prune_logs",
    "archive_logs",
}


def _states(home: Path, dag_id: str) -> tuple[str, dict[str, str]]:
    """The DAG run's state and its task instances' states, from the metadata database."""
    with sqlite3.connect(home / "airflow.db") as db:
        (run_state,) = db.execute("SELECT state FROM dag_run WHERE dag_id = ?", (dag_id,)).fetchone()
        rows = db.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ?", (dag_id,))
        return run_state, dict(rows.fetchall())


def _errors(output: str) -> list[str]:
    """The exception lines of the tasks' tracebacks, once each (e.g. botocore's ClientError naming the
    operation that failed)."""
    lines = (line.strip() for line in output.splitlines())
    return list(dict.fromkeys(line for line in lines if _EXCEPTION.match(line)))


def _return_value(home: Path, dag_id: str, task_id: str) -> object:
    with sqlite3.connect(home / "airflow.db") as db:
        (value,) = db.execute(
            "SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = 'return_value'",
            (dag_id, task_id),
        ).fetchone()
    return json.loads(value)


def _client(url: str, service: str) -> Any:
    import boto3

    credentials = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
    return boto3.session.Session(region_name=REGION, **credentials).client(service, endpoint_url=url)


def test_the_providers_endpoint_system_test_runs_unmodified(airflow_home: Path, tmp_path: Path) -> None:
    from iris_sagemaker.serve.process import start_server

    layout = dag_layout(sdist(CACHE_DIR), f"{DAG_ID}.py", tmp_path)
    server = start_server(tmp_path / "root", {"AWS_REGION": REGION}, owned=True)
    try:
        env = airflow_env(
            airflow_home,
            **layout.env(),
            **server.client_env(REGION),
            ROLE_ARN=ROLE,
            SYSTEM_TESTS_ENV_ID=ENV_ID,
            # The training task waits in the provider's trigger (run inline by `dags test`), which looks
            # once right away, then every 30 s; blocking, it sleeps 30 s twice before it looks.
            AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE="True",
        )
        done = run_airflow(["dags", "test", DAG_ID], env, timeout=300)
        output = done.stdout + done.stderr
        run_state, states = _states(airflow_home, DAG_ID)
        watcher = states.pop("watcher")  # it runs (and fails the run) once a task failed
        unsuccessful = {task: state for task, state in states.items() if state != "success"}
        context = "\n".join(
            [f"tasks not successful: {unsuccessful}", *_errors(output), "--- output ---", output[-6000:]]
        )
        context += f"\n--- server ---\n{server.text()[-2000:]}"
        assert unsuccessful == {}, context
        assert states.keys() >= TEARDOWN, context
        assert (watcher, run_state, done.returncode) == ("skipped", "success", 0), context
        assert _return_value(airflow_home, DAG_ID, "call_endpoint") == [{"predicted_label": 0.0}]

        # The teardown left nothing behind on the server.
        sagemaker = _client(server.url, "sagemaker")
        assert sagemaker.list_endpoints()["Endpoints"] == []
        assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
        assert sagemaker.list_models()["Models"] == []
        buckets = _client(server.url, "s3").list_buckets()["Buckets"]
        assert f"{ENV_ID}-sagemaker" not in [b["Name"] for b in buckets]
        # prune_logs deleted the training job's stream, then the group it left empty
        groups = _client(server.url, "logs").describe_log_groups(logGroupNamePrefix="/aws/sagemaker/")
        assert "/aws/sagemaker/TrainingJobs" not in [g["logGroupName"] for g in groups["logGroups"]]
    finally:
        server.stop()


WATCHED_DAG = """
from datetime import datetime

from tests_common.test_utils.version_compat import AIRFLOW_V_3_0_PLUS
from tests_common.test_utils.watcher import watcher

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import DAG, task
else:
    from airflow.decorators import task
    from airflow.models.dag import DAG

with DAG("watched", schedule=None, start_date=datetime(2021, 1, 1), catchup=False) as dag:

    @task
    def fails():
        raise ValueError("this task fails")

    @task(trigger_rule="all_done")
    def teardown():
        pass

    fails() >> teardown()
    list(dag.tasks) >> watcher()
"""


def test_the_watcher_shim_fails_the_run_when_a_task_failed(airflow_home: Path, tmp_path: Path) -> None:
    """Without the watcher this run would succeed: its one leaf, the teardown, succeeds."""
    (tmp_path / "watched.py").write_text(WATCHED_DAG)
    env = airflow_env(airflow_home, AIRFLOW__CORE__DAGS_FOLDER=str(tmp_path), PYTHONPATH=str(SHIMS))
    done = run_airflow(["dags", "test", "watched"], env, timeout=120)
    run_state, states = _states(airflow_home, "watched")
    context = done.stdout[-4000:] + done.stderr[-4000:]
    assert states == {"fails": "failed", "teardown": "success", "watcher": "failed"}, context
    assert run_state == "failed", context
    assert "Failing task because one or more upstream tasks failed." in done.stdout + done.stderr


# ---- example_sagemaker.py: its k-NN steps ----------------------------------------------------------------

KNN_DAG_FILE = "example_sagemaker.py"
KNN_DRIVER = Path(__file__).resolve().parent / "provider_system" / "example_sagemaker_knn.py"
KNN_DAG_ID = "example_sagemaker_knn"  # the driver's DAG: the provider's DAG's k-NN tasks
KNN_ENV_ID = "irisknn"
KNN_TASKS = {
    # the provider's tasks, as its DAG defines them
    "variable_fetcher",
    "set_up",
    "create_bucket",
    "upload_dataset",
    "train_model",
    "await_training",
    "create_model",
    "tune_model",
    "await_tuning",
    "test_model",
    "await_transform",
    "delete_ecr_repository",
    "delete_model",
    "delete_bucket",
    "prune_logs",
    # ours: the processing job's stand-in, and a reader of the objects before the bucket is deleted
    "processing_job_stand_in",
    "keep_objects",
}
SAMPLE_SIZE = 600  # the DAG's: rows of its generated data, and the top of its tuning ranges


def _rows(text: str) -> np.ndarray:
    return np.array([[float(v) for v in line.split(",")] for line in text.splitlines()])


def _predictions(text: str) -> np.ndarray:
    labels = []
    for line in text.splitlines():
        answer = json.loads(line)
        labels += [p["predicted_label"] for p in answer.get("predictions", [answer])]
    return np.array(labels)


def test_the_providers_sagemaker_system_test_runs_its_knn_steps(airflow_home: Path, tmp_path: Path) -> None:
    """The k-NN steps of ``example_sagemaker.py`` that need no Docker, from the provider's sdist, byte for
    byte: training (``train_model``, ``await_training``), the model (``create_model``), tuning with the DAG's
    own tuning config (``tune_model``, ``await_tuning``: Bayesian, ``test:accuracy``, ``k`` and
    ``sample_size`` each 1-600, 10 jobs, 10 at once, ``train`` and ``test`` channels), the batch transform
    (``test_model``, ``await_transform``) and their teardown (``delete_model``, ``delete_bucket``,
    ``prune_logs``), with the DAG's own context, set-up, bucket and dataset tasks before them.

    They run as the DAG ``example_sagemaker_knn`` of ``provider_system/example_sagemaker_knn.py``: it imports
    the provider's module and takes its ``dag.partial_subset`` of those tasks, chained in the DAG's order.
    Stood in, because they need Docker (that file's docstring says how): inside ``set_up``, the AWS CLI
    install and the preprocessing image's ``docker build``/``push`` (the push by one empty image in the ECR
    repository ``set_up`` creates, which the DAG's own ``delete_ecr_repository`` deletes, so that task runs
    too); and the processing job that would run that image, by a task that splits the DAG's dataset as its
    preprocessing script does and uploads ``train.csv``/``test.csv`` and the job's log where the job would
    (the script itself fails under the project's pandas 3: the next test shows it). Everything else
    ``set_up`` computes (names, the region's k-NN image, every config) is its own.

    Left out: ``auto_ML``, ``await_auto_ML``, ``stop_automl_job`` (AutoML: CreateAutoMLJob is not served,
    the engine trains k-NN only); ``create_experiment``, ``delete_experiments`` (SageMaker Experiments, not
    served; ``train_model``'s ``ExperimentConfig`` names the experiment, which the engine keeps without
    checking it exists); ``preprocess_raw_data``, ``await_preprocess``, ``preprocess_with_output_files``,
    ``validate_output_files`` (processing jobs: CreateProcessingJob is not served, and their image is the one
    ``set_up`` builds with Docker); ``register_model``, ``delete_model_group`` (the model registry:
    CreateModelPackageGroup / CreateModelPackage are not served); ``delete_docker_image`` (``docker rmi``).

    Checked besides every task's success: each trial's objective and the transform's predictions against an
    independent brute-force k-NN on the CSVs the run used, the best job against its trials, and that the
    teardown left no model, bucket, repository or log group behind. ``train_model`` sleeps 30 s once: the
    provider's training operator, printing the job's log (``print_log``) and not waiting, still sleeps its
    ``check_interval`` before reading it."""
    from iris_sagemaker.serve.process import start_server

    layout = dag_layout(sdist(CACHE_DIR), KNN_DAG_FILE, tmp_path, driver=KNN_DRIVER)
    assert sorted(p.name for p in layout.dags_folder.iterdir()) == [KNN_DRIVER.name]
    server = start_server(tmp_path / "root", {"AWS_REGION": REGION}, owned=True)
    try:
        env = airflow_env(
            airflow_home,
            **layout.env(),
            **server.client_env(REGION),
            ROLE_ARN=ROLE,
            SYSTEM_TESTS_ENV_ID=KNN_ENV_ID,
        )
        done = run_airflow(["dags", "test", KNN_DAG_ID], env, timeout=500)
        output = done.stdout + done.stderr
        run_state, states = _states(airflow_home, KNN_DAG_ID)
        watcher = states.pop("watcher")
        unsuccessful = {task: state for task, state in states.items() if state != "success"}
        context = "\n".join(
            [f"tasks not successful: {unsuccessful}", *_errors(output), "--- output ---", output[-6000:]]
        )
        context += f"\n--- server ---\n{server.text()[-2000:]}"
        assert unsuccessful == {}, context
        assert states.keys() == KNN_TASKS, context
        assert (watcher, run_state, done.returncode) == ("skipped", "success", 0), context

        kept = _return_value(airflow_home, KNN_DAG_ID, "keep_objects")
        assert isinstance(kept, dict)
        train, test = _rows(kept["train.csv"]), _rows(kept["test.csv"])
        # The DAG's data (class = i % 100, x = i, y = 600 - i), split 70/30, the test side without labels.
        assert (train.shape, test.shape) == ((420, 3), (180, 2))
        points = sorted(map(tuple, np.vstack([train[:, 1:], test]).tolist()))
        assert points == [(i, SAMPLE_SIZE - i) for i in range(SAMPLE_SIZE)]
        assert (train[:, 0] == train[:, 1] % 100).all()
        train_x, train_y = train[:, 1:], train[:, 0]

        sagemaker = _client(server.url, "sagemaker")
        trained = sagemaker.describe_training_job(TrainingJobName=f"{KNN_ENV_ID}-train")
        assert trained["TrainingJobStatus"] == "Completed"
        assert trained["HyperParameters"] == {
            "predictor_type": "classifier",
            "feature_dim": "2",
            "k": "3",
            "sample_size": str(SAMPLE_SIZE),
        }
        transformed = sagemaker.describe_transform_job(TransformJobName=f"{KNN_ENV_ID}-transform")
        assert transformed["TransformJobStatus"] == "Completed"
        np.testing.assert_array_equal(
            _predictions(kept["test.csv.out"]), brute_force_knn(train_x, train_y, test, k=3)
        )

        tuning_name = f"{KNN_ENV_ID}-tune"
        tuned = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning_name)
        trials = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=tuning_name, MaxResults=100
        )["TrainingJobSummaries"]
        shown = "\n".join(
            f"{t['TrainingJobName']} {t['TrainingJobStatus']} {t['TunedHyperParameters']} "
            f"{t.get('FinalHyperParameterTuningJobObjectiveMetric', {}).get('Value')}"
            for t in trials
        )
        assert tuned["HyperParameterTuningJobStatus"] == "Completed", tuned.get("FailureReason")
        assert tuned["HyperParameterTuningJobConfig"]["Strategy"] == "Bayesian"
        assert len(trials) == 10, shown
        values = {}
        for trial in trials:
            k = int(trial["TunedHyperParameters"]["k"])
            sample_size = int(trial["TunedHyperParameters"]["sample_size"])
            assert 1 <= k <= SAMPLE_SIZE and 1 <= sample_size <= SAMPLE_SIZE
            job = sagemaker.describe_training_job(TrainingJobName=trial["TrainingJobName"])
            assert job["TuningJobArn"] == tuned["HyperParameterTuningJobArn"]
            assert [c["ChannelName"] for c in job["InputDataConfig"]] == ["train", "test"]
            if k > min(sample_size, len(train)):  # fewer points sampled than neighbours asked for
                assert trial["TrainingJobStatus"] == "Failed", shown
                assert f"k={k}" in trial["FailureReason"], trial["FailureReason"]
                continue
            assert trial["TrainingJobStatus"] == "Completed", shown
            value = trial["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
            values[trial["TrainingJobName"]] = value
            if sample_size >= len(train):  # every row kept: an independent k-NN must agree
                # The DAG's test channel is its train.csv too.
                accuracy = np.mean(brute_force_knn(train_x, train_y, train_x, k) == train_y)
                assert value == pytest.approx(accuracy, abs=1e-6), f"{trial['TrainingJobName']}\n{shown}"
        counters = tuned["TrainingJobStatusCounters"]
        assert counters["Completed"] == len(values) and counters["NonRetryableError"] == 10 - len(values)
        if values:
            best = tuned["BestTrainingJob"]
            assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == max(values.values())
            assert values[best["TrainingJobName"]] == max(values.values())

        # The teardown left nothing behind on the server (jobs stay: SageMaker has no DeleteTrainingJob).
        assert sagemaker.list_models()["Models"] == []
        buckets = _client(server.url, "s3").list_buckets()["Buckets"]
        assert f"{KNN_ENV_ID}-sagemaker-example" not in [b["Name"] for b in buckets]
        assert _client(server.url, "ecr").describe_repositories()["repositories"] == []
        groups = _client(server.url, "logs").describe_log_groups(logGroupNamePrefix="/aws/sagemaker/")
        assert groups["logGroups"] == []  # prune_logs: processing, training (11 jobs), transform
    finally:
        server.stop()


def _module_parts(source: str, names: set[str]) -> dict[str, Any]:
    """The top-level definitions ``names`` of a module's source, run alone (not the module: no Airflow)."""
    tree = ast.parse(source)
    parts = []
    for node in tree.body:
        defined = {node.name} if isinstance(node, ast.FunctionDef) else set()
        if isinstance(node, ast.Assign):
            defined = {t.id for t in node.targets if isinstance(t, ast.Name)}
        if defined & names:
            parts.append(node)
    namespace: dict[str, Any] = {"dedent": textwrap.dedent}
    exec(compile(ast.Module(body=parts, type_ignores=[]), "example_sagemaker.py", "exec"), namespace)
    return namespace


def test_the_dags_preprocessing_script_fails_under_pandas_3(tmp_path: Path) -> None:
    """Why ``processing_job_stand_in`` splits the data itself: the DAG's own preprocessing script, on the
    DAG's own data, fails here at ``data_test.drop`` (``np.split`` of a DataFrame gives bare arrays under
    pandas 3, the project's pin). Should it ever run, the stand-in should run it instead."""
    import pandas

    layout = dag_layout(sdist(CACHE_DIR), KNN_DAG_FILE, tmp_path, driver=KNN_DRIVER)
    source = (Path(layout.pythonpath.split(os.pathsep)[0]) / KNN_DAG_FILE).read_text()
    dag_module = _module_parts(source, {"SAMPLE_SIZE", "PREPROCESS_SCRIPT_TEMPLATE", "generate_data"})
    inputs, outputs = tmp_path / "input", tmp_path / "output"
    inputs.mkdir()
    outputs.mkdir()
    (inputs / "input.csv").write_text(dag_module["generate_data"]())
    script = dag_module["PREPROCESS_SCRIPT_TEMPLATE"].format(input_path=inputs, output_path=outputs)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert int(pandas.__version__.split(".")[0]) >= 3
    assert done.returncode != 0, done.stdout
    assert "AttributeError: 'numpy.ndarray' object has no attribute 'drop'" in done.stderr, done.stderr[
        -3000:
    ]
