"""What a run prints on the terminal: a line per step, or with ``IRIS_SAGEMAKER_VERBOSE=1`` Dagster's full
event log.

``make run`` selects this logger (run config ``loggers: {console: {}}``); without it (the UI, a schedule,
``dagster asset materialize`` by hand) a run prints Dagster's default console log, as before. Either way the
event log in the UI is complete: only the terminal is quieter.

A step's line ends the step: its name, the last short line it logged itself (job log lines, which start
with ``[job-name]``, aside), its checks and its time; a failed step gets its error's message, no stack
trace. Warnings and errors logged by the code are printed whole, as they come.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

from dagster import Field, InitLoggerContext, colored_console_logger, logger

from iris_sagemaker.core.settings import VERBOSE_HOW, VERBOSE_VARIABLE, env_bool

HEADLINE_MAX = 160  # longer lines (lists of keys, say) do not make a step's line
RUN_CONFIG = {"loggers": {"console": {}}}  # what `make run` passes (--config-json)


def verbose() -> bool:
    """``IRIS_SAGEMAKER_VERBOSE`` (a yes/no setting; a bad value fails the run's logger, naming it)."""
    return env_bool(VERBOSE_VARIABLE, False, how=VERBOSE_HOW)


class _RunState:
    """What a run's handlers share (Dagster makes its loggers more than once per run)."""

    def __init__(self) -> None:
        self.headlines: dict[str, str] = {}
        self.checks: dict[str, list[str]] = {}
        self.errors_shown: set[str] = set()  # a run's failure repeats its step's or resource's error


_RUNS: dict[str | None, _RunState] = {}
_RUNS_KEPT = 16


def _run_state(run_id: str | None) -> _RunState:
    if run_id not in _RUNS:
        while len(_RUNS) >= _RUNS_KEPT:
            _RUNS.pop(next(iter(_RUNS)))
        _RUNS[run_id] = _RunState()
    return _RUNS[run_id]


class StepLines(logging.Handler):
    """Writes a line per finished step (see the module's docstring) to ``stream``."""

    def __init__(self, stream: TextIO | None = None, state: _RunState | None = None) -> None:
        super().__init__(logging.DEBUG)
        self.stream = stream
        state = state or _RunState()
        self.headlines, self.checks, self.errors_shown = state.headlines, state.checks, state.errors_shown

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._emit(record)
        except Exception:  # a logger never fails a run
            self.handleError(record)

    def _emit(self, record: logging.LogRecord) -> None:
        meta: dict[str, Any] = getattr(record, "dagster_meta", None) or {}
        event, step = meta.get("dagster_event"), meta.get("step_key")
        message = str(meta.get("orig_message", record.getMessage()))
        if event is None:  # logged by the code (context.log), or by Dagster without an event
            if message.startswith("Dependencies for step"):  # downstream of a failed step: said once below
                return
            if record.levelno >= logging.WARNING:
                self._write(f"{step or 'run'}: {record.levelname.lower()}: {message}")
            elif step:
                for line in message.splitlines():
                    if line.strip() and not line.startswith("[") and len(line) <= HEADLINE_MAX:
                        self.headlines[step] = line.strip()
            return
        kind = event.event_type_value
        if kind == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            self.checks.setdefault(step or "", []).append(
                f"{data.check_name} {'passed' if data.passed else 'FAILED'}"
            )
        elif kind == "STEP_SUCCESS":
            seconds = getattr(event.event_specific_data, "duration_ms", 0) / 1000
            checks = self.checks.pop(step or "", [])
            shown = f" [{', '.join(checks)}]" if checks else ""
            self._write(f"{step}: {self.headlines.pop(step or '', 'done')}{shown} ({seconds:.1f} s)")
        elif kind == "STEP_FAILURE":
            failure = _failure(event)
            self.errors_shown.add(failure)
            self._write(f"{step}: FAILED: {failure}")
        elif kind == "STEP_SKIPPED":
            self._write(f"{step}: skipped (an upstream step did not materialize)")
        elif record.levelno >= logging.ERROR:  # the run's failure, a resource's, an engine's
            line = message.splitlines()[0] if message else kind
            cause = _error_text(getattr(event.event_specific_data, "error", None))
            shown = cause is None or cause in self.errors_shown
            self._write(f"{step or 'run'}: {line}" + ("" if shown else f"\n{cause}"))
            self.errors_shown.add(cause or "")

    def _write(self, line: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(line + "\n")
        stream.flush()


def _failure(event: Any) -> str:
    """A step failure's own message: the innermost error's (a Failure's description), no stack."""
    data = event.event_specific_data
    description = getattr(getattr(data, "user_failure_data", None), "description", None)
    if description:
        return str(description)
    return _error_text(getattr(data, "error", None)) or event.message or "failed"


def _error_text(error: Any) -> str | None:
    """The message of the error that caused ``error`` (a SerializableErrorInfo), through Dagster's
    wrappers, without its module-qualified class name."""
    while error is not None and error.cause is not None:
        error = error.cause
    if error is None:
        return None
    text = str(error.message).strip()
    head, sep, rest = text.partition(": ")
    return rest if sep and head.rpartition(".")[2] == error.cls_name else text


@logger(
    Field(
        {
            "log_level": Field(str, is_required=False, default_value="DEBUG"),
            "name": Field(str, is_required=False, default_value="dagster"),
        }
    ),
    description="A line per step on the console; Dagster's colored console log (from log_level) with "
    f"{VERBOSE_VARIABLE}=1.",
)
def step_lines_console(init_context: InitLoggerContext) -> logging.Logger:
    if verbose():
        return colored_console_logger.logger_fn(init_context)
    log = logging.Logger("iris_sagemaker.steps", logging.DEBUG)  # the run's own, not in logging's registry
    log.addHandler(StepLines(state=_run_state(init_context.run_id)))
    return log
