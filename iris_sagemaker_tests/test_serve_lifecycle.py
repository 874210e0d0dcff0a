"""``iris-sagemaker serve`` across restarts, signals and kill -9: records and objects survive, jobs cut short
end Failed with a reason, nothing is left half-written. Every server a test starts is stopped by it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from iris_sagemaker.local_sagemaker.jobs import TEST_DELAY_ENV
from iris_sagemaker.local_sagemaker.testing import (
    iris_like,
    model_request,
    to_csv,
    training_request,
    transform_request,
)
from iris_sagemaker.serve.process import start_server

from .serve_support import BUCKET, REGION, client, variant

pytestmark = [pytest.mark.server, pytest.mark.slow]

FAST = {"Delay": 0.2, "MaxAttempts": 150}


def _seed(server) -> tuple[object, object]:
    s3, sm = client(server, "s3"), client(server, "sagemaker")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    labels, features = iris_like()
    s3.put_object(Bucket=BUCKET, Key="in/train.csv", Body=to_csv(labels, features))
    return s3, sm


def _slow_training(root: Path, name: str):
    """A server whose jobs pause 30 s at every checkpoint, and a training job started on it."""
    server = start_server(root, {TEST_DELAY_ENV: "30"})
    try:
        s3, sm = _seed(server)
        sm.create_training_job(**training_request(name, f"s3://{BUCKET}/in/train.csv", f"s3://{BUCKET}/out"))
    except BaseException:
        server.stop(signal.SIGKILL)
        raise
    return server, s3, sm


def _model_in_folder(root: Path, s3, sm, name: str) -> None:
    """A model whose artifact is written straight into the folder (as make run would), and test rows."""
    from iris_sagemaker.local_sagemaker import knn

    labels, features = iris_like()
    params = knn.parse_hyperparameters(
        {"feature_dim": "4", "k": "3", "predictor_type": "classifier", "sample_size": "150"}
    )
    artifact = root / "s3" / BUCKET / "model" / "model.tar.gz"
    artifact.parent.mkdir(parents=True, exist_ok=True)
    artifact.write_bytes(knn.dump_model(knn.train(params, labels, features)))
    sm.create_model(**model_request(name, f"s3://{BUCKET}/model/model.tar.gz"))
    s3.put_object(Bucket=BUCKET, Key="in/test.csv", Body=to_csv(features))


def _record(root: Path, name: str) -> dict:
    return json.loads((root / "sagemaker" / "training-jobs" / f"{name}.json").read_text())


def test_a_restart_keeps_records_objects_and_endpoints(tmp_path: Path) -> None:
    root = tmp_path / "root"
    first = start_server(root)
    try:
        s3, sm = _seed(first)
        sm.create_training_job(
            **training_request("kept", f"s3://{BUCKET}/in/train.csv", f"s3://{BUCKET}/out")
        )
        sm.get_waiter("training_job_completed_or_stopped").wait(TrainingJobName="kept", WaiterConfig=FAST)
        url = sm.describe_training_job(TrainingJobName="kept")["ModelArtifacts"]["S3ModelArtifacts"]
        sm.create_model(**model_request("kept-model", url))
        sm.create_endpoint_config(EndpointConfigName="kept-config", ProductionVariants=variant("kept-model"))
        sm.create_endpoint(EndpointName="kept-endpoint", EndpointConfigName="kept-config")
        sm.get_waiter("endpoint_in_service").wait(EndpointName="kept-endpoint", WaiterConfig=FAST)
    finally:
        assert first.stop() in (0, -signal.SIGTERM)
    assert "iris-sagemaker serve: stopped" in first.output

    second = start_server(root)
    try:
        s3, sm = client(second, "s3"), client(second, "sagemaker")
        assert sm.describe_training_job(TrainingJobName="kept")["TrainingJobStatus"] == "Completed"
        assert sm.describe_model(ModelName="kept-model")["PrimaryContainer"]["ModelDataUrl"] == url
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [BUCKET]
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
        assert keys == ["in/train.csv", "out/kept/output/model.tar.gz"]
        assert sm.describe_endpoint(EndpointName="kept-endpoint")["EndpointStatus"] == "InService"
        answer = client(second, "sagemaker-runtime").invoke_endpoint(
            EndpointName="kept-endpoint", Body=b"5.0,3.4,1.5,0.2", ContentType="text/csv"
        )
        assert json.loads(answer["Body"].read()) == {"predictions": [{"predicted_label": 2.0}]}
    finally:
        second.stop()


def test_kill_9_during_a_job_reads_failed_with_a_reason_after_restart(tmp_path: Path) -> None:
    root = tmp_path / "root"
    slow, _, sm = _slow_training(root, "killed")
    try:
        assert sm.describe_training_job(TrainingJobName="killed")["TrainingJobStatus"] == "InProgress"
    finally:
        slow.stop(signal.SIGKILL)
    again = start_server(root)
    try:
        described = client(again, "sagemaker").describe_training_job(TrainingJobName="killed")
        assert described["TrainingJobStatus"] == "Failed"
        assert "died before the job finished" in described["FailureReason"]
        assert f"pid {slow.process.pid}" in described["FailureReason"]
    finally:
        again.stop()
    assert not list((root / "s3" / BUCKET / "out").glob("**/model.tar.gz"))  # nothing half-written
    assert not list(root.glob("**/.tmp-*"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_server_and_fails_running_jobs_with_a_reason(tmp_path: Path, sig: int) -> None:
    root = tmp_path / "root"
    server, _, _ = _slow_training(root, "cut")
    try:
        time.sleep(0.3)
    finally:
        server.stop(sig)
    assert "iris-sagemaker serve: stopped" in server.output, server.text()
    state = _record(root, "cut")["state"]
    assert state["TrainingJobStatus"] == "Failed"
    assert state["FailureReason"].startswith("InternalServerError: iris-sagemaker serve shut down")
    assert not list(root.glob("**/.tmp-*"))
    # The lock went with the server: a new one starts on the same root.
    start_server(root).stop()


def _default_sigint() -> None:  # as from a terminal: Python turns SIGINT into KeyboardInterrupt
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _ignore_sigint() -> None:  # as a background job of a shell without job control
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("started", [_default_sigint, _ignore_sigint], ids=["terminal", "sigint-ignored"])
def test_ctrl_c_is_a_clean_stop_one_line_exit_130_and_no_traceback(
    tmp_path: Path, started: Callable[[], None]
) -> None:
    """Ctrl-C (SIGINT) stops the server with one line and 130, also when it was started with SIGINT
    ignored (a shell's background job without job control), where Python raises no KeyboardInterrupt."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "iris_sagemaker.cli",
            "serve",
            "--port",
            "0",
            "--root",
            str(tmp_path / "root"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=started,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:  # the ready banner ends with the SDK's config
            if line.startswith("export SAGEMAKER_USER_CONFIG_OVERRIDE="):
                break
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == 130
    assert out.splitlines() == ["iris-sagemaker serve: stopped"]
    assert "Traceback" not in err and err == ""


def test_stop_requests_over_http_end_jobs_stopped_and_the_waiters_return(tmp_path: Path) -> None:
    root = tmp_path / "root"
    server, s3, sm = _slow_training(root, "to-stop")
    try:
        sm.stop_training_job(TrainingJobName="to-stop")
        sm.get_waiter("training_job_completed_or_stopped").wait(TrainingJobName="to-stop", WaiterConfig=FAST)
        assert sm.describe_training_job(TrainingJobName="to-stop")["TrainingJobStatus"] == "Stopped"
        with pytest.raises(ClientError, match="is in status Stopped"):
            sm.stop_training_job(TrainingJobName="to-stop")
        _model_in_folder(root, s3, sm, "stop-model")
        sm.create_transform_job(
            **transform_request(
                "stop-transform", "stop-model", f"s3://{BUCKET}/in/test.csv", f"s3://{BUCKET}/scored"
            )
        )
        sm.stop_transform_job(TransformJobName="stop-transform")
        sm.get_waiter("transform_job_completed_or_stopped").wait(
            TransformJobName="stop-transform", WaiterConfig=FAST
        )
        assert sm.describe_transform_job(TransformJobName="stop-transform")["TransformJobStatus"] == "Stopped"
        scored = root / "s3" / BUCKET / "scored"
        assert not [path for path in scored.rglob("*") if path.is_file()]  # a stopped job writes nothing
        assert s3.list_objects_v2(Bucket=BUCKET, Prefix="scored/")["KeyCount"] == 0
    finally:
        server.stop()


def test_kill_9_during_a_transform_leaves_no_output_and_its_temporary_file_goes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    slow = start_server(root, {TEST_DELAY_ENV: "30"})
    scored = root / "s3" / BUCKET / "scored"
    try:
        s3, sm = _seed(slow)
        _model_in_folder(root, s3, sm, "kill-model")
        request = transform_request(
            "killed-t", "kill-model", f"s3://{BUCKET}/in/test.csv", f"s3://{BUCKET}/scored"
        )
        sm.create_transform_job(**request)
        deadline = time.monotonic() + 20
        while not list(scored.glob(".tmp-*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(scored.glob(".tmp-*")), "the transform was writing its output"
    finally:
        slow.stop(signal.SIGKILL)
    again = start_server(root)
    try:
        s3, sm = client(again, "s3"), client(again, "sagemaker")
        described = sm.describe_transform_job(TransformJobName="killed-t")
        assert described["TransformJobStatus"] == "Failed" and "died" in described["FailureReason"]
        assert not (scored / "test.csv.out").exists()
        sm.create_transform_job(**{**request, "TransformJobName": "rerun-t"})
        sm.get_waiter("transform_job_completed_or_stopped").wait(
            TransformJobName="rerun-t", WaiterConfig=FAST
        )
    finally:
        again.stop()
    assert (scored / "test.csv.out").is_file()
    assert not list(scored.glob(".tmp-*"))  # the rerun's write removed the dead writer's temporary file
