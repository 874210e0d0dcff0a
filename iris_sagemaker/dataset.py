"""Load, validate, encode and split the Iris data (pure pandas, apart from ``read_source``).

The tutorial's preparation, with its defects fixed: the split is seeded, and the true labels of the test
rows are kept (beside, never inside, the data sent to the model) so the predictions can be scored.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
COLUMNS = [*FEATURES, "species"]
# The tutorial's encoding.
LABELS = {"Iris-virginica": 0, "Iris-versicolor": 1, "Iris-setosa": 2}
MIN_ROWS_PER_SPECIES = 5  # fewer cannot reliably land in both the train and the test split
SPECIES = {code: name for name, code in LABELS.items()}
PACKAGED_SOURCE = "package:iris_sagemaker/data/iris.data"
HTTP_TIMEOUT_SECONDS = 30.0


class IrisDataError(ValueError):
    """The Iris source cannot be used; the message says where and what was wrong."""


@dataclass(frozen=True)
class IrisSplit:
    train: pd.DataFrame  # species (encoded) first, then the four features: what k-NN trains on
    test_features: pd.DataFrame  # the four features only: what the batch transform reads
    test_labels: pd.Series  # the true encoded labels of the test rows, in the same order


def read_source(url: str | None) -> tuple[str, bytes]:
    """Return (a description of the source, its bytes): the packaged copy, a file:// path or http(s)://."""
    if not url:
        return PACKAGED_SOURCE, resources.files("iris_sagemaker").joinpath("data/iris.data").read_bytes()
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https"):
        import requests

        try:
            response = requests.get(url, timeout=HTTP_TIMEOUT_SECONDS)
            response.raise_for_status()
        except requests.RequestException as err:
            raise IrisDataError(
                f"could not fetch IRIS_SAGEMAKER_DATA_URL={url}: {err}. Check the URL, or unset the "
                "variable to use the copy shipped with the package"
            ) from err
        return url, response.content
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
        try:
            return url, path.read_bytes()
        except OSError as err:
            raise IrisDataError(
                f"could not read IRIS_SAGEMAKER_DATA_URL={url}: {err.strerror or err}"
            ) from err
    raise IrisDataError(
        f"IRIS_SAGEMAKER_DATA_URL={url!r} has an unsupported scheme; use http://, https:// or file://"
    )


def parse_iris(data: bytes, source: str = "the Iris data") -> pd.DataFrame:
    """Parse and validate UCI-format Iris CSV (no header; a header row naming the columns is allowed).

    Returns the five columns with float features and species names; errors name the line and column.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise IrisDataError(f"{source} is not UTF-8 text (byte {err.start})") from None
    try:
        cells = pd.read_csv(
            io.StringIO(text),
            header=None,
            names=COLUMNS,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
            skipinitialspace=True,
        )
    except pd.errors.ParserError as err:
        raise IrisDataError(f"{source}: {err}; expected 5 columns: {', '.join(COLUMNS)}") from None
    cells.index = pd.RangeIndex(1, len(cells) + 1, name="line")
    cells = cells.apply(lambda col: col.str.strip())
    blank = (cells == "").all(axis=1)
    cells = cells[~blank]
    if len(cells) and list(cells.iloc[0]) == COLUMNS:
        cells = cells.iloc[1:]
    if cells.empty:
        raise IrisDataError(f"{source} has no data rows; expected rows of {', '.join(COLUMNS)}")

    empty = cells == ""
    if empty.to_numpy().any():
        line, column = _first_true(empty)
        raise IrisDataError(f"{source}, line {line}, column '{column}': the value is missing")

    frame = pd.DataFrame(index=cells.index)
    for column in FEATURES:
        values = pd.to_numeric(cells[column], errors="coerce")
        bad = values.isna() | ~np.isfinite(values)
        if bad.any():
            line = int(bad.idxmax())
            raise IrisDataError(
                f"{source}, line {line}, column '{column}': {cells.at[line, column]!r} is not a finite number"
            )
        frame[column] = values.astype("float64")

    unknown = ~cells["species"].isin(list(LABELS))
    if unknown.any():
        line = int(unknown.idxmax())
        raise IrisDataError(
            f"{source}, line {line}, column 'species': {cells.at[line, 'species']!r} is not one of "
            f"{', '.join(sorted(LABELS))}"
        )
    frame["species"] = cells["species"].astype(str)
    return frame.reset_index(drop=True)


def _first_true(mask: pd.DataFrame) -> tuple[int, str]:
    stacked = mask.stack()
    line, column = stacked[stacked].index[0]
    return int(line), str(column)


def schema_problems(frame: pd.DataFrame) -> list[str]:
    """What is wrong with an already-parsed Iris table (used by the asset check); empty when fine."""
    problems = []
    if list(frame.columns) != COLUMNS:
        problems.append(f"columns are {list(frame.columns)}, expected {COLUMNS}")
        return problems
    for column in FEATURES:
        if not pd.api.types.is_float_dtype(frame[column]):
            problems.append(f"column '{column}' has dtype {frame[column].dtype}, expected float")
    nulls = frame.isna().sum()
    for column, count in nulls[nulls > 0].items():
        problems.append(f"column '{column}' has {count} null values")
    present = set(frame["species"].dropna().unique())
    if present != set(LABELS):
        problems.append(f"species present: {sorted(present)}; expected all three of {sorted(LABELS)}")
    counts = frame["species"].value_counts()
    scarce = {
        name: int(counts.get(name, 0))
        for name in sorted(LABELS)
        if 0 < counts.get(name, 0) < MIN_ROWS_PER_SPECIES
    }
    if scarce:
        problems.append(
            f"too few rows to train and score: {scarce}; each species needs at least {MIN_ROWS_PER_SPECIES} "
            "rows, so that both the 70% train and the 30% test split hold it"
        )
    return problems


def split_problems(parts: IrisSplit) -> list[str]:
    """What makes a split unfit to train and score on: a species missing from either side."""
    names = {code: name for name, code in LABELS.items()}
    problems = []
    for side, labels in (("train", parts.train["species"]), ("test", parts.test_labels)):
        missing = sorted(names[code] for code in set(LABELS.values()) - set(labels.astype(int)))
        if missing:
            problems.append(
                f"the {side} split ({len(labels)} rows) has no {', '.join(missing)}: use more data, or "
                "another IRIS_SAGEMAKER_SPLIT_SEED"
            )
    return problems


def encode(frame: pd.DataFrame) -> pd.DataFrame:
    """Label first, encoded as in the tutorial, then the four features."""
    encoded = frame[["species", *FEATURES]].copy()
    encoded["species"] = encoded["species"].map(LABELS).astype("int64")
    return encoded


def split(frame: pd.DataFrame, seed: int, train_fraction: float = 0.7) -> IrisSplit:
    """Shuffle with a seeded generator and cut at ``int(train_fraction * rows)``, as the tutorial does."""
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be between 0 and 1, got {train_fraction}")
    encoded = encode(frame)
    shuffled = encoded.sample(frac=1, random_state=np.random.RandomState(seed))
    cut = int(train_fraction * len(shuffled))
    train, test = shuffled.iloc[:cut], shuffled.iloc[cut:]
    if train.empty or test.empty:
        raise IrisDataError(
            f"{len(frame)} rows cannot be split {train_fraction:.0%}/{1 - train_fraction:.0%}: "
            "both sides need at least one row"
        )
    return IrisSplit(
        train=train,
        test_features=test[FEATURES],
        test_labels=test["species"].rename("true_label"),
    )


def to_sagemaker_csv(frame: pd.DataFrame) -> bytes:
    """CSV as SageMaker's built-in algorithms read it: no header, no index."""
    return frame.to_csv(header=False, index=False).encode("utf-8")
