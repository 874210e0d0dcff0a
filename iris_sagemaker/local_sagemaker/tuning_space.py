"""What a hyperparameter tuning job searches, checked as SageMaker checks it at CreateHyperParameterTuningJob
(pure functions; the search itself runs in :mod:`.tuning`).

* Ranges become optuna distributions: integer ranges ``IntDistribution`` (``Logarithmic`` scaling samples in
  log space), continuous ranges ``FloatDistribution`` (``Linear``/``Auto`` uniform, ``Logarithmic`` in log
  space, ``ReverseLogarithmic`` in log space of ``1 - x``), categorical ranges ``CategoricalDistribution``.
* The checks are the k-NN algorithm's: the objective is a metric k-NN emits (``test:accuracy`` for
  classifiers, ``test:mse`` for regressors, from the ``test`` channel), every tuned name is one of k-NN's
  hyperparameters of the right kind and inside its limits (``k >= 1``, ``sample_size >= 1``, ...), no
  hyperparameter is both static and tuned, and Grid searches categorical ranges only. Each failure is a
  ``ValidationException`` naming what is wrong.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import knn
from .errors import validation_error

STRATEGIES = ("Bayesian", "Random", "Grid")
# k-NN's metrics (its MetricDefinitions): which predictor emits each, and the direction that is better.
OBJECTIVES = {"test:accuracy": ("classifier", "Maximize"), "test:mse": ("regressor", "Minimize")}
INTEGER_HYPERPARAMETERS = (
    "feature_dim",
    "k",
    "sample_size",
    "dimension_reduction_target",
    "faiss_index_ivf_nlists",
    "mini_batch_size",
)
CATEGORICAL_VALUES: dict[str, tuple[str, ...]] = {
    "predictor_type": knn.PREDICTOR_TYPES,
    "dimension_reduction_type": knn.REDUCTION_TYPES,
    "index_type": knn.INDEX_TYPES,
    "index_metric": knn.INDEX_METRICS,
    "faiss_index_pq_m": tuple(str(m) for m in knn.PQ_M_VALUES),
}
MAX_GRID = 10_000  # more combinations than any tuning job may run


@dataclass(frozen=True)
class Dimension:
    """One tuned hyperparameter: the optuna distribution it is sampled from and how a sample is written."""

    name: str
    kind: str  # "Integer", "Continuous" or "Categorical"
    distribution: Any
    reverse: bool = False  # ReverseLogarithmic: the distribution is of 1 - x

    def value(self, sampled: Any) -> str:
        """The hyperparameter's string, as SageMaker passes hyperparameters to the algorithm."""
        if self.kind == "Integer":
            return str(int(sampled))
        if self.kind == "Continuous":
            return repr(float(1.0 - sampled if self.reverse else sampled))
        return str(sampled)


@dataclass(frozen=True)
class Objective:
    metric: str
    maximize: bool


def objective(config: Mapping[str, Any], definition: Mapping[str, Any], op: str) -> Objective:
    """The objective, checked against the metrics k-NN emits and the channels the definition gives."""
    spec = config.get("HyperParameterTuningJobObjective") or definition.get("TuningObjective")
    if not spec:
        raise validation_error("HyperParameterTuningJobObjective is required (Type and MetricName).", op)
    metric, kind = spec.get("MetricName", ""), spec.get("Type", "")
    if metric not in OBJECTIVES:
        raise validation_error(
            f"The objective metric {metric!r} is not one the k-NN algorithm emits; it emits "
            f"{', '.join(OBJECTIVES)} (classifier and regressor) from its test channel.",
            op,
        )
    predictor, _ = OBJECTIVES[metric]
    static = definition.get("StaticHyperParameters") or {}
    if static.get("predictor_type") not in (None, predictor):
        raise validation_error(
            f"The objective metric {metric} is emitted by k-NN {predictor}s, but the static "
            f"predictor_type is {static['predictor_type']!r}.",
            op,
        )
    channels = [channel.get("ChannelName") for channel in definition.get("InputDataConfig") or []]
    if "test" not in channels:
        raise validation_error(
            f"The objective metric {metric} is computed on the 'test' channel, which "
            "TrainingJobDefinition.InputDataConfig does not give (it gives "
            f"{', '.join(map(str, channels))}).",
            op,
        )
    return Objective(metric, kind == "Maximize")


def search_space(
    ranges: Mapping[str, Any], static: Mapping[str, str], strategy: str, op: str
) -> list[Dimension]:
    """The tuned hyperparameters as optuna distributions, checked against k-NN's hyperparameters."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if ranges.get("AutoParameters"):
        raise validation_error("AutoParameters (Autotune) is not supported by the embedded engine.", op)
    dimensions: list[Dimension] = []
    for spec in ranges.get("IntegerParameterRanges") or []:
        name, low, high = spec["Name"], _number(spec, "MinValue", int, op), _number(spec, "MaxValue", int, op)
        _check_kind(name, "Integer", op)
        _check_bounds(name, low, high, op)
        if low < 1:
            raise validation_error(
                f"IntegerParameterRange {name}: MinValue {low} is outside k-NN's limits ({name} >= 1).", op
            )
        scaling = spec.get("ScalingType", "Auto")
        if scaling == "ReverseLogarithmic":
            raise validation_error(f"{name}: ReverseLogarithmic scaling is for continuous ranges only.", op)
        distribution = IntDistribution(low, high, log=scaling == "Logarithmic")
        dimensions.append(Dimension(name, "Integer", distribution))
    for spec in ranges.get("ContinuousParameterRanges") or []:
        name = spec["Name"]
        _check_kind(name, "Continuous", op)
        dimensions.append(continuous_dimension(spec, op))
    for spec in ranges.get("CategoricalParameterRanges") or []:
        name, values = spec["Name"], [str(v) for v in spec.get("Values") or []]
        _check_kind(name, "Categorical", op)
        allowed = CATEGORICAL_VALUES.get(name)
        if allowed is None:  # an integer hyperparameter given as choices: each must be a positive integer
            bad = [v for v in values if not (v.isdigit() and int(v) >= 1)]
            if bad:
                raise validation_error(
                    f"CategoricalParameterRange {name}: {', '.join(map(repr, bad))} outside k-NN's limits "
                    f"({name} is an integer >= 1).",
                    op,
                )
        elif bad := [v for v in values if v not in allowed]:
            raise validation_error(
                f"CategoricalParameterRange {name}: {', '.join(map(repr, bad))} not allowed; k-NN accepts "
                f"{', '.join(allowed)}.",
                op,
            )
        dimensions.append(Dimension(name, "Categorical", CategoricalDistribution(values)))
    names = [d.name for d in dimensions]
    if not names:
        raise validation_error("ParameterRanges names no hyperparameter to tune.", op)
    if duplicated := sorted({n for n in names if names.count(n) > 1}):
        raise validation_error(f"Hyperparameter {duplicated[0]} is given more than one range.", op)
    if both := sorted(set(names) & set(static)):
        raise validation_error(
            f"Hyperparameter {both[0]} is both static (StaticHyperParameters) and tuned (ParameterRanges); "
            "give it in one of them.",
            op,
        )
    if strategy == "Grid" and (loose := [d.name for d in dimensions if d.kind != "Categorical"]):
        raise validation_error(
            f"The Grid strategy searches categorical ranges only; {', '.join(loose)} "
            "has an integer or continuous range (use CategoricalParameterRanges, or Random or Bayesian).",
            op,
        )
    return dimensions


def continuous_dimension(spec: Mapping[str, Any], op: str) -> Dimension:
    """A continuous range as SageMaker scales it."""
    from optuna.distributions import FloatDistribution

    name = spec["Name"]
    low, high = _number(spec, "MinValue", float, op), _number(spec, "MaxValue", float, op)
    _check_bounds(name, low, high, op)
    scaling = spec.get("ScalingType", "Auto")
    if scaling == "Logarithmic":
        if low <= 0:
            raise validation_error(f"{name}: Logarithmic scaling needs MinValue > 0 (got {low}).", op)
        return Dimension(name, "Continuous", FloatDistribution(low, high, log=True))
    if scaling == "ReverseLogarithmic":
        if not 0 <= low < high < 1:
            raise validation_error(
                f"{name}: ReverseLogarithmic scaling needs 0 <= MinValue < MaxValue < 1 (got {low}, {high}).",
                op,
            )
        return Dimension(name, "Continuous", FloatDistribution(1 - high, 1 - low, log=True), reverse=True)
    return Dimension(name, "Continuous", FloatDistribution(low, high))


def grid(dimensions: list[Dimension], op: str) -> list[dict[str, Any]]:
    """Every combination of the categorical values, in order (the Grid strategy's trials)."""
    size = math.prod(len(d.distribution.choices) for d in dimensions)
    if size > MAX_GRID:
        raise validation_error(f"The grid has {size} combinations; at most {MAX_GRID} can be searched.", op)
    names = [d.name for d in dimensions]
    return [
        dict(zip(names, combo, strict=True))
        for combo in itertools.product(*(d.distribution.choices for d in dimensions))
    ]


def _check_kind(name: str, kind: str, op: str) -> None:
    hyperparameters = knn.REQUIRED + knn.OPTIONAL
    if name not in hyperparameters:
        raise validation_error(
            f"{kind}ParameterRange {name}: not a k-NN hyperparameter; k-NN accepts "
            f"{', '.join(hyperparameters)}.",
            op,
        )
    if kind == "Integer" and name not in INTEGER_HYPERPARAMETERS:
        raise validation_error(f"IntegerParameterRange {name}: {name} is not an integer hyperparameter.", op)
    if kind == "Continuous":
        raise validation_error(
            f"ContinuousParameterRange {name}: k-NN has no continuous hyperparameters "
            f"(its integer ones are {', '.join(INTEGER_HYPERPARAMETERS)}; use IntegerParameterRanges).",
            op,
        )


def _check_bounds(name: str, low: float, high: float, op: str) -> None:
    if low > high:
        raise validation_error(f"{name}: MinValue {low} is greater than MaxValue {high}.", op)


def _number(spec: Mapping[str, Any], key: str, kind: type, op: str) -> Any:
    raw = spec.get(key)
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise validation_error(
            f"{spec.get('Name')}: {key} {raw!r} is not a valid {kind.__name__}.", op
        ) from None
    if kind is float and not math.isfinite(value):
        raise validation_error(f"{spec.get('Name')}: {key} {raw!r} is not a finite number.", op)
    return value
