"""The SageMaker Python SDK v3 (what ``pip install sagemaker`` gives today: sagemaker-core, -train, -serve)
and the aws CLI as real clients of ``iris-sagemaker serve``, unmodified, with only the environment ``serve``
prints (``ServerProcess.client_env()``): no switch turned off (not even ``SAGEMAKER_VALIDATE_ROLE``).

Flows, each in its own test:
  (a) ``sagemaker.train.ModelTrainer`` trains the built-in k-NN image on CSV in S3 and shows the job's log
  (b) ``sagemaker.core.resources`` Model / EndpointConfig / Endpoint: create, wait, invoke with CSV, delete
  (c) ``sagemaker.core.resources`` TransformJob: create, wait, read the output
  (d) ``sagemaker.serve.ModelBuilder``: build and deploy the trained artifact, invoke, delete
  (e) the aws CLI v1: ``aws logs filter-log-events`` on the training job's log
  (f) ``sagemaker.train.tuner.HyperparameterTuner`` over a ``ModelTrainer``: tunes k-NN's ``k`` on
      ``test:accuracy``, several trials at once, and reads the trials back through ``analytics()``

They run in .venv-sdk (``make sdk-test``, part of ``make test``): v3 cannot share a venv with v2 (both import
as ``sagemaker``; test_sagemaker_sdk_v2.py runs in .venv-sdk2). One server for the module: sagemaker-core
caches its default boto3 clients per process, so a second server's address would not reach them.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from iris_sagemaker_tests.sdk_support import ROLE, brute_force_knn, iris, sdk_major_version

if sdk_major_version() != 3:  # absent, or v2 (which imports as `sagemaker` too)
    pytest.skip("the SageMaker Python SDK v3 runs in .venv-sdk: make sdk-test", allow_module_level=True)

import boto3
from botocore.exceptions import ClientError
from sagemaker.core import image_uris
from sagemaker.core.parameter import IntegerParameter
from sagemaker.core.resources import Endpoint, EndpointConfig, Model, TrainingJob, TransformJob
from sagemaker.core.shapes import (
    ContainerDefinition,
    ProductionVariant,
    TransformDataSource,
    TransformInput,
    TransformOutput,
    TransformResources,
    TransformS3DataSource,
)
from sagemaker.core.training.configs import Compute, InputData
from sagemaker.train import ModelTrainer
from sagemaker.train.tuner import HyperparameterTuner

from iris_sagemaker.serve.process import ServerProcess, start_server

pytestmark = [pytest.mark.sdk, pytest.mark.server, pytest.mark.slow]

REGION = "us-east-2"  # client_env()'s default, the server's region
K = 3
INSTANCE = "ml.m5.large"
AWS_CLI = Path(sys.executable).with_name("aws")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    running = start_server(tmp_path_factory.mktemp("sdk-v3") / "root")
    try:
        yield running
    finally:
        running.stop()


def _point_at(server: ServerProcess, patch: pytest.MonkeyPatch, home: Path) -> None:
    """Exactly what ``serve`` prints, in an environment cleared as conftest clears it (AWS_*, no AWS config
    files), and without the developer's SAGEMAKER_* variables: a SAGEMAKER_VALIDATE_ROLE=false there would
    hide what the server does not answer."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "SAGEMAKER_")):
            patch.delenv(name)
    patch.setenv("AWS_CONFIG_FILE", str(home / "no-aws-config"))
    patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "no-aws-credentials"))
    for name, value in server.client_env(REGION).items():
        patch.setenv(name, value)


@pytest.fixture
def env(server: ServerProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ServerProcess:
    _point_at(server, monkeypatch, tmp_path)
    return server


@dataclass
class Trained:
    job_name: str
    artifact: str
    bucket: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def _csv(rows: np.ndarray) -> str:
    return "".join(",".join(f"{value:g}" for value in row) + "\n" for row in rows)


def _train(bucket: str, prefix: str, logs: bool) -> tuple[ModelTrainer, np.ndarray, np.ndarray]:
    """Upload the Iris training split as k-NN's CSV (label first, no header) and train on it with
    ModelTrainer and the region's k-NN image (v3 has no KNN estimator)."""
    train_x, train_y, _, _ = iris()
    boto3.client("s3").put_object(
        Bucket=bucket, Key=f"{prefix}/train/train.csv", Body=_csv(np.column_stack([train_y, train_x]))
    )
    trainer = ModelTrainer(
        training_image=image_uris.retrieve("knn", REGION),
        role=ROLE,
        compute=Compute(instance_type=INSTANCE, instance_count=1),
        hyperparameters={
            "feature_dim": 4,
            "k": K,
            "predictor_type": "classifier",
            "sample_size": len(train_x),
        },
        base_job_name=prefix,
    )
    trainer.train(
        input_data_config=[
            InputData(
                channel_name="train", data_source=f"s3://{bucket}/{prefix}/train/", content_type="text/csv"
            )
        ],
        wait=True,
        logs=logs,
    )
    return trainer, train_x, train_y


@pytest.fixture(scope="module")
def trained(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """One trained k-NN model for the serving flows (b)-(e)."""
    with pytest.MonkeyPatch.context() as patch:
        _point_at(server, patch, tmp_path_factory.mktemp("trained"))
        from sagemaker.core.helper.session_helper import Session

        bucket = Session().default_bucket()
        trainer, train_x, train_y = _train(bucket, "iris-knn-v3", logs=False)
    job = trainer._latest_training_job  # the attribute the SDK's own docstring reads
    _, _, test_x, test_y = iris()
    return Trained(
        job.training_job_name,
        job.model_artifacts.s3_model_artifacts,
        bucket,
        train_x,
        train_y,
        test_x,
        test_y,
    )


def _predicted(body: bytes) -> np.ndarray:
    return np.array([p["predicted_label"] for p in json.loads(body)["predictions"]])


def _assert_gone(endpoint: str, config: str, model: str) -> None:
    client = boto3.client("sagemaker")
    for call, arguments in (
        (client.describe_endpoint, {"EndpointName": endpoint}),
        (client.describe_endpoint_config, {"EndpointConfigName": config}),
        (client.describe_model, {"ModelName": model}),
    ):
        with pytest.raises(ClientError) as raised:
            call(**arguments)
        assert raised.value.response["Error"]["Code"] == "ValidationException"


# ---- (a) sagemaker.train.ModelTrainer -------------------------------------------------------------------


def test_a_model_trainer_trains_knn_on_csv_and_shows_the_jobs_log(env, caplog) -> None:
    from sagemaker.core.helper.session_helper import Session

    caplog.set_level(logging.INFO)
    bucket = Session().default_bucket()
    assert bucket == f"sagemaker-{REGION}-000000000000"  # from serve's SDK defaults file: no STS call
    trainer, train_x, _ = _train(bucket, "iris-knn-v3-logs", logs=True)

    job = trainer._latest_training_job
    assert job.training_job_status == "Completed"
    stream_lines = "\n".join(
        r.getMessage() for r in caplog.records if r.name == "sagemaker.core.resources"
    )  # what TrainingJob.wait(logs=True) logged, stream by stream, while it waited
    name = job.training_job_name
    assert f"{name}/algo-1-" in stream_lines
    source = f"s3://{bucket}/iris-knn-v3-logs/train/train.csv"
    assert f"reading {source} (channel train, text/csv)" in stream_lines
    assert f"read {len(train_x)} rows (sampled {len(train_x)})" in stream_lines
    artifact = job.model_artifacts.s3_model_artifacts
    assert f"wrote {artifact}" in stream_lines
    assert "Final Resource Status: [bold]Completed" in caplog.text

    assert artifact == f"s3://{bucket}/iris-knn-v3-logs/{name}/output/model.tar.gz"
    head = boto3.client("s3").head_object(Bucket=bucket, Key=artifact.split("/", 3)[3])
    assert head["ContentLength"] > 0
    channel = boto3.client("sagemaker").describe_training_job(TrainingJobName=name)["InputDataConfig"][0]
    assert channel["ContentType"] == "text/csv"
    assert channel["DataSource"]["S3DataSource"]["S3DataType"] == "S3Prefix"


# ---- (b) sagemaker.core.resources: Model, EndpointConfig, Endpoint --------------------------------------


def test_b_core_resources_deploy_an_endpoint_and_invoke_it_with_csv(env, trained: Trained) -> None:
    image = image_uris.retrieve("knn", REGION)
    model = Model.create(
        model_name="iris-knn-core",
        execution_role_arn=ROLE,
        primary_container=ContainerDefinition(image=image, model_data_url=trained.artifact),
    )
    config = EndpointConfig.create(
        endpoint_config_name="iris-knn-core",
        production_variants=[
            ProductionVariant(
                variant_name="AllTraffic",
                model_name=model.model_name,
                initial_instance_count=1,
                instance_type=INSTANCE,
            )
        ],
    )
    endpoint = Endpoint.create(
        endpoint_name="iris-knn-core", endpoint_config_name=config.endpoint_config_name
    )
    try:
        endpoint.wait_for_status("InService", poll=1, timeout=60)
        answer = endpoint.invoke(
            body=_csv(trained.test_x), content_type="text/csv", accept="application/json"
        )
        assert answer.content_type == "application/json"
        assert answer.invoked_production_variant == "AllTraffic"
        predicted = _predicted(answer.body.read())
        expected = brute_force_knn(trained.train_x, trained.train_y, trained.test_x, k=K)
        np.testing.assert_array_equal(predicted, expected)
        assert np.mean(predicted == trained.test_y) > 0.9
    finally:
        endpoint.delete()
        endpoint.wait_for_delete(poll=1, timeout=30)
        config.delete()
        model.delete()
    _assert_gone("iris-knn-core", "iris-knn-core", "iris-knn-core")


# ---- (c) sagemaker.core.resources: TransformJob ---------------------------------------------------------


def test_c_core_transform_job_scores_the_test_split(env, trained: Trained) -> None:
    s3 = boto3.client("s3")
    s3.put_object(Bucket=trained.bucket, Key="iris-knn-v3/batch/test.csv", Body=_csv(trained.test_x))
    model = Model.create(
        model_name="iris-knn-core-batch",
        execution_role_arn=ROLE,
        primary_container=ContainerDefinition(
            image=image_uris.retrieve("knn", REGION), model_data_url=trained.artifact
        ),
    )
    try:
        job = TransformJob.create(
            transform_job_name="iris-knn-core-batch",
            model_name=model.model_name,
            transform_input=TransformInput(
                data_source=TransformDataSource(
                    s3_data_source=TransformS3DataSource(
                        s3_data_type="S3Prefix", s3_uri=f"s3://{trained.bucket}/iris-knn-v3/batch/"
                    )
                ),
                content_type="text/csv",
                split_type="Line",
            ),
            transform_output=TransformOutput(
                s3_output_path=f"s3://{trained.bucket}/iris-knn-v3/scored/",
                accept="application/jsonlines",  # k-NN answers JSON, JSON lines or RecordIO-protobuf
                assemble_with="Line",
            ),
            transform_resources=TransformResources(instance_type=INSTANCE, instance_count=1),
        )
        job.wait(poll=1, timeout=60)
        assert job.transform_job_status == "Completed"
    finally:
        model.delete()
    body = s3.get_object(Bucket=trained.bucket, Key="iris-knn-v3/scored/test.csv.out")["Body"].read()
    predicted = np.array([json.loads(line)["predicted_label"] for line in body.decode().splitlines()])
    expected = brute_force_knn(trained.train_x, trained.train_y, trained.test_x, k=K)
    np.testing.assert_array_equal(predicted, expected)


# ---- (d) sagemaker.serve.ModelBuilder -------------------------------------------------------------------


def test_d_model_builder_deploys_the_trained_artifact_and_invokes_it(env, trained: Trained) -> None:
    """ModelBuilder's route for a built-in algorithm's artifact: a first-party image and the artifact's
    S3 URI, no model object (a ModelTrainer needs an InferenceSpec; a plain TrainingJob is taken for a
    fine-tuning job). deploy() waits 30 s before its first look, by the SDK's own fixed poll; while it
    waits it streams the endpoint's log (Logs FilterLogEvents)."""
    from sagemaker.serve import ModelBuilder  # creates a boto3 client at import: after the server's env

    builder = ModelBuilder(
        image_uri=image_uris.retrieve("knn", REGION),
        s3_model_data_url=trained.artifact,
        role_arn=ROLE,
        instance_type=INSTANCE,
    )
    model = builder.build(model_name="iris-knn-builder")
    started = time.monotonic()
    endpoint = builder.deploy(endpoint_name="iris-knn-builder", initial_instance_count=1)
    deploy_seconds = time.monotonic() - started
    try:
        assert isinstance(endpoint, Endpoint) and endpoint.endpoint_status == "InService"
        # The endpoint's log, as deploy() asked for it while it waited (it tolerates a missing group).
        streamed = boto3.client("logs").filter_log_events(
            logGroupName="/aws/sagemaker/Endpoints/iris-knn-builder", logStreamNamePrefix="AllTraffic/"
        )
        messages = [event["message"] for event in streamed["events"]]
        assert f"loading model iris-knn-builder from {trained.artifact}" in messages
        assert f"endpoint InService with endpoint config {endpoint.endpoint_config_name}" in messages
        answer = endpoint.invoke(
            body=_csv(trained.test_x), content_type="text/csv", accept="application/json"
        )
        predicted = _predicted(answer.body.read())
        np.testing.assert_array_equal(
            predicted, brute_force_knn(trained.train_x, trained.train_y, trained.test_x, k=K)
        )
    finally:
        config_name = endpoint.endpoint_config_name
        endpoint.delete()
        endpoint.wait_for_delete(poll=1, timeout=30)
        EndpointConfig.get(endpoint_config_name=config_name).delete()
        model.delete()
    _assert_gone("iris-knn-builder", config_name, "iris-knn-builder")
    assert deploy_seconds < 60, deploy_seconds  # one 30 s poll: the endpoint was InService at the first look


# ---- (e) the aws CLI ------------------------------------------------------------------------------------


@pytest.mark.skipif(not AWS_CLI.exists(), reason="the aws CLI (awscli) is installed in .venv-sdk")
@pytest.mark.parametrize("by_prefix", [True, False], ids=["stream-prefix", "whole-group"])
def test_e_aws_cli_filter_log_events_prints_the_training_log(env, trained: Trained, by_prefix: bool) -> None:
    command = [
        str(AWS_CLI),
        "logs",
        "filter-log-events",
        "--log-group-name",
        "/aws/sagemaker/TrainingJobs",
        "--endpoint-url",
        env.url,
        "--output",
        "json",
    ]
    if by_prefix:
        command += ["--log-stream-name-prefix", f"{trained.job_name}/"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=os.environ.copy())
    assert done.returncode == 0, done.stderr
    events = json.loads(done.stdout)["events"]
    ours = [e for e in events if e["logStreamName"].startswith(f"{trained.job_name}/algo-1-")]
    assert ours and (not by_prefix or ours == events)
    messages = [e["message"] for e in ours]
    assert f"read {len(trained.train_x)} rows (sampled {len(trained.train_x)})" in messages
    assert f"wrote {trained.artifact}" in messages
    assert [e["timestamp"] for e in ours] == sorted(e["timestamp"] for e in ours)


# ---- (f) sagemaker.train.tuner.HyperparameterTuner ------------------------------------------------------

TUNING_JOBS = 6
TUNING_PARALLEL = 3


def _record_operations(patch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every AWS operation any botocore client in this process sends, as (service, operation), in order.
    It only watches: each call goes through unchanged."""
    import botocore.client

    sent: list[tuple[str, str]] = []
    make_api_call = botocore.client.BaseClient._make_api_call

    def recorded(client, operation_name, api_params):
        sent.append((client.meta.service_model.service_name, operation_name))
        return make_api_call(client, operation_name, api_params)

    patch.setattr(botocore.client.BaseClient, "_make_api_call", recorded)
    return sent


def test_f_hyperparameter_tuner_tunes_k_over_a_model_trainer(env) -> None:
    """The SDK's own tuner, as its docs use it: a ModelTrainer with the k-NN image and static
    hyperparameters, an IntegerParameter range for ``k``, the objective k-NN emits from its ``test``
    channel, ``tune(wait=True)`` (DescribeHyperParameterTuningJob every 5 s, the SDK's poll), then
    ``best_training_job()`` and ``analytics()``. Every trial's objective, and the best one's, must equal an
    independent brute-force k-NN's accuracy for its ``k``."""
    from sagemaker.core.helper.session_helper import Session

    bucket = Session().default_bucket()
    train_x, train_y, test_x, test_y = iris()
    s3 = boto3.client("s3")
    s3.put_object(
        Bucket=bucket, Key="iris-tune-v3/train/train.csv", Body=_csv(np.column_stack([train_y, train_x]))
    )
    s3.put_object(
        Bucket=bucket, Key="iris-tune-v3/test/test.csv", Body=_csv(np.column_stack([test_y, test_x]))
    )
    with pytest.MonkeyPatch.context() as patch:  # recording only while the SDK works
        sent = _record_operations(patch)
        trainer = ModelTrainer(
            training_image=image_uris.retrieve("knn", REGION),
            role=ROLE,
            compute=Compute(instance_type=INSTANCE, instance_count=1),
            hyperparameters={
                "feature_dim": 4,
                "k": K,
                "predictor_type": "classifier",
                "sample_size": len(train_x),
            },
        )
        tuner = HyperparameterTuner(
            model_trainer=trainer,
            objective_metric_name="test:accuracy",
            objective_type="Maximize",
            hyperparameter_ranges={"k": IntegerParameter(1, 40)},
            max_jobs=TUNING_JOBS,
            max_parallel_jobs=TUNING_PARALLEL,
            base_tuning_job_name="iris-knn-v3",
            random_seed=7,  # the same trials every run
        )
        tuner.tune(
            inputs=[
                InputData(
                    channel_name=channel,
                    data_source=f"s3://{bucket}/iris-tune-v3/{channel}/",
                    content_type="text/csv",
                )
                for channel in ("train", "test")
            ],
            wait=True,
        )
        best_name = tuner.best_training_job()
        described = tuner.describe()
        trials = tuner.analytics().dataframe()

    shown = trials.drop(columns=["TrainingStartTime", "TrainingEndTime"]).to_string()
    assert described.hyper_parameter_tuning_job_status == "Completed", described.failure_reason
    assert described.training_job_status_counters.completed == TUNING_JOBS, shown
    assert described.objective_status_counters.succeeded == TUNING_JOBS
    assert len(trials) == TUNING_JOBS
    assert (trials["TrainingJobStatus"] == "Completed").all()
    for k, value in zip(trials["k"], trials["FinalObjectiveValue"], strict=True):
        accuracy = np.mean(brute_force_knn(train_x, train_y, test_x, int(k)) == test_y)
        assert value == pytest.approx(accuracy, abs=1e-6), f"k={k}\n{shown}"
    # Never more trials at once than allowed: at any trial's start, count the trials running then.
    spans = list(zip(trials["TrainingStartTime"], trials["TrainingEndTime"], strict=True))
    assert max(sum(s <= start < e for s, e in spans) for start, _ in spans) <= TUNING_PARALLEL, trials

    best = described.best_training_job
    assert best.training_job_name == best_name
    best_value = best.final_hyper_parameter_tuning_job_objective_metric.value
    assert best_value == trials["FinalObjectiveValue"].max()
    assert best_name in set(trials.loc[trials["FinalObjectiveValue"] == best_value, "TrainingJobName"])
    best_k = int(best.tuned_hyper_parameters["k"])
    assert best_value == pytest.approx(
        np.mean(brute_force_knn(train_x, train_y, test_x, best_k) == test_y), abs=1e-6
    )
    job = TrainingJob.get(training_job_name=best_name)  # an ordinary training job of the tuning job
    assert job.tuning_job_arn == described.hyper_parameter_tuning_job_arn
    assert job.hyper_parameters == {
        "feature_dim": "4",
        "k": str(best_k),
        "predictor_type": "classifier",
        "sample_size": str(len(train_x)),
    }
    assert job.model_artifacts.s3_model_artifacts.endswith(f"/{best_name}/output/model.tar.gz")

    # What the tuner sent to SageMaker (besides the role check, IAM, and its default bucket, S3).
    sagemaker_ops = [operation for service, operation in sent if service == "sagemaker"]
    assert sagemaker_ops[0] == "CreateHyperParameterTuningJob"
    assert set(sagemaker_ops) == {
        "CreateHyperParameterTuningJob",
        "DescribeHyperParameterTuningJob",
        "ListTrainingJobsForHyperParameterTuningJob",
    }, sent
