"""The k-NN steps of the Amazon provider's system test ``example_sagemaker.py`` that need no Docker, as the
DAG ``example_sagemaker_knn``: the provider's module, imported unmodified, and its ``dag``'s
``partial_subset`` of those tasks, in the order the provider's ``chain(...)`` runs them.

``test_provider_system_tests.py`` puts this file alone in the DAG folder and the provider's file (byte for
byte from its sdist) on PYTHONPATH, as a module (never parsed as a DAG file of its own). Three things are
stood in for, each because it needs Docker (or what Docker builds), and nothing else:

* ``_install_aws_cli_if_needed`` (called by ``set_up``): it only serves the ``docker login`` below, and where
  ``aws`` is missing it downloads and ``sudo``-installs the AWS CLI. Stood in by a no-op.
* ``_build_and_upload_docker_image`` (called by ``set_up``): ``docker build`` and ``docker push`` of the
  preprocessing image. Stood in by what the push leaves behind: one image (a manifest of no layers) in the
  ECR repository ``set_up`` created, so that the DAG's own ``delete_ecr_repository`` finds an image to delete,
  as it does on AWS. Everything else ``set_up`` does is its own code: the ECR repository, the region's k-NN
  image, and every config it pushes to XCom.
* The processing job (``preprocess_raw_data``, ``await_preprocess``) that runs that image: the task
  ``processing_job_stand_in`` does what the job would. It reads the processing config ``set_up`` pushed,
  downloads its input (the raw CSV ``upload_dataset`` wrote, the DAG's own ``generate_data()``), splits it
  as the DAG's ``PREPROCESS_SCRIPT_TEMPLATE`` does, uploads each output folder to its ``S3Output`` (so
  ``train.csv`` and ``test.csv`` land where ``training_config``, ``tuning_config`` and ``transform_config``
  read them), and writes the job's CloudWatch log stream (``/aws/sagemaker/ProcessingJobs``,
  ``<job>/algo-1-<epoch>``), which ``prune_logs`` deletes as it would the real job's. The script itself
  cannot run here: it splits with ``np.split(DataFrame, ...)``, which gives bare arrays under pandas 3 (the
  project pins 3.1.1), so its next line, ``data_test.drop(...)``, fails; its container pip-installs a pandas
  where it works. The stand-in makes the same split in pandas 3 (the test checks the script does fail here).

One task of ours only watches: ``keep_objects`` (after ``await_transform``, before the teardown deletes the
bucket) returns the processed CSVs and the transform's output, so that the test can check them against an
independent k-NN. Left out (``test_provider_system_tests.py`` says why): AutoML, experiments, the
processing jobs, the model registry and the local Docker image. The folder's DagBag also holds the
provider's whole DAG, ``example_sagemaker`` (Airflow registers every DAG made while a DAG file is imported);
only ``example_sagemaker_knn`` is run.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

import boto3
import example_sagemaker as provider  # the provider's file, unmodified, on PYTHONPATH
import numpy as np
import pandas as pd
from tests_common.test_utils.version_compat import AIRFLOW_V_3_0_PLUS

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import chain, task
else:
    from airflow.decorators import task
    from airflow.models.baseoperator import chain

DAG_ID = "example_sagemaker_knn"
# The provider's tasks kept, in the order of its chain(...); the teardown runs whatever happened before.
SETUP = ["variable_fetcher", "set_up", "create_bucket", "upload_dataset"]
BODY = [
    "train_model",
    "await_training",
    "create_model",
    "tune_model",
    "await_tuning",
    "test_model",
    "await_transform",
]
TEARDOWN = ["delete_ecr_repository", "delete_model", "delete_bucket", "prune_logs"]
KNN_TASKS = [*SETUP, *BODY, *TEARDOWN, "watcher"]
# An image manifest of no layers: what stands in for the pushed preprocessing image (nothing runs it).
EMPTY_IMAGE = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "config": {
        "mediaType": "application/vnd.docker.container.image.v1+json",
        "size": 2,
        "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",  # of "{}"
    },
    "layers": [],
}


def _no_aws_cli_install() -> None:
    provider.logger.info("stand-in: no AWS CLI installed (only docker login would use it)")


def _push_stand_in(preprocess_script: str, repository_uri: str) -> None:
    repository = repository_uri.split("/", 1)[1]
    image = boto3.client("ecr").put_image(
        repositoryName=repository, imageManifest=json.dumps(EMPTY_IMAGE), imageTag="latest"
    )["image"]
    provider.logger.info(
        "stand-in: no docker build or push; %s holds %s (the preprocessing script is not in it)",
        repository_uri,
        image["imageId"]["imageDigest"],
    )


provider._install_aws_cli_if_needed = _no_aws_cli_install
provider._build_and_upload_docker_image = _push_stand_in


def preprocess(input_path: str, output_path: str) -> None:
    """The DAG's PREPROCESS_SCRIPT_TEMPLATE's ``main()``, step for step, in pandas 3: the one change is the
    split, ``np.split(shuffled, [cut])``, which under pandas < 3 gives the positional slices below."""
    data = pd.read_csv(f"{input_path}/input.csv")
    shuffled = data.sample(frac=1, random_state=np.random.RandomState())
    cut = int(0.7 * len(data))
    data_train, data_test = shuffled.iloc[:cut], shuffled.iloc[cut:]
    data_test = data_test.drop(["class"], axis=1)
    data_train.to_csv(f"{output_path}/train.csv", index=False, header=False)
    data_test.to_csv(f"{output_path}/test.csv", index=False, header=False)
    evaluation_dir = Path(output_path) / "evaluation"
    evaluation_dir.mkdir(parents=True, exist_ok=True)
    metrics = {"metrics": {"mse": {"value": 5.332878}, "rmse": {"value": 2.309302}}}
    (evaluation_dir / "evaluation.json").write_text(json.dumps(metrics))
    print("Preprocessing Done.")


def _split_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


@task
def processing_job_stand_in(ti=None) -> list[str]:
    """What the processing job of ``processing_config`` would do: inputs from S3 into their LocalPath, the
    preprocessing, every output LocalPath to its S3Uri (EndOfJob), the job's log. Returns the URIs written."""
    config = ti.xcom_pull(task_ids="set_up", key="processing_config")
    s3 = boto3.client("s3")
    written = []
    with tempfile.TemporaryDirectory() as container:  # stands in for the container's file system

        def local(path: str) -> Path:
            return Path(container) / path.lstrip("/")

        for source in config["ProcessingInputs"]:
            bucket, prefix = _split_uri(source["S3Input"]["S3Uri"])
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    target = local(source["S3Input"]["LocalPath"]) / Path(obj["Key"]).name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    s3.download_file(bucket, obj["Key"], str(target))
        outputs = config["ProcessingOutputConfig"]["Outputs"]
        for output in outputs:
            local(output["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
        # The script's {input_path} and {output_path}: set_up's paths of the input "input", output "output".
        (input_path,) = (
            i["S3Input"]["LocalPath"] for i in config["ProcessingInputs"] if i["InputName"] == "input"
        )
        (output_path,) = (o["S3Output"]["LocalPath"] for o in outputs if o["OutputName"] == "output")
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            preprocess(str(local(input_path)), str(local(output_path)))
        for output in outputs:
            folder = local(output["S3Output"]["LocalPath"])
            bucket, prefix = _split_uri(output["S3Output"]["S3Uri"])
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                key = f"{prefix.rstrip('/')}/{path.relative_to(folder).as_posix()}"
                s3.upload_file(str(path), bucket, key)
                written.append(f"s3://{bucket}/{key}")
    logs = boto3.client("logs")
    group = "/aws/sagemaker/ProcessingJobs"
    stream = f"{config['ProcessingJobName']}/algo-1-{int(time.time())}"
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    stamp = int(time.time() * 1000)
    lines = printed.getvalue().splitlines() or ["(no output)"]
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": stamp, "message": line} for line in lines],
    )
    print("\n".join(lines))
    return written


@task(multiple_outputs=False)
def keep_objects(ti=None) -> dict[str, str]:
    """The processed CSVs and the transform's output, read before the teardown deletes the bucket."""
    training = ti.xcom_pull(task_ids="set_up", key="training_config")
    transform = ti.xcom_pull(task_ids="set_up", key="transform_config")
    s3 = boto3.client("s3")
    train_uri = training["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"]
    test_uri = transform["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
    output_uri = transform["TransformOutput"]["S3OutputPath"].rstrip("/") + "/test.csv.out"
    kept = {}
    for name, uri in (("train.csv", train_uri), ("test.csv", test_uri), ("test.csv.out", output_uri)):
        bucket, key = _split_uri(uri)
        kept[name] = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    return kept


dag = provider.dag.partial_subset(KNN_TASKS, include_upstream=False, include_downstream=False)
dag.dag_id = DAG_ID
tasks = dag.task_dict
with dag:
    stand_in = processing_job_stand_in()
    kept = keep_objects()
chain(
    *(tasks[t] for t in SETUP),
    stand_in,
    *(tasks[t] for t in BODY),
    kept,
    *(tasks[t] for t in TEARDOWN),
)
[stand_in, kept] >> tasks["watcher"]
