"""Peak memory of the full local pipeline on a big input, against the same run on a small one.

    .venv/bin/python bench/memory.py [--rows 2000000] [--small-rows 1000] [--repeats 1] [--keep]

Writes two Iris-shaped UCI CSVs (``--small-rows`` and ``--rows`` rows: the 150 real rows resampled with
small noise, as bench/orchestration.py's big input) and runs the whole pipeline on each,
``dagster asset materialize -m iris_sagemaker --select '*'`` on the local backend with
``IRIS_SAGEMAKER_DATA_URL=file://...``, in a fresh process with a fresh local root and Dagster home,
interleaved and repeated ``--repeats`` times. The figure is each run's peak RSS: the VmHWM of the
Dagster process (read from /proc/self/status as it exits; the in-process executor runs every step in it,
the engine's jobs and the endpoint included), and the peak of any child process it waited for.

It prints both peaks, what the big run adds over the small one, and that as a multiple of the big
input's size: the ratio the performance issue asks for (<= 2; moonshot <= 1). Each run must succeed
(every blocking check passed) and score its whole test split. Memory does not depend on the machine's
load the way time does, but the repeats show how steady it is.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from orchestration import _env, write_big_iris  # noqa: E402

# Runs the Dagster CLI in this process and reports its own peak RSS (VmHWM: this address space's high-water
# mark since exec, unaffected by the parent that spawned it) and that of the children it waited for.
_RUN = """
import atexit, json, resource, sys

REPORT = sys.argv[1]

def report():
    hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:")).split()[1]
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with open(REPORT, "w") as fh:
        json.dump({"hwm_kib": int(hwm), "children_kib": children}, fh)

atexit.register(report)
sys.argv = ["dagster", "asset", "materialize", "-m", "iris_sagemaker", "--select", "*"]
from dagster._cli import main
sys.exit(main())
"""


def run_pipeline(work: Path, name: str, data: Path) -> dict:
    """One full pipeline run on ``data``; its peak RSS and what it scored."""
    folder = work / name
    shutil.rmtree(folder, ignore_errors=True)
    env = _env(folder, IRIS_SAGEMAKER_DATA_URL=data.as_uri())
    report = folder / "peak.json"
    done = subprocess.run(
        [sys.executable, "-c", _RUN, str(report)], env=env, cwd=REPO, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-6000:])
        raise SystemExit(f"the pipeline failed on {data.name} ({done.returncode})")
    peak = json.loads(report.read_text())
    scored = _scored_rows(folder / "local-root")
    return {"peak": max(peak["hwm_kib"], peak["children_kib"]) * 1024, "scored": scored}


def _scored_rows(root: Path) -> int:
    """Rows of the published scored table: the run scored (and passed its accuracy check) on all of them."""
    [table] = root.glob("s3/*/iris/evaluation/test_predictions.csv")
    with open(table, "rb") as fh:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b"")) - 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--small-rows", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    if min(args.rows, args.small_rows) < 150:
        parser.error("both inputs need at least 150 rows (a stratified split needs rows)")
    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    try:
        inputs = {"small": work / "small-iris.csv", "big": work / "big-iris.csv"}
        write_big_iris(inputs["small"], args.small_rows)
        write_big_iris(inputs["big"], args.rows)
        sizes = {name: path.stat().st_size for name, path in inputs.items()}
        print(
            f"inputs: {args.small_rows} rows ({sizes['small'] / 2**10:.0f} KiB), {args.rows} rows "
            f"({sizes['big'] / 2**20:.1f} MiB); {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        peaks: dict[str, list[int]] = {"small": [], "big": []}
        for repeat in range(args.repeats):
            for name in ("small", "big") if repeat % 2 == 0 else ("big", "small"):
                result = run_pipeline(work, f"{name}-{repeat}", inputs[name])
                rows = args.small_rows if name == "small" else args.rows
                expected = rows - int(0.7 * rows)
                if result["scored"] != expected:
                    raise SystemExit(f"the {name} run scored {result['scored']} rows, expected {expected}")
                peaks[name].append(result["peak"])
                print(f"  run {repeat + 1} {name:5s}: peak RSS {result['peak'] / 2**20:7.1f} MiB", flush=True)
        small, big = statistics.median(peaks["small"]), statistics.median(peaks["big"])
        added = big - small
        print(
            f"peak RSS: {args.small_rows} rows {small / 2**20:.1f} MiB, {args.rows} rows "
            f"{big / 2**20:.1f} MiB; the big run adds {added / 2**20:.1f} MiB = "
            f"{added / sizes['big']:.2f}x the input's size (target <= 2, moonshot <= 1)"
        )
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
