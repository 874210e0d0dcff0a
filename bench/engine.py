"""The embedded k-NN engine's batch transform against its floor, measured in one run.

    .venv/bin/python bench/engine.py [--repeats 3] [--rows4 1000000] [--rows64 200000] [--index 10000]
                                     [--rss-rows 1000000,4000000] [--work DIR]

For each shape (d=4 with 1M query rows, d=64 with 200k; a 10k-point index, k=3, three classes) it times,
on the same generated data and interleaved, repeated ``--repeats`` times (medians reported):

(a) engine: a full batch transform through ``LocalSageMakerClient`` (create_transform_job until describe
    says Completed: job record, model load, streamed parse, search, vote, formatted and atomically
    written output);
(b) floor: what any implementation must do: pandas' C parser on the whole file, the best exact search
    for the shape (scipy's kd-tree, faiss's flat scan and a BLAS brute force as scikit-learn's
    ``algorithm="brute"``: each is timed on a sample first and the fastest one is used), a numpy vote
    and the JSON written with a label-table formatter, the last three in blocks of rows (no fsync, no
    job records, no validation; run in a worker thread like the engine's job).

It checks that (a) and (b) predict the same labels, prints each time and the ratio (a)/(b), and then the
peak RSS (VmHWM of a fresh child process) of a transform of each ``--rss-rows`` size at
d=4. The machine may be shared: read the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from iris_sagemaker.local_sagemaker import LocalSageMakerClient  # noqa: E402
from iris_sagemaker.local_sagemaker.testing import (  # noqa: E402
    model_request,
    training_request,
    transform_request,
    wait_for,
)

BUCKET = "bench"
K = 3


# ---- data -----------------------------------------------------------------------------------------


def _rows(rng: np.random.Generator, centers: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, len(centers), n)
    features = centers[labels] + rng.normal(scale=1.0, size=(n, centers.shape[1]))
    return labels.astype(np.float32), np.round(features, 3).astype(np.float32)


def _write_csv(path: Path, *blocks: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = np.hstack([b.reshape(len(b), -1) for b in blocks])
    pd.DataFrame(table).to_csv(path, header=False, index=False, float_format="%.3f")


def _write_queries(path: Path, rng: np.random.Generator, centers: np.ndarray, n: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        for start in range(0, n, 500_000):
            _, features = _rows(rng, centers, min(500_000, n - start))
            fh.write(pd.DataFrame(features).to_csv(header=False, index=False, float_format="%.3f").encode())


class Shape:
    def __init__(self, root: Path, d: int, rows: int, index_rows: int, seed: int) -> None:
        self.d, self.rows = d, rows
        rng = np.random.default_rng(seed)
        self.centers = rng.normal(scale=2.0, size=(3, d))
        self.train_labels, self.train_features = _rows(rng, self.centers, index_rows)
        self.train_key = f"d{d}/train/train.csv"
        _write_csv(root / "s3" / BUCKET / self.train_key, self.train_labels, self.train_features)
        self.input_key = f"d{d}/in/test.csv"
        self.input_path = root / "s3" / BUCKET / self.input_key
        _write_queries(self.input_path, rng, self.centers, rows)
        self.rng = rng


# ---- (a) the engine --------------------------------------------------------------------------------


def train_model(client: LocalSageMakerClient, shape: Shape, index_rows: int) -> str:
    name = f"bench-train-d{shape.d}"
    hyper = {"feature_dim": str(shape.d), "k": str(K), "predictor_type": "classifier"}
    hyper["sample_size"] = str(index_rows)
    request = training_request(name, f"s3://{BUCKET}/{shape.train_key}", f"s3://{BUCKET}/models", hyper)
    client.create_training_job(**request)
    job = wait_for(lambda: client.describe_training_job(TrainingJobName=name), "TrainingJobStatus", 600)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    model = f"bench-model-d{shape.d}"
    client.create_model(**model_request(model, job["ModelArtifacts"]["S3ModelArtifacts"]))
    return model


def run_engine(
    client: LocalSageMakerClient, model: str, input_key: str, tag: str
) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of this process's threads, output key) of one transform job."""
    name = f"bench-{tag}-{time.time_ns()}"
    out_prefix = f"out/{name}"
    cpu = time.process_time()
    start = time.perf_counter()
    client.create_transform_job(
        **transform_request(name, model, f"s3://{BUCKET}/{input_key}", f"s3://{BUCKET}/{out_prefix}")
    )
    job = wait_for(
        lambda: client.describe_transform_job(TransformJobName=name), "TransformJobStatus", 3600, 0.02
    )
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    return elapsed, cpu, f"{out_prefix}/{input_key.rpartition('/')[2]}.out"


# ---- (b) the floor ---------------------------------------------------------------------------------


FLOOR_BLOCK = 16384  # query rows per search call: blocks that stay in cache beat one huge call
FLOOR_ROWS = 262144  # rows per search + vote + format step of the floor


def kd_tree_search(base: np.ndarray, queries: np.ndarray) -> np.ndarray:
    tree = cKDTree(base.astype(np.float64))
    return np.concatenate(
        [
            tree.query(queries[i : i + FLOOR_BLOCK].astype(np.float64), k=K, workers=-1)[1]
            for i in range(0, len(queries), FLOOR_BLOCK)
        ]
    )


def faiss_search(base: np.ndarray, queries: np.ndarray) -> np.ndarray:
    index = faiss.IndexFlatL2(base.shape[1])
    index.add(np.ascontiguousarray(base, dtype=np.float32))
    return np.concatenate(
        [index.search(queries[i : i + FLOOR_BLOCK], K)[1] for i in range(0, len(queries), FLOOR_BLOCK)]
    )


def blas_search(base: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Brute force the way scikit-learn's ``algorithm="brute"`` does it (|y|^2 - 2 x.y by BLAS, then an
    argpartition of each row), in float32 and in cache-sized blocks: the issue's other exact floor."""
    points = np.ascontiguousarray(base, dtype=np.float32)
    norms = np.einsum("ij,ij->i", points, points)
    out = []
    for i in range(0, len(queries), 2048):
        distances = queries[i : i + 2048] @ points.T
        distances *= -2
        distances += norms
        nearest = np.argpartition(distances, K - 1, axis=1)[:, :K]
        order = np.take_along_axis(distances, nearest, 1).argsort(axis=1)
        out.append(np.take_along_axis(nearest, order, 1))
    return np.concatenate(out)


SEARCHES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "kd-tree": kd_tree_search,
    "faiss": faiss_search,
    "blas": blas_search,
}


def pick_search(shape: Shape, sample_rows: int) -> tuple[str, dict[str, float]]:
    """Time both exact methods on a sample of the shape's queries; the faster one is the floor's."""
    queries = pd.read_csv(shape.input_path, header=None, dtype=np.float32, nrows=sample_rows).to_numpy()
    queries = np.ascontiguousarray(queries)
    times: dict[str, float] = {}

    def measure() -> None:
        for name, search in SEARCHES.items():
            start = time.perf_counter()
            search(shape.train_features, queries)
            times[name] = time.perf_counter() - start

    thread = threading.Thread(target=measure)
    thread.start()
    thread.join()
    return min(times, key=times.__getitem__), times


def vote(neighbours: np.ndarray) -> np.ndarray:
    counts = (neighbours[:, :, None] == neighbours[:, None, :]).sum(axis=2)
    return neighbours[np.arange(len(neighbours)), counts.argmax(axis=1)]


def run_floor(shape: Shape, method: str, out_path: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of the floor, run in a worker thread as the engine's job is: faiss's
    flat scan (OpenMP + BLAS) runs quite differently there than in the main thread on this machine, and
    the floor must not be handicapped by that."""
    times: list[float] = []
    thread = threading.Thread(target=lambda: times.extend(_floor(shape, method, out_path)))
    thread.start()
    thread.join()
    return times[0], times[1]


def _floor(shape: Shape, method: str, out_path: Path) -> tuple[float, float]:
    cpu = time.process_time()
    start = time.perf_counter()
    queries = pd.read_csv(shape.input_path, header=None, dtype=np.float32, engine="c").to_numpy()
    queries = np.ascontiguousarray(queries)
    with open(out_path, "w", encoding="utf-8") as fh:
        fh.write('{"predictions": [')
        for begin in range(0, len(queries), FLOOR_ROWS):  # cache-sized blocks: no huge temporaries
            ids = SEARCHES[method](shape.train_features, queries[begin : begin + FLOOR_ROWS])
            predicted = vote(shape.train_labels[ids])
            distinct, inverse = np.unique(predicted, return_inverse=True)
            table = np.array([f'{{"predicted_label": {float(v)!r}}}' for v in distinct], dtype=object)
            fh.write((", " if begin else "") + ", ".join(table[inverse].tolist()))
        fh.write("]}")
    return time.perf_counter() - start, time.process_time() - cpu


def _labels_of(data: bytes) -> np.ndarray:
    decoder = json.JSONDecoder()
    text, pos, out = data.decode(), 0, []
    while pos < len(text):
        doc, pos = decoder.raw_decode(text, pos)
        out.extend(p["predicted_label"] for p in doc["predictions"])
    return np.array(out, dtype=np.float32)


# ---- peak RSS in a fresh process -------------------------------------------------------------------

_CHILD = """
import json, sys, time
sys.path.insert(0, {repo!r})
from iris_sagemaker.local_sagemaker import LocalSageMakerClient
from iris_sagemaker.local_sagemaker.testing import transform_request, wait_for
client = LocalSageMakerClient({root!r})
name = "bench-rss-" + str(time.time_ns())
start = time.perf_counter()
client.create_transform_job(**transform_request(
    name, {model!r}, "s3://{bucket}/{key}", "s3://{bucket}/out/" + name))
job = wait_for(lambda: client.describe_transform_job(TransformJobName=name), "TransformJobStatus", 3600, 0.05)
seconds = time.perf_counter() - start
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1]
print(json.dumps({{"status": job["TransformJobStatus"], "seconds": seconds, "hwm_kib": int(hwm)}}))
"""


def rss_transform(root: Path, model: str, key: str) -> tuple[int, float]:
    """(peak RSS in bytes, seconds) of one transform in a fresh child process.

    The peak is the child's own VmHWM (/proc/self/status): ru_maxrss from wait4 would also count the
    parent's RSS, because subprocess starts the child with vfork and Linux carries the high-water mark
    of the address space it replaces across exec."""
    code = _CHILD.format(repo=str(REPO), root=str(root), model=model, bucket=BUCKET, key=key)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    output = proc.stdout.read()
    assert proc.wait() == 0, output
    result = json.loads(output.strip().splitlines()[-1])
    assert result["status"] == "Completed", result
    return result["hwm_kib"] * 1024, result["seconds"]


# ---- main ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows4", type=int, default=1_000_000)
    parser.add_argument("--rows64", type=int, default=200_000)
    parser.add_argument("--index", type=int, default=10_000)
    parser.add_argument("--rss-rows", default="1000000,4000000")
    parser.add_argument("--sample", type=int, default=10_000, help="query rows timing both exact methods")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()

    work = Path(args.work or tempfile.mkdtemp(prefix="bench-engine-"))
    root = work / "local-root"
    client = LocalSageMakerClient(root)
    print(f"work folder {work}; {os.cpu_count()} cores; faiss threads {faiss.omp_get_max_threads()}")
    ratios = {}
    shapes = {}
    for d, rows, seed in ((4, args.rows4, 4), (64, args.rows64, 64)):
        shape = shapes[d] = Shape(root, d, rows, args.index, seed)
        model = train_model(client, shape, args.index)
        method, sample_times = pick_search(shape, min(args.sample, rows))
        sampled = ", ".join(f"{name} {t:.2f}s" for name, t in sample_times.items())
        print(f"\nd={d}: {rows} query rows, {args.index}-point index, k={K}")
        print(f"  exact search on {min(args.sample, rows)} sample rows: {sampled} -> floor uses {method}")
        engine_times, floor_times, engine_cpu, floor_cpu = [], [], [], []
        floor_out = work / f"floor-d{d}.json"
        for repeat in range(args.repeats):
            order = ("engine", "floor") if repeat % 2 == 0 else ("floor", "engine")
            for which in order:
                if which == "engine":
                    seconds, cpu, out_key = run_engine(client, model, shape.input_key, f"d{d}")
                    engine_times.append(seconds)
                    engine_cpu.append(cpu)
                    if repeat == 0:
                        engine_labels = _labels_of(client.store.get_bytes(BUCKET, out_key))
                    client.store.path_for(BUCKET, out_key).unlink()
                else:
                    seconds, cpu = run_floor(shape, method, floor_out)
                    floor_times.append(seconds)
                    floor_cpu.append(cpu)
            print(
                f"  run {repeat + 1}: engine {engine_times[-1]:.2f}s (cpu {engine_cpu[-1]:.2f}s), "
                f"floor {floor_times[-1]:.2f}s (cpu {floor_cpu[-1]:.2f}s)",
                flush=True,
            )
        floor_labels = _labels_of(floor_out.read_bytes())
        agree = float((engine_labels == floor_labels).mean()) if len(engine_labels) == rows else 0.0
        engine, floor = statistics.median(engine_times), statistics.median(floor_times)
        ratios[d] = engine / floor
        print(f"  predictions identical to the floor's: {agree:.6f} of {rows} rows")
        print(f"  median (a) engine {engine:.2f}s  (b) floor {floor:.2f}s  ratio (a)/(b) {ratios[d]:.3f}")
        cpu_ratio = statistics.median(engine_cpu) / statistics.median(floor_cpu)
        print(
            f"  median CPU (a) {statistics.median(engine_cpu):.2f}s  (b) {statistics.median(floor_cpu):.2f}s"
            f"  ratio {cpu_ratio:.3f}  (CPU time is less sensitive to other load on the machine)"
        )

    print("\npeak RSS of a transform in a fresh process (d=4, default MaxPayloadInMB 6):")
    shape4 = shapes[4]
    rss = {}
    for n in (int(x) for x in args.rss_rows.split(",")):
        key = f"rss/{n}/test.csv"
        _write_queries(root / "s3" / BUCKET / key, np.random.default_rng(n), shape4.centers, n)
        rss[n], seconds = rss_transform(root, "bench-model-d4", key)
        print(f"  {n} rows: peak RSS {rss[n] / 2**20:.1f} MiB ({seconds:.2f}s)", flush=True)
    sizes = sorted(rss)
    print("\nsummary:")
    for d, ratio in ratios.items():
        target = 1.0 if d <= 8 else 1.25
        print(f"  d={d}: ratio (a)/(b) = {ratio:.3f} (median wall time; target <= {target})")
    if len(sizes) >= 2:
        grow = rss[sizes[-1]] / rss[sizes[0]]
        print(f"  RSS({sizes[-1]}) / RSS({sizes[0]}) = {grow:.3f} (target <= 1.2)")


if __name__ == "__main__":
    main()
