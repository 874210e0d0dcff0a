from __future__ import annotations

from pathlib import Path

import pytest

from iris_sagemaker.settings import LOCAL_ROLE_ARN, Settings, SettingsError


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
        ({"AWS_REGION": "ap-mars-9"}, "no SageMaker k-NN image is known for region 'ap-mars-9'"),
        ({"AWS_REGION": "nowhere"}, "not an AWS region name"),
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
