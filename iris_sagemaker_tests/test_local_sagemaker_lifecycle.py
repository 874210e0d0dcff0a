"""Job lifecycle: stops, runtime limits, dead workers, concurrent creation."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import psutil
import pytest
from botocore.exceptions import ClientError

from iris_sagemaker.local_sagemaker import jobs
from iris_sagemaker.local_sagemaker.testing import Lab, training_request, wait_for

SLOW = jobs.TEST_DELAY_ENV


def _status(lab, name):
    return lab.describe_training(name)["TrainingJobStatus"]


def test_create_returns_while_the_job_runs(lab, monkeypatch):
    monkeypatch.setenv(SLOW, "0.2")
    job = lab.train("slow", wait=False)
    assert job["TrainingJobStatus"] == "InProgress"
    assert lab.wait_training("slow")["TrainingJobStatus"] == "Completed"


def test_stop_training_job(lab, monkeypatch):
    monkeypatch.setenv(SLOW, "30")
    lab.train("to-stop", wait=False)
    response = lab.client.stop_training_job(TrainingJobName="to-stop")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert _status(lab, "to-stop") in ("Stopping", "Stopped")
    job = lab.wait_training("to-stop", timeout=5)
    assert job["TrainingJobStatus"] == "Stopped" and job["SecondaryStatus"] == "Stopped"
    assert "FailureReason" not in job
    assert [t["Status"] for t in job["SecondaryStatusTransitions"]][-2:] == ["Stopping", "Stopped"]
    with pytest.raises(ClientError) as excinfo:
        lab.client.stop_training_job(TrainingJobName="to-stop")
    assert excinfo.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": "The request was rejected because the training job is in status Stopped.",
    }


def test_stop_transform_job_writes_no_output(lab, monkeypatch):
    job = lab.train()
    lab.model("m", job)
    uri = lab.put("in/test.csv", b"5,3.4,1.5,0.2\n" * 5)
    monkeypatch.setenv(SLOW, "30")
    lab.transform("t-stop", "m", uri, "s3://bucket/out", wait=False)
    lab.client.stop_transform_job(TransformJobName="t-stop")
    described = lab.wait_transform("t-stop", timeout=5)
    assert described["TransformJobStatus"] == "Stopped"
    assert not lab.store.exists("bucket", "out/test.csv.out")


def test_max_runtime_exceeded(lab, monkeypatch):
    monkeypatch.setenv(SLOW, "30")
    job = lab.train("too-long", wait=False, StoppingCondition={"MaxRuntimeInSeconds": 1})
    assert job["TrainingJobStatus"] == "InProgress"
    job = lab.wait_training("too-long", timeout=10)
    assert job["TrainingJobStatus"] == "Stopped" and job["SecondaryStatus"] == "MaxRuntimeExceeded"


def test_dead_owner_process_fails_the_job_on_describe(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys, time
        from iris_sagemaker.local_sagemaker.testing import Lab
        lab = Lab({str(tmp_path)!r})
        lab.train("orphan", wait=False)
        print("created", flush=True)
        time.sleep(120)
        """
    )
    env = {**os.environ, SLOW: "60"}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "created"
        lab = Lab(tmp_path)
        assert _status(lab, "orphan") == "InProgress"  # the owner is alive: trusted
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    job = lab.describe_training("orphan")
    assert job["TrainingJobStatus"] == "Failed" and job["SecondaryStatus"] == "Failed"
    assert job["FailureReason"].startswith(
        "InternalServerError: the embedded engine's worker for this job (pid "
    )
    assert "died before the job finished" in job["FailureReason"]
    assert job["TrainingEndTime"] >= job["CreationTime"]
    listed = lab.client.list_training_jobs()["TrainingJobSummaries"]
    assert listed[0]["TrainingJobStatus"] == "Failed"


def test_lost_worker_thread_fails_the_job(lab, monkeypatch):
    monkeypatch.setenv(SLOW, "0.5")
    lab.train("lost", wait=False)
    record = lab.client._records.read("training-jobs", "lost")
    jobs._forget(record["owner"]["token"])  # as if the thread had vanished without a word
    job = lab.describe_training("lost")
    assert job["TrainingJobStatus"] == "Failed" and "died before the job finished" in job["FailureReason"]
    # The real worker notices it was declared dead and leaves the record alone.
    for thread in threading.enumerate():
        if thread.name.endswith("-lost"):
            thread.join(timeout=5)
    assert lab.describe_training("lost")["TrainingJobStatus"] == "Failed"


def test_owner_alive_checks():
    me = jobs.owner_stamp()
    assert jobs.owner_alive({**me, "host": "some-other-host"})  # cannot check: trusted
    assert not jobs.owner_alive(me)  # this process, but no thread registered under the token
    assert not jobs.owner_alive({**me, "create_time": me["create_time"] - 100})  # a reused pid
    parent = psutil.Process().parent()
    assert parent is not None
    assert jobs.owner_alive({**me, "pid": parent.pid, "create_time": parent.create_time()})
    assert not jobs.owner_alive({**me, "pid": 2**22 + 12345})


def test_concurrent_creates_have_one_winner(lab):
    results: list[str] = []

    def create() -> None:
        try:
            lab.client.create_training_job(
                **training_request("race", "s3://bucket/x/train.csv", "s3://bucket/o")
            )
            results.append("created")
        except ClientError as err:
            results.append(err.response["Error"]["Code"])

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["ResourceInUse"] * 7 + ["created"]
    wait_for(lambda: lab.describe_training("race"), "TrainingJobStatus")


def test_killed_transform_worker_fails_and_leaves_no_output(tmp_path):
    lab = Lab(tmp_path)
    lab.model("m", lab.train())
    lab.put("in/test.csv", b"5,3.4,1.5,0.2\n" * 50)
    script = textwrap.dedent(
        f"""
        import time
        from iris_sagemaker.local_sagemaker.testing import Lab
        lab = Lab({str(tmp_path)!r})
        lab.transform("t-orphan", "m", "s3://bucket/in/test.csv", "s3://bucket/out", wait=False,
                      BatchStrategy="SingleRecord")
        while not lab.client.read_job_log("TransformJob", "t-orphan")[0][2:]:
            time.sleep(0.01)  # until it has started reading (and writing) the object
        print("running", flush=True)
        time.sleep(120)
        """
    )
    env = {**os.environ, SLOW: "0.2"}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "running"
        assert lab.describe_transform("t-orphan")["TransformJobStatus"] == "InProgress"
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    job = lab.describe_transform("t-orphan")
    assert job["TransformJobStatus"] == "Failed"
    assert "died before the job finished" in job["FailureReason"]
    assert job["TransformEndTime"] >= job["CreationTime"]
    assert lab.store.list_keys("bucket", "out/") == []  # the temporary part is never listed
    assert not lab.store.exists("bucket", "out/test.csv.out")
    lines, _ = lab.client.read_job_log("TransformJob", "t-orphan")
    assert lines[-1] == f"job Failed: {job['FailureReason']}"


def test_listings_see_every_write_and_parse_only_what_changed(tmp_path, monkeypatch) -> None:
    """List* answers from records parsed once and reused while their files are unchanged (a listing costs
    a stat per job, not a parse, so it stays fast as jobs pile up); every write still shows at once."""
    from iris_sagemaker.local_sagemaker import records as records_module
    from iris_sagemaker.local_sagemaker.records import TRAINING_JOBS, RecordStore

    monkeypatch.setattr(records_module, "_SETTLED_NS", 0)  # (settled files are reused: these are new)
    store = RecordStore(tmp_path)
    for i in range(5):
        assert store.create(TRAINING_JOBS, f"job-{i}", {"name": f"job-{i}", "state": {"Status": "Started"}})
    assert [r["name"] for r in store.list(TRAINING_JOBS)] == [f"job-{i}" for i in range(5)]
    parsed: list[bytes] = []
    real_loads = records_module.json.loads
    monkeypatch.setattr(records_module.json, "loads", lambda data: parsed.append(data) or real_loads(data))

    store.list(TRAINING_JOBS)
    assert parsed == []  # nothing changed: nothing parsed
    store.update(TRAINING_JOBS, "job-2", lambda r: r["state"].update(Status="Completed") or True)
    parsed.clear()
    listed = {r["name"]: r["state"]["Status"] for r in store.list(TRAINING_JOBS)}
    assert listed["job-2"] == "Completed" and len(parsed) == 1
    store.delete(TRAINING_JOBS, "job-4")
    assert [r["name"] for r in store.list(TRAINING_JOBS)] == [f"job-{i}" for i in range(4)]
    # Another process's write (a new file under the same name) is seen too.
    other = RecordStore(tmp_path)
    other.update(TRAINING_JOBS, "job-0", lambda r: r["state"].update(Status="Stopped") or True)
    assert store.list(TRAINING_JOBS)[0]["state"]["Status"] == "Stopped"
