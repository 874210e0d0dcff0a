"""botocore's SageMaker service model, cut down to the operations the engine serves, cached on disk.

botocore ships the whole SageMaker API: 2.2 MB of JSON and some 3,300 shapes, which take about 65 ms
to parse at every engine start. The engine serves the operations in ``OPERATIONS``; the shapes
they reach are a few percent of that. The first load parses botocore's file as usual and writes those
operations and shapes to ``<cache dir>/sagemaker-service-model.json``; later loads read that instead.

The cache is keyed by botocore's version and by the path, size and modification time of the model
files botocore would read, so an upgraded botocore (or a model under ``~/.aws/models``) replaces it.
Anything wrong with the cache (missing, stale, unreadable, not writable) only means the full model is
parsed: the cache can make a start faster, never different.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import botocore
from botocore.loaders import Loader

from iris_sagemaker.core.settings import default_cache_dir as settings_cache_dir

SERVICE = "sagemaker"
TYPE_NAME = "service-2"
CACHE_FILE = "sagemaker-service-model.json"
OPERATIONS = (
    "CreateTrainingJob",
    "DescribeTrainingJob",
    "StopTrainingJob",
    "ListTrainingJobs",
    "CreateModel",
    "DescribeModel",
    "DeleteModel",
    "ListModels",
    "CreateTransformJob",
    "DescribeTransformJob",
    "StopTransformJob",
    "ListTransformJobs",
    "CreateEndpointConfig",
    "DescribeEndpointConfig",
    "DeleteEndpointConfig",
    "ListEndpointConfigs",
    "CreateEndpoint",
    "DescribeEndpoint",
    "UpdateEndpoint",
    "DeleteEndpoint",
    "ListEndpoints",
    "CreateHyperParameterTuningJob",
    "DescribeHyperParameterTuningJob",
    "ListHyperParameterTuningJobs",
    "ListTrainingJobsForHyperParameterTuningJob",
    "StopHyperParameterTuningJob",
    "DeleteHyperParameterTuningJob",
    "AddTags",
    "ListTags",
    "DeleteTags",
)
_FORMAT = 1
_log = logging.getLogger(__name__)


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """``IRIS_SAGEMAKER_CACHE_DIR``, else ``$XDG_CACHE_HOME/iris-sagemaker``, else ``~/.cache/...``
    (``Settings.cache_dir``)."""
    return settings_cache_dir(env)


def load_model_data(cache_dir: Path | None = None, loader: Loader | None = None) -> dict[str, Any]:
    """The service model's data: from the cache when it matches botocore's files, else parsed (and cached)."""
    loader = loader or Loader()
    cache = (cache_dir or default_cache_dir()) / CACHE_FILE
    signature = source_signature(loader)
    cached = _read_cache(cache, signature)
    if cached is not None:
        return cached
    full = loader.load_service_model(SERVICE, TYPE_NAME)
    if signature is not None:
        _write_cache(cache, signature, prune(full, OPERATIONS))
    return full


def source_signature(loader: Loader) -> dict[str, Any] | None:
    """botocore's version and the model files it would read (path, size, mtime); None if not found."""
    version = loader.determine_latest_version(SERVICE, TYPE_NAME)
    for root in loader.search_paths:
        folder = Path(root) / SERVICE / version
        found = [folder / f"{TYPE_NAME}{ext}" for ext in (".json", ".json.gz")]
        found = [path for path in found if path.is_file()]
        if found:  # botocore reads the first search path that has the model, and its extras beside it
            files = [found[0], *sorted(folder.glob(f"{TYPE_NAME}.*extras.json"))]
            stats = [[str(path), stat.st_size, stat.st_mtime_ns] for path in files for stat in [path.stat()]]
            return {"botocore": botocore.__version__, "api_version": version, "files": stats}
    return None


def prune(data: Mapping[str, Any], operations: Iterable[str]) -> dict[str, Any]:
    """``data`` with only ``operations`` and the shapes they reach (inputs, outputs, errors, nested)."""
    ops = {name: data["operations"][name] for name in operations}
    shapes: dict[str, Any] = {}
    pending = [
        ref["shape"]
        for op in ops.values()
        for ref in [op.get("input"), op.get("output"), *op.get("errors", [])]
        if ref
    ]
    while pending:
        name = pending.pop()
        if name in shapes:
            continue
        shape = data["shapes"][name]
        shapes[name] = shape
        refs = [*shape.get("members", {}).values(), shape.get("member"), shape.get("key"), shape.get("value")]
        pending.extend(ref["shape"] for ref in refs if ref)
    return {
        **{k: v for k, v in data.items() if k not in ("operations", "shapes")},
        "operations": ops,
        "shapes": shapes,
    }


def _read_cache(path: Path, signature: dict[str, Any] | None) -> dict[str, Any] | None:
    if signature is None:
        return None
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        _log.debug("ignoring the service-model cache %s: %s", path, err)
        return None
    if not isinstance(stored, dict) or stored.get("format") != _FORMAT or stored.get("source") != signature:
        return None
    model = stored.get("model")
    if not isinstance(model, dict) or not set(OPERATIONS) <= set(model.get("operations", {})):
        return None
    return model


def _write_cache(path: Path, signature: dict[str, Any], model: dict[str, Any]) -> None:
    """Write atomically (temporary file, then rename): a reader sees the old cache or the new one."""
    payload = json.dumps({"format": _FORMAT, "source": signature, "model": model}, separators=(",", ":"))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(payload)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as err:
        _log.debug("could not write the service-model cache %s: %s", path, err)
