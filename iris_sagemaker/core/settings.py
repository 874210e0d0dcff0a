"""One settings object, read from the environment, shared by Dagster, Airflow and the CLI helpers.

Every setting has an environment variable; Dagster resources and Airflow Variables may override them,
but nothing requires a code edit to move from the local backend to AWS.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from iris_sagemaker.core.algorithm_images import KNN_REGISTRY_ACCOUNTS, UnknownRegionError, knn_image_uri
from iris_sagemaker.core.knn_hyperparameters import HyperparameterError, parse_hyperparameters

BACKENDS = ("local", "aws")
DEFAULT_REGION = "us-east-2"  # the tutorial's region
DEFAULT_LOCAL_BUCKET = "iris-sagemaker-local"
# A role ARN that satisfies SageMaker's pattern; the embedded engine does not assume roles.
LOCAL_ROLE_ARN = "arn:aws:iam::000000000000:role/iris-sagemaker-local"
DEFAULT_LOCAL_ROOT = "~/.iris-sagemaker"
DEFAULT_INSTANCE_TYPE = "ml.m5.large"
DEFAULT_ENDPOINT_NAME = "iris-knn"
# The model (README, "Settings"): the tutorial's k-NN. predictor_type and feature_dim follow from the
# data (three species, four features); k, sample_size and index_metric are settings.
FIXED_HYPERPARAMETERS = {"predictor_type": "classifier", "feature_dim": "4"}
DEFAULT_K = 3
DEFAULT_SAMPLE_SIZE = 150
DEFAULT_ACCURACY_THRESHOLD = 0.9  # the blocking accuracy check's
# (variable, hyperparameter, a valid example) of each hyperparameter setting
HYPERPARAMETER_SETTINGS = (
    ("IRIS_SAGEMAKER_K", "k", str(DEFAULT_K)),
    ("IRIS_SAGEMAKER_SAMPLE_SIZE", "sample_size", str(DEFAULT_SAMPLE_SIZE)),
    ("IRIS_SAGEMAKER_INDEX_METRIC", "index_metric", "L2"),
)
SAGEMAKER_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")

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


S3_ENDPOINT_VARIABLE = "IRIS_SAGEMAKER_S3_ENDPOINT_URL"
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
    split_seed: int = 42
    instance_type: str = DEFAULT_INSTANCE_TYPE
    knn_image: str | None = None  # default: the built-in k-NN image of ``region``
    endpoint_name: str = DEFAULT_ENDPOINT_NAME
    deploy_endpoint: bool = True  # default: deploy on the local backend (free), not on aws (billed hourly)
    tune: bool = False  # tune k before training (README, "Tune k"); off: the tutorial's k = 3
    tuning_jobs: int = 20
    tuning_parallel: int = 4
    tuning_strategy: str = "Bayesian"
    k: int = DEFAULT_K  # neighbours voting (tuning, when on, chooses k instead)
    sample_size: int = DEFAULT_SAMPLE_SIZE  # training rows k-NN keeps (a seeded sample of more)
    index_metric: str | None = None  # default: not sent, k-NN's own (L2)
    accuracy_threshold: float = DEFAULT_ACCURACY_THRESHOLD
    # Where ``region`` came from, for messages: AWS_REGION, AWS_DEFAULT_REGION or a configured value.
    region_variable: str = field(default="AWS_REGION", compare=False, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read ``IRIS_SAGEMAKER_*`` (and the AWS region variables) and validate them."""
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        problems: list[str] = []
        backend = (get("IRIS_SAGEMAKER_BACKEND") or "local").lower()
        is_local = backend == "local"
        deploy = _bool_setting(
            get,
            problems,
            "IRIS_SAGEMAKER_DEPLOY_ENDPOINT",
            is_local,
            "set it to true to deploy the model to a real-time endpoint (on aws it bills by the hour)",
        )
        tune = _bool_setting(
            get,
            problems,
            "IRIS_SAGEMAKER_TUNE",
            False,
            "set it to true to tune k before training (a hyperparameter tuning job), false for the "
            "tutorial's k = 3",
        )
        from_default = bool(get("AWS_DEFAULT_REGION")) and not get("AWS_REGION")
        region_variable = "AWS_DEFAULT_REGION" if from_default else "AWS_REGION"
        values: dict[str, object] = {
            "backend": backend,
            "bucket": get("IRIS_SAGEMAKER_BUCKET") or (DEFAULT_LOCAL_BUCKET if is_local else ""),
            "role_arn": get("IRIS_SAGEMAKER_ROLE_ARN") or (LOCAL_ROLE_ARN if is_local else ""),
            "region": get(region_variable) or DEFAULT_REGION,
            "region_variable": region_variable,
            "local_root": Path(get("IRIS_SAGEMAKER_LOCAL_ROOT") or DEFAULT_LOCAL_ROOT).expanduser(),
            # S3 endpoint (MinIO, moto, LocalStack); boto3 itself also honours AWS_ENDPOINT_URL.
            "endpoint_url": get(S3_ENDPOINT_VARIABLE),
            "profile": get("AWS_PROFILE"),
            "data_url": get("IRIS_SAGEMAKER_DATA_URL"),
            "split_seed": _int_setting(get, problems, "IRIS_SAGEMAKER_SPLIT_SEED", 42),
            "instance_type": get("IRIS_SAGEMAKER_INSTANCE_TYPE") or DEFAULT_INSTANCE_TYPE,
            "knn_image": get("IRIS_SAGEMAKER_KNN_IMAGE"),
            "endpoint_name": get("IRIS_SAGEMAKER_ENDPOINT_NAME") or DEFAULT_ENDPOINT_NAME,
            "deploy_endpoint": deploy,
            "tune": tune,
            "tuning_jobs": _int_setting(get, problems, "IRIS_SAGEMAKER_TUNING_JOBS", 20),
            "tuning_parallel": _int_setting(get, problems, "IRIS_SAGEMAKER_TUNING_PARALLEL", 4),
            "tuning_strategy": get("IRIS_SAGEMAKER_TUNING_STRATEGY") or "Bayesian",
            "k": _hyperparameter_int(get, problems, "IRIS_SAGEMAKER_K", "k", DEFAULT_K),
            "sample_size": _hyperparameter_int(
                get, problems, "IRIS_SAGEMAKER_SAMPLE_SIZE", "sample_size", DEFAULT_SAMPLE_SIZE
            ),
            "index_metric": get("IRIS_SAGEMAKER_INDEX_METRIC"),
            "accuracy_threshold": _float_setting(
                get, problems, "IRIS_SAGEMAKER_ACCURACY_THRESHOLD", DEFAULT_ACCURACY_THRESHOLD
            ),
        }
        if overrides.get("region") is not None:
            values["region_variable"] = "region (the resource's config)"
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["local_root"] = Path(str(values["local_root"])).expanduser()
        settings = cls(**values)  # type: ignore[arg-type]
        problems.extend(boto_endpoint_problems(env))
        problems.extend(settings.problems())
        if problems:
            raise SettingsError(*problems)
        return settings

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


def _int_setting(get: Callable[[str], str | None], problems: list[str], name: str, default: int) -> int:
    text = get(name) or str(default)
    try:
        return int(text)
    except ValueError:
        problems.append(f"{name}={text!r} is not an integer; set it to e.g. {default}")
        return default


def _hyperparameter_int(
    get: Callable[[str], str | None], problems: list[str], variable: str, name: str, default: int
) -> int:
    """An integer hyperparameter setting; text that is no integer is reported with k-NN's own message
    (an integer out of range is reported by ``Settings.problems``)."""
    text = get(variable) or str(default)
    try:
        return int(text)
    except ValueError:
        problems.append(hyperparameter_problem(variable, name, text, str(default)) or "")
        return default


def _float_setting(get: Callable[[str], str | None], problems: list[str], name: str, default: float) -> float:
    text = get(name) or str(default)
    try:
        return float(text)
    except ValueError:
        problems.append(f"{name}={text!r} is not a number; set it to e.g. {default}")
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


def _bool_setting(
    get: Callable[[str], str | None], problems: list[str], name: str, default: bool, how: str
) -> bool:
    text = (get(name) or str(default)).lower()
    if text not in _TRUE + _FALSE:
        problems.append(f"{name}={text!r} is not true or false; {how}")
        return default
    return text in _TRUE


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
