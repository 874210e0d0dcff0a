"""Real-time endpoints: state, deployment and the models they serve.

An endpoint record (``ROOT/sagemaker/endpoints/<name>.json``) holds what DescribeEndpoint returns
(``state``), the config being loaded (``loading``) and the config being served (``deployed``, with its
``model_data_url``).
CreateEndpoint writes it ``Creating`` and starts a loader thread that reads the model named by the
endpoint config, loads it (``knn.load_model``) and turns the endpoint ``InService``, or ``Failed`` with a
FailureReason. UpdateEndpoint goes ``Updating`` and loads the new config's model; the endpoint keeps
serving the old one meanwhile, and if the new one cannot be loaded it stays on the old one, back
``InService``, with the reason in FailureReason (as SageMaker does).

Loader threads are supervised like job workers (:mod:`.jobs`): a record left ``Creating`` by a process
that died reads ``Failed``, one left ``Updating`` reads ``InService`` on its previous config.

A full disk: log lines are dropped (they report; they must not abort the record write that follows), the
final state is saved in place when a new record file does not fit (see :mod:`.records`), and supervision
on the read path returns the ended record unsaved rather than fail the read.

Serving: :class:`ServedModels` keeps each endpoint's loaded model in memory, keyed by the model data it
came from, so a restarted server (or another process on the same root) loads it again on first use.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from iris_sagemaker.core.storage import DiskFull, ObjectStore

from . import knn
from .channels import read_model
from .errors import JobFailure
from .jobs import discard_thread, owner_alive, registered_thread
from .log_files import JobLog, log_path
from .records import ENDPOINT_CONFIGS, ENDPOINTS, MODELS, Record, RecordStore, now, to_json_time

CREATING, IN_SERVICE, UPDATING, FAILED = "Creating", "InService", "Updating", "Failed"
LOADING = (CREATING, UPDATING)
SERVING = (IN_SERVICE, UPDATING)
LOG_GROUP_PREFIX = "/aws/sagemaker/Endpoints/"
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deployment:
    """What one endpoint config deploys: its single variant's model and the model's artifact."""

    config_name: str
    variant: dict[str, Any]
    model_name: str
    image: str
    model_data_url: str


def deployment_of(records: RecordStore, config_name: str) -> Deployment:
    """The deployment an endpoint config describes; JobFailure if its config or model is gone."""
    config = records.read(ENDPOINT_CONFIGS, config_name)
    if config is None:
        raise JobFailure(f"ClientError: the endpoint configuration {config_name} no longer exists.")
    variant = config["request"]["ProductionVariants"][0]
    model = records.read(MODELS, variant["ModelName"])
    if model is None:
        raise JobFailure(
            f"ClientError: the model {variant['ModelName']} of variant "
            f"{variant['VariantName']} no longer exists."
        )
    container = model["request"]["PrimaryContainer"]
    return Deployment(config_name, variant, model["name"], container["Image"], container["ModelDataUrl"])


def variants_state(deployment: Deployment, when: str) -> list[dict[str, Any]]:
    """DescribeEndpoint's ProductionVariants for a deployed config."""
    variant = deployment.variant
    count = variant.get("InitialInstanceCount", 1)
    weight = float(variant.get("InitialVariantWeight", 1.0))
    return [
        {
            "VariantName": variant["VariantName"],
            "DeployedImages": [
                {
                    "SpecifiedImage": deployment.image,
                    "ResolvedImage": deployment.image,
                    "ResolutionTime": when,
                }
            ],
            "CurrentWeight": weight,
            "DesiredWeight": weight,
            "CurrentInstanceCount": count,
            "DesiredInstanceCount": count,
        }
    ]


class ServedModels:
    """Each endpoint's loaded model, in this process (loaded on first use, replaced when redeployed)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._models: dict[str, tuple[str, knn.KnnModel]] = {}
        self._loading: dict[str, threading.Lock] = {}

    def get(self, endpoint: str, model_data_url: str) -> knn.KnnModel:
        key = endpoint.lower()
        with self._lock:
            held = self._models.get(key)
            if held is not None and held[0] == model_data_url:
                return held[1]
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # one load per endpoint at a time; others wait for it
            with self._lock:
                held = self._models.get(key)
            if held is not None and held[0] == model_data_url:
                return held[1]
            model = read_model(self.store, model_data_url)
            self.put(endpoint, model_data_url, model)
            return model

    def put(self, endpoint: str, model_data_url: str, model: knn.KnnModel) -> None:
        with self._lock:
            self._models[endpoint.lower()] = (model_data_url, model)

    def drop(self, endpoint: str) -> None:
        with self._lock:
            self._models.pop(endpoint.lower(), None)


class EndpointDeployer:
    """Runs CreateEndpoint / UpdateEndpoint's model loads and supervises them."""

    def __init__(self, records: RecordStore, served: ServedModels) -> None:
        self.records = records
        self.served = served

    def log(self, name: str) -> JobLog:
        return JobLog(log_path(self.records, ENDPOINTS, name))

    def start(self, name: str, config_name: str, create: Callable[[dict[str, Any]], bool]) -> bool:
        """Start loading ``config_name`` for endpoint ``name``.

        ``create(owner)`` writes (or updates) the record with the loader's owner stamp and returns
        whether it did; the loader starts only then.
        """
        owner, thread = registered_thread(
            f"local-sagemaker-endpoint-{name}", lambda: self._deploy(name, config_name)
        )
        try:
            created = create(owner)
        except BaseException:  # a full disk: the loader will never start
            discard_thread(owner)
            raise
        if not created:
            discard_thread(owner)
            return False
        thread.start()
        return True

    def _deploy(self, name: str, config_name: str) -> None:
        log = self.log(name)
        try:
            deployment = deployment_of(self.records, config_name)
            _note(log, f"loading model {deployment.model_name} from {deployment.model_data_url}")
            model = read_model(self.served.store, deployment.model_data_url)
        except JobFailure as failure:
            self._fail(name, config_name, str(failure), log)
            return
        except Exception as err:  # an engine bug must still end the deployment
            self._fail(name, config_name, f"InternalServerError: {type(err).__name__}: {err}", log)
            return
        config = model.config
        _note(
            log,
            f"model loaded: {config.index_type} ({config.index_metric}), {model.index.ntotal} vectors, "
            f"d={config.feature_dim}, k={config.k}, {config.predictor_type}",
        )
        stamp = to_json_time(now())

        def mutate(record: Record) -> bool:
            state = record["state"]
            if state["EndpointStatus"] not in LOADING or record.get("loading") != config_name:
                return False  # deleted, or superseded
            self.served.put(name, deployment.model_data_url, model)
            state.update(
                EndpointStatus=IN_SERVICE,
                EndpointConfigName=config_name,
                ProductionVariants=variants_state(deployment, stamp),
                LastModifiedTime=stamp,
            )
            state.pop("FailureReason", None)
            record.update(loading=None, deployed=config_name, model_data_url=deployment.model_data_url)
            _note(log, f"endpoint InService with endpoint config {config_name}")
            return True

        self._save_end(name, mutate)

    def _fail(self, name: str, config_name: str, reason: str, log: JobLog) -> None:
        def mutate(record: Record) -> bool:
            state = record["state"]
            if state["EndpointStatus"] not in LOADING or record.get("loading") != config_name:
                return False
            _end_loading(record, reason)
            _note(log, f"endpoint {state['EndpointStatus']}: {reason}")
            return True

        self._save_end(name, mutate)

    def _save_end(self, name: str, mutate: Callable[[Record], bool]) -> None:
        """Save a load's end (in place on a full disk); if even that does not fit, the record stays
        loading and supervision ends it once this loader is gone."""
        try:
            self.records.update(ENDPOINTS, name, mutate, in_place_fallback=True)
        except DiskFull as err:
            _log.warning("endpoint %s: cannot save the end of its model load (%s)", name, err)

    def supervise(self, record: Record) -> Record:
        """``record``, first ended as Failed (or back InService) if its loader died."""
        if record["state"]["EndpointStatus"] not in LOADING or owner_alive(record["owner"]):
            return record

        def mutate(current: Record) -> bool:
            state = current["state"]
            if state["EndpointStatus"] not in LOADING or owner_alive(current["owner"]):
                return False
            _end_orphan(current)
            _note(self.log(current["name"]), f"endpoint {state['EndpointStatus']}: {state['FailureReason']}")
            return True

        try:
            updated = self.records.update(ENDPOINTS, record["name"], mutate, in_place_fallback=True)
        except DiskFull as err:  # a read must not need space: answer with the end, save it later
            _log.warning("endpoint %s: cannot save its end yet (%s)", record["name"], err)
            view = copy.deepcopy(record)
            _end_orphan(view)
            return view
        return updated if updated is not None else record


def _end_orphan(record: Record) -> None:
    owner = record["owner"]
    reason = (
        f"InternalServerError: the embedded engine's process (pid {owner['pid']} on "
        f"{owner['host']}) stopped before the model of endpoint config "
        f"{record.get('loading')} was loaded."
    )
    _end_loading(record, reason)


def _note(log: JobLog, message: str) -> None:
    """Append a line to an endpoint's log unless the disk is full (then the line is lost, not the load)."""
    try:
        log.write(message)
    except DiskFull as err:
        _log.warning("%s: log line lost (%s): %s", log.path, err, message)


def _end_loading(record: Record, reason: str) -> None:
    """A failed load: a new endpoint is Failed; an updated one keeps serving its previous config."""
    state = record["state"]
    state["EndpointStatus"] = IN_SERVICE if record.get("deployed") else FAILED
    if record.get("deployed"):
        state["EndpointConfigName"] = record["deployed"]
    state["FailureReason"] = reason
    state["LastModifiedTime"] = to_json_time(now())
    record["loading"] = None
