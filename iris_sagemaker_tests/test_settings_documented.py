"""One settings path (README, "Settings (environment variables)"): the ``IRIS_SAGEMAKER_*`` variables the
code names are the ones the README documents, each is named once (``iris_sagemaker/core/settings.py``), no
module outside it reads a setting's variable, and every setting of a run is a field of the Dagster
resource."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from iris_sagemaker.core import settings as settings_module
from iris_sagemaker.core.settings import (
    INTERNAL,
    PROCESS_FIELDS,
    RUN_FIELDS,
    SETTINGS,
    Settings,
    SettingsError,
)
from iris_sagemaker.dagster_defs.resources import SageMakerResource

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "iris_sagemaker"
SETTINGS_FILE = PACKAGE / "core" / "settings.py"
NAME = re.compile(r"IRIS_SAGEMAKER_[A-Z0-9_]*[A-Z0-9]")
REGISTRY = set(SETTINGS) | set(INTERNAL)


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _named_in(paths: list[Path]) -> dict[str, set[str]]:
    """Each IRIS_SAGEMAKER_ name found in ``paths`` (code, docstrings, messages) and the files naming it."""
    found: dict[str, set[str]] = {}
    for path in paths:
        for name in NAME.findall(path.read_text(encoding="utf-8")):
            found.setdefault(name, set()).add(str(path.relative_to(REPO)))
    return found


def test_the_readme_documents_exactly_the_variables_of_the_registry() -> None:
    documented = set(NAME.findall((REPO / "README.md").read_text(encoding="utf-8")))
    undocumented, unknown = sorted(REGISTRY - documented), sorted(documented - REGISTRY)
    assert not undocumented, f"named in core/settings.py but not in the README: {undocumented}"
    assert not unknown, f"in the README but not named in core/settings.py: {unknown}"


def test_every_variable_the_code_names_is_in_the_registry() -> None:
    extra = [REPO / "Makefile", *sorted((REPO / "bench").glob("*.py"))]
    named = _named_in(_sources() + [path for path in extra if path.exists()])
    unknown = {name: sorted(files) for name, files in named.items() if name not in REGISTRY}
    assert not unknown, f"variables named outside the registry of core/settings.py: {unknown}"


def test_a_variables_name_is_spelled_only_in_core_settings() -> None:
    """Outside core/settings.py a variable is referred to by its constant, never by a string of its name
    (messages and docstrings may mention it)."""
    spelled = []
    for path in _sources():
        if path == SETTINGS_FILE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and NAME.fullmatch(node.value):
                spelled.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}")
    assert not spelled, "define the name in core/settings.py and import it:\n" + "\n".join(spelled)


def _settings_aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> value of each name the module imports from core.settings."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "iris_sagemaker.core.settings":
            for alias in node.names:
                value = getattr(settings_module, alias.name, None)
                if isinstance(value, str):
                    aliases[alias.asname or alias.name] = value
    return aliases


def _read_key(node: ast.AST) -> ast.AST | None:
    """The key of an environment read: ``X.get(key, ...)``, ``X[key]``, ``os.getenv(key)``, where X is
    ``os.environ`` or an ``env``/``environ`` mapping."""
    def is_environment(target: ast.AST) -> bool:
        if isinstance(target, ast.Attribute):
            return target.attr == "environ"
        return isinstance(target, ast.Name) and target.id in ("env", "environ", "environment")

    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
        if node.func.attr == "get" and is_environment(node.func.value):
            return node.args[0]
        if node.func.attr == "getenv":
            return node.args[0]
    if isinstance(node, ast.Subscript) and is_environment(node.value):
        return node.slice
    return None


def reads_of_settings(path: Path) -> list[str]:
    """Where ``path`` reads a setting's variable from the environment (internal variables aside), as
    ``line N: NAME``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases = _settings_aliases(tree)
    found = []
    for node in ast.walk(tree):
        key = _read_key(node)
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            name: str | None = key.value
        elif isinstance(key, ast.Name):
            name = aliases.get(key.id)
        else:
            name = None
        if name and name.startswith("IRIS_SAGEMAKER_") and name not in INTERNAL:
            found.append(f"line {node.lineno}: {name}")
    return sorted(found)


def test_no_module_outside_core_settings_reads_a_setting() -> None:
    reads = [
        f"{path.relative_to(REPO)}, {read}"
        for path in _sources()
        if path != SETTINGS_FILE
        for read in reads_of_settings(path)
    ]
    assert not reads, "read it through core/settings.py (Settings, env_bool, ...):\n" + "\n".join(reads)


def test_the_scan_sees_a_read_through_an_imported_name(tmp_path: Path) -> None:
    """The check above is not vacuous: a module reading a setting, by its imported constant or by its
    name, is caught; one reading an internal variable is not."""
    module = tmp_path / "reader.py"
    module.write_text(
        "import os\n"
        "from iris_sagemaker.core.settings import TUNE_VARIABLE as T, SERVE_OWNER_VARIABLE\n"
        "a = os.environ.get(T)\n"
        "b = os.environ[SERVE_OWNER_VARIABLE]\n"
        "c = os.getenv('IRIS_SAGEMAKER_K')\n"
        "def f(env):\n"
        "    return env['IRIS_SAGEMAKER_BUCKET']\n",
        encoding="utf-8",
    )
    assert reads_of_settings(module) == [
        "line 3: IRIS_SAGEMAKER_TUNE",
        "line 5: IRIS_SAGEMAKER_K",
        "line 7: IRIS_SAGEMAKER_BUCKET",
    ]


def test_every_setting_is_a_field_of_settings() -> None:
    fields = {field.name for field in dataclasses.fields(Settings)} - {"region", "profile", "region_variable"}
    assert set(SETTINGS.values()) == fields


def test_every_setting_of_a_run_is_a_field_of_the_dagster_resource() -> None:
    resource_fields = set(SageMakerResource.model_fields)
    missing = sorted(set(RUN_FIELDS) - resource_fields)
    assert not missing, f"settings a run reads that SageMakerResource cannot configure: {missing}"
    assert not resource_fields & set(PROCESS_FIELDS)  # read before any resource exists
    for variable, name in SETTINGS.items():
        if name in RUN_FIELDS:
            description = SageMakerResource.model_fields[name].description or ""
            assert variable in description, f"SageMakerResource.{name}'s description names {variable}"


def test_a_field_of_the_resource_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRIS_SAGEMAKER_INSTANCE_TYPE", "ml.c5.xlarge")
    monkeypatch.setenv("IRIS_SAGEMAKER_DATA_URL", "file:///from/the/environment.csv")
    assert SageMakerResource().settings.instance_type == "ml.c5.xlarge"
    configured = SageMakerResource(
        instance_type="ml.m5.xlarge", data_url="file:///configured.csv", knn_image="123.dkr.ecr/knn:1"
    ).settings
    assert (configured.instance_type, configured.data_url, configured.knn_image) == (
        "ml.m5.xlarge",
        "file:///configured.csv",
        "123.dkr.ecr/knn:1",
    )


def test_a_bad_resource_field_is_reported_like_the_variable() -> None:
    with pytest.raises(SettingsError, match=r"IRIS_SAGEMAKER_INSTANCE_TYPE='m5' is not a SageMaker instance"):
        _ = SageMakerResource(instance_type="m5").settings


# --- one yes/no parser --------------------------------------------------------------------------------


def _yes_no_readers() -> dict[str, object]:
    from iris_sagemaker.airflow_defs import config
    from iris_sagemaker.core.startup_heap import freeze_enabled
    from iris_sagemaker.dagster_defs.console import verbose

    return {
        "IRIS_SAGEMAKER_TUNE": lambda: Settings.from_env().tune,
        "IRIS_SAGEMAKER_DEPLOY_ENDPOINT": lambda: Settings.from_env().deploy_endpoint,
        "IRIS_SAGEMAKER_VERBOSE": verbose,
        "IRIS_SAGEMAKER_GC_FREEZE": freeze_enabled,
        "IRIS_SAGEMAKER_AIRFLOW_DEFERRABLE": config.deferrable_default,
    }


YES_NO = sorted(_yes_no_readers())


@pytest.mark.parametrize("variable", YES_NO)
@pytest.mark.parametrize(("word", "meaning"), [("1", True), ("TRUE", True), (" yes ", True), ("On", True),
                                               ("0", False), ("false", False), ("No", False), ("OFF", False)])
def test_every_yes_no_setting_takes_the_same_words(
    monkeypatch: pytest.MonkeyPatch, variable: str, word: str, meaning: bool
) -> None:
    monkeypatch.setenv(variable, word)
    assert _yes_no_readers()[variable]() is meaning  # type: ignore[operator]


@pytest.mark.parametrize("variable", YES_NO)
def test_a_bad_yes_no_value_names_the_variable_the_value_and_the_words(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "sometimes")
    with pytest.raises(SettingsError) as raised:
        _yes_no_readers()[variable]()  # type: ignore[operator]
    assert str(raised.value).startswith(
        f"{variable}='sometimes' is not true or false (yes/no words: 1, true, yes, on or 0, false, no, off)"
    )


# --- defaults derived once ----------------------------------------------------------------------------


def test_the_executor_follows_the_backend_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from iris_sagemaker.core.settings import executor_from_env

    assert executor_from_env() == "in_process" == Settings.from_env().executor_name()
    monkeypatch.setenv("IRIS_SAGEMAKER_BACKEND", "AWS")  # no bucket or role: loading does not need them
    assert executor_from_env() == "multiprocess"
    monkeypatch.setenv("IRIS_SAGEMAKER_EXECUTOR", "in_process")
    assert executor_from_env() == "in_process"


def test_a_bad_executor_stops_the_definitions_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from iris_sagemaker.dagster_defs.code_location import build_definitions

    monkeypatch.setenv("IRIS_SAGEMAKER_EXECUTOR", "threads")
    expected = "IRIS_SAGEMAKER_EXECUTOR='threads' is not a Dagster executor; use in_process or multiprocess"
    with pytest.raises(SettingsError, match=expected):
        build_definitions()
    with pytest.raises(SettingsError, match=expected):
        Settings.from_env()


@pytest.mark.parametrize("text", ["0", "-5", "soon"])
def test_a_bad_airflow_check_interval_names_the_variable(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    from iris_sagemaker.airflow_defs import config

    monkeypatch.setenv("IRIS_SAGEMAKER_AIRFLOW_CHECK_INTERVAL", text)
    shown = rf"'?{text}'?"  # an integer as it is, other text quoted
    expected = rf"IRIS_SAGEMAKER_AIRFLOW_CHECK_INTERVAL={shown} is not a positive number of seconds \(e.g. 30"
    with pytest.raises(SettingsError, match=expected):
        config.check_interval(is_local=True)
    with pytest.raises(SettingsError, match=expected):
        Settings.from_env()


def test_the_airflow_check_interval_follows_the_backend_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from iris_sagemaker.airflow_defs import config

    assert (config.check_interval(is_local=True), config.check_interval(is_local=False)) == (1, 30)
    assert Settings.from_env().check_interval() == 1
    monkeypatch.setenv("IRIS_SAGEMAKER_AIRFLOW_CHECK_INTERVAL", "7")
    assert config.check_interval(is_local=False) == 7 == Settings.from_env().check_interval()


def test_the_cli_and_the_settings_share_the_local_root_and_region(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from iris_sagemaker import cli

    monkeypatch.setenv("IRIS_SAGEMAKER_LOCAL_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    serve = cli.parser().parse_args(["serve"])
    settings = Settings.from_env()
    assert serve.root == settings.local_root == tmp_path / "root"
    assert cli.checked_env_region() == settings.region == "eu-west-1"


def test_the_engine_cache_is_the_settings_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from iris_sagemaker.local_sagemaker.service_model import default_cache_dir

    monkeypatch.setenv("IRIS_SAGEMAKER_CACHE_DIR", str(tmp_path / "cache"))
    assert default_cache_dir() == Settings.from_env().cache_dir == tmp_path / "cache"
