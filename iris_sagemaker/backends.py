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


def uses_s3(settings: Settings) -> bool:
    """Objects live in S3 on the aws backend, and on the local one when an S3 endpoint is configured."""
    return settings.backend == "aws" or bool(settings.endpoint_url)


def make_store(settings: Settings, s3_client: Any = None) -> ObjectStore:
    """S3 (through ``s3_client`` when given) or the local folder."""
    if uses_s3(settings):
        client = s3_client or boto3_session(settings).client("s3", endpoint_url=settings.endpoint_url)
        return S3ObjectStore(client)
    return LocalObjectStore(settings.local_root)


def check_bucket(store: ObjectStore, settings: Settings) -> None:
    """Fail before any job starts when the configured bucket is missing or not accessible."""
    if isinstance(store, S3ObjectStore):
        store.check_bucket(settings.bucket)


def make_sagemaker_client(settings: Settings, store: ObjectStore | None = None) -> Any:
    if settings.backend == "aws":
        return boto3_session(settings).client("sagemaker")
    from iris_sagemaker.local_sagemaker import LocalSageMakerClient

    return LocalSageMakerClient(settings.local_root, region=settings.region, store=store)


def make_runtime_client(settings: Settings, sagemaker_client: Any) -> Any:
    """``sagemaker-runtime`` (InvokeEndpoint) for the same backend as ``sagemaker_client``."""
    if settings.backend == "aws":
        return boto3_session(settings).client("sagemaker-runtime")
    from iris_sagemaker.local_sagemaker import LocalSageMakerRuntimeClient

    return LocalSageMakerRuntimeClient(sagemaker=sagemaker_client)


def make_logs_client(settings: Settings) -> Any:
    """CloudWatch Logs: AWS's, or the embedded engine's view of its own logs (the same API)."""
    if settings.backend == "aws":
        return boto3_session(settings).client("logs")
    from iris_sagemaker.local_sagemaker import LocalLogsClient

    return LocalLogsClient(settings.local_root, region=settings.region)
