"""The built-in k-NN algorithm's hyperparameters: their names, allowed values and validation, as
SageMaker's k-NN checks them before reading any data.

Pure (standard library only), so that what the embedded engine checks (``local_sagemaker.knn``, which
turns :class:`HyperparameterError` into the job's ``ClientError:`` failure reason) is also what the
settings (``IRIS_SAGEMAKER_K``, ...) and the Dagster run config are checked with, without importing the
engine (the Airflow DAG files are parsed without it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


class HyperparameterError(ValueError):
    """A hyperparameter SageMaker's k-NN refuses; the message is the algorithm's (without "ClientError:")."""


REQUIRED = ("feature_dim", "k", "predictor_type", "sample_size")
OPTIONAL = (
    "dimension_reduction_type",
    "dimension_reduction_target",
    "index_type",
    "index_metric",
    "faiss_index_ivf_nlists",
    "faiss_index_pq_m",
    "mini_batch_size",
)
PREDICTOR_TYPES = ("classifier", "regressor")
REDUCTION_TYPES = ("sign", "fjlt")
INDEX_TYPES = ("faiss.Flat", "faiss.IVFFlat", "faiss.IVFPQ")
INDEX_METRICS = ("L2", "INNER_PRODUCT", "COSINE")
PQ_M_VALUES = (1, 2, 3, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 96)
DEFAULT_MINI_BATCH_SIZE = 5000


@dataclass(frozen=True)
class KnnParams:
    feature_dim: int
    k: int
    predictor_type: str
    sample_size: int
    dimension_reduction_type: str | None = None
    dimension_reduction_target: int | None = None
    index_type: str = "faiss.Flat"
    index_metric: str = "L2"
    faiss_index_ivf_nlists: int | None = None  # resolved ("auto" -> sqrt(sample_size)) for IVF types
    faiss_index_pq_m: int | None = None
    mini_batch_size: int = DEFAULT_MINI_BATCH_SIZE


def parse_hyperparameters(hyperparameters: Mapping[str, str]) -> KnnParams:
    """Validate every hyperparameter (in a fixed order) and return them typed."""
    hp = dict(hyperparameters)
    for name in REQUIRED:
        if name not in hp:
            raise HyperparameterError(
                f"Missing required hyperparameter {name!r}; k-NN requires {', '.join(REQUIRED)}."
            )
    unknown = sorted(set(hp) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise HyperparameterError(
            f"Additional hyperparameters are not allowed ({', '.join(map(repr, unknown))} unexpected); "
            f"k-NN accepts {', '.join(REQUIRED + OPTIONAL)}."
        )
    feature_dim = _positive_int(hp, "feature_dim")
    k = _positive_int(hp, "k")
    predictor_type = _choice(hp, "predictor_type", PREDICTOR_TYPES)
    sample_size = _positive_int(hp, "sample_size")
    reduction_type, reduction_target = _reduction(hp, feature_dim)
    index_type = _choice(hp, "index_type", INDEX_TYPES, default="faiss.Flat")
    index_metric = _choice(hp, "index_metric", INDEX_METRICS, default="L2")
    if index_type == "faiss.IVFPQ" and index_metric != "L2":
        raise HyperparameterError(
            f"Invalid hyperparameter index_metric={index_metric!r}: index_type faiss.IVFPQ supports only L2."
        )
    nlists = _nlists(hp, sample_size)
    pq_m = _pq_m(hp)
    mini_batch_size = _positive_int(hp, "mini_batch_size", default=DEFAULT_MINI_BATCH_SIZE)
    return KnnParams(
        feature_dim=feature_dim,
        k=k,
        predictor_type=predictor_type,
        sample_size=sample_size,
        dimension_reduction_type=reduction_type,
        dimension_reduction_target=reduction_target,
        index_type=index_type,
        index_metric=index_metric,
        faiss_index_ivf_nlists=nlists if index_type != "faiss.Flat" else None,
        faiss_index_pq_m=pq_m if index_type == "faiss.IVFPQ" else None,
        mini_batch_size=mini_batch_size,
    )


def _positive_int(hp: Mapping[str, str], name: str, default: int | None = None) -> int:
    if name not in hp and default is not None:
        return default
    raw = str(hp[name]).strip()
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise HyperparameterError(f"Invalid hyperparameter {name}={hp[name]!r}: must be a positive integer.")
    return value


def _choice(hp: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str | None = None) -> str:
    if name not in hp and default is not None:
        return default
    value = str(hp[name]).strip()
    if value not in allowed:
        raise HyperparameterError(
            f"Invalid hyperparameter {name}={hp[name]!r}: allowed values are {', '.join(allowed)}."
        )
    return value


def _reduction(hp: Mapping[str, str], feature_dim: int) -> tuple[str | None, int | None]:
    if "dimension_reduction_type" not in hp:
        if "dimension_reduction_target" in hp:
            raise HyperparameterError(
                "Invalid hyperparameter dimension_reduction_target: it requires dimension_reduction_type "
                f"({' or '.join(REDUCTION_TYPES)})."
            )
        return None, None
    kind = _choice(hp, "dimension_reduction_type", REDUCTION_TYPES)
    if "dimension_reduction_target" not in hp:
        raise HyperparameterError(
            "Missing hyperparameter dimension_reduction_target: required when dimension_reduction_type is "
            "set; allowed values are integers with 0 < dimension_reduction_target < feature_dim "
            f"({feature_dim})."
        )
    target = _positive_int(hp, "dimension_reduction_target")
    if target >= feature_dim:
        raise HyperparameterError(
            f"Invalid hyperparameter dimension_reduction_target={hp['dimension_reduction_target']!r}: "
            f"allowed values are integers with 0 < dimension_reduction_target < feature_dim ({feature_dim})."
        )
    return kind, target


def _nlists(hp: Mapping[str, str], sample_size: int) -> int:
    raw = str(hp.get("faiss_index_ivf_nlists", "auto")).strip()
    if raw == "auto":
        return max(1, math.isqrt(sample_size))
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise HyperparameterError(
            f"Invalid hyperparameter faiss_index_ivf_nlists={hp['faiss_index_ivf_nlists']!r}: "
            "allowed values are 'auto' or a positive integer."
        )
    return value


def _pq_m(hp: Mapping[str, str]) -> int | None:
    if "faiss_index_pq_m" not in hp:
        return None
    raw = str(hp["faiss_index_pq_m"]).strip()
    if not raw.isdigit() or int(raw) not in PQ_M_VALUES:
        raise HyperparameterError(
            f"Invalid hyperparameter faiss_index_pq_m={hp['faiss_index_pq_m']!r}: allowed values are "
            f"{', '.join(map(str, PQ_M_VALUES))}."
        )
    return int(raw)
