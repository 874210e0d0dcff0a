"""Airflow DAG `sagemaker_pipeline`: the Airflow + SageMaker Iris k-NN tutorial, self-contained.

Written by `iris-sagemaker export-airflow-dag` from its template and the helpers and request builders that
iris-sagemaker's Dagster assets and Airflow DAG use: do not edit by hand, export again. It imports only
Airflow, the Amazon provider, pandas, requests and the standard library (pandas and requests when a task
runs), so it can be dropped into the dags folder of any Airflow 2.x or 3.x deployment (MWAA, Astronomer),
as the tutorial's file is.

data_prep >> train_model >> create_model >> test_model >> score_predictions

- data_prep: reads the Iris CSV (Variable `iris_data_url`, default the tutorial's UCI copy), splits it
  (TRAIN_FRACTION for training, shuffled with SPLIT_SEED), and writes train.csv, test.csv and the
  held-out labels to the run's own folder `iris/runs/<run>/` of the bucket;
- train_model, create_model, test_model: the Amazon provider's SageMakerTrainingOperator,
  SageMakerModelOperator and SageMakerTransformOperator (deferrable, like the tutorial's Async ones),
  named per DAG run (`train-iris-<run>`, `Iris-KNN-<run>`, `test-knn-<run>`);
- score_predictions: joins the predictions with the held-out labels, writes the scored table
  (`iris/runs/<run>/evaluation/test_predictions.csv`) and fails below ACCURACY_THRESHOLD.

Needs, as the tutorial does: the Variables `s3_bucket` (an existing bucket) and `role` (the SageMaker
execution role's ARN), and the connection `aws-sagemaker`. The bodies name the k-NN image of REGION
(`iris-sagemaker export-airflow-dag --region R` exports another region's). Read from the environment
when the file is parsed: IRIS_SAGEMAKER_AIRFLOW_CHECK_INTERVAL (seconds between status polls, default
30) and IRIS_SAGEMAKER_AIRFLOW_DEFERRABLE (default true).

Left out, compared with iris-sagemaker's own DAG: a run's objects stay in its folder, they are not
published to the tutorial's keys (`iris/processed-input-data/`, `iris/results/test.csv.out`) nor named
in `iris/latest-run.json` (publishing safely needs iris-sagemaker's lock); and a retried task does what
the provider does (a job of that name exists: start one with a timestamp suffix), where iris-sagemaker
reuses, waits for or fails on the job it finds.
"""

import datetime as dt
import io
import logging
import os
from urllib.parse import unquote, urlparse

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerModelOperator,
    SageMakerTrainingOperator,
    SageMakerTransformOperator,
)

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

# isort: split
# >>> portable: copied verbatim by `iris-sagemaker export-airflow-dag`
from typing import TYPE_CHECKING

from iris_sagemaker.core.portable import (
    COLUMNS,
    FEATURES,
    LABELS,
    SPECIES,
    job_names,
    join_predictions,
    parse_predictions,
    parse_yes_no,
    run_folder,
)

if TYPE_CHECKING:
    import pandas as pd
# <<< portable

# >>> values: iris-sagemaker's names, settings and request bodies, as literals (exported_dag_values.py)
from iris_sagemaker.airflow_defs.exported_dag_values import (
    ACCURACY_THRESHOLD,
    BUCKET,
    CHECK_INTERVAL_ENV,
    CONN_ID,
    DAG_ID,
    DATA_URL_VARIABLE,
    DEFAULT_CHECK_INTERVAL,
    DEFAULT_DATA_URL,
    DEFERRABLE_ENV,
    HTTP_TIMEOUT_SECONDS,
    MACROS_JOB_NAMES,
    MACROS_RUN_FOLDER,
    MODEL_CONFIG,
    REGION,
    RUN_KEYS,
    RUNS_PREFIX,
    SPLIT_SEED,
    TRAIN_FRACTION,
    TRAINING_CONFIG,
    TRANSFORM_CONFIG,
)

# <<< values

log = logging.getLogger(__name__)
# Seconds between job status polls, and whether to wait in the triggerer (the tutorial's deferrable
# operators), read from the environment when the file is parsed.
CHECK_INTERVAL = int(os.environ.get(CHECK_INTERVAL_ENV, str(DEFAULT_CHECK_INTERVAL)))
DEFERRABLE = parse_yes_no(DEFERRABLE_ENV, os.environ.get(DEFERRABLE_ENV), True)
# The Iris source, rendered when a task runs: the Variable DATA_URL_VARIABLE, else the tutorial's.
DATA_URL = "{{ var.value.get('" + DATA_URL_VARIABLE + "', '" + DEFAULT_DATA_URL + "') }}"


def run_key(run_id: str, name: str) -> str:
    """The key of one of a run's objects (RUN_KEYS) in the run's folder: iris/runs/<run>/..."""
    return f"{RUNS_PREFIX}{run_folder(run_id)}/{RUN_KEYS[name]}"


# --- Data: the same table, split and CSVs as iris-sagemaker's (pandas, imported when a task runs) ---


def read_source(url: str) -> bytes:
    """The bytes of an http(s):// or file:// URL."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        with open(unquote(parsed.path), "rb") as file:
            return file.read()
    if parsed.scheme not in ("http", "https"):
        raise ValueError(f"{url!r}: use an http://, https:// or file:// URL of UCI-format Iris CSV")
    import requests

    response = requests.get(url, timeout=HTTP_TIMEOUT_SECONDS)
    response.raise_for_status()
    return response.content


def parse_iris(data: bytes, source: str) -> "pd.DataFrame":
    """UCI-format Iris CSV (no header; a header row naming the columns is allowed) as five columns:
    float features and species names. Errors name the row and column."""
    import pandas as pd

    cells = pd.read_csv(
        io.StringIO(data.decode("utf-8")),
        header=None,
        names=COLUMNS,
        dtype=str,
        keep_default_na=False,
        skipinitialspace=True,
    )
    cells = cells.apply(lambda column: column.str.strip())
    cells = cells[(cells != "").any(axis=1)]
    if len(cells) and list(cells.iloc[0]) == COLUMNS:
        cells = cells.iloc[1:]
    if cells.empty:
        raise ValueError(f"{source} has no data rows; expected rows of {', '.join(COLUMNS)}")
    frame = pd.DataFrame(index=cells.index)
    for column in FEATURES:
        values = pd.to_numeric(cells[column], errors="coerce")
        bad = values.isna() | values.abs().eq(float("inf"))
        if bad.any():
            row = bad.idxmax()
            value = cells.at[row, column]
            raise ValueError(f"{source}, row {row + 1}, column {column!r}: {value!r} is not a finite number")
        frame[column] = values.astype("float64")
    unknown = ~cells["species"].isin(list(LABELS))
    if unknown.any():
        row = unknown.idxmax()
        value = cells.at[row, "species"]
        known = ", ".join(sorted(LABELS))
        raise ValueError(f"{source}, row {row + 1}: species {value!r} is not one of {known}")
    frame["species"] = cells["species"].astype(str)
    return frame.reset_index(drop=True)


def split_iris(
    frame: "pd.DataFrame", seed: int = SPLIT_SEED, train_fraction: float = TRAIN_FRACTION
) -> "tuple[pd.DataFrame, pd.DataFrame, pd.Series]":
    """(train, test features, test labels): label first, encoded as in the tutorial, shuffled with a
    seeded generator and cut at int(train_fraction * rows), as the tutorial does; every species on
    both sides."""
    encoded = frame[["species", *FEATURES]].copy()
    encoded["species"] = encoded["species"].map(LABELS).astype("int64")
    shuffled = encoded.sample(frac=1, random_state=seed)  # an int seeds numpy's RandomState
    cut = int(train_fraction * len(shuffled))
    train, test = shuffled.iloc[:cut], shuffled.iloc[cut:]
    for side, labels in (("train", train["species"]), ("test", test["species"])):
        missing = sorted(SPECIES[code] for code in set(LABELS.values()) - set(labels))
        if missing:
            raise ValueError(f"the {side} split ({len(labels)} rows) has no {', '.join(missing)}")
    return train, test[FEATURES], test["species"].rename("true_label")


def sagemaker_csv(frame: "pd.DataFrame") -> bytes:
    """CSV as SageMaker's built-in algorithms read it: no header, no index."""
    return frame.to_csv(header=False, index=False).encode("utf-8")
# --- The DAG ---


with DAG(
    dag_id=DAG_ID,
    description="Iris k-NN on SageMaker: prepare, train, create model, batch-transform, score",
    start_date=dt.datetime(2021, 7, 31),
    schedule=None,
    catchup=False,
    default_args={"retries": 0, "retry_delay": dt.timedelta(minutes=1)},
    user_defined_macros={MACROS_JOB_NAMES: job_names, MACROS_RUN_FOLDER: run_folder},
    tags=["iris", "sagemaker"],
    doc_md=__doc__,
) as dag:

    @task(task_id="data_prep", multiple_outputs=False)
    def data_prep(bucket, data_url, run_id=None):
        """Read and split Iris; write the raw table, train.csv, test.csv and the held-out labels to the
        run's folder."""
        frame = parse_iris(read_source(data_url), data_url)
        train, test_features, test_labels = split_iris(frame)
        objects = {
            "raw": frame.to_csv(index=False).encode("utf-8"),
            "train": sagemaker_csv(train),
            "labels": test_labels.to_frame().to_csv(index=False).encode("utf-8"),
            "test": sagemaker_csv(test_features),
        }
        s3 = S3Hook(aws_conn_id=CONN_ID, region_name=REGION)
        for name, data in objects.items():
            s3.load_bytes(data, run_key(run_id, name), bucket_name=bucket, replace=True)
        folder = f"s3://{bucket}/{RUNS_PREFIX}{run_folder(run_id)}/"
        message = "read %d rows from %s; wrote %d train / %d test rows to %s"
        log.info(message, len(frame), data_url, len(train), len(test_features), folder)
        return {
            "rows": len(frame),
            "train_rows": len(train),
            "test_rows": len(test_features),
            "train_uri": f"s3://{bucket}/{run_key(run_id, 'train')}",
            "test_uri": f"s3://{bucket}/{run_key(run_id, 'test')}",
            "labels_uri": f"s3://{bucket}/{run_key(run_id, 'labels')}",
        }

    @task(task_id="score_predictions", multiple_outputs=False)
    def score_predictions(bucket, transform, run_id=None):
        """Join the batch transform's predictions with the held-out labels, write the scored table, and
        fail below ACCURACY_THRESHOLD."""
        import pandas as pd

        job = transform["Transform"]
        if job["TransformJobStatus"] != "Completed":
            raise RuntimeError(f"transform job {job['TransformJobName']} is {job['TransformJobStatus']}")
        s3 = S3Hook(aws_conn_id=CONN_ID, region_name=REGION)

        def read(name: str) -> bytes:
            return s3.get_key(run_key(run_id, name), bucket_name=bucket).get()["Body"].read()

        features = pd.read_csv(io.BytesIO(read("test")), header=None, names=FEATURES)
        labels = pd.read_csv(io.BytesIO(read("labels")))["true_label"]
        predicted = parse_predictions(read("predictions"), f"s3://{bucket}/{run_key(run_id, 'predictions')}")
        table = join_predictions(features, labels, predicted)
        scored = table.to_csv(index=False).encode("utf-8")
        s3.load_bytes(scored, run_key(run_id, "scored"), bucket_name=bucket, replace=True)
        accuracy = float(table["correct"].mean())
        correct = int(table["correct"].sum())
        name = job["TransformJobName"]
        log.info("accuracy %.4f (%d/%d correct), transform job %s", accuracy, correct, len(table), name)
        if accuracy < ACCURACY_THRESHOLD:
            raise ValueError(
                f"accuracy {accuracy:.4f} on {len(table)} test rows is below {ACCURACY_THRESHOLD}"
            )
        return {
            "accuracy": accuracy,
            "rows": len(table),
            "correct": correct,
            "predictions_uri": f"s3://{bucket}/{run_key(run_id, 'predictions')}",
            "scored_uri": f"s3://{bucket}/{run_key(run_id, 'scored')}",
            "transform_job_name": job["TransformJobName"],
            "model_name": job["ModelName"],
        }

    aws = {"aws_conn_id": CONN_ID, "region_name": REGION}
    waiting = {"wait_for_completion": True, "check_interval": CHECK_INTERVAL, "deferrable": DEFERRABLE}
    prep = data_prep(BUCKET, DATA_URL)
    train_model = SageMakerTrainingOperator(task_id="train_model", config=TRAINING_CONFIG, **waiting, **aws)
    create_model = SageMakerModelOperator(task_id="create_model", config=MODEL_CONFIG, **aws)
    test_model = SageMakerTransformOperator(task_id="test_model", config=TRANSFORM_CONFIG, **waiting, **aws)
    score = score_predictions(BUCKET, test_model.output)
    prep >> train_model >> create_model >> test_model >> score
