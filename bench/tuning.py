"""A hyperparameter tuning job against the same training jobs run one after another, measured in one run.

    .venv/bin/python bench/tuning.py [--trials 20] [--parallel 4] [--repeats 5] [--rows 0]
                                     [--mode both|in-process|http] [--poll 0.01]

On one data set (the tutorial's Iris split by default, 105 training and 45 test rows; ``--rows N``: N
generated training rows, d=4, three classes, and N/4 test rows), each repetition times, interleaved (the
order alternates), until DescribeX says the job ended:

(a) Bayesian: one CreateHyperParameterTuningJob of ``--trials`` training jobs, ``--parallel`` at a time,
    tuning ``k`` (1-60) on ``test:accuracy`` with ``train`` and ``test`` channels (optuna's TPE);
(b) Random: the same with the Random strategy (its proposals cost next to nothing);
(c) sequential: ``--trials`` plain CreateTrainingJob calls of the same definition, channels and static
    hyperparameters, one after another, with the ``k`` values of a warm-up tuning job (so (c) does the
    same work as a tuning job: each job also scores the test channel).

Both ways a client reaches the engine, one after the other: ``in-process`` through ``LocalSageMakerClient``
(the engine's jobs run in this process), ``http`` through boto3 against ``iris-sagemaker serve``, which the
bench starts on a free port and stops. Clients poll Describe every ``--poll`` seconds (the tuning job
itself looks at its running trials every 50 ms). It checks that (c) gets, for each ``k``, the objective
the warm-up's trial got, then prints the medians, the ratios (a)/(c) and (b)/(c) (below 1: tuning was
faster than the same jobs in a row) and the median time per training job. The machine may be shared: read
the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import numpy as np
from botocore.config import Config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from iris_sagemaker.local_sagemaker import LocalSageMakerClient  # noqa: E402
from iris_sagemaker.local_sagemaker.testing import to_csv, training_request, wait_for  # noqa: E402
from iris_sagemaker.serve.process import start_server  # noqa: E402

BUCKET = "bench-tuning"
REGION = "us-east-2"
STATIC = {"feature_dim": "4", "predictor_type": "classifier"}
K_RANGE = {"IntegerParameterRanges": [{"Name": "k", "MinValue": "1", "MaxValue": "60"}]}


# ---- data -----------------------------------------------------------------------------------------


def dataset(rows: int) -> tuple[bytes, bytes, int]:
    """train.csv and test.csv (label first, no header) and the number of training rows."""
    if rows <= 0:
        from iris_sagemaker.core import dataset as iris

        _, data = iris.read_source(None)
        split = iris.split(iris.parse_iris(data), seed=42)
        train = split.train.to_numpy(np.float32)
        test = np.column_stack([split.test_labels.to_numpy(np.float32), split.test_features.to_numpy()])
        return to_csv(train[:, 0], train[:, 1:]), to_csv(test[:, 0], test[:, 1:]), len(train)
    rng = np.random.default_rng(22)
    centers = np.array([[6.6, 3.0, 5.6, 2.0], [5.9, 2.8, 4.3, 1.3], [5.0, 3.4, 1.5, 0.2]])

    def block(n: int) -> bytes:
        labels = rng.integers(0, 3, n)
        features = np.round(centers[labels] + rng.normal(scale=0.3, size=(n, 4)), 3)
        return to_csv(labels.astype(np.float32), features.astype(np.float32))

    return block(rows), block(max(1, rows // 4)), rows


# ---- the two clients --------------------------------------------------------------------------------


class Engine:
    """Where the requests go: ``sm`` (LocalSageMakerClient or boto3's), ``put`` for an object."""

    def __init__(self, sm: Any, put: Callable[[str, bytes], None]) -> None:
        self.sm = sm
        self.put = put


def in_process(root: Path) -> Engine:
    client = LocalSageMakerClient(root, region=REGION)

    def put(key: str, body: bytes) -> None:
        path = root / "s3" / BUCKET / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)

    return Engine(client, put)


def over_http(url: str) -> Engine:
    session = boto3.session.Session(aws_access_key_id="b", aws_secret_access_key="b", region_name=REGION)
    config = Config(retries={"max_attempts": 1}, max_pool_connections=4)
    s3 = session.client("s3", endpoint_url=url, config=config)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return Engine(
        session.client("sagemaker", endpoint_url=url, config=config),
        lambda key, body: s3.put_object(Bucket=BUCKET, Key=key, Body=body),
    )


# ---- the measurements -------------------------------------------------------------------------------


def _definition(rows: int) -> dict[str, Any]:
    request = training_request(
        "unused",
        f"s3://{BUCKET}/data/train/",
        f"s3://{BUCKET}/out",
        test_uri=f"s3://{BUCKET}/data/test/",
    )
    definition = {
        key: request[key]
        for key in ("RoleArn", "InputDataConfig", "OutputDataConfig", "ResourceConfig", "StoppingCondition")
    }
    definition["AlgorithmSpecification"] = request["AlgorithmSpecification"]
    definition["StaticHyperParameters"] = {**STATIC, "sample_size": str(rows)}  # every row kept
    return definition


def tune(engine: Engine, name: str, strategy: str, rows: int, trials: int, parallel: int, poll: float):
    """Seconds from CreateHyperParameterTuningJob until Describe says it ended; its trials' k -> value."""
    sm = engine.sm
    start = time.perf_counter()
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name,
        HyperParameterTuningJobConfig={
            "Strategy": strategy,
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "test:accuracy"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": trials, "MaxParallelTrainingJobs": parallel},
            "ParameterRanges": K_RANGE,
        },
        TrainingJobDefinition=_definition(rows),
    )
    described = wait_for(
        lambda: sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
        "HyperParameterTuningJobStatus",
        timeout=600,
        interval=poll,
    )
    seconds = time.perf_counter() - start
    if described["HyperParameterTuningJobStatus"] != "Completed":
        raise RuntimeError(
            f"{name}: {described['HyperParameterTuningJobStatus']} {described.get('FailureReason')}"
        )
    summaries = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name, MaxResults=100
    )["TrainingJobSummaries"]
    if len(summaries) != trials or any(s["TrainingJobStatus"] != "Completed" for s in summaries):
        raise RuntimeError(f"{name}: not {trials} completed training jobs: {summaries}")
    values = [
        (int(s["TunedHyperParameters"]["k"]), s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])
        for s in summaries
    ]
    return seconds, values


def sequential(engine: Engine, prefix: str, rows: int, ks: list[int], poll: float):
    """Seconds for one plain training job per k, each created once the previous one completed."""
    sm = engine.sm
    definition = _definition(rows)
    values = []
    start = time.perf_counter()
    for number, k in enumerate(ks, 1):
        name = f"{prefix}-{number:03d}"
        request = {key: value for key, value in definition.items() if key != "StaticHyperParameters"}
        hyperparameters = {**definition["StaticHyperParameters"], "k": str(k)}
        sm.create_training_job(TrainingJobName=name, HyperParameters=hyperparameters, **request)
        described = wait_for(
            lambda name=name: sm.describe_training_job(TrainingJobName=name),
            "TrainingJobStatus",
            timeout=600,
            interval=poll,
        )
        if described["TrainingJobStatus"] != "Completed":
            raise RuntimeError(f"{name}: {described['TrainingJobStatus']} {described.get('FailureReason')}")
        metrics = {m["MetricName"]: m["Value"] for m in described["FinalMetricDataList"]}
        values.append((k, metrics["test:accuracy"]))
    return time.perf_counter() - start, values


def measure(label: str, engine: Engine, args: argparse.Namespace) -> dict[str, float]:
    train, test, rows = dataset(args.rows)
    engine.put("data/train/train.csv", train)
    engine.put("data/test/test.csv", test)
    # Warm-up (imports, optuna, caches); its k values are what (c) trains.
    _, warm = tune(engine, "warm-up", "Bayesian", rows, args.trials, args.parallel, args.poll)
    ks = [k for k, _ in warm]
    expected = dict(warm)
    times: dict[str, list[float]] = {"Bayesian": [], "Random": [], "sequential": []}
    for repeat in range(args.repeats):
        order = list(times) if repeat % 2 == 0 else list(reversed(times))
        for which in order:
            if which == "sequential":
                seconds, values = sequential(engine, f"seq-{repeat}", rows, ks, args.poll)
                wrong = [(k, v, expected[k]) for k, v in values if v != expected[k]]
                if wrong:
                    raise RuntimeError(f"plain jobs' objective differs from the tuning trials': {wrong}")
            else:
                name = f"{which.lower()}-{repeat}"
                seconds, _ = tune(engine, name, which, rows, args.trials, args.parallel, args.poll)
            times[which].append(seconds)
        shown = ", ".join(f"{which} {t[-1]:.2f}s" for which, t in times.items())
        print(f"  {label} run {repeat + 1}: {shown}", flush=True)
    return {which: statistics.median(t) for which, t in times.items()}


# ---- main ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows", type=int, default=0, help="generated training rows (0: the Iris split)")
    parser.add_argument("--mode", choices=("both", "in-process", "http"), default="both")
    parser.add_argument("--poll", type=float, default=0.01, help="seconds between a client's Describe calls")
    args = parser.parse_args()
    if args.trials < 1 or not 1 <= args.parallel <= args.trials or args.repeats < 1:
        parser.error("need --trials >= 1, 1 <= --parallel <= --trials and --repeats >= 1")

    data = "the Iris split (105 training rows, 45 test)" if args.rows <= 0 else f"{args.rows} rows, d=4"
    print(
        f"{args.trials} training jobs on {data}: one tuning job, {args.parallel} at a time, against the same "
        f"jobs one after another; {args.repeats} runs, interleaved; {os.cpu_count()} cores"
    )
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-tuning-") as work:
        if args.mode in ("both", "in-process"):
            results["in-process"] = measure("in-process", in_process(Path(work) / "in-process"), args)
        if args.mode in ("both", "http"):
            server = start_server(
                Path(work) / "http", {"IRIS_SAGEMAKER_CACHE_DIR": str(Path(work) / "cache")}
            )
            try:
                results["http"] = measure("http", over_http(server.url), args)
            finally:
                server.stop()

    print(f"\nmedian wall time of {args.trials} training jobs (per job in brackets):")
    heads = ("(a) Bayesian", "(b) Random", "(c) sequential")
    print(f"{'client':12} " + " ".join(f"{h:>20}" for h in heads) + f" {'(a)/(c)':>8} {'(b)/(c)':>8}")
    for label, medians in results.items():
        cells = [f"{medians[w]:.2f}s ({medians[w] / args.trials * 1000:.0f} ms)" for w in medians]
        base = medians["sequential"]
        print(
            f"{label:12} {cells[0]:>20} {cells[1]:>20} {cells[2]:>20} "
            f"{medians['Bayesian'] / base:8.2f} {medians['Random'] / base:8.2f}"
        )


if __name__ == "__main__":
    main()
