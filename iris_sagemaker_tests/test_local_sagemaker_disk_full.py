"""A full disk under ROOT (ENOSPC) in the embedded engine: callers get ClientErrors, jobs end Failed saying
the disk is full, nothing stays InProgress, no half-written object remains, and once space is freed the
next job runs normally.

The disk is simulated (no tmpfs needed): :class:`SimulatedDisk` gives ROOT a capacity; a write of new
bytes to a file under ROOT (``os.fdopen`` files: records' and objects' temporary files; ``os.write``: log
lines) fails with ENOSPC once the files under ROOT would exceed it. Overwriting a record in place is not
counted, as on ext4/tmpfs (its blocks are allocated), unless ``in_place_fails`` simulates a file system
that needs new blocks even then. "Freeing space" is ``disk.capacity = None``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError

from iris_sagemaker.core.storage import DiskFull
from iris_sagemaker.local_sagemaker import jobs, knn, transform
from iris_sagemaker.local_sagemaker.log_files import JobLog
from iris_sagemaker.local_sagemaker.records import RecordStore
from iris_sagemaker.local_sagemaker.testing import (
    Lab,
    iris_like,
    model_request,
    to_csv,
    training_request,
    wait_for,
)

SLOW = jobs.TEST_DELAY_ENV


class _BudgetedFile:
    """A file under ROOT whose writes are charged to the simulated disk."""

    def __init__(self, inner: Any, disk: SimulatedDisk) -> None:
        self._inner = inner
        self._disk = disk

    def write(self, data: Any) -> int:
        self._disk.charge(len(data))
        return self._inner.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __enter__(self) -> _BudgetedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._inner.close()

    def close(self) -> None:
        self._inner.close()


class SimulatedDisk:
    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root.resolve()
        self.capacity: int | None = None
        self.in_place_fails = False
        real_fdopen, real_write = os.fdopen, os.write
        real_in_place = RecordStore._overwrite_in_place

        def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
            fh = real_fdopen(fd, *args, **kwargs)
            return _BudgetedFile(fh, self) if self._under_root(fd) else fh

        def write(fd: int, data: Any) -> int:
            if self._under_root(fd):
                self.charge(len(data))
            return real_write(fd, data)

        def in_place(path: Path, record: dict[str, Any]) -> None:
            if self.in_place_fails and self.capacity is not None:
                raise DiskFull(path)
            real_in_place(path, record)

        monkeypatch.setattr(os, "fdopen", fdopen)
        monkeypatch.setattr(os, "write", write)
        monkeypatch.setattr(RecordStore, "_overwrite_in_place", staticmethod(in_place))

    def used(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

    def fill(self) -> None:
        """No room for one more byte."""
        self.capacity = self.used()

    def charge(self, size: int) -> None:
        if self.capacity is not None and self.used() + size > self.capacity:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def _under_root(self, fd: int) -> bool:
        try:
            return Path(os.readlink(f"/proc/self/fd/{fd}")).is_relative_to(self.root)
        except OSError:
            return False


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("the simulated disk finds a descriptor's file through /proc/self/fd")
    return Lab(tmp_path)


@pytest.fixture
def disk(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> SimulatedDisk:
    return SimulatedDisk(lab.client.root, monkeypatch)


def _fill_when(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, disk: SimulatedDisk) -> None:
    """Fill the disk just before the job calls ``module.name`` (the first time only)."""
    real: Callable[..., Any] = getattr(module, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(module, name, real)
        disk.fill()
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapped)


def _fill_after_artifact(monkeypatch: pytest.MonkeyPatch, lab: Lab, disk: SimulatedDisk) -> None:
    """Fill the disk the moment the next model.tar.gz is in place: only the job's final record write is
    left."""
    real = lab.store.put_bytes

    def put_bytes(bucket: str, key: str, data: bytes) -> None:
        real(bucket, key, data)
        if key.endswith("model.tar.gz"):
            monkeypatch.setattr(lab.store, "put_bytes", real)
            disk.fill()

    monkeypatch.setattr(lab.store, "put_bytes", put_bytes)


def _assert_disk_full_reason(job: dict[str, Any], lab: Lab, path_part: str) -> None:
    reason = job["FailureReason"]
    assert "No space left on device" in reason and path_part in reason, reason
    assert f"Free space under {lab.client.root}" in reason and "died" not in reason, reason


def _on_disk(lab: Lab, folder: str, name: str) -> dict[str, Any]:
    return json.loads((lab.client.root / "sagemaker" / folder / f"{name}.json").read_bytes())


def _leftover_temps(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".tmp-") or p.name.endswith(".tmp")]


def _big_training_data(rows: int = 3000) -> bytes:
    """Random rows: a model.tar.gz larger than a job record, so removing it makes room for one."""
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, rows).astype(np.float32)
    return to_csv(labels, rng.normal(size=(rows, 4)).astype(np.float32))


def _trained_model(lab: Lab, name: str = "m") -> str:
    job = lab.train()
    lab.model(name, job)
    return job["ModelArtifacts"]["S3ModelArtifacts"]


def test_final_record_write_on_a_full_disk_lands_in_place(lab, disk, monkeypatch):
    """The disk fills as model.tar.gz lands: the Completed state still fits over the record's own blocks,
    so the job reads Completed with its artifact (and the record on disk agrees)."""
    _fill_after_artifact(monkeypatch, lab, disk)
    job = lab.train("fits")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert _on_disk(lab, "training-jobs", "fits")["state"]["TrainingJobStatus"] == "Completed"
    assert knn.load_model(lab.get("results/fits/output/model.tar.gz")).index.ntotal == 150
    assert _leftover_temps(lab.client.root) == []


def test_completed_state_that_cannot_be_saved_removes_the_artifact(lab, disk, monkeypatch):
    """Neither a new record file nor an in-place overwrite fits: the artifact is removed (a job never reads
    Completed without its record), which makes room to save Failed with the disk-full reason."""
    disk.in_place_fails = True
    _fill_after_artifact(monkeypatch, lab, disk)
    job = lab.train("unsaved", hyperparameters=_hp(3000), train=_big_training_data())
    assert job["TrainingJobStatus"] == "Failed"
    _assert_disk_full_reason(job, lab, "sagemaker/training-jobs/unsaved.json")
    assert "model.tar.gz) was written but its completion could not be recorded" in job["FailureReason"]
    assert not lab.store.exists("bucket", "results/unsaved/output/model.tar.gz")
    assert _on_disk(lab, "training-jobs", "unsaved")["state"]["TrainingJobStatus"] == "Failed"
    disk.capacity = None
    assert lab.train("after")["TrainingJobStatus"] == "Completed"


def _hp(sample_size: int) -> dict[str, str]:
    return {"predictor_type": "classifier", "feature_dim": "4", "k": "3", "sample_size": str(sample_size)}


def test_artifact_upload_on_a_full_disk_fails_the_job_clearly(lab, disk, monkeypatch):
    _fill_when(monkeypatch, knn, "dump_model", disk)
    job = lab.train("no-room")
    assert job["TrainingJobStatus"] == "Failed" and job["SecondaryStatus"] == "Failed"
    _assert_disk_full_reason(job, lab, "results/no-room/output/model.tar.gz")
    assert _on_disk(lab, "training-jobs", "no-room")["state"]["TrainingJobStatus"] == "Failed"
    assert not lab.store.exists("bucket", "results/no-room/output/model.tar.gz")
    assert _leftover_temps(lab.client.root) == []
    disk.capacity = None
    assert lab.train("after")["TrainingJobStatus"] == "Completed"


def test_transform_output_on_a_full_disk_fails_the_job_clearly(lab, disk, monkeypatch):
    _trained_model(lab)
    uri = lab.put("in/test.csv", b"5,3.4,1.5,0.2\n" * 2000)
    _fill_when(monkeypatch, transform, "read_model", disk)
    job = lab.transform("t-full", "m", uri, "s3://bucket/out")
    assert job["TransformJobStatus"] == "Failed"
    _assert_disk_full_reason(job, lab, "out/test.csv.out")
    assert _on_disk(lab, "transform-jobs", "t-full")["state"]["TransformJobStatus"] == "Failed"
    assert lab.store.list_keys("bucket", "out/") == [] and _leftover_temps(lab.client.root) == []
    disk.capacity = None
    assert lab.transform("t-after", "m", uri, "s3://bucket/out")["TransformJobStatus"] == "Completed"
    assert lab.get("out/test.csv.out").count(b"predicted_label") == 2000


def test_create_calls_on_a_full_disk_raise_internal_failure(lab, disk):
    url = _trained_model(lab)
    lab.client.create_endpoint_config(
        EndpointConfigName="cfg",
        ProductionVariants=[{"VariantName": "v", "ModelName": "m", "InstanceType": "ml.m5.large"}],
    )
    uri = lab.put("in/test.csv", b"5,3.4,1.5,0.2\n")
    disk.fill()
    request = training_request("t2", "s3://bucket/train-iris/input/train.csv", "s3://bucket/results")
    calls = {
        "CreateTrainingJob": lambda: lab.client.create_training_job(**request),
        "CreateModel": lambda: lab.client.create_model(**model_request("m2", url)),
        "CreateTransformJob": lambda: lab.transform("x", "m", uri, "s3://bucket/o", wait=False),
        "CreateEndpointConfig": lambda: lab.client.create_endpoint_config(
            EndpointConfigName="cfg2",
            ProductionVariants=[{"VariantName": "v", "ModelName": "m", "InstanceType": "ml.m5.large"}],
        ),
        "CreateEndpoint": lambda: lab.client.create_endpoint(EndpointName="ep", EndpointConfigName="cfg"),
    }
    for operation, call in calls.items():
        with pytest.raises(ClientError) as excinfo:
            call()
        error = excinfo.value
        assert error.operation_name == operation
        assert error.response["Error"]["Code"] == "InternalFailure"
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 500
        message = error.response["Error"]["Message"]
        assert "No space left on device writing" in message
        assert f"Free space under {lab.client.root}" in message
    assert lab.client.list_training_jobs()["TrainingJobSummaries"][0]["TrainingJobName"] == "train-iris"
    assert lab.client.list_transform_jobs()["TransformJobSummaries"] == []
    assert lab.client.list_endpoints()["Endpoints"] == []
    # No worker left registered for a job that was never recorded.
    assert not [t for t in jobs._threads.values() if t.name.endswith(("-t2", "-x", "-ep"))]
    disk.capacity = None
    assert lab.client.create_training_job(**request)["TrainingJobArn"].endswith("/t2")
    assert lab.wait_training("t2")["TrainingJobStatus"] == "Completed"


def test_stop_on_a_full_disk_raises_internal_failure(lab, disk, monkeypatch):
    monkeypatch.setenv(SLOW, "30")
    lab.train("running", wait=False)
    # Its last record write before the first (slow) checkpoint is the Downloading transition.
    wait_for(
        lambda: lab.describe_training("running"),
        "TrainingJobStatus",
        until=lambda job: job["SecondaryStatus"] == "Downloading",
    )
    disk.fill()
    assert lab.describe_training("running")["TrainingJobStatus"] == "InProgress"  # reads need no space
    with pytest.raises(ClientError) as excinfo:
        lab.client.stop_training_job(TrainingJobName="running")
    assert excinfo.value.response["Error"]["Code"] == "InternalFailure"
    disk.capacity = None
    lab.client.stop_training_job(TrainingJobName="running")
    assert lab.wait_training("running", timeout=5)["TrainingJobStatus"] == "Stopped"


def test_describe_while_full_reads_the_real_cause_and_saves_it_once_space_is_freed(lab, disk, monkeypatch):
    """Nothing about the job's end fits (not even in place): describe still answers (Failed, disk full, no
    OSError) from what the worker left in memory, and the first describe after space is freed saves it,
    with the real cause rather than "worker died"."""
    _trained_model(lab)
    uri = lab.put("in/test.csv", b"5,3.4,1.5,0.2\n" * 10)
    disk.in_place_fails = True
    _fill_when(monkeypatch, transform, "read_model", disk)
    job = lab.transform("t-mem", "m", uri, "s3://bucket/out")
    assert job["TransformJobStatus"] == "Failed"
    _assert_disk_full_reason(job, lab, "out/test.csv.out")
    assert _on_disk(lab, "transform-jobs", "t-mem")["state"]["TransformJobStatus"] == "InProgress"
    summary = lab.client.list_transform_jobs()["TransformJobSummaries"][0]
    assert summary["TransformJobStatus"] == "Failed" and "No space left" in summary["FailureReason"]
    disk.capacity = None
    _assert_disk_full_reason(lab.describe_transform("t-mem"), lab, "out/test.csv.out")
    saved = _on_disk(lab, "transform-jobs", "t-mem")["state"]
    assert saved["TransformJobStatus"] == "Failed" and "No space left" in saved["FailureReason"]
    assert lab.transform("t-next", "m", uri, "s3://bucket/out2")["TransformJobStatus"] == "Completed"


def test_log_line_cut_by_a_full_disk_is_removed(tmp_path, monkeypatch):
    """Half a line would run into the next one: the part written is truncated away."""
    log = JobLog(tmp_path / "job.log")
    log.write("first")
    real_write = os.write
    calls: list[int] = []

    def half_then_full(fd: int, data: Any) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(DiskFull) as excinfo:
        log.write("second line")
    assert excinfo.value.filename == str(tmp_path / "job.log")
    monkeypatch.undo()
    log.write("third")
    lines = (tmp_path / "job.log").read_text().splitlines()
    assert [line.split("\t", 1)[1] for line in lines] == ["first", "third"]


TMPFS_NEEDS = (
    "needs root with CAP_SYS_ADMIN (mount -t tmpfs): run the tests as root, e.g. in the CI container or "
    "`docker run --privileged`; the simulated-disk tests above cover the same code without it"
)


@contextlib.contextmanager
def mounted_tmpfs(size: str = "3m") -> Iterator[Path]:
    """A real tmpfs of ``size`` on a fresh folder, unmounted afterwards; skips, saying what it needs,
    where it cannot be mounted."""
    if os.geteuid() != 0:
        pytest.skip(f"a real full tmpfs {TMPFS_NEEDS}")
    folder = Path(tempfile.mkdtemp(prefix="enospc-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        folder.rmdir()
        said = mounted.stderr.decode(errors="replace").strip().splitlines()
        pytest.skip(f"cannot mount a tmpfs here ({said[0] if said else 'mount failed'}): {TMPFS_NEEDS}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)
        folder.rmdir()


@pytest.fixture
def small_tmpfs() -> Iterator[Path]:
    with mounted_tmpfs() as folder:
        yield folder


def test_without_root_the_real_tmpfs_test_says_what_it_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(pytest.skip.Exception, match="needs root with CAP_SYS_ADMIN"), mounted_tmpfs():
        pass


def _fill_leaving(folder: Path, free_bytes: int) -> Path:
    """Fill the file system of ``folder`` with a filler file, then give ``free_bytes`` back."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError as err:
        assert err.errno == errno.ENOSPC
    finally:
        os.close(fd)
    os.truncate(filler, max(0, filler.stat().st_size - free_bytes))
    return filler


def test_a_real_full_tmpfs(small_tmpfs):
    """A real 3 MB tmpfs with 0 to 40 KB left: whatever write the disk runs out at, the caller gets a
    ClientError (InternalFailure) or the job ends Completed with its artifact or Failed saying the disk is
    full; the record on disk agrees, no temporary file remains; after the filler is removed, jobs run."""
    lab = Lab(small_tmpfs)
    labels, features = iris_like()
    train = lab.put("data/train.csv", to_csv(labels, features))
    outcomes = set()
    for step in range(11):
        name = f"real-{step}"
        filler = _fill_leaving(small_tmpfs, step * 4096)
        try:
            lab.client.create_training_job(**training_request(name, train, "s3://bucket/results"))
        except ClientError as err:
            assert err.response["Error"]["Code"] == "InternalFailure"
            outcomes.add("create refused")
        else:
            job = lab.wait_training(name)
            status = job["TrainingJobStatus"]
            assert _on_disk(lab, "training-jobs", name)["state"]["TrainingJobStatus"] == status
            artifact = f"results/{name}/output/model.tar.gz"
            if status == "Completed":
                assert knn.load_model(lab.get(artifact)).index.ntotal == 150
            else:
                assert status == "Failed"
                _assert_disk_full_reason(job, lab, str(small_tmpfs))
                assert not lab.store.exists("bucket", artifact)
            outcomes.add(status)
        assert _leftover_temps(small_tmpfs) == []
        filler.unlink()
    assert outcomes == {"create refused", "Failed", "Completed"}, outcomes
    lab.client.create_training_job(**training_request("real-after", train, "s3://bucket/results"))
    assert lab.wait_training("real-after")["TrainingJobStatus"] == "Completed"
