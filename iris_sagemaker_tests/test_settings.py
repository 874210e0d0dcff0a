from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iris_sagemaker.core.settings import LOCAL_ROLE_ARN, Settings, SettingsError
from iris_sagemaker.steps import clients_for_backend


def test_defaults_are_the_offline_local_backend() -> None:
    settings = Settings.from_env({})
    assert settings.backend == "local"
    assert settings.is_local
    assert settings.role_arn == LOCAL_ROLE_ARN
    assert settings.region == "us-east-2"
    assert settings.local_root == Path("~/.iris-sagemaker").expanduser()
    assert settings.local_object_path("iris/results/test.csv.out") == (
        settings.local_root / "s3" / settings.bucket / "iris/results/test.csv.out"
    )


def test_environment_is_read() -> None:
    settings = Settings.from_env(
        {
            "IRIS_SAGEMAKER_BACKEND": "AWS",
            "IRIS_SAGEMAKER_BUCKET": "b-1",
            "IRIS_SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/service-role/R",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "IRIS_SAGEMAKER_SPLIT_SEED": "3",
        }
    )
    assert (settings.backend, settings.bucket, settings.region, settings.split_seed) == (
        "aws",
        "b-1",
        "eu-west-1",
        3,
    )
    assert settings.image_uri() == "438346466558.dkr.ecr.eu-west-1.amazonaws.com/knn:1"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"IRIS_SAGEMAKER_BACKEND": "gcp"}, "IRIS_SAGEMAKER_BACKEND='gcp' is not a backend"),
        ({"IRIS_SAGEMAKER_BACKEND": "aws"}, "IRIS_SAGEMAKER_BUCKET is not set"),
        (
            {"IRIS_SAGEMAKER_BACKEND": "aws", "IRIS_SAGEMAKER_BUCKET": "b-1"},
            "IRIS_SAGEMAKER_ROLE_ARN is not set",
        ),
        (
            {
                "IRIS_SAGEMAKER_BACKEND": "aws",
                "IRIS_SAGEMAKER_BUCKET": "b-1",
                "IRIS_SAGEMAKER_ROLE_ARN": "admin",
            },
            "IRIS_SAGEMAKER_ROLE_ARN='admin' is not an IAM role ARN",
        ),
        ({"IRIS_SAGEMAKER_BUCKET": "Bad_Bucket"}, "not a valid S3 bucket name"),
        ({"IRIS_SAGEMAKER_SPLIT_SEED": "x"}, "IRIS_SAGEMAKER_SPLIT_SEED='x' is not an integer"),
        ({"AWS_REGION": "ap-mars-9"}, "AWS_REGION='ap-mars-9': SageMaker's k-NN image is not published"),
        ({"AWS_DEFAULT_REGION": "us-east-9"}, "AWS_DEFAULT_REGION='us-east-9': SageMaker's k-NN image"),
        (
            {"AWS_REGION": "nowhere"},
            "AWS_REGION='nowhere' is not an AWS region name; set it to e.g. us-east-2",
        ),
        ({"IRIS_SAGEMAKER_INSTANCE_TYPE": "m5.large"}, "not a SageMaker instance type"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(env)


def test_knn_image_override_allows_other_regions() -> None:
    settings = Settings.from_env({"AWS_REGION": "ap-mars-9", "IRIS_SAGEMAKER_KNN_IMAGE": "x/knn:1"})
    assert settings.image_uri() == "x/knn:1"


def test_endpoint_settings_default_by_backend_and_refuse_bad_values() -> None:
    assert Settings.from_env({}).deploy_endpoint is True
    aws = {
        "IRIS_SAGEMAKER_BACKEND": "aws",
        "IRIS_SAGEMAKER_BUCKET": "b-1",
        "IRIS_SAGEMAKER_ROLE_ARN": LOCAL_ROLE_ARN,
    }
    assert Settings.from_env(aws).deploy_endpoint is False
    assert Settings.from_env({**aws, "IRIS_SAGEMAKER_DEPLOY_ENDPOINT": "true"}).deploy_endpoint is True
    assert Settings.from_env({"IRIS_SAGEMAKER_ENDPOINT_NAME": "my-endpoint"}).endpoint_name == "my-endpoint"
    with pytest.raises(SettingsError, match="IRIS_SAGEMAKER_DEPLOY_ENDPOINT='maybe' is not true or false"):
        Settings.from_env({"IRIS_SAGEMAKER_DEPLOY_ENDPOINT": "maybe"})
    with pytest.raises(SettingsError, match="IRIS_SAGEMAKER_ENDPOINT_NAME='bad_name' is not a SageMaker"):
        Settings.from_env({"IRIS_SAGEMAKER_ENDPOINT_NAME": "bad_name"})


@pytest.mark.parametrize("seed", ["-1", "99999999999999999999"])
def test_a_split_seed_numpy_cannot_take_is_refused_up_front(seed: str) -> None:
    with pytest.raises(SettingsError, match=rf"IRIS_SAGEMAKER_SPLIT_SEED={seed} is out of range"):
        Settings.from_env({"IRIS_SAGEMAKER_SPLIT_SEED": seed})


AWS = {
    "IRIS_SAGEMAKER_BACKEND": "aws",
    "IRIS_SAGEMAKER_BUCKET": "b-1",
    "IRIS_SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/R",
}


@pytest.mark.parametrize(
    "variable",
    [
        "IRIS_SAGEMAKER_S3_ENDPOINT_URL",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_SAGEMAKER",
    ],
)
def test_an_endpoint_url_without_a_scheme_names_its_variable_and_a_valid_example(variable: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({variable: "127.0.0.1:9000"})
    assert str(raised.value) == (
        f"{variable}='127.0.0.1:9000' is not an endpoint URL: it needs http:// or https:// and a host; "
        "set it to e.g. http://127.0.0.1:9000"
    )


def test_a_region_botocore_has_no_sagemaker_in_is_named_on_aws() -> None:
    env = {**AWS, "AWS_REGION": "us-east-9", "IRIS_SAGEMAKER_KNN_IMAGE": "x/knn:1"}
    with pytest.raises(SettingsError, match="AWS_REGION='us-east-9' is not a region where botocore knows"):
        Settings.from_env(env)
    assert Settings.from_env({**env, "AWS_REGION": "eu-west-1"}).region == "eu-west-1"


def test_aws_mode_reports_every_missing_or_bad_setting_at_once() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(
            {"IRIS_SAGEMAKER_BACKEND": "aws", "IRIS_SAGEMAKER_SPLIT_SEED": "x", "AWS_REGION": "us-east-9"}
        )
    problems = raised.value.problems
    assert [problem.split(" ", 1)[0].split("=")[0].rstrip(":") for problem in problems] == [
        "IRIS_SAGEMAKER_SPLIT_SEED",
        "IRIS_SAGEMAKER_BUCKET",
        "IRIS_SAGEMAKER_ROLE_ARN",
        "AWS_REGION",
    ]
    assert str(raised.value) == "\n".join(problems)


def _refused_url() -> str:
    with socket.socket() as sock:  # a port nothing listens on once this is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_a_refused_s3_endpoint_fails_at_once_naming_the_variable_and_the_url() -> None:
    url = _refused_url()
    settings = Settings.from_env({"IRIS_SAGEMAKER_S3_ENDPOINT_URL": url})
    started = time.monotonic()
    with pytest.raises(SettingsError) as raised:
        clients_for_backend.check_bucket(clients_for_backend.make_store(settings), settings)
    assert time.monotonic() - started < 5  # not botocore's retries
    assert str(raised.value).startswith(f"IRIS_SAGEMAKER_S3_ENDPOINT_URL={url}: connection refused")


def test_a_refused_sagemaker_endpoint_on_aws_is_named_too() -> None:
    url = _refused_url()
    env = {**AWS, "AWS_ENDPOINT_URL_SAGEMAKER": url}
    with pytest.raises(SettingsError, match=f"AWS_ENDPOINT_URL_SAGEMAKER={url}: connection refused"):
        clients_for_backend.check_endpoints(Settings.from_env(env), env)


def _report(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "iris_sagemaker.report", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )


def test_report_help_prints_usage_not_the_report() -> None:
    done = _report("--help")
    assert done.returncode == 0 and done.stdout.startswith("usage: python -m iris_sagemaker.report")
    assert "predictions" not in done.stderr


def test_a_settings_error_in_the_report_is_one_line_without_a_traceback() -> None:
    done = _report(IRIS_SAGEMAKER_S3_ENDPOINT_URL="127.0.0.1:9000")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "iris_sagemaker.report: IRIS_SAGEMAKER_S3_ENDPOINT_URL='127.0.0.1:9000' is not an endpoint URL: it "
        "needs http:// or https:// and a host; set it to e.g. http://127.0.0.1:9000"
    ]
