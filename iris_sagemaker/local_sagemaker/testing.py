"""Helpers for tests and examples that drive the embedded engine (no pytest dependency)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .images import knn_image_uri

ACTIVE_STATUSES = ("InProgress", "Stopping")
ROLE_ARN = "arn:aws:iam::123456789012:role/service-role/local-test"


def wait_for(
    describe: Callable[[], dict[str, Any]],
    status_key: str,
    timeout: float = 30.0,
    interval: float = 0.01,
    until: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, Any]:
    """Poll ``describe()`` until the job has ended (or ``until(response)`` holds); TimeoutError otherwise."""
    done = until or (lambda response: response[status_key] not in ACTIVE_STATUSES)
    deadline = time.monotonic() + timeout
    while True:
        response = describe()
        if done(response):
            return response
        if time.monotonic() > deadline:
            raise TimeoutError(f"{status_key} still {response[status_key]} after {timeout}s")
        time.sleep(interval)


def iris_like(rows_per_class: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated 4-feature classes labelled 0, 1, 2 (virginica, versicolor, setosa means)."""
    rng = np.random.default_rng(seed)
    centers = np.array([[6.6, 3.0, 5.6, 2.0], [5.9, 2.8, 4.3, 1.3], [5.0, 3.4, 1.5, 0.2]])
    labels = np.repeat(np.arange(3, dtype=np.float32), rows_per_class)
    features = centers[labels.astype(int)] + rng.normal(scale=0.15, size=(len(labels), 4))
    order = rng.permutation(len(labels))
    return labels[order], np.round(features[order], 2).astype(np.float32)


def to_csv(*columns: np.ndarray) -> bytes:
    """Rows of the given column blocks (1-D or 2-D) as headerless CSV."""
    blocks = [c.reshape(len(c), -1) for c in columns]
    table = np.hstack(blocks)
    return "".join(",".join(f"{v:g}" for v in row) + "\n" for row in table).encode("utf-8")


def training_request(
    name: str,
    train_uri: str,
    output_path: str,
    hyperparameters: dict[str, str] | None = None,
    region: str = "us-east-2",
    test_uri: str | None = None,
) -> dict[str, Any]:
    """A CreateTrainingJob request shaped like the tutorial's."""
    channels = [_channel("train", train_uri)]
    if test_uri:
        channels.append(_channel("test", test_uri))
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": knn_image_uri(region), "TrainingInputMode": "File"},
        "HyperParameters": hyperparameters
        or {"predictor_type": "classifier", "feature_dim": "4", "k": "3", "sample_size": "150"},
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": output_path},
        "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1},
        "RoleArn": ROLE_ARN,
        "StoppingCondition": {"MaxRuntimeInSeconds": 6000},
    }


def _channel(name: str, uri: str) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}},
        "ContentType": "text/csv",
        "InputMode": "File",
    }


def model_request(name: str, model_data_url: str, region: str = "us-east-2") -> dict[str, Any]:
    return {
        "ModelName": name,
        "ExecutionRoleArn": ROLE_ARN,
        "PrimaryContainer": {
            "Mode": "SingleModel",
            "Image": knn_image_uri(region),
            "ModelDataUrl": model_data_url,
        },
    }


def transform_request(
    name: str, model_name: str, input_uri: str, output_path: str, **options: Any
) -> dict[str, Any]:
    """A CreateTransformJob request; ``options`` may set ContentType, SplitType, Accept, AssembleWith
    (placed in TransformInput/TransformOutput) and any top-level member (BatchStrategy, ...)."""
    tin: dict[str, Any] = {
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
        "SplitType": options.pop("SplitType", "Line"),
        "ContentType": options.pop("ContentType", "text/csv"),
    }
    if "CompressionType" in options:
        tin["CompressionType"] = options.pop("CompressionType")
    tout: dict[str, Any] = {"S3OutputPath": output_path}
    for key in ("Accept", "AssembleWith"):
        if key in options:
            tout[key] = options.pop(key)
    return {
        "TransformJobName": name,
        "ModelName": model_name,
        "TransformInput": tin,
        "TransformOutput": tout,
        "TransformResources": {"InstanceCount": 1, "InstanceType": "ml.m5.large"},
        **options,
    }


class Lab:
    """A client on a scratch root plus shortcuts: put data, train, create models, run transforms."""

    def __init__(self, root: Any, bucket: str = "bucket", region: str = "us-east-2") -> None:
        from .client import LocalSageMakerClient

        self.client = LocalSageMakerClient(root, region=region)
        self.store = self.client.store
        self.bucket = bucket
        self.region = region

    def put(self, key: str, data: bytes) -> str:
        self.store.put_bytes(self.bucket, key, data)
        return f"s3://{self.bucket}/{key}"

    def get(self, key: str) -> bytes:
        return self.store.get_bytes(self.bucket, key)

    def describe_training(self, name: str) -> dict[str, Any]:
        return self.client.describe_training_job(TrainingJobName=name)

    def describe_transform(self, name: str) -> dict[str, Any]:
        return self.client.describe_transform_job(TransformJobName=name)

    def wait_training(self, name: str, timeout: float = 30.0) -> dict[str, Any]:
        return wait_for(lambda: self.describe_training(name), "TrainingJobStatus", timeout)

    def wait_transform(self, name: str, timeout: float = 30.0) -> dict[str, Any]:
        return wait_for(lambda: self.describe_transform(name), "TransformJobStatus", timeout)

    def train(
        self,
        name: str = "train-iris",
        hyperparameters: dict[str, str] | None = None,
        train: bytes | None = None,
        test: bytes | None = None,
        wait: bool = True,
        **overrides: Any,
    ) -> dict[str, Any]:
        """Upload data (Iris-like by default), create the job and (by default) wait for its end."""
        if train is None:
            labels, features = iris_like()
            train = to_csv(labels, features)
        train_uri = self.put(f"{name}/input/train.csv", train)
        test_uri = self.put(f"{name}/input/test.csv", test) if test is not None else None
        request = training_request(
            name, train_uri, f"s3://{self.bucket}/results", hyperparameters, self.region, test_uri
        )
        request.update(overrides)
        self.client.create_training_job(**request)
        return self.wait_training(name) if wait else self.describe_training(name)

    def model(self, name: str, training: dict[str, Any]) -> dict[str, Any]:
        url = training["ModelArtifacts"]["S3ModelArtifacts"]
        self.client.create_model(**model_request(name, url, self.region))
        return self.client.describe_model(ModelName=name)

    def transform(
        self, name: str, model_name: str, input_uri: str, output_path: str, wait: bool = True, **options: Any
    ) -> dict[str, Any]:
        self.client.create_transform_job(
            **transform_request(name, model_name, input_uri, output_path, **options)
        )
        return self.wait_transform(name) if wait else self.describe_transform(name)
