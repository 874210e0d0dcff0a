"""Read a batch transform's output and score it against the held-out labels (pure)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

# Reading and joining the transform output (portable: the exported DAG copies that module).
from iris_sagemaker.core.portable import SPECIES
from iris_sagemaker.core.portable import PredictionsError as PredictionsError
from iris_sagemaker.core.portable import join_predictions as join_predictions
from iris_sagemaker.core.portable import parse_predictions as parse_predictions
from iris_sagemaker.core.settings import DEFAULT_ACCURACY_THRESHOLD

# The accuracy the model must reach on the held-out rows (Dagster's blocking check, Airflow's scoring task)
# by default; IRIS_SAGEMAKER_ACCURACY_THRESHOLD (``Settings.accuracy_threshold``) sets it.
ACCURACY_THRESHOLD = DEFAULT_ACCURACY_THRESHOLD


def shared_floats(values: Iterable[float]) -> list[float]:
    """``[float(v) for v in values]`` with equal values as one float object (-0.0 and 0.0 kept apart): a
    list of a million class labels is then a million references (8 MB), not a million floats (32 MB)."""
    shared: dict[tuple[float, float], float] = {}
    out = []
    for value in values:
        number = float(value)
        out.append(shared.setdefault((number, math.copysign(1.0, number)), number))
    return out


@dataclass(frozen=True)
class Scores:
    accuracy: float
    confusion: pd.DataFrame  # rows: true species, columns: predicted species


def score(table: pd.DataFrame) -> Scores:
    names = [SPECIES[code] for code in sorted(SPECIES)]
    confusion = pd.crosstab(
        pd.Categorical(table["true_species"], categories=names),
        pd.Categorical(table["predicted_species"], categories=names),
        rownames=["true"],
        colnames=["predicted"],
        dropna=False,
    )
    accuracy = float(table["correct"].mean()) if len(table) else 0.0
    return Scores(accuracy=accuracy, confusion=confusion)


def confusion_markdown(confusion: pd.DataFrame) -> str:
    header = "| true \\ predicted | " + " | ".join(str(c) for c in confusion.columns) + " |"
    rule = "|---|" + "---|" * len(confusion.columns)
    rows = [
        f"| {index} | " + " | ".join(str(int(v)) for v in row) + " |"
        for index, row in zip(confusion.index, confusion.to_numpy(), strict=True)
    ]
    return "\n".join([header, rule, *rows])


def below_threshold(accuracy: float, rows: int, threshold: float, kept_in: str) -> str | None:
    """Why a scored run is not published (its accuracy is below ``threshold``; ``kept_in``: where its
    objects stay), or None when it passes and publishes. The same words for Dagster's warning and
    Airflow's failed task."""
    if accuracy >= threshold:
        return None
    return (
        f"accuracy {accuracy:.4f} on {rows} test rows is below {threshold}; the run's objects stay in "
        f"{kept_in}/ and are not published"
    )
