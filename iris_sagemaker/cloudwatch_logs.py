"""Follow a SageMaker training job's CloudWatch logs (``/aws/sagemaker/TrainingJobs``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

LOG_GROUP = "/aws/sagemaker/TrainingJobs"


class TrainingLogTail:
    """Each ``poll()`` forwards the log lines written since the last one.

    A missing log group or stream (the job has not started, or logging is not allowed by the role) is not
    an error: there is simply nothing to forward yet.
    """

    def __init__(self, logs_client: Any, job_name: str, emit: Callable[[str], None]) -> None:
        self.logs = logs_client
        self.job_name = job_name
        self.emit = emit
        self._tokens: dict[str, str | None] = {}

    def poll(self) -> int:
        from botocore.exceptions import ClientError

        forwarded = 0
        try:
            streams = self.logs.describe_log_streams(
                logGroupName=LOG_GROUP, logStreamNamePrefix=f"{self.job_name}/"
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
                "logGroupName": LOG_GROUP,
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
