"""Follow a job's logs while waiting for it, forwarding new lines (to the Dagster run log, say).

SageMaker writes to CloudWatch (``/aws/sagemaker/TrainingJobs``, ``/aws/sagemaker/TransformJobs``); the
embedded engine writes a progress log per job that its client serves by byte offset. Both tails have
the same ``poll() -> new lines`` so the waiting code does not care which it follows; it logs each poll's
lines together with any status change, as one message.
"""

from __future__ import annotations

from typing import Any, Protocol

LOG_GROUPS = {"TrainingJob": "/aws/sagemaker/TrainingJobs", "TransformJob": "/aws/sagemaker/TransformJobs"}
LOG_GROUP = LOG_GROUPS["TrainingJob"]
ENDPOINT_LOG_GROUP_PREFIX = "/aws/sagemaker/Endpoints/"


class LogTail(Protocol):
    def poll(self) -> list[str]: ...


class LocalJobLogTail:
    """The embedded engine's progress log of one job (``LocalSageMakerClient.read_job_log``)."""

    def __init__(self, client: Any, job_type: str, job_name: str) -> None:
        self.client = client
        self.job_type = job_type
        self.job_name = job_name
        self._offset = 0

    def poll(self) -> list[str]:
        """The lines written since the last poll, each prefixed with the job's name."""
        lines, self._offset = self.client.read_job_log(self.job_type, self.job_name, self._offset)
        return [f"[{self.job_name}] {line}" for line in lines]


class CloudWatchLogTail:
    """Each ``poll()`` returns the CloudWatch lines a SageMaker job wrote since the last one.

    A missing log group or stream (the job has not started, or logging is not allowed by the role) is not
    an error: there is simply nothing to forward yet.
    """

    def __init__(
        self, logs_client: Any, job_name: str, log_group: str = LOG_GROUP, stream_prefix: str | None = None
    ) -> None:
        self.logs = logs_client
        self.job_name = job_name
        self.log_group = log_group
        # A job's streams are "<job>/..."; an endpoint's group holds only its own ("<variant>/<instance>").
        self.stream_prefix = f"{job_name}/" if stream_prefix is None else stream_prefix
        self._tokens: dict[str, str | None] = {}

    def poll(self) -> list[str]:
        from botocore.exceptions import ClientError

        lines: list[str] = []
        try:
            request = {"logGroupName": self.log_group}
            if self.stream_prefix:
                request["logStreamNamePrefix"] = self.stream_prefix
            streams = self.logs.describe_log_streams(**request).get("logStreams", [])
            for stream in streams:
                lines += self._drain(stream["logStreamName"])
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
        return lines

    def skip_to_end(self) -> CloudWatchLogTail:
        """Start from what is logged after now (an endpoint's stream keeps every earlier deployment's)."""
        self.poll()
        return self

    def _drain(self, stream: str) -> list[str]:
        lines: list[str] = []
        while True:
            kwargs: dict[str, Any] = {
                "logGroupName": self.log_group,
                "logStreamName": stream,
                "startFromHead": True,
            }
            if self._tokens.get(stream):
                kwargs["nextToken"] = self._tokens[stream]
            page = self.logs.get_log_events(**kwargs)
            lines += [f"[{stream}] {event['message']}" for event in page.get("events", [])]
            token = page.get("nextForwardToken")
            if not page.get("events") or token == self._tokens.get(stream):
                self._tokens[stream] = token
                return lines
            self._tokens[stream] = token
