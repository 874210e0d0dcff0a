"""Soak test of ``iris-sagemaker serve``: minutes of mixed load from several client processes, per-minute
figures, and a verdict against the goals.

    .venv/bin/python bench/soak.py [--minutes 5] [--clients 4] [--rate 25] [--kill] [--root ROOT]

Each client process (one boto3 session each, retries off, so every failure shows) runs, at ``--rate``
requests a second: InvokeEndpoint with text/csv, application/json and RecordIO-protobuf bodies (every
answer compared with an independent numpy k-NN on the endpoint's training data), S3 PUT and GET of small
objects and of multi-MB ones (every GET compared with what was PUT), Describe/List polling, CloudWatch
Logs reads of its jobs' logs, a few requests that must fail (a bad row: ModelError; a missing key:
NoSuchKey; an unknown job: ValidationException), and, every ``--job-every`` seconds, a chain of a
training job, a model and a batch transform whose output is checked against the same independent k-NN.

Every ``--window`` seconds (default 60) it prints requests, errors (unexpected non-2xx and connection
failures), wrong answers, p50/p99 latency per operation, and the server's RSS, open file descriptors and
threads (psutil, sampled every second). It ends with a verdict against the goals: 0 unexpected errors, 0
wrong answers, each busy operation's p99 in the last window within 1.5x of the first (relative to the same
ratio of a control request, STS GetCallerIdentity, whose cost does not depend on what the server holds: a
shared machine that slows down for everyone is not the server degrading), RSS growth under 10% after the
first window (medians of the windows' samples), file descriptors and threads flat (peaks, within what the
jobs in flight hold).

``--kill``: halfway through, the server is killed with SIGKILL and restarted on the same root and port
while the clients go on. Failures during the outage are counted apart. Afterwards every job that was in
flight must read Failed or Stopped with a reason (none InProgress), every S3 write a client saw
acknowledged must read back intact, and the endpoint must still be there and answer correctly.

Without ``--root``, the bench starts its own server on a temporary root and stops it at the end; with
``--root ROOT`` it drives the server already running for ROOT (found through its lock file) and leaves it
running (``--kill`` needs the bench's own server). ``--json PATH`` writes the figures and the verdict.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import multiprocessing
import os
import queue
import random
import signal
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

REGION = "us-east-2"
BUCKET = "soak"
ENDPOINT = "soak-knn"
K = 3
FEATURES = 4
ROLE = "arn:aws:iam::000000000000:role/soak"
TRAINING_GROUP = "/aws/sagemaker/TrainingJobs"
P99_RATIO_GOAL = 1.5
RSS_GROWTH_GOAL = 0.10
# Requests an operation needs in both windows for its p99 ratio to be judged: below 100, a window's p99
# is its slowest request or two, and a ratio of two maxima measures the machine's noise, not a trend.
BUSY = 100
OUTAGE_GRACE_S = 5.0  # after the restarted server is ready, connections may still be failing over
LOST_TO_KILL = (
    "died before the job finished",
    "shut down before the job finished",
    "stopped before the model",
)
# Weights of the request mix (the job chains come on top, at --job-every).
MIX = {
    "invoke_csv": 24,
    "invoke_json": 12,
    "invoke_recordio": 12,
    "s3_put_small": 10,
    "s3_get_small": 10,
    "s3_large": 2,
    "describe_list": 14,
    "logs_read": 6,
    "expected_error": 4,
    "control": 4,
}
# The control: a request whose cost does not depend on what the server holds (STS GetCallerIdentity).
# When the machine as a whole slows down (other processes on a shared machine), its p99 rises with
# everyone's; the p99 goal is judged on each operation's ratio relative to the control's.
CONTROL = "control_sts"


# ---- the data and the independent k-NN --------------------------------------------------------------


def iris_like(seed: int, rows_per_class: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Three 4-feature classes around Iris's species means, labels 0, 1, 2 (float32, 3 decimals)."""
    rng = np.random.default_rng(seed)
    centers = np.array([[6.6, 3.0, 5.6, 2.0], [5.9, 2.8, 4.3, 1.3], [5.0, 3.4, 1.5, 0.2]])
    labels = np.repeat(np.arange(3), rows_per_class)
    features = centers[labels] + rng.normal(scale=0.35, size=(len(labels), FEATURES))
    return labels.astype(np.float32), np.round(features, 3).astype(np.float32)


def reference_knn(
    train_x: np.ndarray, train_y: np.ndarray, queries: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted labels by an exact float64 k-NN (most frequent label among the k nearest, a tie going to
    the nearest of the tied labels), and whether each answer is clear: no near-tie in distance at the
    k-th neighbour, where float32 and float64 arithmetic could order neighbours differently."""
    x = train_x.astype(np.float64)
    q = queries.astype(np.float64)
    distances = ((q[:, None, :] - x[None, :, :]) ** 2).sum(axis=2)
    order = np.argsort(distances, axis=1, kind="stable")
    nearest = train_y[order[:, :K]]
    predicted = np.empty(len(q), dtype=np.float64)
    for i, row in enumerate(nearest):
        values, counts = np.unique(row, return_counts=True)
        tied = set(values[counts == counts.max()].tolist())
        predicted[i] = next(label for label in row.tolist() if label in tied)
    kth = np.take_along_axis(distances, order[:, K - 1 : K + 1], axis=1)
    clear = (kth[:, 1] - kth[:, 0]) > 1e-6 * np.maximum(kth[:, 1], 1e-12)
    return predicted, clear


def csv_bytes(*columns: np.ndarray) -> bytes:
    table = np.hstack([c.reshape(len(c), -1) for c in columns])
    return "".join(",".join(f"{v:.3f}" for v in row) + "\n" for row in table).encode()


def json_predictions(body: bytes) -> list[float]:
    """Labels from one or more concatenated ``{"predictions": [...]}`` documents."""
    text, decoder, pos, out = body.decode(), json.JSONDecoder(), 0, []
    while pos < len(text):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        doc, pos = decoder.raw_decode(text, pos)
        out.extend(float(p["predicted_label"]) for p in doc["predictions"])
    return out


# ---- a client process ---------------------------------------------------------------------------------


@dataclass
class Record:
    """One request: when it started (epoch s), what, how long (s), how it ended, and how many predictions
    it checked. ``outcome``: ok | expected | error | wrong | conn (connection-level) | lost (a job lost to
    the kill; the parent decides)."""

    start: float
    op: str
    latency: float
    outcome: str
    detail: str = ""
    checked: int = 0
    created: float = 0.0


@dataclass
class ClientConfig:
    url: str
    index: int
    rate: float
    job_every: float
    start_at: float
    end_at: float
    train_x: np.ndarray
    train_y: np.ndarray
    large_mb: tuple[float, float]
    first_job: str


class Client:
    """The load of one process. Every request goes through :meth:`timed`."""

    def __init__(self, cfg: ClientConfig, out: Any) -> None:
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(
            aws_access_key_id="soak", aws_secret_access_key="soak", region_name=REGION
        )
        config = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=60)
        self.sm = session.client("sagemaker", endpoint_url=cfg.url, config=config)
        self.rt = session.client("sagemaker-runtime", endpoint_url=cfg.url, config=config)
        self.s3 = session.client("s3", endpoint_url=cfg.url, config=config)
        self.logs = session.client("logs", endpoint_url=cfg.url, config=config)
        self.sts = session.client("sts", endpoint_url=cfg.url, config=config)
        self.cfg = cfg
        self.out = out
        self.rng = random.Random(cfg.index)
        self.nprng = np.random.default_rng(cfg.index)
        self.prefix = f"clients/{cfg.index}"
        self.records: list[Record] = []
        self.ledger: dict[str, str] = {}  # acknowledged S3 writes not deleted since: key -> sha256
        self.small_keys: list[str] = []
        self.seq = 0
        self.job: dict[str, Any] | None = None
        self.last_job_at = 0.0
        self.done_jobs: list[str] = [cfg.first_job]
        self.last_flush = time.time()
        _, features = iris_like(seed=1000 + cfg.index, rows_per_class=8)
        self.job_test = features
        self.job_expected, self.job_clear = reference_knn(cfg.train_x, cfg.train_y, features)
        self.ops = list(MIX)
        self.weights = [MIX[op] for op in self.ops]

    # -- plumbing --

    def timed(self, op: str, call: Any, expect_code: str | None = None) -> Any:
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )
        from urllib3.exceptions import ProtocolError

        start, clock = time.time(), time.perf_counter()
        try:
            result = call()
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", ""))
            latency = time.perf_counter() - clock
            if expect_code is not None and code == expect_code:
                self.note(Record(start, op, latency, "expected", code))
                return None
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            self.note(Record(start, op, latency, "error", f"{code} ({status}): {str(err)[:160]}"))
            return None
        except (
            EndpointConnectionError,
            ConnectionClosedError,
            ReadTimeoutError,
            ConnectTimeoutError,
            ProtocolError,
            ConnectionError,
        ) as err:
            self.note(Record(start, op, time.perf_counter() - clock, "conn", type(err).__name__))
            return None
        latency = time.perf_counter() - clock
        if expect_code is not None:
            self.note(Record(start, op, latency, "error", f"succeeded where {expect_code} was expected"))
            return None
        self.note(Record(start, op, latency, "ok"))
        return result

    def note(self, record: Record) -> None:
        self.records.append(record)

    def judge(self, op: str, predicted: list[float], expected: np.ndarray, clear: np.ndarray) -> None:
        """Re-label the last record of ``op``: wrong if any clear answer differs from the reference."""
        record = self.records[-1]
        if len(predicted) != len(expected):
            record.outcome, record.detail = "wrong", f"{len(predicted)} answers for {len(expected)} rows"
            return
        got = np.asarray(predicted)
        wrong = int(((got != expected) & clear).sum())
        record.checked = int(clear.sum())
        if wrong:
            record.outcome, record.detail = "wrong", f"{wrong} of {len(expected)} answers differ"

    def flush(self, final: bool = False) -> None:
        if self.records:
            self.out.put(("records", self.cfg.index, [r.__dict__ for r in self.records]))
            self.records = []
        self.last_flush = time.time()

    # -- the mix --

    def queries(self, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        picks = self.nprng.integers(0, len(self.cfg.train_x), rows)
        noise = self.nprng.normal(scale=0.25, size=(rows, FEATURES))
        # Three decimals, as the CSV bodies carry them: every body format sends the same numbers.
        q = np.round(self.cfg.train_x[picks] + noise, 3).astype(np.float32)
        expected, clear = reference_knn(self.cfg.train_x, self.cfg.train_y, q)
        return q, expected, clear

    def invoke_csv(self) -> None:
        q, expected, clear = self.queries(self.rng.randint(1, 40))
        body = csv_bytes(q)
        answer = self.timed(
            "invoke_csv",
            lambda: self.rt.invoke_endpoint(EndpointName=ENDPOINT, Body=body, ContentType="text/csv")[
                "Body"
            ].read(),
        )
        if answer is not None:
            self.judge("invoke_csv", json_predictions(answer), expected, clear)

    def invoke_json(self) -> None:
        q, expected, clear = self.queries(self.rng.randint(1, 40))
        body = json.dumps({"instances": [{"features": [float(v) for v in row]} for row in q]}).encode()
        answer = self.timed(
            "invoke_json",
            lambda: self.rt.invoke_endpoint(
                EndpointName=ENDPOINT, Body=body, ContentType="application/json", Accept="application/json"
            )["Body"].read(),
        )
        if answer is not None:
            self.judge("invoke_json", json_predictions(answer), expected, clear)

    def invoke_recordio(self) -> None:
        from iris_sagemaker.local_sagemaker import recordio

        q, expected, clear = self.queries(self.rng.randint(1, 40))
        body = recordio.encode_dense(q)
        accept = self.rng.choice(["application/json", recordio.RECORDIO])
        answer = self.timed(
            "invoke_recordio",
            lambda: self.rt.invoke_endpoint(
                EndpointName=ENDPOINT, Body=body, ContentType=recordio.RECORDIO, Accept=accept
            )["Body"].read(),
        )
        if answer is None:
            return
        if accept == recordio.RECORDIO:
            predicted = [r["predicted_label"][0] for r in recordio.read_predictions(answer)]
        else:
            predicted = json_predictions(answer)
        self.judge("invoke_recordio", predicted, expected, clear)

    def put(self, op: str, key: str, body: bytes) -> bool:
        acked = self.timed(op, lambda: self.s3.put_object(Bucket=BUCKET, Key=key, Body=body))
        if acked is not None:
            self.ledger[key] = hashlib.sha256(body).hexdigest()
        return acked is not None

    def get(self, op: str, key: str) -> None:
        data = self.timed(op, lambda: self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        if data is not None and hashlib.sha256(data).hexdigest() != self.ledger.get(key):
            record = self.records[-1]
            record.outcome, record.detail = "error", f"GET {key}: not the bytes PUT ({len(data)} bytes)"

    def s3_put_small(self) -> None:
        self.seq += 1
        key = f"{self.prefix}/small/{self.seq}.bin"
        if self.put("s3_put_small", key, os.urandom(self.rng.randint(16, 64 * 1024))):
            self.small_keys.append(key)

    def s3_get_small(self) -> None:
        if not self.small_keys:
            return self.s3_put_small()
        self.get("s3_get_small", self.rng.choice(self.small_keys[-200:]))
        return None

    def s3_large(self) -> None:
        self.seq += 1
        key = f"{self.prefix}/large/{self.seq}.bin"
        size = int(self.rng.uniform(*self.cfg.large_mb) * 1024 * 1024)
        if not self.put("s3_put_large", key, os.urandom(size)):
            return
        self.get("s3_get_large", key)
        if self.timed("s3_delete", lambda: self.s3.delete_object(Bucket=BUCKET, Key=key)) is not None:
            self.ledger.pop(key, None)

    def control(self) -> None:
        self.timed(CONTROL, self.sts.get_caller_identity)

    def describe_list(self) -> None:
        choice = self.rng.randrange(4)
        if choice == 0:
            self.timed(
                "list_training_jobs",
                lambda: self.sm.list_training_jobs(
                    MaxResults=10, SortBy="CreationTime", SortOrder="Descending"
                ),
            )
        elif choice == 1:
            self.timed("list_transform_jobs", lambda: self.sm.list_transform_jobs(MaxResults=10))
        elif choice == 2:
            self.timed("describe_endpoint", lambda: self.sm.describe_endpoint(EndpointName=ENDPOINT))
        else:
            name = self.rng.choice(self.done_jobs[-20:])
            self.timed("describe_training_job", lambda: self.sm.describe_training_job(TrainingJobName=name))

    def logs_read(self) -> None:
        job = self.rng.choice(self.done_jobs[-20:])
        if self.rng.random() < 0.5:
            found = self.timed(
                "logs_describe_get",
                lambda: self.logs.describe_log_streams(
                    logGroupName=TRAINING_GROUP, logStreamNamePrefix=f"{job}/"
                ),
            )
            streams = (found or {}).get("logStreams", [])
            if streams:
                self.timed(
                    "logs_describe_get",
                    lambda: self.logs.get_log_events(
                        logGroupName=TRAINING_GROUP, logStreamName=streams[0]["logStreamName"], limit=50
                    ),
                )
        else:
            self.timed(
                "logs_filter",
                lambda: self.logs.filter_log_events(
                    logGroupName=TRAINING_GROUP, logStreamNamePrefix=f"{job}/", limit=50
                ),
            )

    def expected_error(self) -> None:
        choice = self.rng.randrange(3)
        if choice == 0:  # five features where the model has four
            self.timed(
                "error_bad_row",
                lambda: self.rt.invoke_endpoint(
                    EndpointName=ENDPOINT, Body=b"1,2,3,4,5\n", ContentType="text/csv"
                ),
                "ModelError",
            )
        elif choice == 1:
            self.timed(
                "error_no_such_key",
                lambda: self.s3.get_object(Bucket=BUCKET, Key=f"{self.prefix}/missing/{self.seq}"),
                "NoSuchKey",
            )
        else:
            self.timed(
                "error_unknown_job",
                lambda: self.sm.describe_training_job(TrainingJobName=f"soak-missing-{self.cfg.index}"),
                "ValidationException",
            )

    # -- the job chains: training, model, transform, checked --

    def job_step(self) -> None:
        now = time.time()
        if self.job is None:
            if now - self.last_job_at >= self.cfg.job_every:
                self.start_training(now)
            return
        if now < self.job["next_poll"]:
            return
        self.job["next_poll"] = now + 0.5
        if self.job["stage"] == "training":
            self.poll_training()
        else:
            self.poll_transform()

    def start_training(self, now: float) -> None:
        from iris_sagemaker.local_sagemaker.images import knn_image_uri

        self.last_job_at = now
        name = f"soak-{self.cfg.index}-{int(now * 1000) % 10**10}"
        request = {
            "TrainingJobName": name,
            "AlgorithmSpecification": {"TrainingImage": knn_image_uri(REGION), "TrainingInputMode": "File"},
            "HyperParameters": {
                "feature_dim": str(FEATURES),
                "k": str(K),
                "predictor_type": "classifier",
                "sample_size": str(len(self.cfg.train_y)),
            },
            "InputDataConfig": [
                {
                    "ChannelName": "train",
                    "ContentType": "text/csv",
                    "DataSource": {
                        "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/data/train.csv"}
                    },
                }
            ],
            "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/{self.prefix}/models"},
            "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1},
            "RoleArn": ROLE,
            "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        }
        if self.timed("create_training_job", lambda: self.sm.create_training_job(**request)) is not None:
            self.job = {"stage": "training", "name": name, "created": now, "next_poll": now + 0.3}

    def ended(self, kind: str, described: dict[str, Any], status_key: str) -> bool:
        """Whether the job ended; a failure is an error unless the kill took it (the parent decides)."""
        assert self.job is not None
        status = described[status_key]
        if status in ("InProgress", "Stopping"):
            return False
        if status != "Completed":
            reason = described.get("FailureReason", "")
            outcome = "lost" if any(s in reason for s in LOST_TO_KILL) else "error"
            self.note(
                Record(
                    time.time(),
                    f"{kind}_job",
                    0.0,
                    outcome,
                    f"{status}: {reason}"[:200],
                    created=self.job["created"],
                )
            )
            self.job = None
        return True

    def poll_training(self) -> None:
        assert self.job is not None
        name = self.job["name"]
        described = self.timed(
            "describe_training_job", lambda: self.sm.describe_training_job(TrainingJobName=name)
        )
        if (
            described is None
            or not self.ended("training", described, "TrainingJobStatus")
            or self.job is None
        ):
            return
        self.done_jobs.append(name)
        self.note(Record(time.time(), "training_job", time.time() - self.job["created"], "ok"))
        artifact = described["ModelArtifacts"]["S3ModelArtifacts"]
        from iris_sagemaker.local_sagemaker.images import knn_image_uri

        model = {
            "ModelName": name,
            "ExecutionRoleArn": ROLE,
            "PrimaryContainer": {"Image": knn_image_uri(REGION), "ModelDataUrl": artifact},
        }
        if self.timed("create_model", lambda: self.sm.create_model(**model)) is None:
            self.job = None
            return
        transform = {
            "TransformJobName": name,
            "ModelName": name,
            "TransformInput": {
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://{BUCKET}/{self.prefix}/test.csv",
                    }
                },
                "ContentType": "text/csv",
                "SplitType": "Line",
            },
            "TransformOutput": {"S3OutputPath": f"s3://{BUCKET}/{self.prefix}/out/{name}"},
            "TransformResources": {"InstanceCount": 1, "InstanceType": "ml.m5.large"},
        }
        if self.timed("create_transform_job", lambda: self.sm.create_transform_job(**transform)) is None:
            self.job = None
            return
        self.job.update(stage="transform", created=time.time(), next_poll=time.time() + 0.3)

    def poll_transform(self) -> None:
        assert self.job is not None
        name = self.job["name"]
        described = self.timed(
            "describe_transform_job", lambda: self.sm.describe_transform_job(TransformJobName=name)
        )
        if (
            described is None
            or not self.ended("transform", described, "TransformJobStatus")
            or self.job is None
        ):
            return
        self.note(Record(time.time(), "transform_job", time.time() - self.job["created"], "ok"))
        key = f"{self.prefix}/out/{name}/test.csv.out"
        body = self.timed("s3_get_output", lambda: self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        if body is not None:
            self.judge("s3_get_output", json_predictions(body), self.job_expected, self.job_clear)
        self.job = None

    def stop_own_job(self) -> None:
        """At the end: stop the job chain still running (stop what you start). A job that ends between
        the look and the stop answers ValidationException: that is no error."""
        from botocore.exceptions import ClientError

        if self.job is None:
            return
        name, stage = self.job["name"], self.job["stage"]
        stop = self.sm.stop_training_job if stage == "training" else self.sm.stop_transform_job
        arg = {"TrainingJobName": name} if stage == "training" else {"TransformJobName": name}

        def stop_if_running() -> None:
            try:
                stop(**arg)
            except ClientError as err:
                if err.response.get("Error", {}).get("Code") != "ValidationException":
                    raise

        self.timed("stop_job", stop_if_running)
        self.job = None

    # -- the run --

    def setup(self) -> None:
        self.s3.put_object(Bucket=BUCKET, Key=f"{self.prefix}/test.csv", Body=csv_bytes(self.job_test))
        for op in self.ops:  # warm up every path (connections, service models) before the clock starts
            getattr(self, op)()
        self.records = []

    def run(self) -> None:
        interval = 1.0 / self.cfg.rate
        next_at = self.cfg.start_at
        while time.time() < self.cfg.end_at:
            now = time.time()
            if now < next_at:
                time.sleep(min(next_at - now, 0.05))
                continue
            next_at = max(next_at + interval, now - 1.0)  # never build a backlog of more than a second
            getattr(self, self.rng.choices(self.ops, self.weights)[0])()
            self.job_step()
            if time.time() - self.last_flush >= 2.0:
                self.flush()
        self.stop_own_job()
        verified = 0
        for key in list(self.ledger):  # every acknowledged write must read back intact
            data = self.timed(
                "verify_write", lambda key=key: self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            )
            if data is not None and hashlib.sha256(data).hexdigest() != self.ledger[key]:
                self.records[-1].outcome = "error"
                self.records[-1].detail = f"acknowledged write {key} reads back different"
            elif data is None and self.records[-1].outcome != "conn":
                self.records[-1].detail = f"acknowledged write {key} is gone: {self.records[-1].detail}"
            verified += 1
        self.flush(final=True)
        self.out.put(("done", self.cfg.index, {"acknowledged_writes": verified}))


# ---- the server ---------------------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    root: Path
    pid: int
    own: Any = None  # the ServerProcess the bench started (None: someone else's)
    lives: list[tuple[float, int]] = field(default_factory=list)  # (started at, pid)

    def sample(self) -> tuple[float, int, int] | None:
        import psutil

        try:
            proc = psutil.Process(self.pid)
            return proc.memory_info().rss / 2**20, proc.num_fds(), proc.num_threads()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None


def attach_to_server(root: Path) -> Server:
    from iris_sagemaker.serve.lockfile import running_server

    info = running_server(root)
    if info is None:
        raise SystemExit(f"no iris-sagemaker serve runs for --root {root}: start one (iris-sagemaker serve)")
    return Server(info["url"], root, int(info["pid"]))


def start_own_server(root: Path, job_delay: float, port: int = 0) -> Server:
    """``iris-sagemaker serve`` for ``root``; its job workers pause ``job_delay`` s at each checkpoint (the
    engine's test hook), so that jobs last seconds, as SageMaker's last minutes, and some are in flight."""
    from iris_sagemaker.local_sagemaker.jobs import TEST_DELAY_ENV
    from iris_sagemaker.serve.process import start_server

    env = {TEST_DELAY_ENV: str(job_delay)} if job_delay > 0 else {}
    process = start_server(root, env, port=port, timeout=90, owned=True)  # dies with the bench
    server = Server(process.url, root, process.process.pid, process)
    server.lives.append((time.time(), server.pid))
    return server


def boto(url: str, service: str) -> Any:
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id="soak", aws_secret_access_key="soak", region_name=REGION
    )
    return session.client(service, endpoint_url=url, config=Config(retries={"max_attempts": 3}))


def prepare(url: str, train_x: np.ndarray, train_y: np.ndarray) -> str:
    """The bucket, the training data, and the endpoint every client invokes (trained on that data); the
    name of the endpoint's training job (and model)."""
    from iris_sagemaker.local_sagemaker.images import knn_image_uri

    s3, sm = boto(url, "s3"), boto(url, "sagemaker")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket=BUCKET, Key="data/train.csv", Body=csv_bytes(train_y, train_x))
    s3.put_object(Bucket=BUCKET, Key="data/features.csv", Body=csv_bytes(train_x))
    existing = {e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]}
    if ENDPOINT in existing:
        sm.delete_endpoint(EndpointName=ENDPOINT)
    name = f"soak-endpoint-{int(time.time())}"
    sm.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": knn_image_uri(REGION), "TrainingInputMode": "File"},
        HyperParameters={
            "feature_dim": str(FEATURES),
            "k": str(K),
            "predictor_type": "classifier",
            "sample_size": str(len(train_y)),
        },
        InputDataConfig=[
            {
                "ChannelName": "train",
                "ContentType": "text/csv",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/data/train.csv"}
                },
            }
        ],
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/endpoint-model"},
        ResourceConfig={"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1},
        RoleArn=ROLE,
        StoppingCondition={"MaxRuntimeInSeconds": 600},
    )
    wait = {"Delay": 0.5, "MaxAttempts": 240}
    sm.get_waiter("training_job_completed_or_stopped").wait(TrainingJobName=name, WaiterConfig=wait)
    described = sm.describe_training_job(TrainingJobName=name)
    if described["TrainingJobStatus"] != "Completed":
        raise SystemExit(f"the endpoint's training job {name} ended {described['TrainingJobStatus']}")
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": knn_image_uri(REGION),
            "ModelDataUrl": described["ModelArtifacts"]["S3ModelArtifacts"],
        },
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=ENDPOINT, WaiterConfig=wait)
    return name


# ---- the measurements -------------------------------------------------------------------------------


@dataclass
class Window:
    index: int
    requests: int = 0
    unexpected: int = 0
    wrong: int = 0
    outage: int = 0
    expected: int = 0
    checked: int = 0
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    samples: list[tuple[float, float, int, int]] = field(default_factory=list)  # (t, rss MB, fds, threads)
    examples: list[str] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


class Soak:
    def __init__(self, args: argparse.Namespace, server: Server) -> None:
        self.args = args
        self.server = server
        self.window_s = float(args.window)
        self.windows: dict[int, Window] = {}
        self.start = 0.0
        self.kill: dict[str, Any] = {}
        self.outage: tuple[float, float] | None = None
        self.pending: list[dict[str, Any]] = []  # records held until the outage is known
        self.printed = -1
        self.client_summaries: dict[int, dict[str, Any]] = {}
        self.endpoint_job = ""

    def window(self, t: float) -> Window:
        index = max(0, min(int((t - self.start) // self.window_s), self.last_index()))
        return self.windows.setdefault(index, Window(index))

    def last_index(self) -> int:
        return max(0, round(self.args.minutes * 60 / self.window_s) - 1)

    def add(self, record: dict[str, Any]) -> None:
        w = self.window(record["start"])
        outcome = record["outcome"]
        if outcome == "conn" and self.in_outage(record["start"]):
            w.outage += 1
            return
        if outcome == "lost":
            killed_at = self.kill.get("at")
            if killed_at is not None and record["created"] <= self.kill.get("up", killed_at):
                w.outage += 1
                return
            outcome = "error"
        if record["op"] not in ("training_job", "transform_job"):
            w.requests += 1
        w.checked += record.get("checked", 0)
        if outcome == "ok" or outcome == "expected":
            if outcome == "expected":
                w.expected += 1
            if record["latency"] > 0:
                w.latencies[record["op"]].append(record["latency"])
            return
        if outcome == "wrong":
            w.wrong += 1
        else:
            w.unexpected += 1
            w.errors[record["op"]] += 1
        if len(w.examples) < 5:
            w.examples.append(f"{record['op']}: {outcome}: {record['detail']}")

    def in_outage(self, t: float) -> bool:
        if "at" not in self.kill:
            return False
        end = self.kill.get("up", time.time()) + OUTAGE_GRACE_S
        return self.kill["at"] - 1.0 <= t <= end

    def sample(self) -> None:
        s = self.server.sample()
        if s is not None:
            self.window(time.time()).samples.append((time.time(), *s))

    # -- the printout --

    def print_window(self, w: Window) -> None:
        last = w.samples[-1] if w.samples else (0, float("nan"), 0, 0)
        label = (
            f"minute {w.index + 1}"
            if self.window_s == 60
            else f"window {w.index + 1} ({self.window_s:.0f} s)"
        )
        print(
            f"{label}: {w.requests} requests, {w.unexpected} unexpected errors, {w.wrong} wrong answers "
            f"({w.checked} predictions checked), {w.expected} expected errors"
            + (f", {w.outage} failed during the outage" if w.outage else "")
            + f"; server RSS {last[1]:.1f} MB, {last[2]} fds, {last[3]} threads",
            flush=True,
        )
        for op in sorted(w.latencies):
            values = w.latencies[op]
            print(
                f"    {op:24} {len(values):6d}  p50 {percentile(values, 0.5) * 1000:8.1f} ms  "
                f"p99 {percentile(values, 0.99) * 1000:8.1f} ms  errors {w.errors.get(op, 0)}",
                flush=True,
            )
        for example in w.examples:
            print(f"    ! {example}", flush=True)

    # -- the verdict --

    def verdict(self) -> dict[str, Any]:
        ordered = [self.windows[i] for i in sorted(self.windows)]
        first, last = ordered[0], ordered[-1]
        unexpected = sum(w.unexpected for w in ordered)
        wrong = sum(w.wrong for w in ordered)
        checked = sum(w.checked for w in ordered)
        raw, too_few = {}, []
        for op, values in last.latencies.items():
            before = first.latencies.get(op, [])
            if len(values) >= BUSY and len(before) >= BUSY:
                raw[op] = percentile(values, 0.99) / percentile(before, 0.99)
            else:
                too_few.append(op)
        control = raw.pop(CONTROL, None)
        ratios = {op: r / control for op, r in raw.items()} if control else raw
        lives = self.lives()
        rss, fds, threads, judged = [], [], [], []
        slack_threads = self.args.clients + 4  # a job thread per client's chain, endpoint loaders
        slack_fds = 2 * self.args.clients + 8
        for samples in lives:
            if len(samples) < 4:
                continue
            base_t = samples[0][0] + self.window_s
            after = [s for s in samples if s[0] >= base_t]
            if len(after) < 2:
                continue
            # One sample a second. RSS swings by tens of MB within a window (a few 6 MB bodies and a job at
            # once, then the allocator's trim): a leak moves the window's median, so compare medians.
            # Descriptors and threads come and go with the requests and jobs in flight: compare peaks.
            first = [s for s in after if s[0] < base_t + self.window_s]
            last = [s for s in after if s[0] >= after[-1][0] - self.window_s]
            rss.append((statistics.median(s[1] for s in first), statistics.median(s[1] for s in last)))
            # A life too short for a window after the first and a last one apart from it (the first life
            # of a --kill run, 2.5 of 5 minutes) shows its warm-up, not a trend: printed, not judged.
            judged.append(after[-1][0] - base_t >= 2 * self.window_s)
            fds.append((max(s[2] for s in first), max(s[2] for s in last)))
            threads.append((max(s[3] for s in first), max(s[3] for s in last)))
        result = {
            "windows": len(ordered),
            "window_seconds": self.window_s,
            "requests": sum(w.requests for w in ordered),
            "unexpected_errors": unexpected,
            "wrong_answers": wrong,
            "predictions_checked": checked,
            "expected_errors": sum(w.expected for w in ordered),
            "failed_during_outage": sum(w.outage for w in ordered),
            "p99_ratio_last_to_first": ratios,
            "p99_ratio_raw": raw,
            "p99_ratio_control": control,
            "p99_not_judged": sorted(too_few),
            "p99_ok": all(r <= P99_RATIO_GOAL for r in ratios.values()) if ratios else None,
            "rss_mb": rss,
            "rss_growth": [(b - a) / a for a, b in rss] if rss else [],
            "fds": fds,
            "threads": threads,
            "fds_flat": all(b <= a + slack_fds for a, b in fds) if fds else None,
            "threads_flat": all(b <= a + slack_threads for a, b in threads) if threads else None,
            "kill": self.kill or None,
            "clients": self.client_summaries,
        }
        growth = [g for g, counted in zip(result["rss_growth"], judged, strict=True) if counted]
        result["rss_judged"] = judged
        result["rss_ok"] = all(g < RSS_GROWTH_GOAL for g in growth) if growth else None
        hard = (
            unexpected == 0
            and wrong == 0
            and result["fds_flat"] is not False
            and result["threads_flat"] is not False
        )
        if self.kill:
            hard = hard and self.kill.get("ok", False)
        result["hard_ok"] = hard
        result["all_ok"] = hard and result["p99_ok"] is not False and result["rss_ok"] is not False
        return result

    def lives(self) -> list[list[tuple[float, float, int, int]]]:
        samples = [s for i in sorted(self.windows) for s in self.windows[i].samples]
        if "at" not in self.kill:
            return [samples]
        return [
            [s for s in samples if s[0] < self.kill["at"]],
            [s for s in samples if s[0] > self.kill["up"]],
        ]


def print_verdict(v: dict[str, Any], args: argparse.Namespace) -> None:
    def mark(ok: bool | None) -> str:
        return "n/a " if ok is None else ("PASS" if ok else "FAIL")

    w = "minute" if v["window_seconds"] == 60 else f"{v['window_seconds']:.0f}-s window"
    print(
        f"\nverdict over {v['windows']} windows of {v['window_seconds']:.0f} s, {args.clients} client "
        f"processes at {args.rate:g} req/s each, {os.cpu_count()} cores:"
    )
    print(
        f"  [{mark(v['unexpected_errors'] == 0)}] unexpected errors: {v['unexpected_errors']} of "
        f"{v['requests']} requests ({v['expected_errors']} expected errors answered as asked)"
    )
    print(
        f"  [{mark(v['wrong_answers'] == 0)}] wrong answers: {v['wrong_answers']} "
        f"({v['predictions_checked']} predictions checked against the independent k-NN)"
    )
    ratios = ", ".join(f"{op} {r:.2f}x" for op, r in sorted(v["p99_ratio_last_to_first"].items()))
    control = v["p99_ratio_control"]
    against = f", relative to the control's {control:.2f}x" if control else " (no control: raw)"
    print(
        f"  [{mark(v['p99_ok'])}] p99 last {w} / first{against}, goal <= {P99_RATIO_GOAL}x: "
        f"{ratios or 'too few requests'}"
    )
    raw = ", ".join(f"{op} {r:.2f}x" for op, r in sorted(v["p99_ratio_raw"].items()))
    print(f"        raw: {raw}")
    if v["p99_not_judged"]:
        print(f"        not judged (under {BUSY} requests a {w}): {', '.join(v['p99_not_judged'])}")
    rss = "; ".join(
        f"{a:.1f} -> {b:.1f} MB ({(b - a) / a:+.1%}{'' if counted else ', too short a life to judge'})"
        for (a, b), counted in zip(v["rss_mb"], v["rss_judged"], strict=True)
    )
    print(
        f"  [{mark(v['rss_ok'])}] RSS growth after the first {w} (median of the next {w} -> of the last), "
        f"goal < {RSS_GROWTH_GOAL:.0%}: "
        f"{rss or 'n/a'}"
    )
    fds = "; ".join(f"{a} -> {b}" for a, b in v["fds"])
    threads = "; ".join(f"{a} -> {b}" for a, b in v["threads"])
    print(f"  [{mark(v['fds_flat'])}] open file descriptors flat (peaks: next {w} -> last): {fds or 'n/a'}")
    print(f"  [{mark(v['threads_flat'])}] threads flat (peaks, as above): {threads or 'n/a'}")
    kill = v.get("kill")
    if kill:
        print(
            f"  [{mark(kill.get('ok'))}] kill -9 at {kill['at_s']:.0f} s, serving again after "
            f"{kill['down_s']:.1f} s: {kill['in_flight']} jobs in flight -> {kill['ended']}; "
            f"{kill['still_in_progress']} left InProgress; {kill['without_reason']} Failed without a reason; "
            f"endpoint {kill['endpoint']}; {kill['acknowledged_writes']} acknowledged S3 writes read back, "
            f"{kill['lost_writes']} lost; {v['failed_during_outage']} requests failed during the outage"
        )
    print(
        "  overall: "
        + (
            "all goals met"
            if v["all_ok"]
            else "hard goals met (latency/RSS goals missed)"
            if v["hard_ok"]
            else "FAILED"
        ),
        flush=True,
    )


# ---- the run ------------------------------------------------------------------------------------------


def kill_and_restart(soak: Soak) -> None:
    """SIGKILL the server mid-load, restart it on the same root and port; note the jobs in flight."""
    server = soak.server
    sm = boto(server.url, "sagemaker")
    start_witnesses(sm, soak.endpoint_job)  # two long jobs certain to be in flight
    in_flight = []
    with contextlib.suppress(Exception):
        for job in sm.list_training_jobs(StatusEquals="InProgress", MaxResults=100)["TrainingJobSummaries"]:
            in_flight.append(("training", job["TrainingJobName"]))
        for job in sm.list_transform_jobs(StatusEquals="InProgress", MaxResults=100)["TransformJobSummaries"]:
            in_flight.append(("transform", job["TransformJobName"]))
    soak.kill["at"] = time.time()
    soak.kill["at_s"] = soak.kill["at"] - soak.start
    os.kill(server.pid, signal.SIGKILL)
    server.own.process.wait(30)
    port = int(server.url.rsplit(":", 1)[1])
    deadline = time.time() + 60
    while True:
        try:
            restarted = start_own_server(server.root, soak.args.job_delay, port=port)
            break
        except RuntimeError:
            if time.time() > deadline:
                raise
            time.sleep(0.5)
    soak.kill["up"] = time.time()
    soak.kill["down_s"] = soak.kill["up"] - soak.kill["at"]
    server.pid, server.own = restarted.pid, restarted.own
    server.lives.append((soak.kill["up"], server.pid))
    soak.kill["in_flight_names"] = in_flight
    soak.kill["in_flight"] = len(in_flight)
    print(
        f"-- kill -9 of the server at {soak.kill['at_s']:.0f} s; serving again (pid {restarted.pid}) "
        f"after {soak.kill['down_s']:.1f} s; {len(in_flight)} jobs were in flight",
        flush=True,
    )


def start_witnesses(sm: Any, model: str) -> None:
    """A training job of one record per mini-batch and a transform of one record per request over the
    150 training rows: 150 checkpoints each, so both are running when the server is killed."""
    from iris_sagemaker.local_sagemaker.images import knn_image_uri

    stamp = int(time.time())
    sm.create_training_job(
        TrainingJobName=f"soak-witness-train-{stamp}",
        AlgorithmSpecification={"TrainingImage": knn_image_uri(REGION), "TrainingInputMode": "File"},
        HyperParameters={
            "feature_dim": str(FEATURES),
            "k": str(K),
            "predictor_type": "classifier",
            "sample_size": "150",
            "mini_batch_size": "1",
        },
        InputDataConfig=[
            {
                "ChannelName": "train",
                "ContentType": "text/csv",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/data/train.csv"}
                },
            }
        ],
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/witness"},
        ResourceConfig={"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1},
        RoleArn=ROLE,
        StoppingCondition={"MaxRuntimeInSeconds": 600},
    )
    sm.create_transform_job(
        TransformJobName=f"soak-witness-transform-{stamp}",
        ModelName=model,
        BatchStrategy="SingleRecord",
        TransformInput={
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/data/features.csv"}
            },
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={"S3OutputPath": f"s3://{BUCKET}/witness"},
        TransformResources={"InstanceCount": 1, "InstanceType": "ml.m5.large"},
    )
    time.sleep(0.5)  # past their first checkpoint


def check_after_kill(soak: Soak, acknowledged: int, lost: int) -> None:
    """Every job in flight at the kill ended Failed or Stopped with a reason; none InProgress; the
    endpoint is there and answers; every acknowledged write reads back (counted by the clients)."""
    sm = boto(soak.server.url, "sagemaker")
    ended: dict[str, int] = defaultdict(int)
    still, without_reason, completed_after = 0, 0, 0
    for kind, name in soak.kill["in_flight_names"]:
        if kind == "training":
            d = sm.describe_training_job(TrainingJobName=name)
            status, end = d["TrainingJobStatus"], d.get("TrainingEndTime")
        else:
            d = sm.describe_transform_job(TransformJobName=name)
            status, end = d["TransformJobStatus"], d.get("TransformEndTime")
        if status == "Completed" and end is not None and end.timestamp() <= soak.kill["at"]:
            status = "Completed before the kill"  # it ended between the look and the kill: not in flight
        ended[status] += 1
        if status in ("InProgress", "Stopping"):
            still += 1
        elif status == "Failed" and not d.get("FailureReason"):
            without_reason += 1
        elif status == "Completed":
            completed_after += 1
    everything = sm.list_training_jobs(StatusEquals="InProgress", MaxResults=100)["TrainingJobSummaries"]
    everything += sm.list_transform_jobs(StatusEquals="InProgress", MaxResults=100)["TransformJobSummaries"]
    endpoint = sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointStatus"]
    labels, features = iris_like(seed=7)
    answer = (
        boto(soak.server.url, "sagemaker-runtime")
        .invoke_endpoint(EndpointName=ENDPOINT, Body=csv_bytes(features), ContentType="text/csv")["Body"]
        .read()
    )
    expected, clear = reference_knn(features, labels, features)
    answers_right = bool(((np.asarray(json_predictions(answer)) == expected) | ~clear).all())
    soak.kill.update(
        ended=dict(ended) or "none",
        still_in_progress=still + len(everything),
        without_reason=without_reason,
        endpoint=f"{endpoint}, " + ("answering right" if answers_right else "answering WRONG"),
        acknowledged_writes=acknowledged,
        lost_writes=lost,
    )
    soak.kill["ok"] = (
        still + len(everything) == 0
        and without_reason == 0
        and completed_after == 0
        and endpoint == "InService"
        and answers_right
        and lost == 0
    )
    soak.kill.pop("in_flight_names", None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--window", type=float, default=60.0, help="seconds per reported window")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rate", type=float, default=25.0, help="requests a second per client")
    parser.add_argument("--job-every", type=float, default=15.0, help="seconds between a client's job chains")
    parser.add_argument("--large-mb", type=float, nargs=2, default=(2.0, 6.0), metavar=("MIN", "MAX"))
    parser.add_argument(
        "--job-delay",
        type=float,
        default=0.5,
        help="seconds the bench's own server pauses at each job checkpoint (jobs last seconds)",
    )
    parser.add_argument("--kill", action="store_true", help="kill -9 the server halfway and restart it")
    parser.add_argument("--root", type=Path, help="drive the server already running for this root")
    parser.add_argument("--json", type=Path, help="write the figures and the verdict here")
    args = parser.parse_args()
    if args.minutes * 60 < 2 * args.window:
        parser.error("--minutes must cover at least two --window periods")
    if args.kill and args.root:
        parser.error("--kill restarts the server: it needs the bench's own server (no --root)")

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)  # SIGTERM too: stop the clients and the server on the way out
    labels, features = iris_like(seed=7)
    work = tempfile.TemporaryDirectory(prefix="iris-soak-")
    server = (
        attach_to_server(args.root)
        if args.root
        else start_own_server(Path(work.name) / "root", args.job_delay)
    )
    context = multiprocessing.get_context("spawn")
    out, ready = context.Queue(), context.Queue()
    processes = []
    try:
        print(f"iris-sagemaker serve at {server.url} (pid {server.pid}); preparing the endpoint", flush=True)
        endpoint_job = prepare(server.url, features, labels)
        duration = args.minutes * 60
        start_at = time.time() + 3600  # set once every client is ready
        shared = context.Value("d", start_at)
        for index in range(args.clients):
            cfg = ClientConfig(
                server.url,
                index,
                args.rate,
                args.job_every,
                0.0,
                0.0,
                features,
                labels,
                tuple(args.large_mb),
                endpoint_job,
            )
            proc = context.Process(target=client_proc, args=(cfg, out, ready, shared, duration), daemon=True)
            proc.start()
            processes.append(proc)
        for _ in processes:
            ready.get(timeout=180)
        soak = Soak(args, server)
        soak.endpoint_job = endpoint_job
        soak.start = time.time() + 1.0
        shared.value = soak.start
        print(f"{args.clients} clients ready; {args.minutes:g} minutes of load from now", flush=True)
        end = soak.start + duration
        kill_at = soak.start + duration / 2 if args.kill else None
        done: dict[int, dict[str, Any]] = {}
        next_sample = 0.0
        while len(done) < len(processes):
            now = time.time()
            if now >= next_sample:
                soak.sample()
                next_sample = now + 1.0
            if kill_at is not None and now >= kill_at:
                kill_at = None
                kill_and_restart(soak)
            try:
                kind, index, payload = out.get(timeout=0.2)
            except queue.Empty:
                kind = None
            if kind == "records":
                if "at" in soak.kill and "up" not in soak.kill:
                    soak.pending.extend(payload)
                else:
                    for record in soak.pending + payload:
                        soak.add(record)
                    soak.pending = []
            elif kind == "done":
                done[index] = payload
            finished = int((time.time() - soak.start - 3.0) // soak.window_s)
            for i in range(soak.printed + 1, min(finished, soak.last_index() + 1)):
                soak.print_window(soak.windows.setdefault(i, Window(i)))
                soak.printed = i
            if time.time() > end + 300:
                print("clients did not finish within 5 minutes of the end", flush=True)
                break
        for record in soak.pending:
            soak.add(record)
        for i in range(soak.printed + 1, soak.last_index() + 1):
            soak.print_window(soak.windows.setdefault(i, Window(i)))
        soak.client_summaries = done
        if args.kill:
            acknowledged = sum(d.get("acknowledged_writes", 0) for d in done.values())
            lost = sum(w.errors.get("verify_write", 0) for w in soak.windows.values())
            check_after_kill(soak, acknowledged, lost)
        verdict = soak.verdict()
        print_verdict(verdict, args)
        if args.json:
            args.json.write_text(json.dumps(verdict, indent=2, default=str))
        return 0 if verdict["hard_ok"] else 1
    finally:
        for proc in processes:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        if server.own is not None:
            server.own.stop()
        work.cleanup()


def client_proc(cfg: ClientConfig, out: Any, ready: Any, shared: Any, duration: float) -> None:
    client = Client(cfg, out)
    try:
        client.setup()
    finally:
        ready.put(cfg.index)
    while shared.value > time.time() + 1800:  # the parent sets the common start once all are ready
        time.sleep(0.01)
    cfg.start_at = shared.value
    cfg.end_at = shared.value + duration
    client.run()


if __name__ == "__main__":
    sys.exit(main())
