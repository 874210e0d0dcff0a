"""One settings object, read from the environment, shared by Dagster, Airflow, the CLI and the engine.

Every ``IRIS_SAGEMAKER_*`` variable is named here, once, and read here, once (README, "Settings"):

- the user's settings, each a field of ``Settings`` (``SETTINGS``), validated by ``Settings.problems``
  with one line a problem naming the variable, the bad value and a valid example; those a run reads
  (``RUN_FIELDS``) are also fields of the Dagster resource ``SageMakerResource``; those read when a
  process starts (the executor, the console, the engine's cache, ``gc.freeze``) and Airflow's have their
  own readers here (``executor_from_env``, ``env_bool``, ...) so that a process reads only what it needs;
- the internal variables (``INTERNAL``), set by our own code for a child process or by the tests: only
  their names live here; the module that uses one reads it.

Dagster resources and Airflow Variables may override the settings, but nothing requires a code edit to
move from the local backend to AWS. Yes/no values take one set of words (``portable.TRUE_WORDS``,
``portable.FALSE_WORDS``), in the exported DAG too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from iris_sagemaker.core.algorithm_images import KNN_REGISTRY_ACCOUNTS, UnknownRegionError, knn_image_uri
from iris_sagemaker.core.knn_hyperparameters import HyperparameterError, parse_hyperparameters
from iris_sagemaker.core.portable import YesNoError, parse_yes_no

# --- the environment variables -------------------------------------------------------------------
# The user's settings (README, "Settings (environment variables)").
BACKEND_VARIABLE = "IRIS_SAGEMAKER_BACKEND"
LOCAL_ROOT_VARIABLE = "IRIS_SAGEMAKER_LOCAL_ROOT"
BUCKET_VARIABLE = "IRIS_SAGEMAKER_BUCKET"
ROLE_ARN_VARIABLE = "IRIS_SAGEMAKER_ROLE_ARN"
KNN_IMAGE_VARIABLE = "IRIS_SAGEMAKER_KNN_IMAGE"
INSTANCE_TYPE_VARIABLE = "IRIS_SAGEMAKER_INSTANCE_TYPE"
DATA_URL_VARIABLE = "IRIS_SAGEMAKER_DATA_URL"
SPLIT_SEED_VARIABLE = "IRIS_SAGEMAKER_SPLIT_SEED"
S3_ENDPOINT_VARIABLE = "IRIS_SAGEMAKER_S3_ENDPOINT_URL"
DEPLOY_ENDPOINT_VARIABLE = "IRIS_SAGEMAKER_DEPLOY_ENDPOINT"
ENDPOINT_NAME_VARIABLE = "IRIS_SAGEMAKER_ENDPOINT_NAME"
TUNE_VARIABLE = "IRIS_SAGEMAKER_TUNE"
TUNING_JOBS_VARIABLE = "IRIS_SAGEMAKER_TUNING_JOBS"
TUNING_PARALLEL_VARIABLE = "IRIS_SAGEMAKER_TUNING_PARALLEL"
TUNING_STRATEGY_VARIABLE = "IRIS_SAGEMAKER_TUNING_STRATEGY"
K_VARIABLE = "IRIS_SAGEMAKER_K"
SAMPLE_SIZE_VARIABLE = "IRIS_SAGEMAKER_SAMPLE_SIZE"
INDEX_METRIC_VARIABLE = "IRIS_SAGEMAKER_INDEX_METRIC"
ACCURACY_THRESHOLD_VARIABLE = "IRIS_SAGEMAKER_ACCURACY_THRESHOLD"
VERBOSE_VARIABLE = "IRIS_SAGEMAKER_VERBOSE"
EXECUTOR_VARIABLE = "IRIS_SAGEMAKER_EXECUTOR"
CACHE_DIR_VARIABLE = "IRIS_SAGEMAKER_CACHE_DIR"
GC_FREEZE_VARIABLE = "IRIS_SAGEMAKER_GC_FREEZE"
AIRFLOW_DEFERRABLE_VARIABLE = "IRIS_SAGEMAKER_AIRFLOW_DEFERRABLE"
AIRFLOW_CONN_ID_VARIABLE = "IRIS_SAGEMAKER_AIRFLOW_CONN_ID"
AIRFLOW_CHECK_INTERVAL_VARIABLE = "IRIS_SAGEMAKER_AIRFLOW_CHECK_INTERVAL"
# Internal: set by our own code for a child process, or by the tests (README, "Internal variables").
SERVE_OWNER_VARIABLE = "IRIS_SAGEMAKER_SERVE_OWNER"  # serve.process sets it; serve.lockfile reads it
TEST_WORKER_DELAY_VARIABLE = "IRIS_SAGEMAKER_LOCAL_TEST_WORKER_DELAY"  # the engine's slow-worker test hook
REQUIRE_BROWSER_VARIABLE = "IRIS_SAGEMAKER_REQUIRE_BROWSER"  # make test: the browser test may not skip
CHROMIUM_VARIABLE = "IRIS_SAGEMAKER_CHROMIUM"  # the browser test's Chromium (default /usr/bin/chromium)

# Each user setting's variable and the ``Settings`` field it sets.
SETTINGS: dict[str, str] = {
    BACKEND_VARIABLE: "backend",
    LOCAL_ROOT_VARIABLE: "local_root",
    BUCKET_VARIABLE: "bucket",
    ROLE_ARN_VARIABLE: "role_arn",
    KNN_IMAGE_VARIABLE: "knn_image",
    INSTANCE_TYPE_VARIABLE: "instance_type",
    DATA_URL_VARIABLE: "data_url",
    SPLIT_SEED_VARIABLE: "split_seed",
    S3_ENDPOINT_VARIABLE: "endpoint_url",
    DEPLOY_ENDPOINT_VARIABLE: "deploy_endpoint",
    ENDPOINT_NAME_VARIABLE: "endpoint_name",
    TUNE_VARIABLE: "tune",
    TUNING_JOBS_VARIABLE: "tuning_jobs",
    TUNING_PARALLEL_VARIABLE: "tuning_parallel",
    TUNING_STRATEGY_VARIABLE: "tuning_strategy",
    K_VARIABLE: "k",
    SAMPLE_SIZE_VARIABLE: "sample_size",
    INDEX_METRIC_VARIABLE: "index_metric",
    ACCURACY_THRESHOLD_VARIABLE: "accuracy_threshold",
    VERBOSE_VARIABLE: "verbose",
    EXECUTOR_VARIABLE: "executor",
    CACHE_DIR_VARIABLE: "cache_dir",
    GC_FREEZE_VARIABLE: "gc_freeze",
    AIRFLOW_DEFERRABLE_VARIABLE: "airflow_deferrable",
    AIRFLOW_CONN_ID_VARIABLE: "airflow_conn_id",
    AIRFLOW_CHECK_INTERVAL_VARIABLE: "airflow_check_interval",
}
# Read when a process starts or an Airflow DAG is parsed, not per run: no field of the Dagster resource.
PROCESS_FIELDS = ("verbose", "executor", "cache_dir", "gc_freeze")
AIRFLOW_FIELDS = ("airflow_deferrable", "airflow_conn_id", "airflow_check_interval")
# The settings a Dagster run reads: each is also a field of ``SageMakerResource`` (with region and
# profile, from boto3's AWS_REGION and AWS_PROFILE).
RUN_FIELDS = tuple(name for name in SETTINGS.values() if name not in PROCESS_FIELDS + AIRFLOW_FIELDS)
# Each internal variable, and who sets it.
INTERNAL: dict[str, str] = {
    SERVE_OWNER_VARIABLE: "serve.process, for the server it starts for its own process",
    TEST_WORKER_DELAY_VARIABLE: "the tests, to slow the engine's job workers down",
    REQUIRE_BROWSER_VARIABLE: "make test, so the browser test fails rather than skips without Chromium",
    CHROMIUM_VARIABLE: "the tests, to point the browser test at another Chromium",
}

# --- defaults ------------------------------------------------------------------------------------
BACKENDS = ("local", "aws")
DEFAULT_REGION = "us-east-2"  # the tutorial's region
DEFAULT_LOCAL_BUCKET = "iris-sagemaker-local"
# A role ARN that satisfies SageMaker's pattern; the embedded engine does not assume roles.
LOCAL_ROLE_ARN = "arn:aws:iam::000000000000:role/iris-sagemaker-local"
DEFAULT_LOCAL_ROOT = "~/.iris-sagemaker"
DEFAULT_INSTANCE_TYPE = "ml.m5.large"
DEFAULT_ENDPOINT_NAME = "iris-knn"
DEFAULT_SPLIT_SEED = 42
# The model (README, "Settings"): the tutorial's k-NN. predictor_type and feature_dim follow from the
# data (three species, four features); k, sample_size and index_metric are settings.
FIXED_HYPERPARAMETERS = {"predictor_type": "classifier", "feature_dim": "4"}
DEFAULT_K = 3
DEFAULT_SAMPLE_SIZE = 150
DEFAULT_ACCURACY_THRESHOLD = 0.9  # the blocking accuracy check's
# Automatic model tuning of k (README, "Tune k"): trials per tuning job, trials at a time, search.
DEFAULT_TUNING_JOBS = 20
DEFAULT_TUNING_PARALLEL = 4
DEFAULT_TUNING_STRATEGY = "Bayesian"
# (variable, hyperparameter, a valid example) of each hyperparameter setting
HYPERPARAMETER_SETTINGS = (
    (K_VARIABLE, "k", str(DEFAULT_K)),
    (SAMPLE_SIZE_VARIABLE, "sample_size", str(DEFAULT_SAMPLE_SIZE)),
    (INDEX_METRIC_VARIABLE, "index_metric", "L2"),
)
# The Dagster executors: in-process on the local backend (the steps are a chain; a process per step
# only costs start-up), a process per step on aws.
EXECUTORS = ("in_process", "multiprocess")
DEFAULT_CONN_ID = "aws-sagemaker"  # the tutorial's Airflow connection (S3 and SageMaker)
DEFAULT_CHECK_INTERVAL = 30  # seconds between Airflow's status polls on aws (jobs take minutes)
LOCAL_CHECK_INTERVAL = 1  # ... and on the local backend (the embedded engine's jobs take about a second)
SAGEMAKER_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
ROLE_ARN_RE = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$")
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")

# S3 keys, as in the tutorial (input_s3_key / output_s3_key).
INPUT_PREFIX = "iris/processed-input-data"
OUTPUT_PREFIX = "iris/results"
TRAIN_KEY = f"{INPUT_PREFIX}/train.csv"
TEST_KEY = f"{INPUT_PREFIX}/test.csv"
# Held-out true labels: outside INPUT_PREFIX so a prefix transform never sends them to the model.
TEST_LABELS_KEY = "iris/holdout/test_labels.csv"
RAW_KEY = "iris/raw/iris.csv"
PREDICTIONS_KEY = f"{OUTPUT_PREFIX}/test.csv.out"
SCORED_KEY = "iris/evaluation/test_predictions.csv"

# boto3's own endpoint variables (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_SAGEMAKER, ...).
BOTO_ENDPOINT_PREFIX = "AWS_ENDPOINT_URL"


class SettingsError(ValueError):
    """Missing or malformed settings: one line each, naming the variable, the bad value and a valid
    example (``problems``)."""

    def __init__(self, *problems: str) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Settings:
    backend: str = "local"
    bucket: str = DEFAULT_LOCAL_BUCKET
    role_arn: str = LOCAL_ROLE_ARN
    region: str = DEFAULT_REGION
    local_root: Path = Path(DEFAULT_LOCAL_ROOT)
    endpoint_url: str | None = None
    profile: str | None = None
    data_url: str | None = None
    split_seed: int = DEFAULT_SPLIT_SEED
    instance_type: str = DEFAULT_INSTANCE_TYPE
    knn_image: str | None = None  # default: the built-in k-NN image of ``region``
    endpoint_name: str = DEFAULT_ENDPOINT_NAME
    deploy_endpoint: bool = True  # default: deploy on the local backend (free), not on aws (billed hourly)
    tune: bool = False  # tune k before training (README, "Tune k"); off: the tutorial's k = 3
    tuning_jobs: int = DEFAULT_TUNING_JOBS
    tuning_parallel: int = DEFAULT_TUNING_PARALLEL
    tuning_strategy: str = DEFAULT_TUNING_STRATEGY
    k: int = DEFAULT_K  # neighbours voting (tuning, when on, chooses k instead)
    sample_size: int = DEFAULT_SAMPLE_SIZE  # training rows k-NN keeps (a seeded sample of more)
    index_metric: str | None = None  # default: not sent, k-NN's own (L2)
    accuracy_threshold: float = DEFAULT_ACCURACY_THRESHOLD
    # Read when a process starts (PROCESS_FIELDS) and by the Airflow DAGs (AIRFLOW_FIELDS).
    verbose: bool = False  # `make run` prints Dagster's event log instead of a line per step
    executor: str | None = None  # default: by backend (``executor_name``)
    cache_dir: Path | None = None  # default: ``default_cache_dir`` (the engine's service model)
    gc_freeze: bool = True  # gc.freeze() once the definitions are loaded (``core.startup_heap``)
    airflow_deferrable: bool = True  # the provider operators wait in the triggerer
    airflow_conn_id: str = DEFAULT_CONN_ID
    airflow_check_interval: int | None = None  # default: by backend (``check_interval``)
    # Where ``region`` came from, for messages: AWS_REGION, AWS_DEFAULT_REGION or a configured value.
    region_variable: str = field(default="AWS_REGION", compare=False, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read ``IRIS_SAGEMAKER_*`` (and the AWS region variables) and validate them; ``overrides`` that
        are not None (the Dagster resource's config, Airflow Variables) win over the environment."""
        read = _Reader(env)
        backend = backend_from_env(read.env)
        is_local = backend == "local"
        region, region_variable = region_from_env(read.env)
        values: dict[str, object] = {
            "backend": backend,
            "bucket": read.text(BUCKET_VARIABLE) or (DEFAULT_LOCAL_BUCKET if is_local else ""),
            "role_arn": read.text(ROLE_ARN_VARIABLE) or (LOCAL_ROLE_ARN if is_local else ""),
            "region": region,
            "region_variable": region_variable,
            "local_root": local_root_from_env(read.env),
            # S3 endpoint (MinIO, moto, LocalStack); boto3 itself also honours AWS_ENDPOINT_URL.
            "endpoint_url": read.text(S3_ENDPOINT_VARIABLE),
            "profile": read.text("AWS_PROFILE"),
            "data_url": read.text(DATA_URL_VARIABLE),
            "split_seed": read.integer(SPLIT_SEED_VARIABLE, DEFAULT_SPLIT_SEED),
            "instance_type": read.text(INSTANCE_TYPE_VARIABLE) or DEFAULT_INSTANCE_TYPE,
            "knn_image": read.text(KNN_IMAGE_VARIABLE),
            "endpoint_name": read.text(ENDPOINT_NAME_VARIABLE) or DEFAULT_ENDPOINT_NAME,
            "deploy_endpoint": read.boolean(
                DEPLOY_ENDPOINT_VARIABLE,
                is_local,
                "set it to true to deploy the model to a real-time endpoint (on aws it bills by the hour)",
            ),
            "tune": read.boolean(
                TUNE_VARIABLE,
                False,
                "set it to true to tune k before training (a hyperparameter tuning job), false for the "
                "tutorial's k = 3",
            ),
            "tuning_jobs": read.integer(TUNING_JOBS_VARIABLE, DEFAULT_TUNING_JOBS),
            "tuning_parallel": read.integer(TUNING_PARALLEL_VARIABLE, DEFAULT_TUNING_PARALLEL),
            "tuning_strategy": read.text(TUNING_STRATEGY_VARIABLE) or DEFAULT_TUNING_STRATEGY,
            "k": read.hyperparameter(K_VARIABLE, "k", DEFAULT_K),
            "sample_size": read.hyperparameter(SAMPLE_SIZE_VARIABLE, "sample_size", DEFAULT_SAMPLE_SIZE),
            "index_metric": read.text(INDEX_METRIC_VARIABLE),
            "accuracy_threshold": read.number(ACCURACY_THRESHOLD_VARIABLE, DEFAULT_ACCURACY_THRESHOLD),
            "verbose": read.boolean(VERBOSE_VARIABLE, False, VERBOSE_HOW),
            "executor": read.text(EXECUTOR_VARIABLE),
            "cache_dir": read.path(CACHE_DIR_VARIABLE),
            "gc_freeze": read.boolean(GC_FREEZE_VARIABLE, True, GC_FREEZE_HOW),
            "airflow_deferrable": read.boolean(AIRFLOW_DEFERRABLE_VARIABLE, True, AIRFLOW_DEFERRABLE_HOW),
            "airflow_conn_id": read.text(AIRFLOW_CONN_ID_VARIABLE) or DEFAULT_CONN_ID,
            "airflow_check_interval": read.seconds(AIRFLOW_CHECK_INTERVAL_VARIABLE),
        }
        if overrides.get("region") is not None:
            values["region_variable"] = "region (the resource's config)"
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["local_root"] = Path(str(values["local_root"])).expanduser()
        settings = cls(**values)  # type: ignore[arg-type]
        problems = read.problems + boto_endpoint_problems(read.env) + settings.problems()
        if problems:
            raise SettingsError(*problems)
        return settings

    def executor_name(self) -> str:
        """The Dagster executor: ``executor``, else in-process on the local backend, a process per step
        on aws."""
        return self.executor or ("in_process" if self.is_local else "multiprocess")

    def check_interval(self) -> int:
        """Seconds between the Airflow provider operators' status polls."""
        if self.airflow_check_interval is not None:
            return self.airflow_check_interval
        return LOCAL_CHECK_INTERVAL if self.is_local else DEFAULT_CHECK_INTERVAL

    def validated(self) -> Settings:
        """``self``, or SettingsError listing every problem at once."""
        problems = self.problems()
        if problems:
            raise SettingsError(*problems)
        return self

    def problems(self) -> list[str]:
        """What is wrong with these settings, one line each (empty: nothing)."""
        if self.backend not in BACKENDS:
            return [
                f"IRIS_SAGEMAKER_BACKEND={self.backend!r} is not a backend; use 'local' (default) or 'aws'"
            ]
        problems = [
            self._bucket_problem(),
            self._role_problem(),
            self._region_problem(),
            endpoint_url_problem(S3_ENDPOINT_VARIABLE, self.endpoint_url) if self.endpoint_url else None,
        ]
        if not 0 <= self.split_seed < 2**32:
            problems.append(
                f"IRIS_SAGEMAKER_SPLIT_SEED={self.split_seed} is out of range: use an integer from 0 to "
                f"{2**32 - 1} (e.g. 42)"
            )
        if not self.instance_type.startswith("ml."):
            problems.append(
                f"IRIS_SAGEMAKER_INSTANCE_TYPE={self.instance_type!r} is not a SageMaker instance type "
                "(e.g. ml.m5.large)"
            )
        if not SAGEMAKER_NAME_RE.match(self.endpoint_name):
            problems.append(
                f"IRIS_SAGEMAKER_ENDPOINT_NAME={self.endpoint_name!r} is not a SageMaker endpoint name "
                "(1-63 letters, digits and hyphens, starting and ending with a letter or digit; "
                "e.g. iris-knn)"
            )
        problems.extend(self._tuning_problems())
        problems.extend(self._model_problems())
        problems.append(executor_problem(self.executor))
        problems.append(check_interval_problem(self.airflow_check_interval))
        if not self.airflow_conn_id.strip():
            problems.append(
                f"{AIRFLOW_CONN_ID_VARIABLE}={self.airflow_conn_id!r} is not a connection id "
                f"(e.g. {DEFAULT_CONN_ID})"
            )
        return [problem for problem in problems if problem]

    def _bucket_problem(self) -> str | None:
        if not self.bucket:
            return (
                "IRIS_SAGEMAKER_BUCKET is not set; the aws backend needs the name of an existing S3 bucket "
                "(export IRIS_SAGEMAKER_BUCKET=my-bucket)"
            )
        if not BUCKET_RE.match(self.bucket) or ".." in self.bucket:
            return (
                f"IRIS_SAGEMAKER_BUCKET={self.bucket!r} is not a valid S3 bucket name "
                "(3-63 lowercase letters, digits, '.' or '-'; e.g. my-iris-bucket)"
            )
        return None

    def _role_problem(self) -> str | None:
        if not self.role_arn:
            return (
                "IRIS_SAGEMAKER_ROLE_ARN is not set; the aws backend needs a SageMaker execution role "
                "(export IRIS_SAGEMAKER_ROLE_ARN=arn:aws:iam::123456789012:role/MySageMakerRole)"
            )
        if not ROLE_ARN_RE.match(self.role_arn):
            return (
                f"IRIS_SAGEMAKER_ROLE_ARN={self.role_arn!r} is not an IAM role ARN; expected "
                "arn:aws:iam::<12-digit account>:role/<name> (e.g. arn:aws:iam::123456789012:role/MyRole)"
            )
        return None

    def _region_problem(self) -> str | None:
        return region_problem(self.region_variable, self.region, self.knn_image, self.backend)

    def _tuning_problems(self) -> list[str]:
        problems = []
        if not 1 <= self.tuning_jobs <= 500:
            problems.append(
                f"IRIS_SAGEMAKER_TUNING_JOBS={self.tuning_jobs} is out of range: use 1 to 500 training jobs "
                "per tuning job (e.g. 20)"
            )
        if not 1 <= self.tuning_parallel <= 100:
            problems.append(
                f"IRIS_SAGEMAKER_TUNING_PARALLEL={self.tuning_parallel} is out of range: use 1 to 100 "
                "training jobs at a time (e.g. 4)"
            )
        if self.tuning_strategy not in ("Bayesian", "Random"):
            problems.append(
                f"IRIS_SAGEMAKER_TUNING_STRATEGY={self.tuning_strategy!r} is not a strategy for tuning k; "
                "use Bayesian (default) or Random"
            )
        return problems

    def _model_problems(self) -> list[str]:
        values = {"k": self.k, "sample_size": self.sample_size, "index_metric": self.index_metric}
        problems = [
            hyperparameter_problem(variable, name, values[name], example)
            for variable, name, example in HYPERPARAMETER_SETTINGS
            if values[name] is not None
        ]
        problems.append(
            accuracy_threshold_problem("IRIS_SAGEMAKER_ACCURACY_THRESHOLD", self.accuracy_threshold)
        )
        return [problem for problem in problems if problem]

    def hyperparameters(self) -> dict[str, str]:
        """The training job's HyperParameters (SageMaker takes strings): the tutorial's, with k,
        sample_size and (when set) index_metric from these settings."""
        chosen = {**FIXED_HYPERPARAMETERS, "k": str(self.k), "sample_size": str(self.sample_size)}
        if self.index_metric is not None:
            chosen["index_metric"] = self.index_metric
        return chosen

    def image_uri(self) -> str:
        if self.knn_image:
            return self.knn_image
        try:
            return knn_image_uri(self.region)
        except UnknownRegionError as err:
            raise SettingsError(self._region_problem() or str(err)) from None

    @property
    def is_local(self) -> bool:
        return self.backend == "local"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def local_object_path(self, key: str) -> Path:
        """Where object ``key`` of the bucket lives on the local backend."""
        return self.local_root / "s3" / self.bucket / key


VERBOSE_HOW = "set it to 1 for Dagster's full event log, 0 (the default) for a line per step"
GC_FREEZE_HOW = (
    "set it to 1 (the default: freeze the loaded objects) or 0 (leave the garbage collector as it is)"
)
AIRFLOW_DEFERRABLE_HOW = "set it to true (the default: wait in Airflow's triggerer) or false (in the worker)"


# --- reading the environment: every read of an IRIS_SAGEMAKER_* setting goes through here ----------


def env_text(variable: str, env: Mapping[str, str] | None = None) -> str | None:
    """The variable's value, blanks stripped; None when unset or blank."""
    env = os.environ if env is None else env
    return env.get(variable, "").strip() or None


def parse_bool(variable: str, text: str | None, default: bool, how: str = "") -> bool:
    """``text`` (the value of ``variable``) as a yes/no value: one of ``TRUE_WORDS`` or ``FALSE_WORDS``,
    any case; ``default`` when unset or blank; else SettingsError naming the variable and the value (the
    parser the exported DAG uses too, :func:`~iris_sagemaker.core.portable.parse_yes_no`)."""
    try:
        return parse_yes_no(variable, text, default)
    except YesNoError as err:
        raise SettingsError(f"{err}; {how}" if how else str(err)) from None


def env_bool(variable: str, default: bool, env: Mapping[str, str] | None = None, how: str = "") -> bool:
    """A yes/no setting from the environment (``parse_bool``)."""
    return parse_bool(variable, env_text(variable, env), default, how)


def backend_from_env(env: Mapping[str, str] | None = None) -> str:
    """``IRIS_SAGEMAKER_BACKEND``, lower case; ``local`` when unset (``Settings.problems`` checks it)."""
    return (env_text(BACKEND_VARIABLE, env) or "local").lower()


def local_root_from_env(env: Mapping[str, str] | None = None) -> Path:
    """``IRIS_SAGEMAKER_LOCAL_ROOT``, else ``~/.iris-sagemaker``, with ``~`` expanded."""
    return Path(env_text(LOCAL_ROOT_VARIABLE, env) or DEFAULT_LOCAL_ROOT).expanduser()


def region_from_env(env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The region and the variable naming it: ``AWS_REGION``, else ``AWS_DEFAULT_REGION``, else the
    tutorial's ``us-east-2`` (named ``AWS_REGION`` in messages)."""
    for variable in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        value = env_text(variable, env)
        if value:
            return value, variable
    return DEFAULT_REGION, "AWS_REGION"


def executor_from_env(env: Mapping[str, str] | None = None) -> str:
    """The Dagster executor's name (``Settings.executor_name``), from the two variables it depends on
    only, so that loading the definitions does not need the run's settings (a bucket, say)."""
    name = env_text(EXECUTOR_VARIABLE, env)
    problem = executor_problem(name)
    if problem:
        raise SettingsError(problem)
    return Settings(backend=backend_from_env(env), executor=name).executor_name()


def executor_problem(name: str | None) -> str | None:
    if name is None or name in EXECUTORS:
        return None
    return (
        f"{EXECUTOR_VARIABLE}={name!r} is not a Dagster executor; use {' or '.join(EXECUTORS)} "
        "(e.g. in_process)"
    )


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the engine caches its cut-down service model: ``IRIS_SAGEMAKER_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/iris-sagemaker``, else ``~/.cache/iris-sagemaker``."""
    chosen = env_text(CACHE_DIR_VARIABLE, env)
    if chosen:
        return Path(chosen).expanduser()
    return Path(env_text("XDG_CACHE_HOME", env) or "~/.cache").expanduser() / "iris-sagemaker"


def check_interval_from_env(is_local: bool, env: Mapping[str, str] | None = None) -> int:
    """Seconds between the Airflow provider operators' status polls (``Settings.check_interval``)."""
    read = _Reader(env)
    seconds = read.seconds(AIRFLOW_CHECK_INTERVAL_VARIABLE)
    problems = [*read.problems, check_interval_problem(seconds)]
    if any(problems):
        raise SettingsError(*[problem for problem in problems if problem])
    return Settings(backend="local" if is_local else "aws", airflow_check_interval=seconds).check_interval()


def check_interval_problem(seconds: int | None) -> str | None:
    if seconds is None or seconds >= 1:
        return None
    return (
        f"{AIRFLOW_CHECK_INTERVAL_VARIABLE}={seconds} is not a positive number of seconds "
        f"(e.g. {DEFAULT_CHECK_INTERVAL})"
    )


class _Reader:
    """Reads settings from ``env`` (default ``os.environ``), collecting a line per malformed value."""

    def __init__(self, env: Mapping[str, str] | None) -> None:
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.problems: list[str] = []

    def text(self, variable: str) -> str | None:
        return env_text(variable, self.env)

    def path(self, variable: str) -> Path | None:
        text = self.text(variable)
        return Path(text).expanduser() if text else None

    def boolean(self, variable: str, default: bool, how: str) -> bool:
        try:
            return parse_bool(variable, self.text(variable), default, how)
        except SettingsError as err:
            self.problems.extend(err.problems)
            return default

    def integer(self, variable: str, default: int) -> int:
        text = self.text(variable) or str(default)
        try:
            return int(text)
        except ValueError:
            self.problems.append(f"{variable}={text!r} is not an integer; set it to e.g. {default}")
            return default

    def seconds(self, variable: str) -> int | None:
        """A whole number of seconds, or None when unset (``check_interval_problem`` checks the range)."""
        text = self.text(variable)
        if text is None:
            return None
        try:
            return int(text)
        except ValueError:
            self.problems.append(
                f"{variable}={text!r} is not a positive number of seconds (e.g. {DEFAULT_CHECK_INTERVAL})"
            )
            return None

    def hyperparameter(self, variable: str, name: str, default: int) -> int:
        """An integer hyperparameter setting; text that is no integer is reported with k-NN's own message
        (an integer out of range is reported by ``Settings.problems``)."""
        text = self.text(variable) or str(default)
        try:
            return int(text)
        except ValueError:
            self.problems.append(hyperparameter_problem(variable, name, text, str(default)) or "")
            return default

    def number(self, variable: str, default: float) -> float:
        text = self.text(variable) or str(default)
        try:
            return float(text)
        except ValueError:
            self.problems.append(f"{variable}={text!r} is not a number; set it to e.g. {default}")
            return default


def hyperparameter_problem(variable: str, name: str, value: object, example: str) -> str | None:
    """Why ``value`` of k-NN hyperparameter ``name`` (set by ``variable``) does not do, in the words of the
    k-NN algorithm (the embedded engine's and SageMaker's ``ClientError``), or None."""
    try:
        parse_hyperparameters({**FIXED_HYPERPARAMETERS, "k": "1", "sample_size": "1", name: str(value)})
    except HyperparameterError as err:
        return f"{variable}={str(value)!r}: {err} Set it to e.g. {example}"
    return None


def accuracy_threshold_problem(variable: str, value: float) -> str | None:
    if 0 <= value <= 1:
        return None
    return (
        f"{variable}={value!r} is not an accuracy: use a number from 0 to 1 "
        f"(e.g. {DEFAULT_ACCURACY_THRESHOLD})"
    )


def boto_endpoint_problems(env: Mapping[str, str]) -> list[str]:
    """boto3's own endpoint variables (``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_S3``, ...) that botocore
    would refuse with a bare ``ValueError: Invalid endpoint``."""
    variables = [name for name in sorted(env) if name.startswith(BOTO_ENDPOINT_PREFIX) and env[name].strip()]
    found = (endpoint_url_problem(name, env[name].strip()) for name in variables)
    return [problem for problem in found if problem]


def endpoint_url_problem(variable: str, url: str) -> str | None:
    """Why ``url`` (from ``variable``) is not an endpoint URL botocore takes, or None."""
    example = f"http://{url}" if "://" not in url and url else "http://127.0.0.1:9000"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return (
            f"{variable}={url!r} is not an endpoint URL: it needs http:// or https:// and a host; "
            f"set it to e.g. {example}"
        )
    return None


def region_problem(
    variable: str,
    region: str,
    knn_image: str | None = None,
    backend: str = "local",
    image_setting: bool = True,
) -> str | None:
    """Why ``region`` (from ``variable``) does not do: not a region name; SageMaker's k-NN image is not
    published there (unless ``knn_image`` names one; ``image_setting``: say IRIS_SAGEMAKER_KNN_IMAGE can);
    on aws, botocore knows no SageMaker endpoint there."""
    shown = f"{variable}={region!r}"
    if not REGION_RE.match(region):
        return f"{shown} is not an AWS region name; set it to e.g. us-east-2"
    if not knn_image and region not in KNN_REGISTRY_ACCOUNTS:
        other = ", or IRIS_SAGEMAKER_KNN_IMAGE to an image URI" if image_setting else ""
        return (
            f"{shown}: SageMaker's k-NN image is not published in that region; set it to a region that "
            f"has it (e.g. us-east-2, eu-west-1){other}"
        )
    if backend == "aws" and region not in sagemaker_regions():
        return f"{shown} is not a region where botocore knows SageMaker; set it to e.g. us-east-2"
    return None


def sagemaker_regions() -> frozenset[str]:
    """Every region botocore knows a SageMaker endpoint in, all partitions."""
    import boto3

    session = boto3.session.Session()
    regions: set[str] = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("sagemaker", partition))
    return frozenset(regions)
