"""Request validation (botocore's service model) and the API's error codes and messages."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from iris_sagemaker.local_sagemaker import LocalSageMakerClient, knn_image_uri
from iris_sagemaker.local_sagemaker import validation as v
from iris_sagemaker.local_sagemaker.images import is_knn_image
from iris_sagemaker.local_sagemaker.testing import model_request, training_request, transform_request

ARN = "arn:aws:sagemaker:us-east-2:000000000000"


@pytest.fixture
def client(lab):
    return lab.client


def _request(**changes):
    request = training_request("train-iris", "s3://bucket/in/train.csv", "s3://bucket/out")
    request.update(changes)
    return request


def _error(excinfo) -> tuple[str, str]:
    err = excinfo.value.response["Error"]
    return err["Code"], err["Message"]


def test_bad_name_pattern(client):
    with pytest.raises(ClientError) as excinfo:
        client.create_training_job(**_request(TrainingJobName="bad_name"))
    assert _error(excinfo) == (
        "ValidationException",
        "1 validation error detected: Value 'bad_name' at 'trainingJobName' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$",
    )
    assert excinfo.value.operation_name == "CreateTrainingJob"


def test_name_too_long(client):
    with pytest.raises(ClientError) as excinfo:
        client.create_training_job(**_request(TrainingJobName="a" * 64))
    code, message = _error(excinfo)
    assert code == "ValidationException"
    assert (
        "at 'trainingJobName' failed to satisfy constraint: Member must have length less than or equal to 63"
        in (message)
    )


def test_missing_required_field(client):
    request = _request()
    del request["RoleArn"]
    with pytest.raises(ClientError) as excinfo:
        client.create_training_job(**request)
    code, message = _error(excinfo)
    assert code == "ValidationException"
    assert 'Missing required parameter in input: "RoleArn"' in message


def test_missing_nested_required_field(client):
    with pytest.raises(ClientError) as excinfo:
        client.create_training_job(**_request(OutputDataConfig={}))
    assert _error(excinfo) == (
        "ValidationException",
        'Parameter validation failed:\nMissing required parameter in OutputDataConfig: "S3OutputPath"',
    )


def test_role_arn_pattern(client):
    with pytest.raises(ClientError) as excinfo:
        client.create_training_job(**_request(RoleArn="arn:aws:iam::12345:role/too-short-account"))
    code, message = _error(excinfo)
    assert code == "ValidationException"
    assert message.startswith(
        "1 validation error detected: Value 'arn:aws:iam::12345:role/too-short-account' at 'roleArn' "
        "failed to satisfy constraint: Member must satisfy regular expression pattern: ^arn:aws"
    )


def test_unknown_parameter(client):
    with pytest.raises(ClientError) as excinfo:
        client.create_training_job(**_request(Bogus=1))
    code, message = _error(excinfo)
    assert code == "ValidationException"
    assert 'Unknown parameter in input: "Bogus", must be one of: TrainingJobName' in message


def test_wrong_type(client):
    with pytest.raises(ClientError) as excinfo:
        client.create_training_job(**_request(TrainingJobName=5))
    assert "Invalid type for parameter TrainingJobName, value: 5" in _error(excinfo)[1]


def test_nested_enum_and_list_paths(client):
    request = _request()
    request["AlgorithmSpecification"]["TrainingInputMode"] = "Bogus"
    request["InputDataConfig"][0]["ChannelName"] = "bad channel!"
    with pytest.raises(ClientError) as excinfo:
        client.create_training_job(**request)
    message = _error(excinfo)[1]
    assert message.startswith("2 validation errors detected: ")
    assert (
        "Value 'Bogus' at 'algorithmSpecification.trainingInputMode' failed to satisfy constraint: "
        "Member must satisfy enum value set: [Pipe, File, FastFile]"
    ) in message
    assert "Value 'bad channel!' at 'inputDataConfig.1.member.channelName'" in message


def test_map_value_length(client):
    hyperparameters = {
        "feature_dim": "4",
        "k": "x" * 2501,
        "predictor_type": "classifier",
        "sample_size": "1",
    }
    with pytest.raises(ClientError) as excinfo:
        client.create_training_job(**_request(HyperParameters=hyperparameters))
    assert (
        "at 'hyperParameters' failed to satisfy constraint: Map value must satisfy constraint: "
        "[Member must have length less than or equal to 2500]"
    ) in _error(excinfo)[1]


def test_numeric_maximum(client):
    with pytest.raises(ClientError) as excinfo:
        client.list_training_jobs(MaxResults=101)
    assert (
        "Value '101' at 'maxResults' failed to satisfy constraint: "
        "Member must have value less than or equal to 100"
    ) in _error(excinfo)[1]


def test_java_only_patterns_are_translated(client, lab):
    # TagKey/TagValue patterns use \p{L}; a normal tag must pass, a tag with a forbidden character fails.
    lab.train("tagged", wait=False, Tags=[{"Key": "team", "Value": "data science"}])
    with pytest.raises(ClientError) as excinfo:
        client.create_training_job(**_request(TrainingJobName="tagged2", Tags=[{"Key": "a|b", "Value": "x"}]))
    assert "at 'tags.1.member.key' failed to satisfy constraint" in _error(excinfo)[1]


def test_service_model_loaded_once():
    assert v.service_model() is v.service_model()


def test_wrong_training_image(client):
    request = _request()
    request["AlgorithmSpecification"]["TrainingImage"] = (
        "123456789012.dkr.ecr.us-east-2.amazonaws.com/xgboost:1"
    )
    with pytest.raises(ClientError) as excinfo:
        client.create_training_job(**request)
    code, message = _error(excinfo)
    assert code == "ValidationException"
    assert "runs only the built-in k-NN image 404615174143.dkr.ecr.us-east-2.amazonaws.com/knn:1" in message


def test_image_of_another_region_is_refused(tmp_path):
    client = LocalSageMakerClient(tmp_path, region="us-west-2")
    with pytest.raises(ClientError) as excinfo:
        client.create_training_job(**_request())  # the us-east-2 image
    assert "174872318107.dkr.ecr.us-west-2.amazonaws.com/knn:1" in _error(excinfo)[1]


def test_knn_image_table():
    assert knn_image_uri("us-east-2") == "404615174143.dkr.ecr.us-east-2.amazonaws.com/knn:1"
    assert knn_image_uri("us-east-1") == "382416733822.dkr.ecr.us-east-1.amazonaws.com/knn:1"
    assert knn_image_uri("us-west-2") == "174872318107.dkr.ecr.us-west-2.amazonaws.com/knn:1"
    assert is_knn_image("404615174143.dkr.ecr.us-east-2.amazonaws.com/knn:latest", "us-east-2")
    assert knn_image_uri("cn-north-1") == "390948362332.dkr.ecr.cn-north-1.amazonaws.com.cn/knn:1"
    with pytest.raises(ValueError, match="no SageMaker k-NN image is known for region 'eu-north-9'"):
        knn_image_uri("eu-north-9")


def test_the_engine_accepts_the_image_the_spec_builders_send_in_every_region():
    from iris_sagemaker.core import algorithm_images

    for region in algorithm_images.KNN_REGISTRY_ACCOUNTS:
        assert is_knn_image(algorithm_images.knn_image_uri(region), region), region
    assert not is_knn_image(algorithm_images.knn_image_uri("us-east-1"), "us-east-2")


def test_duplicate_training_job_is_resource_in_use(lab, client):
    lab.train("train-iris")
    with pytest.raises(ClientError) as excinfo:
        client.create_training_job(**_request(TrainingJobName="Train-Iris"))  # names ignore case
    assert _error(excinfo) == (
        "ResourceInUse",
        "Training job names must be unique within an AWS account and region, and a training job with this "
        f"name already exists ({ARN}:training-job/train-iris)",
    )


@pytest.mark.parametrize(
    ("method", "kwargs"),
    [
        ("describe_training_job", {"TrainingJobName": "nope"}),
        ("describe_transform_job", {"TransformJobName": "nope"}),
        ("stop_training_job", {"TrainingJobName": "nope"}),
        ("stop_transform_job", {"TransformJobName": "nope"}),
    ],
)
def test_unknown_job(client, method, kwargs):
    with pytest.raises(ClientError) as excinfo:
        getattr(client, method)(**kwargs)
    assert _error(excinfo) == ("ValidationException", "Requested resource not found.")


@pytest.mark.parametrize("method", ["describe_model", "delete_model"])
def test_unknown_model(client, method):
    with pytest.raises(ClientError) as excinfo:
        getattr(client, method)(ModelName="Nope")
    assert _error(excinfo) == ("ValidationException", f'Could not find model "{ARN}:model/nope".')


def test_model_errors(lab, client):
    training = lab.train()
    lab.model("iris-knn", training)
    url = training["ModelArtifacts"]["S3ModelArtifacts"]
    with pytest.raises(ClientError) as excinfo:
        client.create_model(**model_request("Iris-KNN", url))
    assert _error(excinfo) == (
        "ValidationException",
        f'Cannot create already existing model "{ARN}:model/iris-knn".',
    )
    with pytest.raises(ClientError) as excinfo:
        client.create_model(**model_request("other", "s3://bucket/missing/model.tar.gz"))
    assert _error(excinfo)[1] == "Could not find model data at s3://bucket/missing/model.tar.gz."
    bad_image = model_request("other", url)
    bad_image["PrimaryContainer"]["Image"] = "my/own:image"
    with pytest.raises(ClientError) as excinfo:
        client.create_model(**bad_image)
    assert "runs only the built-in k-NN image" in _error(excinfo)[1]
    no_url = model_request("other", url)
    del no_url["PrimaryContainer"]["ModelDataUrl"]
    with pytest.raises(ClientError) as excinfo:
        client.create_model(**no_url)
    assert "PrimaryContainer.ModelDataUrl is required" in _error(excinfo)[1]
    assert client.delete_model(ModelName="iris-knn")["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(ClientError):
        client.describe_model(ModelName="iris-knn")


def test_transform_needs_an_existing_model(client):
    request = transform_request("t1", "Missing-Model", "s3://bucket/in/test.csv", "s3://bucket/out")
    with pytest.raises(ClientError) as excinfo:
        client.create_transform_job(**request)
    assert _error(excinfo) == ("ValidationException", f'Could not find model "{ARN}:model/missing-model".')


def test_unusable_output_uri(client):
    with pytest.raises(ClientError) as excinfo:
        client.create_training_job(**_request(OutputDataConfig={"S3OutputPath": "https://example.com/x"}))
    assert (
        "OutputDataConfig.S3OutputPath 'https://example.com/x' is not a usable S3 URI" in _error(excinfo)[1]
    )


def test_invalid_pagination_token(client):
    with pytest.raises(ClientError) as excinfo:
        client.list_models(NextToken="abc")
    assert _error(excinfo) == ("ValidationException", "Invalid pagination token.")
