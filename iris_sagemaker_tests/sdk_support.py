"""What the SageMaker Python SDK tests (v2 and v3, each in its own venv) share: the tutorial's Iris split and
an independent k-NN to check the server's predictions against."""

from __future__ import annotations

import importlib.metadata

import numpy as np

from iris_sagemaker.core import dataset

ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"


def sdk_major_version() -> int | None:
    """The installed SageMaker Python SDK's major version (None without it). Both v2 and v3 import as
    ``sagemaker`` (v3 as a namespace package), so an import alone does not tell them apart."""
    try:
        return int(importlib.metadata.version("sagemaker").split(".")[0])
    except importlib.metadata.PackageNotFoundError:
        return None


def iris() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The tutorial's split of the packaged Iris data: train features, train labels, test features, test
    labels (float32, as a notebook would hold them)."""
    _, data = dataset.read_source(None)
    split = dataset.split(dataset.parse_iris(data), seed=0)
    train = split.train.to_numpy(np.float32)
    return (
        train[:, 1:],
        train[:, 0],
        split.test_features.to_numpy(np.float32),
        split.test_labels.to_numpy(np.float32),
    )


def brute_force_knn(train_x: np.ndarray, train_y: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Independent k-NN: exact float64 squared L2 distances, stable order (the earlier training row first
    on equal distances), the most frequent label, a tie going to the nearest neighbour among the tied."""
    out = []
    for query in queries.astype(np.float64):
        distances = ((train_x.astype(np.float64) - query) ** 2).sum(axis=1)
        nearest = train_y[np.argsort(distances, kind="stable")[:k]]
        values, counts = np.unique(nearest, return_counts=True)
        tied = set(values[counts == counts.max()])
        out.append(next(label for label in nearest if label in tied))
    return np.array(out)
