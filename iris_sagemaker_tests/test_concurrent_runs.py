"""Runs that share a bucket (README: "Runs that share a bucket"): each run computes from its own data in
its own folder, and the tutorial's keys hold the latest successful run's objects, never a mix of two runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from moto import mock_aws

from iris_sagemaker.airflow_defs import tasks as airflow_tasks
from iris_sagemaker.core import dataset, evaluation, run_objects, specs
from iris_sagemaker.core.run_objects import LATEST_KEY, LOCK_KEY, PublishError
from iris_sagemaker.core.settings import (
    DEFAULT_LOCAL_BUCKET,
    PREDICTIONS_KEY,
    SCORED_KEY,
    TEST_KEY,
    TEST_LABELS_KEY,
    TRAIN_KEY,
    Settings,
)
from iris_sagemaker.core.storage import LocalObjectStore, S3ObjectStore
from iris_sagemaker.steps import endpoint_steps, job_steps
from iris_sagemaker.steps.clients_for_backend import make_sagemaker_client, make_store
from iris_sagemaker.steps.job_steps import LOCAL_WAITING

pytestmark = [pytest.mark.dagster, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]


def _iris_rows(copies: int) -> str:
    """The packaged Iris table repeated ``copies`` times (a bigger, slower data source)."""
    _, data = dataset.read_source(None)
    frame = dataset.parse_iris(data)
    return pd.concat([frame] * copies, ignore_index=True).to_csv(index=False, header=False)


def _lines(store: Any, key: str) -> int:
    """Rows of a CSV object, or predictions of a transform output."""
    data = store.get_bytes(DEFAULT_LOCAL_BUCKET, key)
    if key.endswith(".out"):
        return len(evaluation.parse_predictions(data))
    return len(data.decode().splitlines())


@pytest.fixture
def migrated_dagster_home(dagster_home: Path) -> Path:
    """conftest's DAGSTER_HOME with its storage created, as ``make run`` prepares one: two runs starting
    together on a home without storage race to create it."""
    subprocess.run(
        [sys.executable, "-m", "dagster", "instance", "migrate"],
        env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
        check=True,
        capture_output=True,
    )
    return dagster_home


# ---- keys -------------------------------------------------------------------------------------------


def test_a_runs_keys_mirror_the_tutorials_in_its_own_folder() -> None:
    keys = run_objects.run_keys("manual__2026-12-01T10:00:00+00:00")
    assert keys.train == "iris/runs/manual__2026-12-01T10-00-00-00-00/processed-input-data/train.csv"
    assert keys.labels.endswith("/holdout/test_labels.csv") and keys.output_prefix.endswith("/results")
    assert run_objects.published(keys.train) == TRAIN_KEY
    assert run_objects.sibling(keys.test, TEST_LABELS_KEY) == keys.labels
    assert run_objects.sibling(TEST_KEY, TEST_LABELS_KEY) == TEST_LABELS_KEY
    assert run_objects.folder_of(keys.scored) == "manual__2026-12-01T10-00-00-00-00"
    with pytest.raises(ValueError, match="no letters or digits"):
        run_objects.run_folder("::")


# ---- two runs at once ----------------------------------------------------------------------------------


def test_two_cli_runs_at_once_each_score_their_own_data(tmp_path: Path, migrated_dagster_home: Path) -> None:
    """The reproduction: run A on 45,000 rows, run B on 300 rows 1.5 s later, same local root. Each
    reports its own test rows; the tutorial's keys end up holding one run's complete set."""
    root = tmp_path / "root"
    big, small = tmp_path / "big.csv", tmp_path / "small.csv"
    big.write_text(_iris_rows(300))
    small.write_text(_iris_rows(2))
    home = migrated_dagster_home
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "IRIS_SAGEMAKER_LOCAL_ROOT": str(root),
        "IRIS_SAGEMAKER_DEPLOY_ENDPOINT": "false",
    }
    dagster = str(Path(sys.executable).parent / "dagster")
    command = [dagster, "asset", "materialize", "-m", "iris_sagemaker", "--select", "*"]

    def start(data: Path) -> subprocess.Popen[str]:
        return subprocess.Popen(
            command,
            cwd=REPO,
            env={**env, "IRIS_SAGEMAKER_DATA_URL": data.as_uri()},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    run_a = start(big)
    time.sleep(1.5)
    run_b = start(small)
    try:
        out_b, _ = run_b.communicate(timeout=300)
        out_a, _ = run_a.communicate(timeout=300)
    finally:
        for process in (run_a, run_b):
            if process.poll() is None:
                process.kill()
    assert run_a.returncode == 0, out_a[-3000:]
    assert run_b.returncode == 0, out_b[-3000:]
    assert " on 13501 test rows" in out_a and " on 90 test rows" not in out_a
    assert " on 90 test rows" in out_b
    store = LocalObjectStore(root)
    latest = json.loads(store.get_bytes(DEFAULT_LOCAL_BUCKET, LATEST_KEY))
    folders = {run_objects.folder_of(source) for source in latest["objects"].values()}
    assert len(folders) == 1  # one run's set, not a mix
    rows = _lines(store, TEST_KEY)
    assert rows in (13501, 90)
    assert _lines(store, TEST_LABELS_KEY) == rows + 1  # a header line
    assert _lines(store, PREDICTIONS_KEY) == rows and _lines(store, SCORED_KEY) == rows + 1
    assert _lines(store, TRAIN_KEY) == {13501: 31499, 90: 210}[rows]


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """(object store, SageMaker client): the local folder and engine, or S3 (moto's, over HTTP) and
    SageMaker's API as `iris-sagemaker serve` answers them through boto3."""
    if request.param == "local":
        settings = Settings.from_env({"IRIS_SAGEMAKER_LOCAL_ROOT": str(tmp_path / "root")})
        store = make_store(settings)
        yield store, make_sagemaker_client(settings, store=store)
        return
    from iris_sagemaker.serve.process import start_server

    from .serve_support import client

    server = start_server(tmp_path / "served")
    try:
        s3 = client(server, "s3")
        s3.create_bucket(
            Bucket=DEFAULT_LOCAL_BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-east-2"}
        )
        yield S3ObjectStore(s3), client(server, "sagemaker")
    finally:
        server.stop()


def test_interleaved_airflow_runs_each_score_their_own_data(tmp_path: Path, backend) -> None:
    """Airflow's tasks for two DAG runs, step by step in turn on one bucket (a local folder, or S3):
    each run trains on and scores its own split; the tutorial's keys hold the run that published last."""
    small, other = tmp_path / "small.csv", tmp_path / "other.csv"
    small.write_text(_iris_rows(2))
    other.write_text(_iris_rows(3))
    base = {"IRIS_SAGEMAKER_LOCAL_ROOT": str(tmp_path / "root")}
    settings = {
        "a": Settings.from_env({**base, "IRIS_SAGEMAKER_DATA_URL": small.as_uri()}),
        "b": Settings.from_env(
            {**base, "IRIS_SAGEMAKER_DATA_URL": other.as_uri(), "IRIS_SAGEMAKER_SPLIT_SEED": "7"}
        ),
    }
    store, client = backend
    runs = {"a": "manual__2026-12-01T10:00:00+00:00", "b": "manual__2026-12-01T10:00:01+00:00"}
    for name, run in runs.items():
        airflow_tasks.data_prep(settings[name], store, run)
    # The operators' bodies (airflow_defs.config.operator_configs renders the same), one step at a time.
    trained, models = {}, {}
    for name, run in runs.items():
        keys, names = run_objects.run_keys(run), specs.job_names(run)
        request = specs.training_job_request(settings[name], names.training_job, train_key=keys.train)
        trained[name] = {"Training": job_steps.run_training_job(client, request, LOCAL_WAITING)}
    for name, run in runs.items():
        artifact = trained[name]["Training"]["ModelArtifacts"]["S3ModelArtifacts"]
        request = specs.model_request(settings[name], specs.job_names(run).model, artifact)
        models[name] = job_steps.ensure_model(client, request)["ModelName"]
    scored = {}
    for name, run in runs.items():
        keys = run_objects.run_keys(run)
        request = specs.transform_job_request(
            settings[name],
            specs.job_names(run).transform_job,
            models[name],
            input_key=keys.test,
            output_prefix=keys.output_prefix,
        )
        transform = job_steps.run_transform_job(client, request, LOCAL_WAITING)
        scored[name] = airflow_tasks.score_predictions(
            settings[name], store, client, transform["TransformJobName"], run
        )
    assert scored["a"]["rows"] == 90 and scored["b"]["rows"] == 135
    assert trained["a"]["Training"]["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"].endswith(
        "/iris/runs/manual__2026-12-01T10-00-00-00-00/processed-input-data/train.csv"
    )
    assert _lines(store, TEST_KEY) == 135 and _lines(store, PREDICTIONS_KEY) == 135  # b published last
    latest = json.loads(store.get_bytes(DEFAULT_LOCAL_BUCKET, LATEST_KEY))
    assert latest["run"] == runs["b"]


# ---- publishing -------------------------------------------------------------------------------------


def _run_set(store: LocalObjectStore, run: str, rows: int) -> dict[str, str]:
    keys = run_objects.run_keys(run)
    sources = {}
    for tutorial, key in ((TRAIN_KEY, keys.train), (TEST_KEY, keys.test), (SCORED_KEY, keys.scored)):
        store.put_bytes(DEFAULT_LOCAL_BUCKET, key, f"{run}\n".encode() * rows)
        sources[tutorial] = key
    return sources


def test_publishes_take_turns_and_never_mix_two_runs(tmp_path: Path, monkeypatch) -> None:
    store = LocalObjectStore(tmp_path)
    sets = {run: _run_set(store, run, 10) for run in ("run-a", "run-b")}
    real_copy = run_objects._copy

    def slow_copy(*args) -> None:  # widen the window in which a second publish could interleave
        time.sleep(0.05)
        real_copy(*args)

    monkeypatch.setattr(run_objects, "_copy", slow_copy)
    threads = [
        threading.Thread(target=run_objects.publish, args=(store, DEFAULT_LOCAL_BUCKET, run, sources, print))
        for run, sources in sets.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    winner = json.loads(store.get_bytes(DEFAULT_LOCAL_BUCKET, LATEST_KEY))["run"]
    for key in (TRAIN_KEY, TEST_KEY, SCORED_KEY):
        assert store.get_bytes(DEFAULT_LOCAL_BUCKET, key).decode().splitlines() == [winner] * 10
    assert not store.exists(DEFAULT_LOCAL_BUCKET, LOCK_KEY)


def test_a_live_lock_is_waited_for_then_named_and_a_stale_one_is_broken(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    sources = _run_set(store, "run-c", 1)
    holder = json.dumps({"run": "run-other", "at": time.time()}).encode()
    assert store.create_exclusive(DEFAULT_LOCAL_BUCKET, LOCK_KEY, holder)
    with pytest.raises(PublishError, match=r"run 'run-other' has held s3://iris-sagemaker-local/iris/"):
        run_objects.publish(store, DEFAULT_LOCAL_BUCKET, "run-c", sources, print, lock_timeout=0.5)
    assert not store.exists(DEFAULT_LOCAL_BUCKET, TRAIN_KEY)  # nothing published
    messages: list[str] = []
    run_objects.publish(store, DEFAULT_LOCAL_BUCKET, "run-c", sources, messages.append, stale_after=0.0)
    assert "removing a stale publish lock of run 'run-other'" in messages[0]
    assert store.get_bytes(DEFAULT_LOCAL_BUCKET, TRAIN_KEY) == b"run-c\n"


@mock_aws
def test_the_publish_lock_is_s3s_conditional_write() -> None:
    client = boto3.client("s3", region_name="us-east-2")
    client.create_bucket(Bucket="shared", CreateBucketConfiguration={"LocationConstraint": "us-east-2"})
    store = S3ObjectStore(client)
    assert store.create_exclusive("shared", LOCK_KEY, b"first")
    assert not store.create_exclusive("shared", LOCK_KEY, b"second")
    assert store.get_bytes("shared", LOCK_KEY) == b"first"
    store.delete("shared", LOCK_KEY)
    store.delete("shared", LOCK_KEY)  # deleting a missing object is not an error, as on S3
    keys = run_objects.run_keys("r1")
    store.put_bytes("shared", keys.train, b"1,2,3,4,5\n")
    run_objects.publish(store, "shared", "r1", {TRAIN_KEY: keys.train}, print)
    assert store.get_bytes("shared", TRAIN_KEY) == b"1,2,3,4,5\n"
    assert json.loads(store.get_bytes("shared", LATEST_KEY))["objects"] == {TRAIN_KEY: keys.train}


SLOW_ONLINE_CHECK = """
import glob
import os
import time

turns = os.environ.get("ENDPOINT_TURNS_DIR")
if turns:  # the run holding the endpoint keeps it until the other run has arrived at it and waits
    from iris_sagemaker.steps import endpoint_steps

    real_lock, real_invoke = endpoint_steps.endpoint_lock, endpoint_steps.invoke_rows
    mine = os.path.join(turns, f"arrived-{os.getpid()}")

    def lock(*args, **kwargs):
        open(mine, "w").close()
        return real_lock(*args, **kwargs)

    def invoke(*args, **kwargs):
        deadline = time.time() + 120
        while time.time() < deadline and not set(glob.glob(os.path.join(turns, "arrived-*"))) - {mine}:
            time.sleep(0.2)
        time.sleep(1.0)
        return real_invoke(*args, **kwargs)

    endpoint_steps.endpoint_lock, endpoint_steps.invoke_rows = lock, invoke
"""


def test_two_cli_runs_deploying_at_once_take_turns_on_the_endpoint(
    tmp_path: Path, migrated_dagster_home: Path
) -> None:
    """Two full materializations at once with the endpoint deploy on, same local root; the run that holds
    the endpoint first keeps it until the other has arrived (without turns, the other would deploy while
    the first checks online, and the first would fail: "endpoint iris-knn was switched"). Both succeed,
    the one that came second waits for the first, the endpoint ends on
    the model of the run that published last, and the published set (latest-run.json, iris/dagster/*.json)
    is that run's, endpoint description included."""
    root = tmp_path / "root"
    home = migrated_dagster_home
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SLOW_ONLINE_CHECK)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "IRIS_SAGEMAKER_LOCAL_ROOT": str(root),
        "IRIS_SAGEMAKER_DEPLOY_ENDPOINT": "true",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), str(hooks), os.environ.get("PYTHONPATH")])),
    }
    command = [
        sys.executable,
        "-m",
        "dagster",
        "asset",
        "materialize",
        "-m",
        "iris_sagemaker",
        "--select",
        "*",
    ]
    runs = []
    turns = tmp_path / "turns"
    turns.mkdir()
    for _ in range(2):
        runs.append(
            subprocess.Popen(
                command,
                cwd=REPO,
                env={**env, "ENDPOINT_TURNS_DIR": str(turns)},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
        time.sleep(1.0)
    try:
        outputs = [run.communicate(timeout=300)[0] for run in runs]
    finally:
        for process in runs:
            if process.poll() is None:
                process.kill()
    for run, out in zip(runs, outputs, strict=True):
        assert run.returncode == 0, out[-3000:]
    store = LocalObjectStore(root)
    latest = json.loads(store.get_bytes(DEFAULT_LOCAL_BUCKET, LATEST_KEY))
    client = make_sagemaker_client(Settings.from_env({"IRIS_SAGEMAKER_LOCAL_ROOT": str(root)}), store=store)
    endpoint = client.describe_endpoint(EndpointName="iris-knn")
    config = client.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    assert endpoint["EndpointStatus"] == "InService"
    assert config["ProductionVariants"][0]["ModelName"] == latest["model_name"]  # the later run's model
    folders = {run_objects.folder_of(source) for source in latest["objects"].values()}
    assert len(folders) == 1  # one run's set, not a mix
    assert "iris/dagster/knn_endpoint.json" in latest["objects"]
    described = json.loads(store.get_bytes(DEFAULT_LOCAL_BUCKET, "iris/dagster/knn_endpoint.json"))
    assert described["EndpointConfigName"] == endpoint["EndpointConfigName"]
    model = json.loads(store.get_bytes(DEFAULT_LOCAL_BUCKET, "iris/dagster/knn_model.json"))
    assert model["ModelName"] == latest["model_name"]
    assert not store.exists(DEFAULT_LOCAL_BUCKET, "iris/.endpoint-locks/iris-knn")
    assert "was switched" not in "".join(outputs)
    waited = ["endpoint iris-knn is being deployed by run " in out for out in outputs]
    assert sorted(waited) == [False, True]  # the run that came second took its turn


def test_deploys_to_one_endpoint_take_turns(tmp_path: Path) -> None:
    """A run that finds the endpoint held by another run's deploy waits for it, and says so."""
    store = LocalObjectStore(tmp_path)
    order: list[str] = []
    messages: list[str] = []
    held = threading.Event()

    def deploy(run: str, hold: float) -> None:
        with endpoint_steps.endpoint_lock(
            store, DEFAULT_LOCAL_BUCKET, "iris-knn", run, LOCAL_WAITING, messages.append
        ):
            held.set()
            order.append(f"{run} in")
            time.sleep(hold)
            order.append(f"{run} out")

    first = threading.Thread(target=deploy, args=("run-a", 0.6))
    first.start()
    held.wait(10)
    deploy("run-b", 0.0)
    first.join(10)
    assert order == ["run-a in", "run-a out", "run-b in", "run-b out"]
    assert messages == ["endpoint iris-knn is being deployed by run 'run-a': waiting for it to finish"]
    assert not store.exists(DEFAULT_LOCAL_BUCKET, endpoint_steps.endpoint_lock_key("iris-knn"))


def test_a_held_lock_is_refreshed_and_a_dead_runs_lock_is_broken(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    key = endpoint_steps.endpoint_lock_key("iris-knn")

    def busy(holder: str | None, age: float) -> Exception:
        return RuntimeError(f"held by {holder}")

    lock = dict(what="endpoint lock", log=print, timeout=0.5, busy=busy)
    with run_objects.object_lock(
        store, DEFAULT_LOCAL_BUCKET, key, "run-a", stale_after=1.0, heartbeat=0.1, **lock
    ):
        time.sleep(1.5)  # longer than stale_after: the heartbeat keeps it from looking dead
        with (
            pytest.raises(RuntimeError, match="held by run-a"),
            run_objects.object_lock(store, DEFAULT_LOCAL_BUCKET, key, "run-b", stale_after=1.0, **lock),
        ):
            pass
    dead = json.dumps({"run": "run-dead", "at": time.time() - 200}).encode()
    assert store.create_exclusive(DEFAULT_LOCAL_BUCKET, key, dead)
    messages: list[str] = []
    with run_objects.object_lock(
        store, DEFAULT_LOCAL_BUCKET, key, "run-c", **{**lock, "log": messages.append}, stale_after=120.0
    ):
        assert json.loads(store.get_bytes(DEFAULT_LOCAL_BUCKET, key))["run"] == "run-c"
    assert messages[0].startswith("removing a stale endpoint lock of run 'run-dead'")


def test_the_published_descriptions_are_the_published_runs(tmp_path: Path) -> None:
    """A Dagster run publishes its iris/dagster/*.json; an Airflow run (which makes none) publishing
    after it removes them, so latest-run.json and iris/dagster/ never describe two runs. An endpoint
    description is added to its run's set only while that run is still the published one."""
    store = LocalObjectStore(tmp_path)
    dagster_run = _run_set(store, "dagster-run", 1)
    own_model = run_objects.scoped("iris/dagster/knn_model.json", "dagster-run")
    store.put_bytes(DEFAULT_LOCAL_BUCKET, own_model, b'{"ModelName": "Iris-KNN-dagster-run"}')
    run_objects.publish(
        store,
        DEFAULT_LOCAL_BUCKET,
        "dagster-run",
        {**dagster_run, "iris/dagster/knn_model.json": own_model},
        print,
    )
    own_endpoint = run_objects.scoped("iris/dagster/knn_endpoint.json", "dagster-run")
    store.put_bytes(DEFAULT_LOCAL_BUCKET, own_endpoint, b"{}")
    assert run_objects.publish_more(
        store, DEFAULT_LOCAL_BUCKET, "dagster-run", {"iris/dagster/knn_endpoint.json": own_endpoint}, print
    )
    assert store.list_keys(DEFAULT_LOCAL_BUCKET, "iris/dagster/") == [
        "iris/dagster/knn_endpoint.json",
        "iris/dagster/knn_model.json",
    ]
    assert "iris/dagster/knn_endpoint.json" in run_objects.latest_run(store, DEFAULT_LOCAL_BUCKET)["objects"]
    run_objects.publish(store, DEFAULT_LOCAL_BUCKET, "airflow-run", _run_set(store, "airflow-run", 1), print)
    assert store.list_keys(DEFAULT_LOCAL_BUCKET, "iris/dagster/") == []
    messages: list[str] = []
    assert not run_objects.publish_more(
        store,
        DEFAULT_LOCAL_BUCKET,
        "dagster-run",
        {"iris/dagster/knn_endpoint.json": own_endpoint},
        messages.append,
    )
    assert "run 'airflow-run' published since" in messages[0]
    assert run_objects.latest_run(store, DEFAULT_LOCAL_BUCKET)["run"] == "airflow-run"
