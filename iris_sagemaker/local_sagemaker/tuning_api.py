"""The hyperparameter tuning operations of :class:`~.client.LocalSageMakerClient` (boto3's method names,
shapes and errors): Create, Describe, List, ListTrainingJobsFor, Stop and Delete.

A tuning job is a job like the others (:mod:`.jobs`: a worker thread, supervision, stops, restarts); its
program is :func:`.tuning.run_tuning`. What is checked at create, and how, is :mod:`.tuning_space`'s.
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import RESOURCE_IN_USE, RESOURCE_NOT_FOUND, client_error, validation_error
from .jobs import JobRunner, JobType
from .records import TUNING_JOBS, Record, RecordStore, now, to_json_time
from .shaping import api, api_response, list_page, times
from .tuning import TuningPlan, counters, run_tuning, trial_request, trial_summary
from .tuning_space import STRATEGIES, grid, objective, search_space
from .validation import validate_request

TUNING = JobType(
    TUNING_JOBS,
    "HyperParameterTuningJobStatus",
    "TuningStartTime",  # kept in the record only: the API has no start time for tuning jobs
    "HyperParameterTuningEndTime",
    "Hyperparameter tuning job",
    False,
)
_ENDED = ("Completed", "Failed", "Stopped")
_TRIAL_SORT = {"Name": "TrainingJobName", "CreationTime": "CreationTime", "Status": "TrainingJobStatus"}


class TuningOperations:
    """Mixed into the engine's client; uses its records, job runner, ARNs and training checks."""

    _records: RecordStore
    _runner: JobRunner
    region: str

    def _arn(self, kind: str, name: str) -> str:  # provided by the client
        raise NotImplementedError

    def _check_training_request(self, request: dict[str, Any], op: str) -> None:  # provided by the client
        raise NotImplementedError

    def describe_training_job(self, *, TrainingJobName: str) -> dict[str, Any]:  # provided by the client
        raise NotImplementedError

    @api
    def create_hyper_parameter_tuning_job(self, **request: Any) -> dict[str, Any]:
        op = "CreateHyperParameterTuningJob"
        validate_request(op, request)
        name = request["HyperParameterTuningJobName"]
        arn = self._arn("hyper-parameter-tuning-job", name)
        plan = self._plan(request, arn, op)
        created = to_json_time(now())
        training, objectives = counters([])
        record = {
            "name": name,
            "arn": arn,
            "request": copy.deepcopy(request),
            "trials": [],
            "state": {
                "HyperParameterTuningJobStatus": "InProgress",
                "CreationTime": created,
                "LastModifiedTime": created,
                "TrainingJobStatusCounters": training,
                "ObjectiveStatusCounters": objectives,
            },
        }
        program = lambda ctx: run_tuning(plan, self._records, TUNING_JOBS, self, ctx)  # noqa: E731
        if not self._runner.create_and_start(TUNING, name, record, program, None):
            raise client_error(RESOURCE_IN_USE, f"Hyperparameter tuning job {arn} already exists.", op)
        return api_response({"HyperParameterTuningJobArn": arn})

    def _plan(self, request: dict[str, Any], arn: str, op: str) -> TuningPlan:
        """The request checked as SageMaker checks it at create, and what running it needs."""
        for field, what in (
            ("TrainingJobDefinitions", "Several training job definitions (TrainingJobDefinitions)"),
            ("WarmStartConfig", "Warm start (WarmStartConfig)"),
            ("Autotune", "Autotune"),
        ):
            if request.get(field):
                raise validation_error(
                    f"{what} is not supported by the embedded engine; give one TrainingJobDefinition.", op
                )
        definition = request.get("TrainingJobDefinition")
        if not definition:
            raise validation_error("TrainingJobDefinition is required (the k-NN training job to tune).", op)
        config = request["HyperParameterTuningJobConfig"]
        strategy = config["Strategy"]
        if strategy not in STRATEGIES:
            raise validation_error(
                f"The {strategy} strategy is not supported by the embedded engine; use "
                f"{', '.join(STRATEGIES)}.",
                op,
            )
        if config.get("StrategyConfig"):
            raise validation_error(
                "StrategyConfig (Hyperband's) is not supported by the embedded engine.", op
            )
        completion = config.get("TuningJobCompletionCriteria") or {}
        if unsupported := sorted(set(completion) - {"TargetObjectiveMetricValue"}):
            raise validation_error(
                f"TuningJobCompletionCriteria.{unsupported[0]} is not supported by the embedded engine; "
                "TargetObjectiveMetricValue is.",
                op,
            )
        goal = objective(config, definition, op)
        static = definition.get("StaticHyperParameters") or {}
        ranges = config.get("ParameterRanges") or definition.get("HyperParameterRanges") or {}
        dimensions = search_space(ranges, static, strategy, op)
        limits = config["ResourceLimits"]
        max_jobs = limits.get("MaxNumberOfTrainingJobs")
        if strategy == "Grid":
            size = len(grid(dimensions, op))
            max_jobs = min(max_jobs, size) if max_jobs else size
        elif not max_jobs:
            raise validation_error(
                f"ResourceLimits.MaxNumberOfTrainingJobs is required for the {strategy} strategy.", op
            )
        plan = TuningPlan(
            name=request["HyperParameterTuningJobName"],
            arn=arn,
            strategy=strategy,
            dimensions=dimensions,
            objective=goal,
            max_jobs=max_jobs,
            max_parallel=limits["MaxParallelTrainingJobs"],
            definition=copy.deepcopy(definition),
            seed=config.get("RandomSeed"),
            target=completion.get("TargetObjectiveMetricValue"),
        )
        # Every trial is an ordinary CreateTrainingJob: check one now, with the first value of each range.
        sample = {d.name: d.value(_first(d)) for d in dimensions}
        trial = trial_request(plan, f"{plan.name}-001-00000000", sample)
        validate_request("CreateTrainingJob", trial)
        self._check_training_request(trial, op)
        return plan

    @api
    def describe_hyper_parameter_tuning_job(self, *, HyperParameterTuningJobName: str) -> dict[str, Any]:
        op = "DescribeHyperParameterTuningJob"
        validate_request(op, {"HyperParameterTuningJobName": HyperParameterTuningJobName})
        record = self._tuning_record(HyperParameterTuningJobName, op)
        request = record["request"]
        out: dict[str, Any] = {
            "HyperParameterTuningJobName": record["name"],
            "HyperParameterTuningJobArn": record["arn"],
            "HyperParameterTuningJobConfig": copy.deepcopy(request["HyperParameterTuningJobConfig"]),
            "TrainingJobDefinition": copy.deepcopy(request["TrainingJobDefinition"]),
            **{k: v for k, v in copy.deepcopy(record["state"]).items() if k != TUNING.start_key},
        }
        return api_response(times(out))

    @api
    def list_hyper_parameter_tuning_jobs(self, **request: Any) -> dict[str, Any]:
        op = "ListHyperParameterTuningJobs"
        validate_request(op, request)
        summaries = []
        for record in self._records.list(TUNING_JOBS):
            record = self._runner.supervise(TUNING, record)
            state, config = record["state"], record["request"]["HyperParameterTuningJobConfig"]
            summary = {
                "HyperParameterTuningJobName": record["name"],
                "HyperParameterTuningJobArn": record["arn"],
                "HyperParameterTuningJobStatus": state["HyperParameterTuningJobStatus"],
                "Strategy": config["Strategy"],
                "CreationTime": state["CreationTime"],
                "LastModifiedTime": state["LastModifiedTime"],
                "TrainingJobStatusCounters": state["TrainingJobStatusCounters"],
                "ObjectiveStatusCounters": state["ObjectiveStatusCounters"],
                "ResourceLimits": config["ResourceLimits"],
            }
            if "HyperParameterTuningEndTime" in state:
                summary["HyperParameterTuningEndTime"] = state["HyperParameterTuningEndTime"]
            summaries.append(summary)
        page, token = list_page(
            summaries, request, "HyperParameterTuningJobName", "HyperParameterTuningJobStatus", op
        )
        return api_response({"HyperParameterTuningJobSummaries": page, **token})

    @api
    def list_training_jobs_for_hyper_parameter_tuning_job(self, **request: Any) -> dict[str, Any]:
        op = "ListTrainingJobsForHyperParameterTuningJob"
        validate_request(op, request)
        record = self._tuning_record(request["HyperParameterTuningJobName"], op)
        summaries = [self._trial_summary(record, trial["name"]) for trial in record.get("trials", [])]
        if request.get("StatusEquals"):
            summaries = [s for s in summaries if s["TrainingJobStatus"] == request["StatusEquals"]]
        descending = request.get("SortOrder") == "Descending"
        sort_by = request.get("SortBy", "CreationTime")
        if sort_by == "FinalObjectiveMetricValue":  # jobs without a value last, whichever the order
            scored = [s for s in summaries if "FinalHyperParameterTuningJobObjectiveMetric" in s]
            scored.sort(
                key=lambda s: s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"], reverse=descending
            )
            summaries = scored + [s for s in summaries if s not in scored]
        else:
            key = _TRIAL_SORT[sort_by]
            summaries.sort(key=lambda s: (s[key], s["TrainingJobName"]), reverse=descending)
        try:
            start = int(request.get("NextToken") or 0)
        except ValueError:
            raise validation_error("Invalid pagination token.", op) from None
        size = request.get("MaxResults", 10)
        out: dict[str, Any] = {"TrainingJobSummaries": summaries[start : start + size]}
        if start + size < len(summaries):
            out["NextToken"] = str(start + size)
        return api_response(out)

    @api
    def stop_hyper_parameter_tuning_job(self, *, HyperParameterTuningJobName: str) -> dict[str, Any]:
        op = "StopHyperParameterTuningJob"
        validate_request(op, {"HyperParameterTuningJobName": HyperParameterTuningJobName})
        self._tuning_record(HyperParameterTuningJobName, op)
        self._runner.request_stop(TUNING, HyperParameterTuningJobName, op)
        return api_response({})

    @api
    def delete_hyper_parameter_tuning_job(self, *, HyperParameterTuningJobName: str) -> dict[str, Any]:
        """Delete an ended tuning job's record; its training jobs stay, as on SageMaker."""
        op = "DeleteHyperParameterTuningJob"
        validate_request(op, {"HyperParameterTuningJobName": HyperParameterTuningJobName})
        record = self._tuning_record(HyperParameterTuningJobName, op)
        status = record["state"]["HyperParameterTuningJobStatus"]
        if status not in _ENDED:
            raise validation_error(
                f"Hyperparameter tuning job {record['arn']} is {status}: stop it, or wait until it ends, "
                "before deleting it.",
                op,
            )
        self._records.delete(TUNING_JOBS, HyperParameterTuningJobName)
        return api_response({})

    # ---- helpers ------------------------------------------------------------------------------

    def _tuning_record(self, name: str, op: str) -> Record:
        try:
            record = self._records.read(TUNING_JOBS, name)
        except ValueError:
            record = None
        if record is None:
            raise client_error(
                RESOURCE_NOT_FOUND, f"Amazon SageMaker can't find a tuning job with name {name}", op
            )
        return self._runner.supervise(TUNING, record)

    def _trial_summary(self, record: Record, job: str) -> dict[str, Any]:
        request = record["request"]
        goal = objective(
            request["HyperParameterTuningJobConfig"], request["TrainingJobDefinition"], "ListTrainingJobs"
        )
        tuned = next(t["tuned"] for t in record["trials"] if t["name"] == job)
        described = self.describe_training_job(TrainingJobName=job)
        return trial_summary(described, record["name"], list(tuned), goal)


def _first(dimension: Any) -> Any:
    distribution = dimension.distribution
    if hasattr(distribution, "choices"):
        return distribution.choices[0]
    return distribution.low
