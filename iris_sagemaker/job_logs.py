"""Follow a job's logs while waiting for it, forwarding new lines (to the Dagster run log, say).

SageMaker writes to CloudWatch (``/aws/sagemaker/TrainingJobs``, ``/aws/sagemaker/TransformJobs``); the
embedded engine writes a progress log per job that its client serves by byte offset. Both tails have
the same ``poll() -> lines forwarded`` so the waiting code does not care which it follows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

LOG_GROUPS = {"TrainingJob": "/aws/sagemaker/TrainingJobs", "TransformJob": "/aws/sagemaker/TransformJobs"}
LOG_GROUP = LOG_GROUPS["TrainingJob"]


class LogTail(Protocol):
    def poll(self) -> int: ...


class LocalJobLogTail:
    """The embedded engine's progress log of one job (``LocalSageMakerClient.read_job_log``)."""

    def __init__(self, client: Any, job_type: str, job_name: str, emit: Callable[[str], None]) -> None:
        self.client = client
        self.job_type = job_type
        self.job_name = job_name
        self.emit = emit
        self._offset = 0

    def poll(self) -> int:
        """Forward the new lines as one message (one log event, not one per line)."""
        lines, self._offset = self.client.read_job_log(self.job_type, self.job_name, self._offset)
        if lines:
            self.emit("\n".join(f"[{self.job_name}] {line}" for line in lines))
        return len(lines)


class CloudWatchLogTail:
    """Each ``poll()`` forwards the CloudWatch lines a SageMaker job wrote since the last one.

    A missing log group or stream (the job has not started, or logging is not allowed by the role) is not
    an error: there is simply nothing to forward yet.
    """

    def __init__(
        self, logs_client: Any, job_name: str, emit: Callable[[str], None], log_group: str = LOG_GROUP
    ) -> None:
        self.logs = logs_client
        self.job_name = job_name
        self.emit = emit
        self.log_group = log_group
        self._tokens: dict[str, str | None] = {}

    def poll(self) -> int:
        from botocore.exceptions import ClientError

        forwarded = 0
        try:
            streams = self.logs.describe_log_streams(
                logGroupName=self.log_group, logStreamNamePrefix=f"{self.job_name}/"
            ).get("logStreams", [])
            for stream in streams:
                forwarded += self._drain(stream["logStreamName"])
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
        return forwarded

    def _drain(self, stream: str) -> int:
        forwarded = 0
        while True:
            kwargs: dict[str, Any] = {
                "logGroupName": self.log_group,
                "logStreamName": stream,
                "startFromHead": True,
            }
            if self._tokens.get(stream):
                kwargs["nextToken"] = self._tokens[stream]
            page = self.logs.get_log_events(**kwargs)
            for event in page.get("events", []):
                self.emit(f"[{stream}] {event['message']}")
                forwarded += 1
            token = page.get("nextForwardToken")
            if not page.get("events") or token == self._tokens.get(stream):
                self._tokens[stream] = token
                return forwarded
            self._tokens[stream] = token
