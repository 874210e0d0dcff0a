"""``iris-sagemaker export-airflow-dag``: the self-contained DAG file for other Airflow deployments.

It imports only Airflow, the Amazon provider, pandas, requests and the standard library; it is its
template with core/portable.py copied in verbatim and the values written as literals, and ruff passes it;
it parses on this venv's Airflow line; its macros name runs, its split and its scoring are ours; its
rendered bodies equal the assets' requests; it runs offline against ``iris-sagemaker serve``; the
committed copy (docs/exported_dag/) is current.

Runs in .venv (Airflow 2.11) and .venv-airflow3 (Airflow 3.x); the tests that need Airflow skip where it
is absent.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import http.server
import io
import json
import os
import re
import runpy
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import iris_sagemaker
from iris_sagemaker import cli
from iris_sagemaker.airflow_defs import export, exported_dag_values
from iris_sagemaker.core import dataset, evaluation, portable, run_objects, specs
from iris_sagemaker.core.settings import PREDICTIONS_KEY, Settings
from iris_sagemaker_tests.airflow_support import (
    REPO,
    FakeTaskInstance,
    airflow_env,
    aws_connection,
    chain,
    dagbag,
    require_airflow,
    run_airflow,
)

pytestmark = [pytest.mark.airflow]

COMMITTED = REPO / export.COMMITTED_COPY
REGION = "us-east-2"
BUCKET = "iris-export-test"
ROLE = "arn:aws:iam::123456789012:role/iris-export-test"
TASK_IDS = ["data_prep", "train_model", "create_model", "test_model", "score_predictions"]
RUN_IDS = [
    "manual__2026-01-02T03:04:05.678901+00:00",
    "scheduled__2021-07-31T00:00:00+00:00",
    "dagster_airflow_run_2026-01-02 03:04:05+00:00",
    "a" * 300,
    "x" * 250 + "+00:00.." + "7" * 40,
]
# What the file may import: Airflow (and its Amazon provider), pandas, requests, the standard library.
ALLOWED_TOP_LEVEL = {"airflow", "pandas", "requests"}


@pytest.fixture(scope="module")
def exported_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dags folder holding only the export (the repository's airflow_dags/ has the same dag_id)."""
    folder = tmp_path_factory.mktemp("exported-dags")
    path = folder / "sagemaker_pipeline.py"
    export.write(path)
    return path


@pytest.fixture(scope="module")
def exported(exported_file: Path) -> dict[str, Any]:
    """The export's module namespace (executed as a DAG file is)."""
    require_airflow()
    return runpy.run_path(str(exported_file), run_name="exported_sagemaker_pipeline")


# --- the file, without Airflow -------------------------------------------------------------------


def _committed_copies() -> list[Path]:
    """Every export in the repository (the docs/ copy, and any other someone commits), by its marker."""
    found = []
    for folder, subfolders, files in os.walk(REPO):
        subfolders[:] = [d for d in subfolders if not d.startswith(".") and d != "__pycache__"]  # venvs
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(folder, name), "rb") as file:
                    if file.readline().startswith(f"# {export.MARKER}".encode()):
                        found.append(Path(folder, name))
    return sorted(found)


def test_the_committed_copies_are_current() -> None:
    stale = "stale: run `iris-sagemaker export-airflow-dag --out docs/exported_dag/sagemaker_pipeline.py`"
    assert COMMITTED.is_file(), stale
    assert COMMITTED.read_bytes() == export.render_dag_file().encode("utf-8"), stale
    copies = _committed_copies()
    assert COMMITTED in copies
    for path in copies:
        text = path.read_text(encoding="utf-8")
        region = re.search(r'^REGION = "([a-z0-9-]+)"', text, re.MULTILINE)
        assert region, f"{path} has no REGION line: export it again"
        out = path.relative_to(REPO)
        assert text == export.render_dag_file(export.export_settings(region.group(1))), (
            f"stale: run `iris-sagemaker export-airflow-dag --region {region.group(1)} --out {out}`"
        )


def test_the_file_imports_only_airflow_the_provider_pandas_requests_and_the_standard_library() -> None:
    tree = ast.parse(export.render_dag_file())
    tops = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            tops |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports"
            tops.add((node.module or "").partition(".")[0])
    assert "iris_sagemaker" not in tops
    outside = {top for top in tops - ALLOWED_TOP_LEVEL if top not in sys.stdlib_module_names}
    assert outside == set(), f"imports outside Airflow, pandas, requests and the standard library: {outside}"
    assert {"airflow", "pandas", "requests"} <= tops


def test_the_bodies_are_literals_of_the_builders_bodies() -> None:
    """No names, calls or f-strings in the request bodies: dict literals a reader can check."""
    tree = ast.parse(export.render_dag_file())
    bodies = exported_dag_values.request_bodies(export.export_settings())
    values = export.assignments(tree)
    assert set(bodies) == {"TRAINING_CONFIG", "MODEL_CONFIG", "TRANSFORM_CONFIG"}
    for name, body in bodies.items():
        assert ast.literal_eval(values[name]) == body
    training = bodies["TRAINING_CONFIG"]
    assert training["RoleArn"] == "{{ var.value.role }}"
    assert training["OutputDataConfig"]["S3OutputPath"] == "s3://{{ var.value.s3_bucket }}/iris/results"
    assert training["TrainingJobName"] == "{{ iris_job_names(run_id).training_job }}"


def test_another_region_exports_its_image_and_passes_ruff(tmp_path: Path) -> None:
    text = export.render_dag_file(export.export_settings("eu-west-1"))
    assert text.count('"438346466558.dkr.ecr.eu-west-1.amazonaws.com/knn:1"') == 2
    assert 'REGION = "eu-west-1"' in text and "us-east-2" not in text
    _ruff(text, str(export.COMMITTED_COPY))


def _outside_regions(text: str) -> list[str]:
    """The lines of a template or an export outside its regions (``# >>> name`` ... ``# <<< name``)."""
    kept, inside = [], False
    for line in text.splitlines():
        if line.startswith("# <<< "):
            inside = False
        if not inside:
            kept.append(line)
        if line.startswith("# >>> "):
            inside = True
    return kept


def test_the_file_is_its_template_with_the_portable_module_verbatim_and_the_values_as_literals() -> None:
    text = export.render_dag_file()
    template = export.TEMPLATE.read_text(encoding="utf-8")
    assert text.startswith(export.HEADER)
    assert _outside_regions(text[len(export.HEADER) :]) == _outside_regions(template)
    portable_source = export.PORTABLE.read_text(encoding="utf-8")
    start = text.index("# >>> portable")
    region = text[text.index("\n", start) + 1 : text.index("# <<< portable")]
    assert region == portable_source  # byte for byte
    start = text.index("# >>> values")
    values = ast.parse(text[text.index("\n", start) + 1 : text.index("# <<< values")])
    expected = exported_dag_values.dag_values(export.export_settings())
    written = export.assignments(values)
    assert len(written) == len(values.body)  # nothing but assignments
    assert {name: ast.literal_eval(node) for name, node in written.items()} == {
        name: expected[name] for name in written
    }
    used = ast.parse(template).body  # the names the template's values region imports, all written
    imported = {a.name for n in used if isinstance(n, ast.ImportFrom) for a in n.names}
    assert set(written) == imported & set(expected)


def test_the_core_uses_the_helpers_the_file_copies() -> None:
    """One source: what the export copies is what specs, run_objects, evaluation and dataset run."""
    assert specs.job_names is portable.job_names and specs.JobNames is portable.JobNames
    assert run_objects.run_folder is portable.run_folder
    assert evaluation.parse_predictions is portable.parse_predictions
    assert evaluation.join_predictions is portable.join_predictions
    assert evaluation.PredictionsError is portable.PredictionsError
    assert (dataset.LABELS, dataset.SPECIES) == (portable.LABELS, portable.SPECIES)
    assert dataset.LABELS is portable.LABELS and dataset.FEATURES is portable.FEATURES


def test_the_values_module_holds_the_default_exports_values() -> None:
    """In this repository the template imports these names: it then runs as the default export does."""
    for name, value in exported_dag_values.dag_values(export.export_settings()).items():
        assert getattr(exported_dag_values, name) == value, name


_TEMPLATE = export.TEMPLATE.read_text(encoding="utf-8") if export.TEMPLATE.exists() else ""


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("# <<< portable\n", "", "expected one region '# >>> portable' ... '# <<< portable', found 1 start"),
        ("    run_folder,\n)", "    run_folder,\n    split_iris,\n)", "uses split_iris, which portable.py"),
        ("    TRANSFORM_CONFIG,\n)", "    TRANSFORM_CONFIG,\n    ROLE_ARN,\n)", "imports ROLE_ARN, which"),
        ("\n# <<< values", "\nX = 1\n# <<< values", "may only import names (from ... import A, B)"),
        ("\nlog = ", "\njob_names = None\nlog = ", "both define job_names: in the exported file one"),
    ],
)
def test_a_broken_template_is_a_clear_error(old: str, new: str, message: str) -> None:
    assert _TEMPLATE.count(old) == 1
    values = exported_dag_values.dag_values(export.export_settings())
    portable_source = export.PORTABLE.read_text(encoding="utf-8")
    with pytest.raises(export.ExportError, match=re.escape(message)):
        export.fill(_TEMPLATE.replace(old, new), portable_source, values)


def test_a_portable_module_the_file_cannot_hold_is_a_clear_error() -> None:
    values = exported_dag_values.dag_values(export.export_settings())
    portable_source = "from __future__ import annotations\n" + export.PORTABLE.read_text(encoding="utf-8")
    text = export.fill(_TEMPLATE, portable_source, values)
    with pytest.raises(export.ExportError, match=r"the exported DAG does not compile, line .*portable\.py"):
        export.check(text, values)


def _ruff(text: str, filename: str) -> None:
    ruff = Path(sys.executable).parent / "ruff"
    if not ruff.exists():
        pytest.skip("ruff is not installed in this venv (make test runs `ruff check .` in .venv)")
    done = subprocess.run(
        [str(ruff), "check", "--stdin-filename", filename, "-"],
        input=text,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_passes_the_template_and_the_file() -> None:
    _ruff(export.TEMPLATE.read_text(encoding="utf-8"), str(export.TEMPLATE.relative_to(REPO)))
    _ruff(export.render_dag_file(), str(export.COMMITTED_COPY))


def test_the_command_writes_stdout_or_a_whole_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli.main(["export-airflow-dag"]) == 0
    assert capsys.readouterr().out == export.render_dag_file()

    out = tmp_path / "dags" / "sagemaker_pipeline.py"
    out.parent.mkdir()
    assert cli.main(["export-airflow-dag", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == export.render_dag_file()
    assert oct(out.stat().st_mode & 0o044) == oct(0o044 & ~_umask())  # readable by the scheduler

    # A write that fails halfway leaves the previous file whole, and no temporary file behind.
    out.write_text("previous\n")

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export.os, "fsync", full_disk)
    assert cli.main(["export-airflow-dag", "--out", str(out)]) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert out.read_text() == "previous\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["sagemaker_pipeline.py"]


def test_a_missing_folder_or_a_folder_as_out_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere" / "sagemaker_pipeline.py"
    assert cli.main(["export-airflow-dag", "--out", str(missing)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("iris-sagemaker export-airflow-dag: cannot write ")
    assert f"the folder {missing.parent} does not exist" in err
    assert not missing.parent.exists()
    assert cli.main(["export-airflow-dag", "--out", str(tmp_path)]) == 1
    assert "is a folder" in capsys.readouterr().err


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --- the file on this Airflow line -----------------------------------------------------------------


@pytest.fixture(scope="module")
def exported_dag(exported_file: Path) -> Any:
    from iris_sagemaker.airflow_defs import config

    with pytest.MonkeyPatch.context() as patch:  # module scope: before conftest's per-test environment
        for knob in (config.CHECK_INTERVAL_ENV, config.DEFERRABLE_ENV):
            patch.delenv(knob, raising=False)
        require_airflow()
        bag = dagbag(exported_file.parent)
    assert bag.import_errors == {}
    assert list(bag.dags) == ["sagemaker_pipeline"]
    return bag.dags["sagemaker_pipeline"]


def test_the_file_parses_on_this_airflow_line_with_the_providers_own_operators(exported_dag: Any) -> None:
    from airflow.providers.amazon.aws.operators.sagemaker import (
        SageMakerModelOperator,
        SageMakerTrainingOperator,
        SageMakerTransformOperator,
    )

    assert chain(exported_dag) == TASK_IDS
    train, model, transform = (exported_dag.get_task(t) for t in TASK_IDS[1:4])
    assert type(train) is SageMakerTrainingOperator
    assert type(model) is SageMakerModelOperator
    assert type(transform) is SageMakerTransformOperator
    for task in (train, model, transform):
        assert (task.aws_conn_id, task.region_name) == ("aws-sagemaker", REGION)
    assert train.deferrable and transform.deferrable  # the tutorial's Async operators
    assert train.check_interval == transform.check_interval == 30  # the provider's default
    assert type(exported_dag.timetable).__name__ == "NullTimetable"  # no schedule, as in make airflow-run
    assert set(exported_dag.user_defined_macros) == {"iris_job_names", "iris_run_folder"}


def test_parsing_the_file_loads_neither_iris_sagemaker_nor_pandas(exported_file: Path, tmp_path) -> None:
    require_airflow()
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1]); "
        "print(sorted({m.partition('.')[0] for m in sys.modules} & {'iris_sagemaker', 'pandas', 'requests'}))"
    )
    env = airflow_env(tmp_path / "home")
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [sys.executable, "-c", code, str(exported_file)],
        cwd=tmp_path,  # not the repository: nothing on sys.path names iris_sagemaker but the venv
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    assert "iris_sagemaker" not in loaded
    assert "pandas" not in loaded  # imported by the tasks, when they run


def test_the_template_runs_in_this_repository_as_the_file_does(exported: dict[str, Any]) -> None:
    """The template is a DAG file here too (its regions import what the export writes): the same tasks,
    operator configs and macros."""
    template = runpy.run_path(str(export.TEMPLATE), run_name="template_sagemaker_pipeline")
    ours, theirs = template["dag"], exported["dag"]
    assert chain(ours) == chain(theirs) == TASK_IDS
    for task_id in TASK_IDS[1:4]:
        assert ours.get_task(task_id).config == theirs.get_task(task_id).config
    assert set(ours.user_defined_macros) == set(theirs.user_defined_macros)
    assert ours.doc_md == theirs.doc_md


@pytest.mark.parametrize("run_id", RUN_IDS)
def test_the_files_macros_name_runs_as_specs_and_run_objects(exported: dict[str, Any], run_id: str) -> None:
    assert vars(exported["job_names"](run_id)) == vars(specs.job_names(run_id))
    assert exported["run_folder"](run_id) == run_objects.run_folder(run_id)
    own = run_objects.run_keys(run_id)
    for name in vars(own):
        assert exported["run_key"](run_id, name) == getattr(own, name)
    predictions = specs.transform_output_key(own.test, own.output_prefix)  # where the transform writes
    assert exported["run_key"](run_id, "predictions") == predictions


def test_the_files_macros_refuse_what_ours_refuse(exported: dict[str, Any]) -> None:
    pairs = ((specs.job_names, exported["job_names"]), (run_objects.run_folder, exported["run_folder"]))
    for ours, theirs in pairs:
        with pytest.raises(ValueError) as mine:
            ours("::++")
        with pytest.raises(ValueError) as exported_error:
            theirs("::++")
        assert str(exported_error.value) == str(mine.value)


@pytest.mark.parametrize("seed", [42, 0, 7])
def test_the_files_split_equals_dataset_split(exported: dict[str, Any], seed: int) -> None:
    source, data = dataset.read_source(None)
    ours = dataset.parse_iris(data, source)
    frame = exported["parse_iris"](data, source)
    pd.testing.assert_frame_equal(frame, ours)
    assert frame.to_csv(index=False) == ours.to_csv(index=False)  # the raw object, byte for byte
    parts = dataset.split(ours, seed=seed)
    train, test_features, test_labels = exported["split_iris"](frame, seed)
    assert exported["sagemaker_csv"](train) == dataset.to_sagemaker_csv(parts.train)
    assert exported["sagemaker_csv"](test_features) == dataset.to_sagemaker_csv(parts.test_features)
    assert test_labels.to_frame().to_csv(index=False) == parts.test_labels.to_frame().to_csv(index=False)
    assert exported["SPLIT_SEED"] == 42 and exported["TRAIN_FRACTION"] == 0.7


def test_the_files_parser_rejects_what_ours_rejects(exported: dict[str, Any]) -> None:
    header = b"sepal_length,sepal_width,petal_length,petal_width,species\n"
    row = b"5.1,3.5,1.4,0.2,Iris-setosa\n"
    pd.testing.assert_frame_equal(
        exported["parse_iris"](header + row + b"\n", "t"), dataset.parse_iris(header + row + b"\n", "t")
    )
    bad_rows = (b"5.1,x,1.4,0.2,Iris-setosa\n", b"5.1,3.5,1.4,0.2,Iris-odd\n", b"5.1,inf,1,1,Iris-setosa\n")
    for data in (*(row + bad for bad in bad_rows), b"", b"\n\n", header):
        with pytest.raises(ValueError):
            dataset.parse_iris(data, "t")
        with pytest.raises(ValueError):
            exported["parse_iris"](data, "t")


@pytest.mark.parametrize(("value", "deferrable"), [(None, True), ("On", True), ("no", False), ("0", False)])
def test_the_files_deferrable_switch_takes_the_packages_yes_no_words(
    exported_file: Path, monkeypatch: pytest.MonkeyPatch, value: str | None, deferrable: bool
) -> None:
    require_airflow()
    from iris_sagemaker.airflow_defs.config import DEFERRABLE_ENV, deferrable_default

    if value is None:
        monkeypatch.delenv(DEFERRABLE_ENV, raising=False)
    else:
        monkeypatch.setenv(DEFERRABLE_ENV, value)
    namespace = runpy.run_path(str(exported_file), run_name="exported_deferrable_probe")
    assert namespace["DEFERRABLE"] is deferrable is deferrable_default()


def test_a_bad_deferrable_value_stops_the_file_with_the_variable_named(
    exported_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_airflow()
    from iris_sagemaker.airflow_defs.config import DEFERRABLE_ENV

    monkeypatch.setenv(DEFERRABLE_ENV, "sometimes")
    message = rf"{DEFERRABLE_ENV}='sometimes' is not true or false \(yes/no words"
    with pytest.raises(ValueError, match=message):
        runpy.run_path(str(exported_file), run_name="exported_deferrable_probe")


def test_the_files_scoring_equals_evaluation(exported: dict[str, Any]) -> None:
    source, data = dataset.read_source(None)
    parts = dataset.split(dataset.parse_iris(data, source), seed=42)
    labels = parts.test_labels.tolist()
    predicted = [labels[0] + 1, *labels[1:]]  # one wrong
    batches = "".join(
        json.dumps({"predictions": [{"predicted_label": float(p)} for p in predicted[i : i + 10]]}) + "\n"
        for i in range(0, len(predicted), 10)
    ).encode()
    assert exported["parse_predictions"](batches) == evaluation.parse_predictions(batches)
    features = parts.test_features
    ours = evaluation.join_predictions(features, parts.test_labels, evaluation.parse_predictions(batches))
    theirs = exported["join_predictions"](features, parts.test_labels, exported["parse_predictions"](batches))
    pd.testing.assert_frame_equal(theirs, ours)
    with pytest.raises(ValueError, match="predictions for"):
        exported["join_predictions"](features, parts.test_labels, predicted[:-1])
    assert exported["ACCURACY_THRESHOLD"] == evaluation.ACCURACY_THRESHOLD


def _variables() -> dict[str, Any]:
    """``var`` of a task's template context, as Airflow builds it (Variables: AIRFLOW_VAR_*, no database)."""
    try:
        from airflow.sdk.execution_time.context import VariableAccessor  # Airflow 3
    except ImportError:
        from airflow.utils.context import VariableAccessor  # Airflow 2
    value, as_json = VariableAccessor(deserialize_json=False), VariableAccessor(deserialize_json=True)
    return {"value": value, "json": as_json}


@pytest.mark.parametrize("run_id", RUN_IDS[:3])
def test_rendered_bodies_equal_the_assets_requests(
    exported_dag: Any, monkeypatch: pytest.MonkeyPatch, run_id: str
) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_S3_BUCKET", BUCKET)
    monkeypatch.setenv("AIRFLOW_VAR_ROLE", ROLE)
    names = specs.job_names(run_id)
    artifact = f"s3://{BUCKET}/iris/results/{names.training_job}/output/model.tar.gz"
    xcoms = {
        "train_model": {"Training": {"ModelArtifacts": {"S3ModelArtifacts": artifact}}},
        "create_model": {"Model": {"ModelName": names.model}},
    }
    context = {"run_id": run_id, "ti": FakeTaskInstance(xcoms), "var": _variables()}
    env = exported_dag.get_template_env()
    rendered = {
        t: exported_dag.get_task(t).render_template(exported_dag.get_task(t).config, context, jinja_env=env)
        for t in TASK_IDS[1:4]
    }

    # What the Dagster assets send for the same bucket, role and run (run_objects: the run's folder).
    settings = Settings.from_env(backend="aws", bucket=BUCKET, role_arn=ROLE)
    own = run_objects.run_keys(run_id)
    training = specs.training_job_request(settings, names.training_job, train_key=own.train)
    assert rendered["train_model"] == training
    assert rendered["create_model"] == specs.model_request(settings, names.model, artifact)
    assert rendered["test_model"] == specs.transform_job_request(
        settings, names.transform_job, names.model, input_key=own.test, output_prefix=own.output_prefix
    )

    prep = exported_dag.get_task("data_prep")
    args = prep.render_template(prep.op_args, context, jinja_env=env)
    assert args[0] == BUCKET
    monkeypatch.setenv("AIRFLOW_VAR_IRIS_DATA_URL", "http://127.0.0.1:1/iris.data")
    assert prep.render_template(prep.op_args, context, jinja_env=env)[1] == "http://127.0.0.1:1/iris.data"


# --- the file, run offline against `iris-sagemaker serve` -----------------------------------------


@contextlib.contextmanager
def _iris_over_http() -> Iterator[str]:
    """The packaged iris.data on a loopback HTTP server (the test never reaches the internet)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    folder = Path(iris_sagemaker.__file__).parent / "data"
    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/iris.data"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.mark.slow
@pytest.mark.server
def test_the_file_runs_offline_against_serve(exported_file: Path, tmp_path: Path) -> None:
    require_airflow()
    import boto3

    from iris_sagemaker.serve.process import start_server

    home = tmp_path / "airflow-home"
    migrated = run_airflow(["db", "migrate"], airflow_env(home), timeout=300)
    assert migrated.returncode == 0, migrated.stdout[-2000:] + migrated.stderr[-3000:]

    server = start_server(tmp_path / "serve-root")
    try:
        clients = {"region_name": REGION, "endpoint_url": server.url}
        s3 = boto3.client("s3", **clients)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        with _iris_over_http() as data_url:
            env = airflow_env(
                home,
                AIRFLOW__CORE__DAGS_FOLDER=str(exported_file.parent),
                AIRFLOW_VAR_S3_BUCKET=BUCKET,
                AIRFLOW_VAR_ROLE=ROLE,
                AIRFLOW_VAR_IRIS_DATA_URL=data_url,
                IRIS_SAGEMAKER_AIRFLOW_CHECK_INTERVAL="1",
                **{"AIRFLOW_CONN_AWS-SAGEMAKER": aws_connection(server.url, REGION)},
            )
            done = run_airflow(["dags", "test", "sagemaker_pipeline"], env)
        output = done.stdout + done.stderr
        assert done.returncode == 0, output[-6000:]
        assert "state=success" in output or "successful" in output, output[-6000:]

        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
        folders = {run_objects.folder_of(key) for key in keys} - {None}
        assert len(folders) == 1, keys
        folder = folders.pop()
        assert folder is not None and folder.startswith("manual__")
        own = run_objects.run_keys(folder)  # run_folder(folder) == folder: the same keys as the run's
        get = lambda key: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()  # noqa: E731

        source, data = dataset.read_source(None)
        frame = dataset.parse_iris(data, source)
        parts = dataset.split(frame, seed=42)
        assert get(own.raw) == frame.to_csv(index=False).encode()
        assert get(own.train) == dataset.to_sagemaker_csv(parts.train)
        assert get(own.test) == dataset.to_sagemaker_csv(parts.test_features)
        assert pd.read_csv(io.BytesIO(get(own.labels)))["true_label"].tolist() == parts.test_labels.tolist()

        predicted = evaluation.parse_predictions(get(own.predictions))
        assert len(predicted) == 45
        scored = pd.read_csv(io.BytesIO(get(own.scored)))
        wanted = evaluation.join_predictions(parts.test_features, parts.test_labels, predicted)
        assert get(own.scored) == wanted.to_csv(index=False).encode()
        assert len(scored) == 45 and scored["correct"].mean() >= evaluation.ACCURACY_THRESHOLD
        assert PREDICTIONS_KEY not in keys  # the export does not publish to the tutorial's keys

        sagemaker = boto3.client("sagemaker", **clients)
        (job,) = sagemaker.list_training_jobs()["TrainingJobSummaries"]
        assert job["TrainingJobStatus"] == "Completed"
        names = specs.job_names(folder)  # Airflow's manual run ids name the same jobs as their folders
        assert job["TrainingJobName"] == names.training_job
        transform = sagemaker.describe_transform_job(TransformJobName=names.transform_job)
        assert transform["TransformJobStatus"] == "Completed"
        assert transform["ModelName"] == names.model
    finally:
        server.stop()
