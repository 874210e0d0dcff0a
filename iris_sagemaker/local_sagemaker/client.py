"""``LocalSageMakerClient``: the SageMaker API of boto3 (method names, keyword arguments, response
shapes, ``ClientError`` codes) over the embedded k-NN engine.

This module only speaks the wire: it validates requests (:mod:`.validation`), checks what the embedded
engine can run, shapes responses, and delegates state to :mod:`.records` / :mod:`.jobs` and work to
:mod:`.training` / :mod:`.transform`. ``create_*`` return at once; jobs run in background threads.

Every API method raises only ``ClientError``: a full disk under ROOT (a record or lock that cannot be
written) is a server-side fault, ``InternalFailure`` (HTTP 500) naming the file and saying what to free,
never a bare ``OSError`` (see :func:`_api`).
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iris_sagemaker.core.storage import (
    DiskFull,
    LocalObjectStore,
    ObjectStore,
    ObjectStoreError,
    parse_s3_uri,
    validate_key,
)

from .endpoints import CREATING, IN_SERVICE, LOADING, UPDATING, EndpointDeployer, ServedModels
from .errors import (
    RESOURCE_IN_USE,
    client_error,
    not_found,
    validation_error,
)
from .images import is_knn_image, unsupported_image_message
from .jobs import JobRunner, JobType
from .log_files import log_path, read_lines
from .probes import empty_answer, probe_named
from .records import (
    ENDPOINT_CONFIGS,
    ENDPOINTS,
    MODELS,
    TRAINING_JOBS,
    TRANSFORM_JOBS,
    Record,
    RecordStore,
    now,
    to_json_time,
)
from .shaping import api, api_response, list_page, times
from .tags import TagStore, merged, tag_page, without
from .training import model_artifact_uri, run_training
from .transform import DEFAULT_MAX_PAYLOAD_MB, run_transform
from .tuning_api import TuningOperations
from .validation import operation_model, validate_request

ACCOUNT_ID = "000000000000"
TRAINING = JobType(
    TRAINING_JOBS, "TrainingJobStatus", "TrainingStartTime", "TrainingEndTime", "Training job", True
)
TRANSFORM = JobType(
    TRANSFORM_JOBS, "TransformJobStatus", "TransformStartTime", "TransformEndTime", "Transform job", False
)
# Fields of CreateEndpointConfig the embedded engine cannot honour (they fail clearly).
_UNSUPPORTED_CONFIG_FIELDS = (
    "DataCaptureConfig",
    "AsyncInferenceConfig",
    "ExplainerConfig",
    "ShadowProductionVariants",
)
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClientMeta:
    """The parts of ``boto3_client.meta`` callers read."""

    region_name: str
    endpoint_url: str
    service_name: str = "sagemaker"


class LocalSageMakerClient(TuningOperations):
    """A boto3-shaped ``sagemaker`` client whose jobs run in this process on local files.

    ``root`` is LOCAL_ROOT: objects live in ``store`` (default ``LocalObjectStore(root)``, i.e.
    ``root/s3/BUCKET/KEY``) and job/model records under ``root/sagemaker/``.
    """

    def __init__(
        self, root: str | os.PathLike[str], region: str = "us-east-2", store: ObjectStore | None = None
    ):
        self.root = Path(root).expanduser().resolve()
        self.region = region
        self.store: ObjectStore = store if store is not None else LocalObjectStore(self.root)
        self.meta = ClientMeta(region_name=region, endpoint_url=self.root.as_uri())
        self._records = RecordStore(self.root)
        self._runner = JobRunner(self._records)
        self.served = ServedModels(self.store)
        self._deployer = EndpointDeployer(self._records, self.served)
        self._tags = TagStore(self._records, region, ACCOUNT_ID)

    def __repr__(self) -> str:
        return f"LocalSageMakerClient(root={str(self.root)!r}, region={self.region!r})"

    # ---- ARNs ---------------------------------------------------------------------------------

    def _arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{ACCOUNT_ID}:{kind}/{name.lower()}"

    # ---- training jobs ------------------------------------------------------------------------

    @api
    def create_training_job(self, **request: Any) -> dict[str, Any]:
        op = "CreateTrainingJob"
        validate_request(op, request)
        return api_response({"TrainingJobArn": self._start_training(request, op)})

    def create_trial(self, request: dict[str, Any], tuning_job_arn: str) -> str:
        """A hyperparameter tuning job's training job: an ordinary one that names its tuning job."""
        op = "CreateTrainingJob"
        validate_request(op, request)
        return self._start_training(request, op, {"TuningJobArn": tuning_job_arn})

    def _start_training(self, request: dict[str, Any], op: str, extra: dict[str, Any] | None = None) -> str:
        self._check_training_request(request, op)
        name = request["TrainingJobName"]
        arn = self._arn("training-job", name)
        created = to_json_time(now())
        state = {
            "TrainingJobStatus": "InProgress",
            "SecondaryStatus": "Starting",
            "CreationTime": created,
            "LastModifiedTime": created,
            "SecondaryStatusTransitions": [
                {
                    "Status": "Starting",
                    "StartTime": created,
                    "StatusMessage": "Preparing the instances for training",
                }
            ],
            "ModelArtifacts": {"S3ModelArtifacts": str(model_artifact_uri(request))},
            **(extra or {}),
        }
        record = {"name": name, "arn": arn, "request": copy.deepcopy(request), "state": state}
        max_runtime = (request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
        job_request = copy.deepcopy(request)
        started = self._runner.create_and_start(
            TRAINING, name, record, lambda ctx: run_training(job_request, self.store, ctx), max_runtime
        )
        if not started:
            raise client_error(
                RESOURCE_IN_USE,
                "Training job names must be unique within an AWS account and region, and a training job "
                f"with this name already exists ({arn})",
                op,
            )
        return arn

    def _check_training_request(self, request: dict[str, Any], op: str) -> None:
        spec = request.get("AlgorithmSpecification")
        if not spec:
            raise validation_error("AlgorithmSpecification is required (the k-NN TrainingImage).", op)
        if spec.get("AlgorithmName"):
            raise validation_error(
                "The embedded SageMaker engine runs only the built-in k-NN image; AlgorithmName "
                "(marketplace algorithms) is not supported. Set AlgorithmSpecification.TrainingImage.",
                op,
            )
        if not is_knn_image(spec.get("TrainingImage"), self.region):
            raise validation_error(unsupported_image_message(spec.get("TrainingImage"), self.region), op)
        _check_s3_uri(request["OutputDataConfig"]["S3OutputPath"], "OutputDataConfig.S3OutputPath", op)
        for number, channel in enumerate(request.get("InputDataConfig") or [], start=1):
            source = (channel.get("DataSource") or {}).get("S3DataSource")
            if source and source.get("S3Uri"):
                _check_s3_uri(source["S3Uri"], f"InputDataConfig.{number}.DataSource.S3DataSource.S3Uri", op)

    @api
    def describe_training_job(self, *, TrainingJobName: str) -> dict[str, Any]:
        op = "DescribeTrainingJob"
        validate_request(op, {"TrainingJobName": TrainingJobName})
        record = self._records.read(TRAINING_JOBS, TrainingJobName)
        if record is None:
            raise not_found(op)
        record = self._runner.supervise(TRAINING, record)
        return api_response(
            self._describe(op, record, {"TrainingJobName": record["name"]}, _training_defaults)
        )

    @api
    def stop_training_job(self, *, TrainingJobName: str) -> dict[str, Any]:
        op = "StopTrainingJob"
        validate_request(op, {"TrainingJobName": TrainingJobName})
        self._runner.request_stop(TRAINING, TrainingJobName, op)
        return api_response({})

    @api
    def list_training_jobs(self, **request: Any) -> dict[str, Any]:
        op = "ListTrainingJobs"
        validate_request(op, request)
        summaries = [
            _summary(self._runner.supervise(TRAINING, record), TRAINING, "TrainingJobName", "TrainingJobArn")
            for record in self._records.list(TRAINING_JOBS)
        ]
        page, token = list_page(summaries, request, "TrainingJobName", "TrainingJobStatus", op)
        return api_response({"TrainingJobSummaries": page, **token})

    # ---- models -------------------------------------------------------------------------------

    @api
    def create_model(self, **request: Any) -> dict[str, Any]:
        op = "CreateModel"
        validate_request(op, request)
        self._check_model_request(request, op)
        name = request["ModelName"]
        arn = self._arn("model", name)
        state = {"CreationTime": to_json_time(now())}
        record = {"name": name, "arn": arn, "request": copy.deepcopy(request), "state": state}
        if not self._records.create(MODELS, name, record):
            raise validation_error(f'Cannot create already existing model "{arn}".', op)
        return api_response({"ModelArn": arn})

    def _check_model_request(self, request: dict[str, Any], op: str) -> None:
        if request.get("Containers"):
            raise validation_error(
                "The embedded SageMaker engine supports a single PrimaryContainer, not Containers.", op
            )
        container = request.get("PrimaryContainer")
        if not container:
            raise validation_error("PrimaryContainer is required (the k-NN image and its ModelDataUrl).", op)
        if not is_knn_image(container.get("Image"), self.region):
            raise validation_error(unsupported_image_message(container.get("Image"), self.region), op)
        url = container.get("ModelDataUrl")
        if not url:
            raise validation_error(
                "PrimaryContainer.ModelDataUrl is required: the k-NN image needs the model.tar.gz of a "
                "training job.",
                op,
            )
        uri = _check_s3_uri(url, "PrimaryContainer.ModelDataUrl", op)
        if not self.store.exists(uri.bucket, uri.key):
            raise validation_error(f"Could not find model data at {url}.", op)

    @api
    def describe_model(self, *, ModelName: str) -> dict[str, Any]:
        op = "DescribeModel"
        validate_request(op, {"ModelName": ModelName})
        record = self._model_record(ModelName, op)
        return api_response(self._describe(op, record, {"ModelName": record["name"]}, _model_defaults))

    @api
    def delete_model(self, *, ModelName: str) -> dict[str, Any]:
        op = "DeleteModel"
        validate_request(op, {"ModelName": ModelName})
        if not self._records.delete(MODELS, ModelName):
            raise validation_error(f'Could not find model "{self._arn("model", ModelName)}".', op)
        return api_response({})

    @api
    def list_models(self, **request: Any) -> dict[str, Any]:
        op = "ListModels"
        validate_request(op, request)
        summaries = [
            {
                "ModelName": record["name"],
                "ModelArn": record["arn"],
                "CreationTime": record["state"]["CreationTime"],
            }
            for record in self._records.list(MODELS)
        ]
        page, token = list_page(summaries, request, "ModelName", None, op)
        return api_response({"Models": times(page), **token})

    def _model_record(self, name: str, op: str) -> Record:
        record = self._records.read(MODELS, name)
        if record is None:
            raise validation_error(f'Could not find model "{self._arn("model", name)}".', op)
        return record

    # ---- transform jobs -----------------------------------------------------------------------

    @api
    def create_transform_job(self, **request: Any) -> dict[str, Any]:
        op = "CreateTransformJob"
        validate_request(op, request)
        model = self._model_record(request["ModelName"], op)
        _check_s3_uri(request["TransformOutput"]["S3OutputPath"], "TransformOutput.S3OutputPath", op)
        source = request["TransformInput"]["DataSource"].get("S3DataSource") or {}
        if source.get("S3Uri"):
            _check_s3_uri(source["S3Uri"], "TransformInput.DataSource.S3DataSource.S3Uri", op)
        name = request["TransformJobName"]
        arn = self._arn("transform-job", name)
        created = to_json_time(now())
        state = {"TransformJobStatus": "InProgress", "CreationTime": created, "LastModifiedTime": created}
        record = {"name": name, "arn": arn, "request": copy.deepcopy(request), "state": state}
        model_url = model["request"]["PrimaryContainer"]["ModelDataUrl"]
        job_request = copy.deepcopy(request)
        program: Callable[..., dict[str, Any]] = lambda ctx: run_transform(  # noqa: E731
            job_request, model_url, self.store, ctx
        )
        if not self._runner.create_and_start(TRANSFORM, name, record, program, None):
            raise client_error(
                RESOURCE_IN_USE,
                "Job name must be unique within an AWS account and region, and a transform job with this "
                f"name already exists ({arn})",
                op,
            )
        return api_response({"TransformJobArn": arn})

    @api
    def describe_transform_job(self, *, TransformJobName: str) -> dict[str, Any]:
        op = "DescribeTransformJob"
        validate_request(op, {"TransformJobName": TransformJobName})
        record = self._records.read(TRANSFORM_JOBS, TransformJobName)
        if record is None:
            raise not_found(op)
        record = self._runner.supervise(TRANSFORM, record)
        return api_response(
            self._describe(op, record, {"TransformJobName": record["name"]}, _transform_defaults)
        )

    @api
    def stop_transform_job(self, *, TransformJobName: str) -> dict[str, Any]:
        op = "StopTransformJob"
        validate_request(op, {"TransformJobName": TransformJobName})
        self._runner.request_stop(TRANSFORM, TransformJobName, op)
        return api_response({})

    @api
    def list_transform_jobs(self, **request: Any) -> dict[str, Any]:
        op = "ListTransformJobs"
        validate_request(op, request)
        summaries = [
            _summary(
                self._runner.supervise(TRANSFORM, record), TRANSFORM, "TransformJobName", "TransformJobArn"
            )
            for record in self._records.list(TRANSFORM_JOBS)
        ]
        page, token = list_page(summaries, request, "TransformJobName", "TransformJobStatus", op)
        return api_response({"TransformJobSummaries": page, **token})

    # ---- endpoint configs ---------------------------------------------------------------------

    @api
    def create_endpoint_config(self, **request: Any) -> dict[str, Any]:
        op = "CreateEndpointConfig"
        validate_request(op, request)
        _refuse_unsupported(request, _UNSUPPORTED_CONFIG_FIELDS, op)
        variants = request["ProductionVariants"]
        if len(variants) != 1:
            raise validation_error(
                f"The embedded SageMaker engine serves one production variant per endpoint config; "
                f"got {len(variants)}.",
                op,
            )
        for variant in variants:
            if not variant.get("ModelName"):
                raise validation_error("ProductionVariants.1.ModelName is required.", op)
            self._model_record(variant["ModelName"], op)
        name = request["EndpointConfigName"]
        arn = self._arn("endpoint-config", name)
        record = {
            "name": name,
            "arn": arn,
            "request": copy.deepcopy(request),
            "state": {"CreationTime": to_json_time(now())},
        }
        if not self._records.create(ENDPOINT_CONFIGS, name, record):
            raise validation_error(f'Cannot create already existing endpoint configuration "{arn}".', op)
        return api_response({"EndpointConfigArn": arn})

    @api
    def describe_endpoint_config(self, *, EndpointConfigName: str) -> dict[str, Any]:
        op = "DescribeEndpointConfig"
        validate_request(op, {"EndpointConfigName": EndpointConfigName})
        record = self._config_record(EndpointConfigName, op)
        identity = {"EndpointConfigName": record["name"]}
        return api_response(self._describe(op, record, identity, _endpoint_config_defaults))

    @api
    def delete_endpoint_config(self, *, EndpointConfigName: str) -> dict[str, Any]:
        op = "DeleteEndpointConfig"
        validate_request(op, {"EndpointConfigName": EndpointConfigName})
        if not self._records.delete(ENDPOINT_CONFIGS, EndpointConfigName):
            raise self._config_not_found(EndpointConfigName, op)
        return api_response({})

    @api
    def list_endpoint_configs(self, **request: Any) -> dict[str, Any]:
        op = "ListEndpointConfigs"
        validate_request(op, request)
        summaries = [
            {
                "EndpointConfigName": record["name"],
                "EndpointConfigArn": record["arn"],
                "CreationTime": record["state"]["CreationTime"],
            }
            for record in self._records.list(ENDPOINT_CONFIGS)
        ]
        page, token = list_page(summaries, request, "EndpointConfigName", None, op)
        return api_response({"EndpointConfigs": page, **token})

    def _config_record(self, name: str, op: str) -> Record:
        record = self._records.read(ENDPOINT_CONFIGS, name)
        if record is None:
            raise self._config_not_found(name, op)
        return record

    def _config_not_found(self, name: str, op: str) -> Exception:
        arn = self._arn("endpoint-config", name)
        return validation_error(f'Could not find endpoint configuration "{arn}".', op)

    # ---- endpoints ----------------------------------------------------------------------------

    @api
    def create_endpoint(self, **request: Any) -> dict[str, Any]:
        op = "CreateEndpoint"
        validate_request(op, request)
        _refuse_unsupported(request, ("DeploymentConfig",), op)
        config = self._config_record(request["EndpointConfigName"], op)
        name = request["EndpointName"]
        arn = self._arn("endpoint", name)
        created = to_json_time(now())
        record = {
            "name": name,
            "arn": arn,
            "request": copy.deepcopy(request),
            "loading": config["name"],
            "deployed": None,
            "state": {
                "EndpointStatus": CREATING,
                "EndpointConfigName": config["name"],
                "CreationTime": created,
                "LastModifiedTime": created,
            },
        }

        def create(owner: dict[str, Any]) -> bool:
            record["owner"] = owner
            return self._records.create(ENDPOINTS, name, record)

        if not self._deployer.start(name, config["name"], create):
            raise validation_error(f'Cannot create already existing endpoint "{arn}".', op)
        return api_response({"EndpointArn": arn})

    @api
    def describe_endpoint(self, *, EndpointName: str) -> dict[str, Any]:
        op = "DescribeEndpoint"
        validate_request(op, {"EndpointName": EndpointName})
        record = self._endpoint_record(EndpointName, op)
        out = {
            "EndpointName": record["name"],
            "EndpointArn": record["arn"],
            **copy.deepcopy(record["state"]),
        }
        return api_response(times(out))

    @api
    def update_endpoint(self, **request: Any) -> dict[str, Any]:
        op = "UpdateEndpoint"
        validate_request(op, request)
        _refuse_unsupported(request, ("DeploymentConfig", "ExcludeRetainedVariantProperties"), op)
        name = request["EndpointName"]
        current = self._endpoint_record(name, op)
        config = self._config_record(request["EndpointConfigName"], op)
        problem: list[str] = []

        def update(owner: dict[str, Any]) -> bool:
            def mutate(record: Record) -> bool:
                status = record["state"]["EndpointStatus"]
                if status != IN_SERVICE:
                    problem.append(status)
                    return False
                record["owner"] = owner
                record["loading"] = config["name"]
                record["state"]["EndpointStatus"] = UPDATING
                record["state"]["LastModifiedTime"] = to_json_time(now())
                return True

            updated = self._records.update(ENDPOINTS, name, mutate)
            if updated is None:
                problem.append("deleted")
            return not problem

        if not self._deployer.start(name, config["name"], update):
            status = problem[0] if problem else current["state"]["EndpointStatus"]
            if status == "deleted":
                raise self._endpoint_not_found(name, op)
            raise validation_error(
                f'Cannot update endpoint "{current["arn"]}" while it is {status}: only an InService '
                "endpoint can be updated.",
                op,
            )
        return api_response({"EndpointArn": current["arn"]})

    @api
    def delete_endpoint(self, *, EndpointName: str) -> dict[str, Any]:
        op = "DeleteEndpoint"
        validate_request(op, {"EndpointName": EndpointName})
        if not self._records.delete(ENDPOINTS, EndpointName):
            raise self._endpoint_not_found(EndpointName, op)
        self.served.drop(EndpointName)
        self.log_endpoint_event(EndpointName, "endpoint deleted")
        return api_response({})

    @api
    def list_endpoints(self, **request: Any) -> dict[str, Any]:
        op = "ListEndpoints"
        validate_request(op, request)
        summaries = [
            {
                "EndpointName": record["name"],
                "EndpointArn": record["arn"],
                "CreationTime": record["state"]["CreationTime"],
                "LastModifiedTime": record["state"]["LastModifiedTime"],
                "EndpointStatus": record["state"]["EndpointStatus"],
            }
            for record in map(self._deployer.supervise, self._records.list(ENDPOINTS))
        ]
        page, token = list_page(summaries, request, "EndpointName", "EndpointStatus", op)
        return api_response({"Endpoints": page, **token})

    def endpoint_record(self, name: str) -> Record | None:
        """The endpoint's record (supervised), or None: what the runtime reads on every invocation."""
        try:
            record = self._records.read(ENDPOINTS, name)
        except ValueError:  # not a valid endpoint name
            return None
        if record is not None and record["state"]["EndpointStatus"] in LOADING:
            record = self._deployer.supervise(record)
        return record

    def log_endpoint_event(self, name: str, message: str) -> None:
        """Append a line to the endpoint's log (``/aws/sagemaker/Endpoints/<name>``); a full disk loses the
        line (the log reports what happened; it must not turn a done deletion into an error)."""
        try:
            self._deployer.log(name).write(message)
        except DiskFull as err:
            _log.warning("endpoint %s: log line lost (%s): %s", name, err, message)

    def _endpoint_record(self, name: str, op: str) -> Record:
        record = self.endpoint_record(name)
        if record is None:
            raise self._endpoint_not_found(name, op)
        return record

    def _endpoint_not_found(self, name: str, op: str) -> Exception:
        return validation_error(f'Could not find endpoint "{self._arn("endpoint", name)}".', op)

    # ---- tags ---------------------------------------------------------------------------------------

    @api
    def add_tags(self, *, ResourceArn: str, Tags: list[dict[str, str]]) -> dict[str, Any]:
        op = "AddTags"
        validate_request(op, {"ResourceArn": ResourceArn, "Tags": Tags})
        self._tags.change(ResourceArn, op, lambda current: merged(current, Tags, op))
        return api_response({"Tags": copy.deepcopy(Tags)})

    @api
    def list_tags(self, **request: Any) -> dict[str, Any]:
        op = "ListTags"
        validate_request(op, request)
        tags = self._tags.read(request["ResourceArn"], op)
        return api_response(tag_page(tags, request.get("NextToken"), request.get("MaxResults"), op))

    @api
    def delete_tags(self, *, ResourceArn: str, TagKeys: list[str]) -> dict[str, Any]:
        op = "DeleteTags"
        validate_request(op, {"ResourceArn": ResourceArn, "TagKeys": TagKeys})
        self._tags.change(ResourceArn, op, lambda current: without(current, TagKeys))
        return api_response({})

    # ---- what clients probe -------------------------------------------------------------------

    def __getattr__(self, name: str) -> Callable[..., dict[str, Any]]:
        """``list_*`` of resource kinds the engine never creates (``list_monitoring_schedules``, ...):
        an empty list, as :mod:`.probes` says."""
        operation = probe_named(name)
        if operation is not None:
            return lambda **request: api_response(empty_answer(operation, request))
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # ---- progress logs (not a SageMaker API: the embedded engine's CloudWatch) -----------------

    def read_job_log(self, job_type: str, name: str, offset: int = 0) -> tuple[list[str], int]:
        """New complete lines of a job's progress log from byte ``offset``, and the next offset.

        ``job_type`` is ``"TrainingJob"`` or ``"TransformJob"``. Poll with the returned offset to get
        each line once. A job that does not exist (or has logged nothing yet) gives ``([], offset)``.
        """
        folders = {"TrainingJob": TRAINING_JOBS, "TransformJob": TRANSFORM_JOBS}
        if job_type not in folders:
            raise ValueError(f"job_type must be 'TrainingJob' or 'TransformJob', not {job_type!r}")
        try:
            path = log_path(self._records, folders[job_type], name)
        except ValueError:  # not a valid job name: no such job
            return [], offset
        return read_lines(path, offset)

    # ---- shaping ------------------------------------------------------------------------------

    def _describe(
        self,
        describe_op: str,
        record: Record,
        identity: dict[str, Any],
        defaults: Callable[[dict[str, Any]], None],
    ) -> dict[str, Any]:
        """Request fields the Describe output carries, then defaults, then the job's state."""
        members = operation_model(describe_op).output_shape.members
        out: dict[str, Any] = dict(identity)
        arn_key = next(key for key in members if key.endswith("Arn") and key.startswith(describe_op[8:]))
        out[arn_key] = record["arn"]
        for key, value in record["request"].items():
            if key in members and key not in out:
                out[key] = copy.deepcopy(value)
        defaults(out)
        out.update(copy.deepcopy(record["state"]))
        return times(out)


# ---- module helpers ----------------------------------------------------------------------------


def _refuse_unsupported(request: dict[str, Any], fields: tuple[str, ...], op: str) -> None:
    """ValidationException for the first of ``fields`` the request sets: the engine cannot honour it."""
    for field in fields:
        if request.get(field):
            raise validation_error(f"{field} is not supported by the embedded SageMaker engine.", op)


def _check_s3_uri(uri: str, what: str, op: str) -> Any:
    """The parsed URI; ValidationException when it cannot name an object or prefix (``..``, ``//``)."""
    try:
        parsed = parse_s3_uri(uri)
        if parsed.key.rstrip("/"):
            validate_key(parsed.key.rstrip("/"))
        return parsed
    except ObjectStoreError as err:
        raise validation_error(f"{what} {uri!r} is not a usable S3 URI: {err}", op) from None


def _training_defaults(out: dict[str, Any]) -> None:
    spec = out.setdefault("AlgorithmSpecification", {})
    spec.setdefault("EnableSageMakerMetricsTimeSeries", False)
    out.setdefault("StoppingCondition", {"MaxRuntimeInSeconds": 86400})
    out["OutputDataConfig"].setdefault("KmsKeyId", "")  # always answered (the SDK v2's attach reads it)
    for channel in out.get("InputDataConfig", []):
        channel.setdefault("CompressionType", "None")
        channel.setdefault("RecordWrapperType", "None")
    out.setdefault("EnableNetworkIsolation", False)
    out.setdefault("EnableInterContainerTrafficEncryption", False)
    out.setdefault("EnableManagedSpotTraining", False)


def _model_defaults(out: dict[str, Any]) -> None:
    out["PrimaryContainer"].setdefault("Mode", "SingleModel")
    out.setdefault("EnableNetworkIsolation", False)


def _endpoint_config_defaults(out: dict[str, Any]) -> None:
    for variant in out.get("ProductionVariants", []):
        variant.setdefault("InitialVariantWeight", 1.0)


def _transform_defaults(out: dict[str, Any]) -> None:
    out.setdefault("MaxConcurrentTransforms", 1)
    out.setdefault("MaxPayloadInMB", DEFAULT_MAX_PAYLOAD_MB)
    out["TransformInput"].setdefault("CompressionType", "None")
    out["TransformInput"].setdefault("SplitType", "None")


def _summary(record: Record, jtype: JobType, name_key: str, arn_key: str) -> dict[str, Any]:
    state = record["state"]
    summary = {
        name_key: record["name"],
        arn_key: record["arn"],
        "CreationTime": state["CreationTime"],
        "LastModifiedTime": state["LastModifiedTime"],
        jtype.status_key: state[jtype.status_key],
    }
    if jtype.end_key in state:
        summary[jtype.end_key] = state[jtype.end_key]
    if jtype.has_transitions:
        summary["SecondaryStatus"] = state["SecondaryStatus"]
    elif "FailureReason" in state:
        summary["FailureReason"] = state["FailureReason"]
    return summary
