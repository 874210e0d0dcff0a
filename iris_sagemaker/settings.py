"""One settings object, read from the environment, shared by Dagster, Airflow and the CLI helpers.

Every setting has an environment variable; Dagster resources and Airflow Variables may override them,
but nothing requires a code edit to move from the local backend to AWS.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from iris_sagemaker.images import UnknownRegionError, knn_image_uri

BACKENDS = ("local", "aws")
DEFAULT_REGION = "us-east-2"  # the tutorial's region
DEFAULT_LOCAL_BUCKET = "iris-sagemaker-local"
# A role ARN that satisfies SageMaker's pattern; the embedded engine does not assume roles.
LOCAL_ROLE_ARN = "arn:aws:iam::000000000000:role/iris-sagemaker-local"
DEFAULT_LOCAL_ROOT = "~/.iris-sagemaker"
DEFAULT_INSTANCE_TYPE = "ml.m5.large"
DEFAULT_ENDPOINT_NAME = "iris-knn"
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


class SettingsError(ValueError):
    """A missing or malformed setting; the message names the variable and how to set it."""


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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read ``IRIS_SAGEMAKER_*`` (and the AWS region variables) and validate them."""
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        backend = (get("IRIS_SAGEMAKER_BACKEND") or "local").lower()
        seed_text = get("IRIS_SAGEMAKER_SPLIT_SEED") or "42"
        try:
            seed = int(seed_text)
        except ValueError:
            raise SettingsError(
                f"IRIS_SAGEMAKER_SPLIT_SEED={seed_text!r} is not an integer; set it to e.g. 42"
            ) from None
        is_local = backend == "local"
        deploy_text = (get("IRIS_SAGEMAKER_DEPLOY_ENDPOINT") or ("true" if is_local else "false")).lower()
        if deploy_text not in _TRUE + _FALSE:
            raise SettingsError(
                f"IRIS_SAGEMAKER_DEPLOY_ENDPOINT={deploy_text!r} is not true or false; set it to true to "
                "deploy the model to a real-time endpoint (on aws it bills by the hour)"
            )
        tune_text = (get("IRIS_SAGEMAKER_TUNE") or "false").lower()
        if tune_text not in _TRUE + _FALSE:
            raise SettingsError(
                f"IRIS_SAGEMAKER_TUNE={tune_text!r} is not true or false; set it to true to tune k before "
                "training (a hyperparameter tuning job), false for the tutorial's k = 3"
            )
        tuning_jobs = _int_setting(get, "IRIS_SAGEMAKER_TUNING_JOBS", 20)
        tuning_parallel = _int_setting(get, "IRIS_SAGEMAKER_TUNING_PARALLEL", 4)
        values: dict[str, object] = {
            "backend": backend,
            "bucket": get("IRIS_SAGEMAKER_BUCKET") or (DEFAULT_LOCAL_BUCKET if is_local else ""),
            "role_arn": get("IRIS_SAGEMAKER_ROLE_ARN") or (LOCAL_ROLE_ARN if is_local else ""),
            "region": get("AWS_REGION") or get("AWS_DEFAULT_REGION") or DEFAULT_REGION,
            "local_root": Path(get("IRIS_SAGEMAKER_LOCAL_ROOT") or DEFAULT_LOCAL_ROOT).expanduser(),
            # S3 endpoint (MinIO, moto, LocalStack); boto3 itself also honours AWS_ENDPOINT_URL.
            "endpoint_url": get("IRIS_SAGEMAKER_S3_ENDPOINT_URL"),
            "profile": get("AWS_PROFILE"),
            "data_url": get("IRIS_SAGEMAKER_DATA_URL"),
            "split_seed": seed,
            "instance_type": get("IRIS_SAGEMAKER_INSTANCE_TYPE") or DEFAULT_INSTANCE_TYPE,
            "knn_image": get("IRIS_SAGEMAKER_KNN_IMAGE"),
            "endpoint_name": get("IRIS_SAGEMAKER_ENDPOINT_NAME") or DEFAULT_ENDPOINT_NAME,
            "deploy_endpoint": deploy_text in _TRUE,
            "tune": tune_text in _TRUE,
            "tuning_jobs": tuning_jobs,
            "tuning_parallel": tuning_parallel,
            "tuning_strategy": get("IRIS_SAGEMAKER_TUNING_STRATEGY") or "Bayesian",
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["local_root"] = Path(str(values["local_root"])).expanduser()
        return cls(**values).validated()  # type: ignore[arg-type]

    def validated(self) -> Settings:
        if self.backend not in BACKENDS:
            raise SettingsError(
                f"IRIS_SAGEMAKER_BACKEND={self.backend!r} is not a backend; use 'local' (default) or 'aws'"
            )
        if not self.bucket:
            raise SettingsError(
                "IRIS_SAGEMAKER_BUCKET is not set; the aws backend needs the name of an existing S3 bucket "
                "(export IRIS_SAGEMAKER_BUCKET=my-bucket)"
            )
        if not BUCKET_RE.match(self.bucket) or ".." in self.bucket:
            raise SettingsError(
                f"IRIS_SAGEMAKER_BUCKET={self.bucket!r} is not a valid S3 bucket name "
                "(3-63 lowercase letters, digits, '.' or '-')"
            )
        if not self.role_arn:
            raise SettingsError(
                "IRIS_SAGEMAKER_ROLE_ARN is not set; the aws backend needs a SageMaker execution role "
                "(export IRIS_SAGEMAKER_ROLE_ARN=arn:aws:iam::123456789012:role/MySageMakerRole)"
            )
        if not ROLE_ARN_RE.match(self.role_arn):
            raise SettingsError(
                f"IRIS_SAGEMAKER_ROLE_ARN={self.role_arn!r} is not an IAM role ARN; expected "
                "arn:aws:iam::<12-digit account>:role/<name>"
            )
        if not 0 <= self.split_seed < 2**32:
            raise SettingsError(
                f"IRIS_SAGEMAKER_SPLIT_SEED={self.split_seed} is out of range: use an integer from 0 to "
                f"{2**32 - 1} (e.g. 42)"
            )
        if not REGION_RE.match(self.region):
            raise SettingsError(f"AWS_REGION={self.region!r} is not an AWS region name (e.g. us-east-2)")
        if not self.instance_type.startswith("ml."):
            raise SettingsError(
                f"IRIS_SAGEMAKER_INSTANCE_TYPE={self.instance_type!r} is not a SageMaker instance type "
                "(e.g. ml.m5.large)"
            )
        if not SAGEMAKER_NAME_RE.match(self.endpoint_name):
            raise SettingsError(
                f"IRIS_SAGEMAKER_ENDPOINT_NAME={self.endpoint_name!r} is not a SageMaker endpoint name "
                "(1-63 letters, digits and hyphens, starting and ending with a letter or digit)"
            )
        if not 1 <= self.tuning_jobs <= 500:
            raise SettingsError(
                f"IRIS_SAGEMAKER_TUNING_JOBS={self.tuning_jobs} is out of range: use 1 to 500 training jobs "
                "per tuning job (e.g. 20)"
            )
        if not 1 <= self.tuning_parallel <= 100:
            raise SettingsError(
                f"IRIS_SAGEMAKER_TUNING_PARALLEL={self.tuning_parallel} is out of range: use 1 to 100 "
                "training jobs at a time (e.g. 4)"
            )
        if self.tuning_strategy not in ("Bayesian", "Random"):
            raise SettingsError(
                f"IRIS_SAGEMAKER_TUNING_STRATEGY={self.tuning_strategy!r} is not a strategy for tuning k; "
                "use Bayesian (default) or Random"
            )
        self.image_uri()  # an unknown region without IRIS_SAGEMAKER_KNN_IMAGE fails here, before any job
        return self

    def image_uri(self) -> str:
        if self.knn_image:
            return self.knn_image
        try:
            return knn_image_uri(self.region)
        except UnknownRegionError as err:
            raise SettingsError(str(err)) from None

    @property
    def is_local(self) -> bool:
        return self.backend == "local"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def local_object_path(self, key: str) -> Path:
        """Where object ``key`` of the bucket lives on the local backend."""
        return self.local_root / "s3" / self.bucket / key


def _int_setting(get: Callable[[str], str | None], name: str, default: int) -> int:
    text = get(name) or str(default)
    try:
        return int(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r} is not an integer; set it to e.g. {default}") from None
