"""Orchestration overhead of a local run, against the orchestrators' own floor, measured in one run.

    .venv/bin/python bench/orchestration.py [--runs 5] [--big-rows 1000000] [--skip-airflow]

Prints, for each orchestrator, the median wall time of the project's full local run and of a no-op
graph of the same shape on the same executor, and their ratio:
- Dagster: `dagster asset materialize --select '*'` of the project (local backend) vs seven no-op assets
  and a no-op check step (the project's shape).
  Two more lines separate what the project's start-up ``gc.freeze()`` (iris_sagemaker.core.startup_heap)
  saves from the project's own overhead: the project with the freeze off, and the no-op assets with it on.
- Airflow: `airflow dags test sagemaker_pipeline` vs a four-no-op-task DAG, same Airflow; and the parse
  of each DAG file alone (what the scheduler pays on every re-parse). The project's operators reach the
  engine through `iris-sagemaker serve`: "project" starts one for each run (no connection defined, as a
  user's first `airflow dags test`), "project, server running" uses one started beforehand (as with
  `iris-sagemaker serve` in another terminal).
Then runs the full Dagster pipeline on a generated Iris-shaped CSV of --big-rows rows
(IRIS_SAGEMAKER_DATA_URL=file://...) and reports its time and peak memory (RSS of the largest process).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _env(work: Path, **extra: str) -> dict[str, str]:
    home = work / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    # PYTHONDONTWRITEBYTECODE goes too: the site-packages of the floor were byte-compiled by pip, and
    # a developer's repeated local run finds this package's bytecode cached as well (the warm-up run
    # writes it).
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("IRIS_SAGEMAKER_", "AIRFLOW", "DAGSTER_")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    env.update(
        DAGSTER_HOME=str(home),
        IRIS_SAGEMAKER_LOCAL_ROOT=str(work / "local-root"),
        AIRFLOW_HOME=str(work / "airflow_home"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        PYTHONWARNINGS="ignore",
    )
    env.update(extra)
    return env


def _timed(command: list[str], env: dict[str, str], cwd: Path = REPO) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-2000:] + done.stderr[-4000:])
        raise SystemExit(f"command failed ({done.returncode}): {' '.join(command)}")
    return elapsed


def _medians(runs: int, pairs: dict[str, Callable[[], float]]) -> dict[str, float]:
    """Interleave the candidates run by run so machine noise hits all alike; one warm-up each."""
    for run in pairs.values():
        run()
    samples: dict[str, list[float]] = {name: [] for name in pairs}
    for _ in range(runs):
        for name, run in pairs.items():
            samples[name].append(run())
    return {name: statistics.median(values) for name, values in samples.items()}


def _report(title: str, medians: dict[str, float]) -> float:
    """The ratio asked for (project / floor), then the freeze's share, so neither hides the other."""
    ratio = medians["project"] / medians["floor"]
    print(f"{title}: project {medians['project']:.2f} s, floor {medians['floor']:.2f} s, ratio {ratio:.2f}")
    unfrozen, frozen = medians["unfrozen project"], medians["frozen floor"]
    print(
        f"  project with IRIS_SAGEMAKER_GC_FREEZE=0: {unfrozen:.2f} s, "
        f"ratio {unfrozen / medians['floor']:.2f}\n"
        f"  floor with the project's gc.freeze: {frozen:.2f} s; project / that floor "
        f"{medians['project'] / frozen:.2f} (the project's own overhead, the freeze's gain aside)"
    )
    return ratio


def bench_dagster(runs: int, work: Path) -> float:
    dagster = str(BIN / "dagster")

    def materialize(name: str, module: str, **extra: str) -> Callable[[], float]:
        def once() -> float:
            env = _env(work / name, **extra)
            shutil.rmtree(work / name / "local-root", ignore_errors=True)
            return _timed([dagster, "asset", "materialize", "-m", module, "--select", "*"], env)

        return once

    bench_path = str(REPO / "bench")
    medians = _medians(
        runs,
        {
            "project": materialize("project", "iris_sagemaker"),
            "floor": materialize("floor", "noop_assets", PYTHONPATH=bench_path),
            "unfrozen project": materialize("unfrozen", "iris_sagemaker", IRIS_SAGEMAKER_GC_FREEZE="0"),
            "frozen floor": materialize("frozen-floor", "noop_assets_frozen", PYTHONPATH=bench_path),
        },
    )
    return _report("dagster asset materialize (in-process executor)", medians)


def bench_airflow(runs: int, work: Path) -> float | None:
    airflow = BIN / "airflow"
    if not airflow.exists() or not (REPO / "airflow_dags" / "sagemaker_pipeline.py").exists():
        print("airflow: not installed in this venv or no DAG; skipped")
        return None

    bench_path = str(REPO / "bench")  # the floors' DAG files import noop_dag_build from there

    def run(name: str, dags: Path, dag_id: str, **extra: str) -> Callable[[], float]:
        env = _env(work / name, AIRFLOW__CORE__DAGS_FOLDER=str(dags), PYTHONPATH=bench_path, **extra)
        _timed([str(airflow), "db", "migrate"], env)  # once, untimed, as a developer's home would be

        def once() -> float:
            shutil.rmtree(work / name / "local-root", ignore_errors=True)
            return _timed([str(airflow), "dags", "test", dag_id], env)

        return once

    from iris_sagemaker.airflow_defs.connection import local_connection
    from iris_sagemaker.serve.process import start_server

    dags, noop = REPO / "airflow_dags", REPO / "bench" / "noop_dag"
    server = start_server(work / "af-served-root")
    try:
        served = {
            "IRIS_SAGEMAKER_LOCAL_ROOT": str(work / "af-served-root"),
            "AIRFLOW_CONN_AWS-SAGEMAKER": json.dumps(local_connection(server.url, "us-east-2")),
        }
        medians = _medians(
            runs,
            {
                "project": run("af-project", dags, "sagemaker_pipeline"),
                "project, server running": run("af-served", dags, "sagemaker_pipeline", **served),
                "floor": run("af-floor", noop, "noop_pipeline"),
                "unfrozen project": run(
                    "af-unfrozen", dags, "sagemaker_pipeline", IRIS_SAGEMAKER_GC_FREEZE="0"
                ),
                "frozen floor": run(
                    "af-frozen-floor", REPO / "bench" / "noop_dag_frozen", "noop_pipeline_frozen"
                ),
            },
        )
    finally:
        server.stop()
    ratio = _report("airflow dags test", medians)
    served = medians["project, server running"]
    print(
        f"  project with iris-sagemaker serve already running: {served:.2f} s, "
        f"ratio {served / medians['floor']:.2f} (the rest of 'project' is starting a server per run)"
    )

    def parse(dag_file: Path) -> Callable[[], float]:
        """One parse of the file in a fresh process with Airflow imported: what the scheduler pays."""
        env = _env(work / "af-parse", PYTHONPATH=bench_path)
        code = (
            "import runpy, sys, time\n"
            "try:\n    from airflow.sdk import DAG, task\n"
            "except ImportError:\n"
            "    from airflow.models import DAG\n    from airflow.decorators import task\n"
            "t = time.perf_counter()\nrunpy.run_path(sys.argv[1])\nprint(time.perf_counter() - t)"
        )

        def once() -> float:
            done = subprocess.run(
                [sys.executable, "-c", code, str(dag_file)], env=env, capture_output=True, text=True
            )
            if done.returncode != 0:
                raise SystemExit(f"parsing {dag_file} failed:\n{done.stderr[-3000:]}")
            return float(done.stdout.strip().splitlines()[-1])

        return once

    parses = _medians(
        runs,
        {
            "project": parse(REPO / "airflow_dags" / "sagemaker_pipeline.py"),
            "floor": parse(REPO / "bench" / "noop_dag" / "noop_pipeline.py"),
        },
    )
    print(
        f"  DAG file parse (the scheduler's cost per parse): project {parses['project'] * 1000:.0f} ms, "
        f"floor {parses['floor'] * 1000:.0f} ms, ratio {parses['project'] / parses['floor']:.2f}"
    )
    return ratio


def write_big_iris(path: Path, rows: int) -> None:
    """An Iris-shaped CSV: the 150 real rows resampled with small noise, UCI format."""
    import numpy as np

    from iris_sagemaker.core import dataset

    iris = dataset.parse_iris(dataset.read_source(None)[1])
    rng = np.random.default_rng(0)
    picked = iris.iloc[rng.integers(0, len(iris), rows)].reset_index(drop=True)
    noise = rng.normal(0, 0.05, (rows, 4))
    picked[dataset.FEATURES] = (picked[dataset.FEATURES].to_numpy() + noise).clip(0.1).round(2)
    picked.to_csv(path, header=False, index=False)


def bench_big(rows: int, work: Path) -> None:
    data = work / "big-iris.csv"
    write_big_iris(data, rows)
    env = _env(work / "big", IRIS_SAGEMAKER_DATA_URL=data.as_uri())
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    seconds = _timed(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "iris_sagemaker", "--select", "*"], env
    )
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    note = "" if peak_kib > before else " (not above earlier children's peak; at most this)"
    print(f"big input: {rows} rows, full pipeline {seconds:.1f} s, peak RSS {peak_kib / 1024:.0f} MiB{note}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--big-rows", type=int, default=1_000_000)
    parser.add_argument("--skip-airflow", action="store_true")
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--skip-dagster", action="store_true")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}")
    if args.big_rows < 150:
        parser.error(f"--big-rows must be at least 150 (a stratified split needs rows), got {args.big_rows}")
    with tempfile.TemporaryDirectory(prefix="iris-bench-") as tmp:
        work = Path(tmp)
        if not args.skip_big:
            bench_big(args.big_rows, work)  # first: its peak RSS is then this child's alone
        if not args.skip_dagster:
            bench_dagster(args.runs, work)
        if not args.skip_airflow:
            bench_airflow(args.runs, work)


if __name__ == "__main__":
    main()
