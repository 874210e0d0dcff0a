"""Dagster resources: the backend (settings, object store, SageMaker client) and the S3 IO manager."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from functools import cached_property
from typing import Any

import pandas as pd
from dagster import (
    ConfigurableIOManager,
    ConfigurableResource,
    DagsterInvariantViolationError,
    InputContext,
    OutputContext,
)
from pydantic import Field, PrivateAttr

from iris_sagemaker.core import run_objects
from iris_sagemaker.core.settings import (
    DEFAULT_ACCURACY_THRESHOLD,
    DEFAULT_ENDPOINT_NAME,
    DEFAULT_INSTANCE_TYPE,
    DEFAULT_K,
    DEFAULT_REGION,
    DEFAULT_SAMPLE_SIZE,
    DEFAULT_SPLIT_SEED,
    DEFAULT_TUNING_JOBS,
    DEFAULT_TUNING_PARALLEL,
    DEFAULT_TUNING_STRATEGY,
    RUN_FIELDS,
    Settings,
)
from iris_sagemaker.core.storage import (
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    parse_s3_uri,
    read_csv,
    release_free_memory,
    write_csv,
    write_json,
)
from iris_sagemaker.steps import job_steps
from iris_sagemaker.steps.clients_for_backend import (
    boto3_session,
    check_bucket,
    make_logs_client,
    make_runtime_client,
    make_sagemaker_client,
    make_store,
    uses_s3,
)
from iris_sagemaker.steps.log_tails import (
    ENDPOINT_LOG_GROUP_PREFIX,
    LOG_GROUPS,
    CloudWatchLogTail,
    LocalJobLogTail,
    LogTail,
)

# Asset definition metadata read by the IO manager.
KEY = "iris_sagemaker/s3_key"  # where the asset is stored in the bucket
HEADER = "iris_sagemaker/csv_header"  # write/read a header row (False: SageMaker's layout)
COLUMNS = "iris_sagemaker/columns"  # column names of a header-less CSV
LABEL_COLUMN = "iris_sagemaker/label_column"  # a column kept apart from the object the model reads
LABEL_KEY = "iris_sagemaker/label_key"  # ... and where it is stored


class SageMakerResource(ConfigurableResource):
    """The configured backend. Unset fields come from the environment (``IRIS_SAGEMAKER_*``, ``AWS_*``)
    through ``Settings.from_env``: a field for each setting a run reads (``core.settings.RUN_FIELDS``),
    plus ``region`` and ``profile``."""

    backend: str | None = Field(
        default=None, description="'local' (default) or 'aws' (IRIS_SAGEMAKER_BACKEND)"
    )
    bucket: str | None = Field(default=None, description="S3 bucket (IRIS_SAGEMAKER_BUCKET)")
    role_arn: str | None = Field(
        default=None, description="SageMaker execution role (IRIS_SAGEMAKER_ROLE_ARN)"
    )
    region: str | None = Field(default=None, description=f"AWS region (AWS_REGION), default {DEFAULT_REGION}")
    local_root: str | None = Field(
        default=None, description="local backend folder (IRIS_SAGEMAKER_LOCAL_ROOT)"
    )
    endpoint_url: str | None = Field(
        default=None, description="S3 endpoint for MinIO/moto/LocalStack (IRIS_SAGEMAKER_S3_ENDPOINT_URL)"
    )
    profile: str | None = Field(default=None, description="AWS profile name")
    split_seed: int | None = Field(
        default=None,
        description=f"seed of the train/test split (IRIS_SAGEMAKER_SPLIT_SEED), default {DEFAULT_SPLIT_SEED}",
    )
    data_url: str | None = Field(
        default=None,
        description="http(s):// or file:// source of UCI-format Iris CSV (IRIS_SAGEMAKER_DATA_URL); "
        "default: the copy shipped in the package",
    )
    instance_type: str | None = Field(
        default=None,
        description="instance type for training and transform (IRIS_SAGEMAKER_INSTANCE_TYPE), default "
        f"{DEFAULT_INSTANCE_TYPE}",
    )
    knn_image: str | None = Field(
        default=None,
        description="the training/inference image (IRIS_SAGEMAKER_KNN_IMAGE); default: the built-in k-NN "
        "image of the region",
    )
    deploy_endpoint: bool | None = Field(
        default=None,
        description="deploy knn_endpoint (IRIS_SAGEMAKER_DEPLOY_ENDPOINT); default: yes on the local "
        "backend, no on aws, where an endpoint bills by the hour",
    )
    endpoint_name: str | None = Field(
        default=None,
        description="the endpoint's stable name (IRIS_SAGEMAKER_ENDPOINT_NAME), default "
        f"{DEFAULT_ENDPOINT_NAME}",
    )
    tune: bool | None = Field(
        default=None,
        description="tune k with a hyperparameter tuning job before training (IRIS_SAGEMAKER_TUNE); "
        f"default no: the tutorial's k = {DEFAULT_K}",
    )
    tuning_jobs: int | None = Field(
        default=None,
        description="training jobs per tuning job (IRIS_SAGEMAKER_TUNING_JOBS), default "
        f"{DEFAULT_TUNING_JOBS}",
    )
    tuning_parallel: int | None = Field(
        default=None,
        description="training jobs at a time while tuning (IRIS_SAGEMAKER_TUNING_PARALLEL), default "
        f"{DEFAULT_TUNING_PARALLEL}",
    )
    tuning_strategy: str | None = Field(
        default=None,
        description=f"{DEFAULT_TUNING_STRATEGY} (default) or Random (IRIS_SAGEMAKER_TUNING_STRATEGY)",
    )
    k: int | None = Field(
        default=None,
        description=f"k-NN's k, the neighbours that vote (IRIS_SAGEMAKER_K), default {DEFAULT_K}; a tuned k "
        "wins when tuning is on",
    )
    sample_size: int | None = Field(
        default=None,
        description="training rows k-NN keeps, a seeded sample of more (IRIS_SAGEMAKER_SAMPLE_SIZE), "
        f"default {DEFAULT_SAMPLE_SIZE}",
    )
    index_metric: str | None = Field(
        default=None,
        description="k-NN's distance: L2 (its default), INNER_PRODUCT or COSINE "
        "(IRIS_SAGEMAKER_INDEX_METRIC)",
    )
    accuracy_threshold: float | None = Field(
        default=None,
        description="the accuracy check's bar, 0 to 1 (IRIS_SAGEMAKER_ACCURACY_THRESHOLD), default "
        f"{DEFAULT_ACCURACY_THRESHOLD}",
    )

    _client: Any = PrivateAttr(default=None)
    _store: Any = PrivateAttr(default=None)

    @cached_property
    def settings(self) -> Settings:
        """The environment's settings with this resource's configured fields over them."""
        fields = (*RUN_FIELDS, "region", "profile")
        return Settings.from_env(**{name: getattr(self, name) for name in fields})

    def setup_for_execution(self, context: Any) -> None:
        """Fail fast: bad settings or a missing bucket stop the step before any job starts."""
        check_bucket(self.get_store(), self.settings)

    def get_store(self) -> ObjectStore:
        if self._store is None:
            settings = self.settings
            s3_client = None
            if uses_s3(settings):
                from dagster_aws.s3 import S3Resource

                s3_client = S3Resource(
                    region_name=settings.region,
                    endpoint_url=settings.endpoint_url,
                    profile_name=settings.profile,
                ).get_client()
            self._store = make_store(settings, s3_client=s3_client)
        return self._store

    def job_log_tail(self, job_type: str, job_name: str) -> LogTail:
        """The job's log lines, read while waiting: CloudWatch on aws, the engine's own log locally."""
        if self.settings.is_local:
            return LocalJobLogTail(self.get_client(), job_type, job_name)
        logs = boto3_session(self.settings).client("logs")
        return CloudWatchLogTail(logs, job_name, log_group=LOG_GROUPS[job_type])

    def endpoint_log_tail(self, endpoint_name: str) -> LogTail:
        """The endpoint's CloudWatch log from now on (on the local backend, the engine's view of it: the
        same API)."""
        group = ENDPOINT_LOG_GROUP_PREFIX + endpoint_name
        tail = CloudWatchLogTail(make_logs_client(self.settings), endpoint_name, group, stream_prefix="")
        return tail.skip_to_end()

    def get_runtime_client(self) -> Any:
        """``sagemaker-runtime`` for InvokeEndpoint, on the same backend as ``get_client()``."""
        return make_runtime_client(self.settings, self.get_client())

    def get_client(self) -> Any:
        """boto3's ``sagemaker`` client, or the embedded engine with the same methods and errors."""
        if self._client is None:
            self._client = make_sagemaker_client(self.settings, store=self.get_store())
        return self._client

    @contextlib.contextmanager
    def stopped_on_termination(
        self, context: Any, kind: job_steps.JobKind, name: str
    ) -> Iterator[None]:
        """Around code that starts and waits for job ``name`` of ``kind`` (a step's own loop, where
        ``job_steps.run_job`` does not fit: a tuning job, say): when the run is terminated meanwhile,
        stop the job, wait (bounded) for ``Stopped`` and say so in the run log.

        How a termination reaches a step: terminating a run (the UI, the run launcher, SIGTERM or SIGINT
        to the run's process) makes Dagster raise ``DagsterExecutionInterruptedError`` in the step's
        code, in the run process (in-process executor) or in the step's own process (multiprocess
        executor, whose parent interrupts its children); ``job_steps.stopped_on_termination``
        catches it, stops the job and re-raises it, as dagster-aws's Pipes clients do with
        ``forward_termination``. ``run_job`` (training, transform) does this already.
        """
        timeout = job_steps.waiting_for(self.settings.is_local).stop_timeout
        with job_steps.stopped_on_termination(self.get_client(), kind, name, context.log.info, timeout):
            yield


def run_key_of(run: Any) -> str:
    """A run's key: its root run's id, so retries and re-executions of one run share names and objects."""
    return str(run.root_run_id or run.run_id).replace("-", "")


def latest_materialized_key(context: Any, asset_key: Any) -> str | None:
    """Where the asset's latest materialization in this Dagster instance was stored (its ``uri``)."""
    try:
        event = context.instance.get_latest_materialization_event(asset_key)
        materialization = event.asset_materialization if event else None
        uri = materialization.metadata.get("uri") if materialization else None
        return parse_s3_uri(str(getattr(uri, "value", uri))).key if uri is not None else None
    except (ObjectStoreError, DagsterInvariantViolationError):  # not a URI; no instance (a bare context)
        return None


def stored_key(context: Any, store: ObjectStore, bucket: str, run: str, asset_key: Any, key: str) -> str:
    """Where to read an asset stored at tutorial ``key``: this run's own copy when it made one; else the
    asset's latest materialization; else the published tutorial key (see ``run_objects``)."""
    return run_objects.choose(
        store, bucket, [run_objects.scoped(key, run), latest_materialized_key(context, asset_key), key]
    )


class IrisS3IOManager(ConfigurableIOManager):
    """Stores DataFrames as CSV and dicts as JSON in the backend's bucket, in the run's own folder.

    Keys and CSV layout come from the asset's definition metadata, so ``train_csv`` and ``test_csv`` land
    exactly where, and how, SageMaker reads them, under ``iris/runs/<run>/`` (``run_objects``: two runs
    at once never overwrite each other; ``test_predictions`` publishes a successful run's objects to the
    tutorial's keys). An input is read from the run's own copy, else from the upstream's latest
    materialization, else from the published key. A DataFrame with a label column listed in the
    metadata has that column stored apart (the held-out labels) and joined back on load.
    """

    backend: SageMakerResource

    @staticmethod
    def _metadata(context: InputContext | OutputContext) -> dict[str, Any]:
        """The stored asset's definition metadata (for an input: that of the upstream output)."""
        if isinstance(context, InputContext):
            context = context.upstream_output
        return dict(context.definition_metadata or {})

    def _key(self, context: InputContext | OutputContext) -> str:
        metadata = self._metadata(context)
        if KEY not in metadata:
            raise ValueError(
                f"asset {context.asset_key.to_user_string()} has no '{KEY}' metadata; IrisS3IOManager "
                "needs it to know where the asset lives in the bucket"
            )
        return str(metadata[KEY])

    @staticmethod
    def _run(context: InputContext | OutputContext) -> str:
        try:
            return run_key_of(context.step_context.dagster_run)
        except DagsterInvariantViolationError:  # a context built outside a run (build_output_context)
            output = context.upstream_output if isinstance(context, InputContext) else context
            return str(output.run_id).replace("-", "")

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if not isinstance(obj, pd.DataFrame | dict):
            raise TypeError(
                f"IrisS3IOManager stores DataFrames and dicts; asset {context.asset_key.to_user_string()} "
                f"returned {type(obj).__name__}"
            )
        store, bucket = self.backend.get_store(), self.backend.settings.bucket
        key = run_objects.scoped(self._key(context), self._run(context))
        metadata = self._metadata(context)
        if isinstance(obj, pd.DataFrame):
            label_column = metadata.get(LABEL_COLUMN)
            frame = obj
            if label_column:
                labels_key = run_objects.sibling(key, str(metadata[LABEL_KEY]))
                write_csv(store, bucket, labels_key, obj[[label_column]])
                frame = obj.drop(columns=[label_column])
            write_csv(store, bucket, key, frame, header=bool(metadata.get(HEADER, True)))
        else:
            write_json(store, bucket, key, obj)
        context.add_output_metadata({"uri": self.backend.settings.uri(key)})

    def load_input(self, context: InputContext) -> Any:
        store, bucket = self.backend.get_store(), self.backend.settings.bucket
        key = stored_key(context, store, bucket, self._run(context), context.asset_key, self._key(context))
        metadata = self._metadata(context)
        release_free_memory()  # what earlier steps freed: a step starts from the run's base, not their peak
        try:
            if key.endswith(".json"):
                return json.loads(store.get_bytes(bucket, key))
            if metadata.get(HEADER, True):
                frame = read_csv(store, bucket, key)
            else:
                frame = read_csv(store, bucket, key, header=None, names=list(metadata[COLUMNS]))
        except ObjectNotFound:
            raise ObjectNotFound(bucket, key).with_hint(
                f"materialize {context.asset_key.to_user_string()} first"
            ) from None
        label_column = metadata.get(LABEL_COLUMN)
        if label_column:
            labels_key = run_objects.sibling(key, str(metadata[LABEL_KEY]))
            labels = read_csv(store, bucket, labels_key)
            frame[label_column] = labels[label_column].to_numpy()
        return frame
