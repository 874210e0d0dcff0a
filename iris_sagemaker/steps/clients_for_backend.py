"""Build the object store and the SageMaker client for the configured backend.

The only place that branches on ``Settings.backend``: everything above talks to an ``ObjectStore`` and a
boto3-shaped SageMaker client.
"""

from __future__ import annotations

import os
import socket
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from iris_sagemaker.core.settings import S3_ENDPOINT_VARIABLE, Settings, SettingsError
from iris_sagemaker.core.storage import LocalObjectStore, ObjectStore, S3ObjectStore


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
    """Fail before any job starts when a configured endpoint refuses connections, or the bucket is
    missing or not accessible."""
    if isinstance(store, S3ObjectStore):
        check_endpoints(settings)
        store.check_bucket(settings.bucket)


def configured_endpoints(settings: Settings, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The endpoint URLs set by a variable that this backend's S3 and SageMaker clients use, by variable
    (as botocore picks them: the service's own ``AWS_ENDPOINT_URL_<SERVICE>`` before ``AWS_ENDPOINT_URL``)."""
    env = os.environ if env is None else env

    def first(*names: str) -> dict[str, str]:
        for name in names:
            if env.get(name, "").strip():
                return {name: env[name].strip()}
        return {}

    found: dict[str, str] = {}
    if settings.endpoint_url:
        found[S3_ENDPOINT_VARIABLE] = settings.endpoint_url
    elif uses_s3(settings):
        found.update(first("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"))
    if settings.backend == "aws":
        found.update(first("AWS_ENDPOINT_URL_SAGEMAKER", "AWS_ENDPOINT_URL"))
    return found


def check_endpoints(settings: Settings, env: Mapping[str, str] | None = None, timeout: float = 5.0) -> None:
    """SettingsError naming the variable and the URL of each configured endpoint that nothing answers at
    (refused, or a host that does not resolve): at once, rather than after botocore's retries."""
    problems = []
    for variable, url in configured_endpoints(settings, env).items():
        why = _unreachable(url, timeout)
        if why:
            problems.append(
                f"{variable}={url}: {why}; start the server it names (MinIO, moto, iris-sagemaker serve), "
                f"or fix or unset {variable}"
            )
    if problems:
        raise SettingsError(*problems)


def _unreachable(url: str, timeout: float) -> str | None:
    """Why nothing answers at ``url``, or None (it answers, or a proxy stands between: not checked)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if urllib.request.getproxies().get(parts.scheme) and not urllib.request.proxy_bypass(host):
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except ConnectionRefusedError:
        return f"connection refused (nothing listens on {host}:{port})"
    except socket.gaierror as err:
        return f"host {host!r} not found ({err.strerror})"
    except OSError:
        return None  # a timeout or a network error: left to botocore, which says what it found
    return None


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
