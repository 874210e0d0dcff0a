"""RecordIO-protobuf against CSV in the embedded engine: training and batch transform of the same rows.

    .venv/bin/python bench/recordio.py [--rows 1000000] [--repeats 3] [--sample 10000] [--work DIR]

One generated data set (``--rows`` labelled rows, d=4, three classes) is written both ways: headerless
CSV (label first) and RecordIO-protobuf (float32 tensors, as the SageMaker Python SDK's ``record_set``
writes them). Interleaved and repeated ``--repeats`` times (medians reported), it times through
``LocalSageMakerClient``, each until describe says Completed:

* training on the whole object (``sample_size`` ``--sample``, so both build the same-size index), and
* a batch transform of its features (SplitType Line with text/csv, SplitType RecordIO with RecordIO-
  protobuf; JSON lines out in both, so only the input format differs).

The CSV run is the baseline: the ratio is RecordIO / CSV. It checks that both transforms predict the same
labels. The machine may be shared: read the medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from iris_sagemaker.local_sagemaker import LocalSageMakerClient  # noqa: E402
from iris_sagemaker.local_sagemaker.recordio import RECORDIO, encode_dense  # noqa: E402
from iris_sagemaker.local_sagemaker.testing import (  # noqa: E402
    model_request,
    to_csv,
    training_request,
    transform_request,
    wait_for,
)

BUCKET = "bench"
FORMATS = {"csv": "text/csv", "recordio": RECORDIO}


def _data(rows: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    centers = np.array([[6.6, 3.0, 5.6, 2.0], [5.9, 2.8, 4.3, 1.3], [5.0, 3.4, 1.5, 0.2]])
    labels = rng.integers(0, 3, rows).astype(np.float32)
    features = (centers[labels.astype(int)] + rng.normal(scale=0.3, size=(rows, 4))).astype(np.float32)
    return labels, np.round(features, 3)


def _train(client: LocalSageMakerClient, fmt: str, run: int, sample: int) -> tuple[float, str]:
    name = f"train-{fmt}-{run}"
    request = training_request(
        name,
        f"s3://{BUCKET}/data/train.{fmt}",
        f"s3://{BUCKET}/models",
        {"predictor_type": "classifier", "feature_dim": "4", "k": "3", "sample_size": str(sample)},
    )
    request["InputDataConfig"][0]["ContentType"] = FORMATS[fmt]
    start = time.perf_counter()
    client.create_training_job(**request)
    job = wait_for(
        lambda: client.describe_training_job(TrainingJobName=name), "TrainingJobStatus", 3600, 0.05
    )
    elapsed = time.perf_counter() - start
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    return elapsed, job["ModelArtifacts"]["S3ModelArtifacts"]


def _transform(client: LocalSageMakerClient, fmt: str, run: int, model: str) -> tuple[float, bytes]:
    name = f"score-{fmt}-{run}"
    split = "RecordIO" if fmt == "recordio" else "Line"
    request = transform_request(
        name,
        model,
        f"s3://{BUCKET}/data/features.{fmt}",
        f"s3://{BUCKET}/scored/{name}",
        ContentType=FORMATS[fmt],
        SplitType=split,
        Accept="application/jsonlines",
    )
    start = time.perf_counter()
    client.create_transform_job(**request)
    job = wait_for(
        lambda: client.describe_transform_job(TransformJobName=name), "TransformJobStatus", 3600, 0.05
    )
    elapsed = time.perf_counter() - start
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    return elapsed, client.store.get_bytes(BUCKET, f"scored/{name}/features.{fmt}.out")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sample", type=int, default=10_000)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-recordio-"))
    client = LocalSageMakerClient(work)
    labels, features = _data(args.rows)
    started = time.perf_counter()
    client.store.put_bytes(BUCKET, "data/train.csv", to_csv(labels, features))
    client.store.put_bytes(BUCKET, "data/features.csv", to_csv(features))
    client.store.put_bytes(BUCKET, "data/train.recordio", encode_dense(features, labels))
    client.store.put_bytes(BUCKET, "data/features.recordio", encode_dense(features))
    sizes = {
        key: len(client.store.get_bytes(BUCKET, f"data/{key}")) for key in ("train.csv", "train.recordio")
    }
    print(
        f"{args.rows} rows, d=4: train.csv {sizes['train.csv'] / 1e6:.1f} MB, train.recordio "
        f"{sizes['train.recordio'] / 1e6:.1f} MB (written in {time.perf_counter() - started:.1f} s)"
    )
    times: dict[str, list[float]] = {
        f"{step}-{fmt}": [] for step in ("train", "transform") for fmt in FORMATS
    }
    for run in range(args.repeats):
        outputs = {}
        for fmt in FORMATS:
            seconds, artifact = _train(client, fmt, run, args.sample)
            times[f"train-{fmt}"].append(seconds)
            model = f"model-{fmt}-{run}"
            client.create_model(**model_request(model, artifact))
            seconds, outputs[fmt] = _transform(client, fmt, run, model)
            times[f"transform-{fmt}"].append(seconds)
        # The two models index different samples, so score one format's model on both inputs to compare.
        seconds, same_model_rio = _transform(client, "recordio", run + 1000, f"model-csv-{run}")
        assert same_model_rio == outputs["csv"], "RecordIO and CSV inputs scored differently"
        predicted = [json.loads(line)["predicted_label"] for line in outputs["csv"].splitlines()[:1000]]
        assert len(outputs["csv"].splitlines()) == args.rows and len(predicted) == min(1000, args.rows)
    for step in ("train", "transform"):
        csv = statistics.median(times[f"{step}-csv"])
        rio = statistics.median(times[f"{step}-recordio"])
        print(
            f"{step:9s}  csv {csv:7.2f} s  recordio {rio:7.2f} s  ratio recordio/csv {rio / csv:5.2f}  "
            f"({args.rows / rio / 1e3:.0f}k rows/s from RecordIO)"
        )
    print("identical predictions from the CSV and RecordIO inputs (same model): yes")


if __name__ == "__main__":
    main()
