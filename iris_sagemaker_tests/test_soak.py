"""The short soak of ``iris-sagemaker serve`` (``bench/soak.py``): 30 seconds of mixed load from three client
processes (InvokeEndpoint in CSV, JSON and RecordIO-protobuf, S3 PUT/GET small and multi-MB, training and
transform jobs, Describe/List polling, Logs reads, requests that must fail), with a kill -9 of the server
halfway and a restart on the same root and port.

Asserted, because they hold on any machine: no unexpected error, no wrong answer (each checked against an
independent k-NN), file descriptors and threads flat, and after the kill every job that was in flight
Failed or Stopped with a reason (none InProgress), every acknowledged S3 write intact, the endpoint
InService and answering right. Only printed, because a shared machine makes them noisy over 10-second
windows: the p99 ratios (last window to first) and the RSS growth; the 5-minute run (``bench/soak.py``,
README) judges them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.server, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]


def test_the_short_soak_with_a_kill_9_holds(tmp_path: Path) -> None:
    report = tmp_path / "soak.json"
    command = [
        sys.executable,
        str(REPO / "bench" / "soak.py"),
        "--minutes",
        "0.5",
        "--window",
        "10",
        "--clients",
        "3",
        "--rate",
        "20",
        "--job-every",
        "8",
        "--kill",
        "--json",
        str(report),
    ]
    run = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        out, _ = run.communicate(timeout=300)
    finally:
        if run.poll() is None:  # the bench, its clients and its server share the group
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(10)
    print(out[-6000:])
    assert report.exists(), out[-6000:]
    verdict = json.loads(report.read_text())
    assert verdict["unexpected_errors"] == 0, out[-6000:]
    assert verdict["wrong_answers"] == 0, out[-6000:]
    assert verdict["predictions_checked"] > 1000 and verdict["requests"] > 500
    assert verdict["fds_flat"] is not False and verdict["threads_flat"] is not False, verdict
    kill = verdict["kill"]
    assert kill["in_flight"] >= 2 and "Completed" not in kill["ended"], kill  # the two witness jobs at least
    assert kill["still_in_progress"] == 0 and kill["without_reason"] == 0, kill
    assert kill["endpoint"] == "InService, answering right", kill
    assert kill["acknowledged_writes"] > 0 and kill["lost_writes"] == 0, kill
    assert kill["ok"] and verdict["hard_ok"], verdict
    assert run.returncode == 0
