"""InvokeEndpoint over HTTP: the real k-NN behind ``iris-sagemaker serve`` against moto's server, which
answers every invocation from a canned result, measured in one run with the same boto3 client code.

    .venv/bin/python bench/serving.py [--requests 2000] [--concurrent-requests 4000] [--clients 8]

Both servers run as child processes on free loopback ports. For each, after a warm-up:

* sequential latency: ``--requests`` one-row ``text/csv`` invocations, one after another, from one boto3
  client; p50 and p99 in milliseconds;
* throughput: ``--clients`` client processes (one boto3 client each) share ``--concurrent-requests``
  invocations; requests per second over the wall time from a common start.

Our endpoint serves the tutorial's Iris model (150 points, d=4, k=3); moto's endpoint is a name it
answers "body" for. The goal is the issue's: our p50 <= 0.8x moto's, our throughput >= 1.2x. Then the
same figures for a 10,000-point d=64 endpoint of ours. Ratios are ours / moto's, measured in this run.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import numpy as np
from botocore.config import Config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from iris_sagemaker.local_sagemaker.testing import model_request, to_csv, training_request  # noqa: E402
from iris_sagemaker.serve.process import start_server  # noqa: E402

BUCKET = "bench-serving"
REGION = "us-east-2"


def _client(url: str, service: str):
    session = boto3.session.Session(aws_access_key_id="b", aws_secret_access_key="b", region_name=REGION)
    return session.client(service, endpoint_url=url, config=Config(retries={"max_attempts": 1}))


# ---- the endpoints -----------------------------------------------------------------------------------


def _deploy(url: str, name: str, labels: np.ndarray, features: np.ndarray) -> None:
    s3, sm = _client(url, "s3"), _client(url, "sagemaker")
    key = f"{name}/train.csv"
    s3.put_object(Bucket=BUCKET, Key=key, Body=to_csv(labels, features))
    hyperparameters = {
        "predictor_type": "classifier",
        "feature_dim": str(features.shape[1]),
        "k": "3",
        "sample_size": str(len(labels)),
    }
    request = training_request(name, f"s3://{BUCKET}/{key}", f"s3://{BUCKET}/out", hyperparameters)
    sm.create_training_job(**request)
    wait = {"Delay": 0.5, "MaxAttempts": 600}
    sm.get_waiter("training_job_completed_or_stopped").wait(TrainingJobName=name, WaiterConfig=wait)
    artifact = sm.describe_training_job(TrainingJobName=name)["ModelArtifacts"]["S3ModelArtifacts"]
    sm.create_model(**model_request(name, artifact))
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": name,
        "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large",
    }
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=wait)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_moto() -> tuple[str, subprocess.Popen[bytes]]:
    port = _free_port()
    moto = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return url, proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto_server did not start")


# ---- the measurements --------------------------------------------------------------------------------


def _rows(features: np.ndarray, n: int) -> list[bytes]:
    picks = np.random.default_rng(3).integers(0, len(features), n)
    return [",".join(f"{v:.4f}" for v in features[i]).encode() for i in picks]


def sequential(url: str, endpoint: str, rows: list[bytes]) -> tuple[float, float]:
    rt = _client(url, "sagemaker-runtime")
    for body in rows[:100]:  # warm-up: connections, caches
        rt.invoke_endpoint(EndpointName=endpoint, Body=body, ContentType="text/csv")["Body"].read()
    times = []
    for body in rows:
        start = time.perf_counter()
        rt.invoke_endpoint(EndpointName=endpoint, Body=body, ContentType="text/csv")["Body"].read()
        times.append(time.perf_counter() - start)
    times.sort()
    return statistics.median(times) * 1000, times[int(0.99 * (len(times) - 1))] * 1000


def _worker(url: str, endpoint: str, rows: list[bytes], start_at: float, out: multiprocessing.Queue) -> None:
    rt = _client(url, "sagemaker-runtime")
    rt.invoke_endpoint(EndpointName=endpoint, Body=rows[0], ContentType="text/csv")["Body"].read()
    while time.time() < start_at:
        time.sleep(0.001)
    for body in rows:
        rt.invoke_endpoint(EndpointName=endpoint, Body=body, ContentType="text/csv")["Body"].read()
    out.put(time.time())


def throughput(url: str, endpoint: str, rows: list[bytes], clients: int) -> float:
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    start_at = time.time() + 3.0  # every client has started and warmed up by then
    share = len(rows) // clients
    procs = [
        context.Process(
            target=_worker, args=(url, endpoint, rows[i * share : (i + 1) * share], start_at, out)
        )
        for i in range(clients)
    ]
    for proc in procs:
        proc.start()
    ends = [out.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    return share * clients / (max(ends) - start_at)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrent-requests", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    if args.requests < 100 or args.concurrent_requests < args.clients or args.clients < 1:
        parser.error("--requests must be >= 100, --clients >= 1 and --concurrent-requests >= --clients")

    from iris_sagemaker.core import dataset

    _, data = dataset.read_source(None)
    encoded = dataset.encode(dataset.parse_iris(data)).to_numpy(dtype=np.float32)
    iris_labels, iris_features = encoded[:, 0], encoded[:, 1:]
    rng = np.random.default_rng(7)
    big_features = rng.normal(size=(10_000, 64)).astype(np.float32)
    big_labels = rng.integers(0, 3, 10_000).astype(np.float32)

    with tempfile.TemporaryDirectory() as work:
        ours = start_server(Path(work) / "root", {"IRIS_SAGEMAKER_CACHE_DIR": str(Path(work) / "cache")})
        moto_url, moto = _start_moto()
        try:
            _client(ours.url, "s3").create_bucket(
                Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
            )
            _deploy(ours.url, "iris-knn", iris_labels, iris_features)
            _deploy(ours.url, "knn-10k-d64", big_labels, big_features)
            iris_rows = _rows(iris_features, max(args.requests, args.concurrent_requests))
            big_rows = _rows(big_features, max(args.requests, args.concurrent_requests))

            results = {}
            for label, url, endpoint, rows in (
                ("moto (canned reply)", moto_url, "canned", iris_rows),
                ("ours, Iris (150 points, d=4)", ours.url, "iris-knn", iris_rows),
                ("ours, 10k points, d=64", ours.url, "knn-10k-d64", big_rows),
            ):
                p50, p99 = sequential(url, endpoint, rows[: args.requests])
                rate = throughput(url, endpoint, rows[: args.concurrent_requests], args.clients)
                results[label] = (p50, p99, rate)
        finally:
            ours.stop()
            moto.send_signal(signal.SIGTERM)
            moto.wait(10)

    base = results["moto (canned reply)"]
    print(
        f"InvokeEndpoint, one CSV row per request; {args.requests} sequential, "
        f"{args.concurrent_requests} over {args.clients} client processes ({os.cpu_count()} cores)"
    )
    print(f"{'server':32} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'p50 ratio':>10} {'req/s ratio':>12}")
    for label, (p50, p99, rate) in results.items():
        print(f"{label:32} {p50:8.2f} {p99:8.2f} {rate:8.0f} {p50 / base[0]:10.2f} {rate / base[2]:12.2f}")
    iris = results["ours, Iris (150 points, d=4)"]
    print(
        f"goal: p50 ratio <= 0.8 ({iris[0] / base[0]:.2f}), throughput ratio >= 1.2 ({iris[2] / base[2]:.2f})"
    )


if __name__ == "__main__":
    main()
