from __future__ import annotations

import re

import pytest

from iris_sagemaker.core import specs
from iris_sagemaker.core.settings import Settings

NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


@pytest.fixture()
def settings() -> Settings:
    return Settings.from_env(
        {
            "IRIS_SAGEMAKER_BACKEND": "aws",
            "IRIS_SAGEMAKER_BUCKET": "tutorial-bucket",
            "IRIS_SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/SageMakerRole",
        }
    )


def test_training_request_mirrors_the_tutorial(settings: Settings) -> None:
    request = specs.training_job_request(settings, "train-iris-abc")
    assert request["AlgorithmSpecification"] == {
        "TrainingImage": "404615174143.dkr.ecr.us-east-2.amazonaws.com/knn:1",
        "TrainingInputMode": "File",
    }
    assert request["HyperParameters"] == {
        "predictor_type": "classifier",
        "feature_dim": "4",
        "k": "3",
        "sample_size": "150",
    }
    channel = request["InputDataConfig"][0]
    assert channel["ChannelName"] == "train"
    assert channel["ContentType"] == "text/csv"
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == (
        "s3://tutorial-bucket/iris/processed-input-data/train.csv"
    )
    assert request["OutputDataConfig"] == {"S3OutputPath": "s3://tutorial-bucket/iris/results"}
    assert request["ResourceConfig"] == {
        "InstanceCount": 1,
        "InstanceType": "ml.m5.large",
        "VolumeSizeInGB": 1,
    }
    assert request["RoleArn"] == "arn:aws:iam::123456789012:role/SageMakerRole"
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 6000}


def test_hyperparameter_overrides_stay_strings(settings: Settings) -> None:
    request = specs.training_job_request(settings, "n", {"k": "5"})
    assert request["HyperParameters"]["k"] == "5"
    assert all(isinstance(v, str) for v in request["HyperParameters"].values())


def test_image_follows_the_region() -> None:
    west = Settings.from_env({"AWS_REGION": "us-west-2"})
    assert specs.training_job_request(west, "n")["AlgorithmSpecification"]["TrainingImage"] == (
        "174872318107.dkr.ecr.us-west-2.amazonaws.com/knn:1"
    )


def test_model_and_transform_requests(settings: Settings) -> None:
    model = specs.model_request(
        settings, "Iris-KNN-abc", "s3://tutorial-bucket/iris/results/x/output/model.tar.gz"
    )
    assert model["PrimaryContainer"] == {
        "Mode": "SingleModel",
        "Image": "404615174143.dkr.ecr.us-east-2.amazonaws.com/knn:1",
        "ModelDataUrl": "s3://tutorial-bucket/iris/results/x/output/model.tar.gz",
    }
    assert model["ExecutionRoleArn"] == settings.role_arn
    transform = specs.transform_job_request(settings, "test-knn-abc", "Iris-KNN-abc")
    assert transform["TransformInput"] == {
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": "s3://tutorial-bucket/iris/processed-input-data/test.csv",
            }
        },
        "SplitType": "Line",
        "ContentType": "text/csv",
    }
    assert transform["TransformOutput"] == {"S3OutputPath": "s3://tutorial-bucket/iris/results"}
    assert transform["ModelName"] == "Iris-KNN-abc"
    assert specs.transform_output_key("iris/processed-input-data/test.csv") == "iris/results/test.csv.out"


@pytest.mark.parametrize(
    "run_key",
    ["20210731T000000", "0f3c9a1e2b7d4c6f8a9b0c1d2e3f4a5b", "manual__2021-07-31T00:00:00+00:00", "x" * 200],
)
def test_job_names_are_valid_and_deterministic(run_key: str) -> None:
    names = specs.job_names(run_key)
    for name in (names.training_job, names.model, names.transform_job):
        assert NAME_RE.match(name), name
        assert len(name) <= 63
    assert names == specs.job_names(run_key)
    assert names.training_job.startswith("train-iris-")
    assert names.model.startswith("Iris-KNN-")
    assert names.transform_job.startswith("test-knn-")


def test_different_runs_get_different_names() -> None:
    assert specs.job_names("run1") != specs.job_names("run2")


def test_a_run_key_without_letters_is_an_error() -> None:
    with pytest.raises(ValueError, match="no letters or digits"):
        specs.job_names(":::")
