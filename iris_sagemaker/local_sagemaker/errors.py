"""Errors as the SageMaker API and its algorithms report them.

API errors are ``botocore.exceptions.ClientError`` with SageMaker's codes, so callers handle the
embedded engine and AWS with one ``except``. Job failures are :class:`JobFailure`, whose text becomes the
job's ``FailureReason``.
"""

from __future__ import annotations

import os
from typing import Any

from botocore.exceptions import ClientError

VALIDATION = "ValidationException"
RESOURCE_IN_USE = "ResourceInUse"
RESOURCE_NOT_FOUND = "ResourceNotFound"
# AWS's common error for a server-side fault (HTTP 500); SageMaker's model has no error shape of its own
# for it (its modeled errors are all the caller's to fix: ResourceLimitExceeded, ResourceInUse, ...).
INTERNAL_FAILURE = "InternalFailure"


def client_error(code: str, message: str, operation: str, status: int = 400, **fields: Any) -> ClientError:
    """A ClientError as botocore raises it; ``fields`` are the error shape's modeled members."""
    response = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": 0},
        **fields,
    }
    return ClientError(response, operation)  # type: ignore[arg-type]


def validation_error(message: str, operation: str) -> ClientError:
    return client_error(VALIDATION, message, operation)


def not_found(operation: str) -> ClientError:
    return validation_error("Requested resource not found.", operation)


def internal_failure(message: str, operation: str) -> ClientError:
    return client_error(INTERNAL_FAILURE, message, operation, status=500)


def disk_full_message(err: OSError, root: str | os.PathLike[str]) -> str:
    """What to tell whoever hit a full disk: the file that could not be written and what to free."""
    where = err.filename or root
    return (
        f"{err.strerror or 'No space left on device'} writing {where}: the disk holding the embedded "
        f"SageMaker engine's root {root} is full. Free space under {root} and try again."
    )


class FormatError(ValueError):
    """Data that cannot be parsed; the message names the row or record."""


class JobFailure(Exception):
    """A job ends ``Failed`` with ``str(self)`` as its FailureReason."""


class AlgorithmClientError(JobFailure):
    """The user's request or data is at fault (SageMaker's ``ClientError:`` failure reasons)."""

    def __init__(self, message: str) -> None:
        super().__init__(f"ClientError: {message}")


class JobStopped(Exception):
    """Raised inside a worker when a stop was requested (or the runtime limit was reached)."""

    def __init__(self, secondary_status: str = "Stopped") -> None:
        super().__init__(secondary_status)
        self.secondary_status = secondary_status
