"""Helpers for the tests of ``iris-sagemaker serve``: boto3 clients on a server, the tutorial's data."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from iris_sagemaker.core import dataset
from iris_sagemaker.core.settings import Settings
from iris_sagemaker.serve.process import ServerProcess

REGION = "us-east-2"
BUCKET = "iris-sagemaker-http"


def client(server: ServerProcess, service: str, **config: Any) -> Any:
    """A boto3 client of ``service`` on ``server`` (standard retries off, so errors show at once)."""
    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    ).client(
        service,
        endpoint_url=server.url,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, **config),
    )


def tutorial_settings(root: Any) -> Settings:
    return Settings.from_env({"IRIS_SAGEMAKER_LOCAL_ROOT": str(root), "IRIS_SAGEMAKER_BUCKET": BUCKET})


def upload_tutorial_split(s3: Any, settings: Settings) -> dataset.IrisSplit:
    """The tutorial's train.csv and test.csv, from the packaged Iris data, in the server's bucket."""
    from iris_sagemaker.core.settings import TEST_KEY, TRAIN_KEY

    _, data = dataset.read_source(None)
    split = dataset.split(dataset.parse_iris(data), seed=settings.split_seed)
    s3.put_object(Bucket=settings.bucket, Key=TRAIN_KEY, Body=dataset.to_sagemaker_csv(split.train))
    s3.put_object(Bucket=settings.bucket, Key=TEST_KEY, Body=dataset.to_sagemaker_csv(split.test_features))
    return split


def variant(model_name: str) -> list[dict[str, Any]]:
    return [
        {
            "VariantName": "AllTraffic",
            "ModelName": model_name,
            "InitialInstanceCount": 1,
            "InstanceType": "ml.m5.large",
        }
    ]
