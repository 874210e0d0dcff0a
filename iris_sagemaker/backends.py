"""Build the object store and the SageMaker client for the configured backend.

The only place that branches on ``Settings.backend``: everything above talks to an ``ObjectStore`` and a
boto3-shaped SageMaker client.
"""

from __future__ import annotations

from typing import Any

from iris_sagemaker.settings import Settings
from iris_sagemaker.storage import LocalObjectStore, ObjectStore, S3ObjectStore


def boto3_session(settings: Settings) -> Any:
    import boto3

    return boto3.session.Session(profile_name=settings.profile, region_name=settings.region)


def make_store(settings: Settings) -> ObjectStore:
    """S3 for ``aws`` (or for ``local`` when an S3 endpoint is configured), else the local folder."""
    if settings.backend == "aws" or settings.endpoint_url:
        client = boto3_session(settings).client("s3", endpoint_url=settings.endpoint_url)
        return S3ObjectStore(client)
    return LocalObjectStore(settings.local_root)


def make_sagemaker_client(settings: Settings, store: ObjectStore | None = None) -> Any:
    if settings.backend == "aws":
        return boto3_session(settings).client("sagemaker")
    from iris_sagemaker.local_sagemaker import LocalSageMakerClient

    return LocalSageMakerClient(settings.local_root, region=settings.region, store=store)
