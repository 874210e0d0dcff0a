# iris_sagemaker/core/portable.py: the tutorial's vocabulary and the helpers a DAG file needs, the Iris
# labels, the SageMaker names and run folders of one run, and the transform output's parser and join.
# iris-sagemaker's core imports them from this module (dataset, specs, run_objects, evaluation), and
# `iris-sagemaker export-airflow-dag` copies the module byte for byte into the DAG file it exports, so the
# two cannot drift.
#
# Hence what this file may hold: the standard library only (pandas appears in annotations, imported only
# while type checking); no `from __future__` import and no docstring (in the middle of the exported file,
# the one is a syntax error and the other ends its import block); no name the exported DAG's template
# defines as well (the export refuses a clash).

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
COLUMNS = [*FEATURES, "species"]
# The tutorial's encoding.
LABELS = {"Iris-virginica": 0, "Iris-versicolor": 1, "Iris-setosa": 2}
SPECIES = {code: name for name, code in LABELS.items()}

# Yes/no values, in every setting of the package and of the exported DAG: these words, in any case.
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


class YesNoError(ValueError):
    """A yes/no variable holds something else; the message names the variable, its value and the words."""


def parse_yes_no(variable: str, text: str | None, default: bool) -> bool:
    """``text`` (the value of ``variable``) as a yes/no value: one of ``TRUE_WORDS`` or ``FALSE_WORDS``,
    any case; ``default`` when unset or blank; else YesNoError naming the variable and the value."""
    word = (text or "").strip()
    if not word:
        return default
    if word.lower() in TRUE_WORDS + FALSE_WORDS:
        return word.lower() in TRUE_WORDS
    words = f"{', '.join(TRUE_WORDS)} or {', '.join(FALSE_WORDS)}"
    raise YesNoError(f"{variable}={word!r} is not true or false (yes/no words: {words})")


_NAME_MAX = 63
_INVALID_NAME_CHARS = re.compile(r"[^a-zA-Z0-9-]+")
_UNSAFE_FOLDER_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class JobNames:
    training_job: str
    model: str
    transform_job: str


def sagemaker_name(prefix: str, run_key: str, limit: int = _NAME_MAX) -> str:
    """A valid SageMaker resource name (``^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$``) from a prefix and a key.

    Characters SageMaker refuses become '-', and an over-long key keeps its end (the distinctive part of
    timestamps and run ids).
    """
    key = _INVALID_NAME_CHARS.sub("-", run_key).strip("-")
    if not key:
        raise ValueError(f"run key {run_key!r} has no letters or digits to name a SageMaker job with")
    room = limit - len(prefix) - 1
    return f"{prefix}-{key[-room:].lstrip('-')}"


def job_names(run_key: str) -> JobNames:
    """Deterministic names for one run: the tutorial's prefixes plus a per-run key."""
    return JobNames(
        training_job=sagemaker_name("train-iris", run_key),
        model=sagemaker_name("Iris-KNN", run_key),
        transform_job=sagemaker_name("test-knn", run_key),
    )


def run_folder(run: str) -> str:
    """The folder name of a run id: S3- and file-name-safe characters only (Airflow's run ids hold ``:``
    and ``+``)."""
    folder = _UNSAFE_FOLDER_CHARS.sub("-", run).strip("-.")
    if not folder:
        raise ValueError(f"run id {run!r} has no letters or digits to name its folder with")
    return folder


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


def join_predictions(
    features: "pd.DataFrame", true_labels: "pd.Series", predicted: list[float]
) -> "pd.DataFrame":
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
