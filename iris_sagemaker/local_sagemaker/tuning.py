"""The hyperparameter tuning job program: a scheduler over ordinary training jobs (runs inside a job worker,
see :mod:`.jobs`).

Each trial is a training job of its own (name ``<tuning job>-<NNN>-<8 hex>``, its own log and artifact, and
``TuningJobArn`` in its description) created through the engine's ``CreateTrainingJob``; its objective is the
metric the job reports in ``FinalMetricDataList``. optuna proposes the hyperparameters by ask and tell:
``Random`` is its RandomSampler, ``Bayesian`` its TPE sampler (a tree-structured Parzen estimator, the
sequential model-based optimisation SageMaker's Bayesian strategy is; ``constant_liar`` keeps parallel
proposals apart), ``Grid`` every combination of the categorical values, in order.

Up to ``MaxParallelTrainingJobs`` trials run at once, ``MaxNumberOfTrainingJobs`` in all (or the grid). The
tuning record's counters and best job are updated as each trial ends, so DescribeHyperParameterTuningJob
shows progress. A stop stops the running trials (they end ``Stopped``) and starts no more; the tuning job
then ends ``Stopped``. A tuning job ends ``Completed`` when its trials have ended and at least one gave an
objective, else ``Failed`` naming why.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import JobFailure, JobStopped
from .jobs import JobContext
from .records import Record, RecordStore
from .tuning_space import Dimension, Objective, grid

POLL_S = 0.05
STOP_WAIT_S = 60.0
_TRAINING_FIELDS = (
    "AlgorithmSpecification",
    "RoleArn",
    "InputDataConfig",
    "OutputDataConfig",
    "ResourceConfig",
    "StoppingCondition",
    "VpcConfig",
    "EnableNetworkIsolation",
    "EnableInterContainerTrafficEncryption",
    "EnableManagedSpotTraining",
    "CheckpointConfig",
    "RetryStrategy",
    "Environment",
)
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuningPlan:
    """What :func:`run_tuning` needs, checked at create time."""

    name: str
    arn: str
    strategy: str
    dimensions: list[Dimension]
    objective: Objective
    max_jobs: int
    max_parallel: int
    definition: dict[str, Any]
    seed: int | None
    target: float | None = None  # TuningJobCompletionCriteria.TargetObjectiveMetricValue


@dataclass
class _Running:
    trial: Any
    job: str


def trial_request(plan: TuningPlan, job_name: str, tuned: dict[str, str]) -> dict[str, Any]:
    """The CreateTrainingJob request of one trial: the definition, static and tuned hyperparameters."""
    definition = plan.definition
    request = {key: definition[key] for key in _TRAINING_FIELDS if key in definition}
    spec = dict(request["AlgorithmSpecification"])
    spec.pop("MetricDefinitions", None)  # built-in algorithms define their own metrics
    request["AlgorithmSpecification"] = spec
    request["TrainingJobName"] = job_name
    request["HyperParameters"] = {**(definition.get("StaticHyperParameters") or {}), **tuned}
    return request


def trial_name(tuning_name: str, number: int, tuned: dict[str, str]) -> str:
    digest = hashlib.sha256(repr(sorted(tuned.items())).encode("utf-8")).hexdigest()[:8]
    return f"{tuning_name}-{number:03d}-{digest}"


def run_tuning(
    plan: TuningPlan,
    records: RecordStore,
    folder: str,
    client: Any,
    ctx: JobContext,
) -> dict[str, Any]:
    """Run the trials; returns the tuning job's final describe fields (raises JobStopped / JobFailure)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize" if plan.objective.maximize else "minimize", sampler=_sampler(plan)
    )
    total = plan.max_jobs
    if plan.strategy == "Grid":
        points = grid(plan.dimensions, "CreateHyperParameterTuningJob")
        total = min(total, len(points)) if plan.max_jobs else len(points)
        for point in points[:total]:
            study.enqueue_trial(point)
    distributions = {d.name: d.distribution for d in plan.dimensions}
    running: dict[str, _Running] = {}
    ended: list[dict[str, Any]] = []
    launched = 0
    ctx.log(
        f"tuning {plan.objective.metric} ({'max' if plan.objective.maximize else 'min'}imize) over "
        f"{', '.join(distributions)}: {plan.strategy}, {total} training jobs, {plan.max_parallel} at a time"
    )
    try:
        while launched < total or running:
            ctx.checkpoint()
            while launched < total and len(running) < plan.max_parallel and not _reached(plan, ended):
                trial = study.ask(distributions)
                tuned = {d.name: d.value(trial.params[d.name]) for d in plan.dimensions}
                launched += 1
                job = trial_name(plan.name, launched, tuned)
                client.create_trial(trial_request(plan, job, tuned), plan.arn)
                running[job] = _Running(trial, job)
                _save(records, folder, plan.name, lambda r, job=job, tuned=tuned: _add_trial(r, job, tuned))
                ctx.log(f"started {job}: " + ", ".join(f"{k}={v}" for k, v in tuned.items()))
            for job in list(running):
                described = client.describe_training_job(TrainingJobName=job)
                if described["TrainingJobStatus"] in ("InProgress", "Stopping"):
                    continue
                trial = running.pop(job).trial
                summary = _summary(described, plan)
                ended.append(summary)
                value = summary.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value")
                if value is None:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                else:
                    study.tell(trial, value)
                _save(records, folder, plan.name, lambda r, ended=list(ended): _progress(r, ended, plan))
                ctx.log(_ended_line(summary, plan))
            if _reached(plan, ended) and not running:
                break
            if running:
                time.sleep(POLL_S)
    except JobStopped:
        _stop_all(client, running, ctx)
        _save(records, folder, plan.name, lambda r: _progress(r, _all_summaries(client, r, plan), plan))
        raise
    best = _best(ended, plan)
    if best is None:
        reasons = [s.get("FailureReason") for s in ended if s.get("FailureReason")]
        raise JobFailure(
            f"No training job gave the objective metric {plan.objective.metric}"
            + (f"; the first failure: {reasons[0]}" if reasons else ".")
        )
    ctx.log(f"best training job {best['TrainingJobName']}: {plan.objective.metric} = {_metric(best):.6g}")
    return _jsonable(_fields(ended, plan))


def _sampler(plan: TuningPlan) -> Any:
    import optuna

    if plan.strategy == "Bayesian":
        startup = max(1, min(10, plan.max_jobs // 2))
        return optuna.samplers.TPESampler(seed=plan.seed, n_startup_trials=startup, constant_liar=True)
    return optuna.samplers.RandomSampler(seed=plan.seed)  # Random; Grid's trials are all enqueued


def _reached(plan: TuningPlan, ended: list[dict[str, Any]]) -> bool:
    """TargetObjectiveMetricValue reached: launch no more trials."""
    if plan.target is None:
        return False
    best = _best(ended, plan)
    if best is None:
        return False
    value = _metric(best)
    return value >= plan.target if plan.objective.maximize else value <= plan.target


def _summary(described: dict[str, Any], plan: TuningPlan) -> dict[str, Any]:
    return trial_summary(described, plan.name, [d.name for d in plan.dimensions], plan.objective)


def trial_summary(
    described: dict[str, Any], tuning_name: str, tuned_names: list[str], goal: Objective
) -> dict[str, Any]:
    """A HyperParameterTrainingJobSummary of one trial, from its DescribeTrainingJob."""
    hyperparameters = described.get("HyperParameters") or {}
    summary: dict[str, Any] = {
        "TrainingJobName": described["TrainingJobName"],
        "TrainingJobArn": described["TrainingJobArn"],
        "TuningJobName": tuning_name,
        "CreationTime": described["CreationTime"],
        "TrainingJobStatus": described["TrainingJobStatus"],
        "TunedHyperParameters": {n: hyperparameters[n] for n in tuned_names if n in hyperparameters},
    }
    for key in ("TrainingStartTime", "TrainingEndTime", "FailureReason"):
        if described.get(key) is not None:
            summary[key] = described[key]
    status = described["TrainingJobStatus"]
    if status in ("InProgress", "Stopping"):
        summary["ObjectiveStatus"] = "Pending"
        return summary
    metrics = {m["MetricName"]: m["Value"] for m in described.get("FinalMetricDataList") or []}
    if status == "Completed" and goal.metric in metrics:
        summary["ObjectiveStatus"] = "Succeeded"
        summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
            "Type": "Maximize" if goal.maximize else "Minimize",
            "MetricName": goal.metric,
            "Value": float(metrics[goal.metric]),
        }
    else:
        summary["ObjectiveStatus"] = "Failed"
        if status == "Completed":
            reason = f"The training job reported no {goal.metric} (an empty test channel?)."
            summary.setdefault("FailureReason", reason)
    return summary


def _metric(summary: dict[str, Any]) -> float:
    return float(summary["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])


def _best(summaries: list[dict[str, Any]], plan: TuningPlan) -> dict[str, Any] | None:
    """The trial with the best objective; among equals the first trial started (whatever order they
    ended in, so that the choice does not depend on timing), or None."""
    best = None
    sign = 1.0 if plan.objective.maximize else -1.0
    for summary in sorted(summaries, key=lambda s: s["TrainingJobName"]):  # <tuning job>-<NNN>-...
        if summary.get("ObjectiveStatus") != "Succeeded":
            continue
        if best is None or sign * _metric(summary) > sign * _metric(best):
            best = summary
    return best


def counters(summaries: list[dict[str, Any]]) -> tuple[dict[str, int], dict[str, int]]:
    """TrainingJobStatusCounters and ObjectiveStatusCounters of the trials summarised."""
    statuses = [s["TrainingJobStatus"] for s in summaries]
    objectives = [s.get("ObjectiveStatus", "Pending") for s in summaries]
    training = {
        "Completed": statuses.count("Completed"),
        "InProgress": statuses.count("InProgress") + statuses.count("Stopping"),
        "RetryableError": 0,
        "NonRetryableError": statuses.count("Failed"),
        "Stopped": statuses.count("Stopped"),
    }
    objective = {name: objectives.count(name) for name in ("Succeeded", "Pending", "Failed")}
    return training, objective


def _fields(summaries: list[dict[str, Any]], plan: TuningPlan) -> dict[str, Any]:
    training, objective = counters(summaries)
    fields: dict[str, Any] = {"TrainingJobStatusCounters": training, "ObjectiveStatusCounters": objective}
    best = _best(summaries, plan)
    if best is not None:
        fields["BestTrainingJob"] = best
    return fields


def _progress(record: Record, ended: list[dict[str, Any]], plan: TuningPlan) -> bool:
    pending = len(record.get("trials", [])) - len(ended)
    fields = _fields(ended, plan)
    fields["TrainingJobStatusCounters"]["InProgress"] += max(0, pending)
    fields["ObjectiveStatusCounters"]["Pending"] += max(0, pending)
    record["state"].update(_jsonable(fields))
    return True


def _add_trial(record: Record, job: str, tuned: dict[str, str]) -> bool:
    record.setdefault("trials", []).append({"name": job, "tuned": tuned})
    state = record["state"]
    state["TrainingJobStatusCounters"]["InProgress"] += 1
    state["ObjectiveStatusCounters"]["Pending"] += 1
    return True


def _save(records: RecordStore, folder: str, name: str, mutate: Callable[[Record], bool]) -> None:
    records.update(folder, name, mutate)


def _jsonable(value: Any) -> Any:
    from .records import to_json_time

    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return to_json_time(value)
    return value


def _all_summaries(client: Any, record: Record, plan: TuningPlan) -> list[dict[str, Any]]:
    return [
        _summary(client.describe_training_job(TrainingJobName=trial["name"]), plan)
        for trial in record.get("trials", [])
    ]


def _stop_all(client: Any, running: dict[str, _Running], ctx: JobContext) -> None:
    """Stop the running trials and wait (bounded) until each has ended."""
    from botocore.exceptions import ClientError

    for job in running:
        try:
            client.stop_training_job(TrainingJobName=job)
            ctx.log(f"stopping {job}")
        except ClientError:  # it ended meanwhile
            pass
    deadline = time.monotonic() + STOP_WAIT_S
    while running and time.monotonic() < deadline:
        for job in list(running):
            status = client.describe_training_job(TrainingJobName=job)["TrainingJobStatus"]
            if status not in ("InProgress", "Stopping"):
                running.pop(job)
        time.sleep(POLL_S)


def _ended_line(summary: dict[str, Any], plan: TuningPlan) -> str:
    line = f"{summary['TrainingJobName']} {summary['TrainingJobStatus']}"
    if summary.get("ObjectiveStatus") == "Succeeded":
        return line + f": {plan.objective.metric} = {_metric(summary):.6g}"
    return line + (f": {summary['FailureReason']}" if summary.get("FailureReason") else "")
