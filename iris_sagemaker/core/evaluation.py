"""Read a batch transform's output and score it against the held-out labels (pure)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from iris_sagemaker.core.dataset import SPECIES
from iris_sagemaker.core.settings import DEFAULT_ACCURACY_THRESHOLD

# The accuracy the model must reach on the held-out rows (Dagster's blocking check, Airflow's scoring task)
# by default; IRIS_SAGEMAKER_ACCURACY_THRESHOLD (``Settings.accuracy_threshold``) sets it.
ACCURACY_THRESHOLD = DEFAULT_ACCURACY_THRESHOLD


class PredictionsError(ValueError):
    """The transform output cannot be matched with the test rows."""


def parse_predictions(data: bytes, source: str = "the transform output") -> list[float]:
    """``predicted_label`` of every record in k-NN output.

    Accepts what SageMaker writes for Accept application/json (one ``{"predictions": [...]}`` document per
    mini-batch, concatenated, possibly newline-separated) and application/jsonlines (one record per line).
    Each record object is reduced to its label as it is decoded, and equal labels are one float object:
    a million predictions of three classes cost a million references, not a million dicts or floats.
    """

    class Record:  # a record, reduced to its predicted_label
        __slots__ = ("label",)

        def __init__(self, label: object) -> None:
            self.label = label

    def reduce(record: dict) -> object:
        keep = "predicted_label" not in record or "predictions" in record
        return record if keep else Record(record["predicted_label"])

    numbers: dict[str, float] = {}

    def number(text: str) -> float:  # one object per distinct number text, while they are few
        value = numbers.get(text)
        if value is None:
            value = float(text)
            if len(numbers) < 1024:
                numbers[text] = value
        return value

    text = data.decode("utf-8")
    decoder = json.JSONDecoder(object_hook=reduce, parse_float=number)
    labels: list[float] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            break
        try:
            document, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as err:
            raise PredictionsError(f"{source} is not k-NN JSON output: {err}") from None
        records = (
            document["predictions"]
            if isinstance(document, dict) and "predictions" in document
            else [document]
        )
        for record in records:
            if not isinstance(record, Record):
                raise PredictionsError(f"{source}: record {len(labels) + 1} has no 'predicted_label'")
            label = record.label
            labels.append(label if type(label) is float else float(label))  # a shared float, as it is
    return labels


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


def join_predictions(features: pd.DataFrame, true_labels: pd.Series, predicted: list[float]) -> pd.DataFrame:
    """One row per test row: its features, true and predicted label (codes and species names)."""
    if len(predicted) != len(features):
        raise PredictionsError(
            f"the transform returned {len(predicted)} predictions for {len(features)} test rows; "
            "the output does not belong to this test set (rerun the transform)"
        )
    table = features.reset_index(drop=True)  # a new frame: its new columns never reach ``features``
    table["true_label"] = true_labels.to_numpy().astype("int64")
    table["predicted_label"] = [int(p) if float(p).is_integer() else p for p in predicted]
    table["true_species"] = table["true_label"].map(SPECIES)
    table["predicted_species"] = table["predicted_label"].map(SPECIES)
    table["correct"] = table["true_label"] == table["predicted_label"]
    return table


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
