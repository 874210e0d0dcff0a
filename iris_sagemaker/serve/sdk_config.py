"""The SageMaker Python SDK's settings for a local server, in the SDK's own defaults file.

The SDK names its default bucket ``sagemaker-<region>-<account>`` after asking STS for the account on a
hard-coded ``https://sts.<region>.amazonaws.com`` (an explicit endpoint, so ``AWS_ENDPOINT_URL`` does not
reach it), and it sends usage telemetry to AWS. Its defaults file (pointed at by
``SAGEMAKER_USER_CONFIG_OVERRIDE``) can set both: the server writes one naming the bucket the SDK would
have chosen here, with telemetry off, so an unmodified notebook never leaves the machine.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from iris_sagemaker.local_sagemaker.client import ACCOUNT_ID

ENV_VARIABLE = "SAGEMAKER_USER_CONFIG_OVERRIDE"


def default_bucket(region: str) -> str:
    """The bucket name the SDK's ``Session.default_bucket()`` derives for this account and region."""
    return f"sagemaker-{region}-{ACCOUNT_ID}"


def sdk_defaults(region: str) -> dict[str, Any]:
    """The SDK's defaults document (SchemaVersion 1.0): the default bucket, and telemetry off."""
    return {
        "SchemaVersion": "1.0",
        "SageMaker": {
            "PythonSDK": {
                "Modules": {
                    "Session": {"DefaultS3Bucket": default_bucket(region)},
                    "TelemetryOptOut": True,
                }
            }
        },
    }


def write_sdk_config(root: Path, region: str) -> Path:
    """Write ``ROOT/sagemaker/sdk-config.yaml`` (JSON, which is YAML) atomically; return its path."""
    path = root / "sagemaker" / "sdk-config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(sdk_defaults(region), indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return path
