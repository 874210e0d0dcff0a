"""Load, validate, encode and split the Iris data (pure pandas, apart from ``read_source``).

The tutorial's preparation, with its defects fixed: the split is seeded, and the true labels of the test
rows are kept (beside, never inside, the data sent to the model) so the predictions can be scored.

Memory stays near the table's own size whatever the input's: the data is parsed a chunk of lines at a
time straight into numbers (a ``file://`` source as it is read, never whole as bytes or text), the species
column holds one string object per species rather than one per row, and the split takes each side's
rows once, without shuffled copies of the whole table.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd

# The columns and the tutorial's encoding (portable: the exported DAG copies that module).
from iris_sagemaker.core.portable import COLUMNS as COLUMNS
from iris_sagemaker.core.portable import FEATURES as FEATURES
from iris_sagemaker.core.portable import LABELS as LABELS
from iris_sagemaker.core.portable import SPECIES as SPECIES
from iris_sagemaker.core.storage import ColumnBuffer, line_count, release_free_memory

MIN_ROWS_PER_SPECIES = 5  # fewer cannot reliably land in both the train and the test split
PARSE_CHUNK_BYTES = 4 << 20  # whole lines parsed at a time
PARSE_ROWS = 1 << 16  # rows of a stored table parsed at a time
_SPECIES_DTYPE = pd.CategoricalDtype(sorted(LABELS))
TRAIN_FRACTION = 0.7  # the tutorial's 70/30 split
PACKAGED_SOURCE = "package:iris_sagemaker/data/iris.data"
HTTP_TIMEOUT_SECONDS = 30.0


class IrisDataError(ValueError):
    """The Iris source cannot be used; the message says where and what was wrong."""


@dataclass(frozen=True)
class IrisSplit:
    train: pd.DataFrame  # species (encoded, int8) first, then the four features: what k-NN trains on
    test_features: pd.DataFrame  # the four features only: what the batch transform reads
    test_labels: pd.Series  # the true encoded labels (int8) of the test rows, in the same order


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
        with open_file_source(url) as fh:
            return url, fh.read()
    raise IrisDataError(
        f"IRIS_SAGEMAKER_DATA_URL={url!r} has an unsupported scheme; use http://, https:// or file://"
    )


def load_iris(url: str | None) -> tuple[str, pd.DataFrame]:
    """``parse_iris(read_source(url))`` without the source's bytes in memory when it is a file: a
    ``file://`` source is parsed as it is read. Returns (a description of the source, the table)."""
    if not url or urlparse(url).scheme != "file":
        source, data = read_source(url)
        return source, parse_iris(data, source)
    with open_file_source(url) as fh:
        return url, parse_iris_stream(fh, url)


@contextmanager
def open_file_source(url: str) -> Iterator[IO[bytes]]:
    """A ``file://`` source opened for reading; an OSError opening or reading it becomes IrisDataError
    naming the variable, the URL and the reason."""
    try:
        with open(Path(unquote(urlparse(url).path)), "rb") as fh:
            yield fh
    except OSError as err:
        raise IrisDataError(f"could not read IRIS_SAGEMAKER_DATA_URL={url}: {err.strerror or err}") from err


def parse_iris(data: bytes, source: str = "the Iris data") -> pd.DataFrame:
    """Parse and validate UCI-format Iris CSV (no header; a header row naming the columns is allowed).

    Returns the five columns with float features and species names; errors name the line and column.
    """
    return parse_iris_stream(io.BytesIO(data), source)


def parse_iris_stream(fh: IO[bytes], source: str = "the Iris data") -> pd.DataFrame:
    """:func:`parse_iris` of a binary stream, read and parsed :data:`PARSE_CHUNK_BYTES` of whole lines at
    a time. Each chunk goes straight to numbers through pandas' C parser; a chunk it does not read
    cleanly is parsed again cell by cell as text, which names the line and column at fault."""
    capacity = line_count(fh) + 1 if fh.seekable() else 1 << 16  # a file's lines bound its rows
    columns = {column: ColumnBuffer(np.float64, capacity) for column in FEATURES}
    codes = ColumnBuffer(np.int8, capacity)
    header_seen = False
    for first_line, offset, chunk in _line_chunks(fh):
        if not header_seen:
            chunk, header_seen = _blank_header(chunk)
        parsed = _parse_numbers(chunk)
        if parsed is None:
            parsed = _parse_cells(chunk, first_line, offset, source)
        for i, column in enumerate(FEATURES):
            columns[column].extend(parsed[0][:, i])
        codes.extend(parsed[1])
    if not len(codes):
        raise IrisDataError(f"{source} has no data rows; expected rows of {', '.join(COLUMNS)}")
    frame = pd.DataFrame({column: columns[column].array() for column in FEATURES}, copy=False)
    frame["species"] = pd.Categorical.from_codes(codes.array(), dtype=_SPECIES_DTYPE).astype(str)
    release_free_memory()  # the chunks'
    return frame


def _line_chunks(fh: IO[bytes]) -> Iterator[tuple[int, int, bytes]]:
    """(line number of its first line, byte offset, bytes) of chunks of whole lines."""
    line, offset, pending = 1, 0, b""
    while True:
        data = fh.read(PARSE_CHUNK_BYTES)
        pending += data
        cut = pending.rfind(b"\n") + 1 if data else len(pending)
        if cut:
            chunk, pending = pending[:cut], pending[cut:]
            yield line, offset, chunk
            line += chunk.count(b"\n")
            offset += len(chunk)
        if not data:
            return


def _blank_header(chunk: bytes) -> tuple[bytes, bool]:
    """The chunk with a header row (the first line with any cell, naming the five columns) blanked
    (so that line numbers stay), and whether the first such line has been seen."""
    start = 0
    while start < len(chunk):
        end = chunk.find(b"\n", start)
        end = len(chunk) if end < 0 else end
        line = chunk[start:end]
        if line.replace(b",", b"").replace(b'"', b"").strip():
            if _cells(line) == COLUMNS:
                return chunk[:start] + chunk[end:], True
            return chunk, True
        start = end + 1
    return chunk, False


def _cells(line: bytes) -> list[str] | None:
    try:
        cells = pd.read_csv(
            io.BytesIO(line), header=None, dtype=str, keep_default_na=False, skipinitialspace=True
        )
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError):
        return None
    return [str(cell).strip() for cell in cells.iloc[0]] if len(cells) else None


def _parse_numbers(chunk: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    """The chunk's (features, species codes) through pandas' C parser; None if it is anything but clean
    rows of four finite numbers and a known species (the caller then reads it cell by cell)."""
    # No names: given five names, pandas would take a sixth field for an index (and shift the others) and
    # pad a row of four; without, a width other than five shows in the columns, or a row that differs
    # from the first raises.
    dtypes: dict[int, object] = {i: np.float64 for i in range(len(FEATURES))}
    dtypes[len(FEATURES)] = "category"
    try:
        part = pd.read_csv(
            io.BytesIO(chunk),
            header=None,
            dtype=dtypes,
            skipinitialspace=True,
            keep_default_na=False,
            engine="c",
        )
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return None
    if part.shape[1] != len(COLUMNS):
        return None
    part.columns = COLUMNS
    values = part[FEATURES].to_numpy(np.float64)
    species = part["species"]
    if not set(species.cat.categories) <= set(LABELS):
        return None
    codes = species.cat.set_categories(_SPECIES_DTYPE.categories).cat.codes.to_numpy()
    if (codes < 0).any() or not np.isfinite(values).all():
        return None
    return values, codes.astype(np.int8)


def _parse_cells(chunk: bytes, first_line: int, offset: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """The chunk read cell by cell as text: what is wrong is named by line and column."""
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError as err:
        raise IrisDataError(f"{source} is not UTF-8 text (byte {offset + err.start})") from None
    _check_field_counts(text, first_line, source)
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
        message = re.sub(r"line (\d+)", lambda m: f"line {int(m.group(1)) + first_line - 1}", str(err))
        raise IrisDataError(f"{source}: {message}; expected 5 columns: {', '.join(COLUMNS)}") from None
    except pd.errors.EmptyDataError:
        return np.empty((0, len(FEATURES))), np.empty(0, np.int8)
    cells.index = pd.RangeIndex(first_line, first_line + len(cells), name="line")
    cells = cells.apply(lambda col: col.str.strip())
    blank = (cells == "").all(axis=1)
    cells = cells[~blank]

    empty = cells == ""
    if empty.to_numpy().any():
        line, column = _first_true(empty)
        raise IrisDataError(f"{source}, line {line}, column '{column}': the value is missing")

    values = np.empty((len(cells), len(FEATURES)), np.float64)
    for i, column in enumerate(FEATURES):
        numbers = pd.to_numeric(cells[column], errors="coerce")
        bad = numbers.isna() | ~np.isfinite(numbers)
        if bad.any():
            line = int(bad.idxmax())
            raise IrisDataError(
                f"{source}, line {line}, column '{column}': {cells.at[line, column]!r} is not a finite number"
            )
        values[:, i] = numbers.to_numpy(np.float64)

    unknown = ~cells["species"].isin(list(LABELS))
    if unknown.any():
        line = int(unknown.idxmax())
        raise IrisDataError(
            f"{source}, line {line}, column 'species': {cells.at[line, 'species']!r} is not one of "
            f"{', '.join(sorted(LABELS))}"
        )
    codes = pd.Categorical(cells["species"], dtype=_SPECIES_DTYPE).codes
    return values, codes.astype(np.int8)


def _check_field_counts(text: str, first_line: int, source: str) -> None:
    """Raise naming the first line (a blank one aside) whose field count is not five: pandas, given five
    names, reads a row of four as one whose species is missing and a row of six as one whose first field
    is an index, which would misname the fault."""
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    line = first_line  # where the next row starts
    try:
        for row in reader:
            if len(row) != len(COLUMNS) and any(cell.strip() for cell in row):
                raise IrisDataError(
                    f"{source}, line {line}: {len(row)} {'field' if len(row) == 1 else 'fields'}, expected "
                    f"{len(COLUMNS)} ({', '.join(COLUMNS)})"
                )
            line = first_line + reader.line_num
    except csv.Error:
        return  # text pandas' parser reports on its own


def _first_true(mask: pd.DataFrame) -> tuple[int, str]:
    stacked = mask.stack()
    line, column = stacked[stacked].index[0]
    return int(line), str(column)


def schema_problems(frame: pd.DataFrame) -> list[str]:
    """What is wrong with an already-parsed Iris table (used by the asset check); empty when fine.
    Column by column: no table-sized temporaries."""
    problems = []
    if list(frame.columns) != COLUMNS:
        problems.append(f"columns are {list(frame.columns)}, expected {COLUMNS}")
        return problems
    for column in FEATURES:
        if not pd.api.types.is_float_dtype(frame[column]):
            problems.append(f"column '{column}' has dtype {frame[column].dtype}, expected float")
    for column in COLUMNS:
        count = int(frame[column].isna().sum())
        if count:
            problems.append(f"column '{column}' has {count} null values")
    counts = frame["species"].value_counts()
    present = set(counts.index[counts > 0])
    if present != set(LABELS):
        problems.append(f"species present: {sorted(present)}; expected all three of {sorted(LABELS)}")
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


def split(frame: pd.DataFrame, seed: int, train_fraction: float = TRAIN_FRACTION) -> IrisSplit:
    """Shuffle with a seeded generator and cut at ``int(train_fraction * rows)``, as the tutorial does.

    The shuffle is the one ``encode(frame).sample(frac=1, random_state=RandomState(seed))`` makes (the
    same draw), but each side's rows are taken from the table once: no encoded or shuffled copy of the
    whole table is made."""
    cut, order = _cut_and_shuffle(len(frame), seed, train_fraction)
    codes = _label_codes(frame["species"])
    train_rows, test_rows = order[:cut], order[cut:]
    index = frame.index
    train = pd.DataFrame(_rows(frame, train_rows), columns=FEATURES, index=index[train_rows], copy=False)
    train.insert(0, "species", codes[train_rows])
    test = _rows(frame, test_rows)
    test_features = pd.DataFrame(test, columns=FEATURES, index=index[test_rows], copy=False)
    test_labels = pd.Series(codes[test_rows], index=index[test_rows], name="true_label")
    return IrisSplit(train=train, test_features=test_features, test_labels=test_labels)


def _cut_and_shuffle(rows: int, seed: int, train_fraction: float) -> tuple[int, np.ndarray]:
    """Where the train side ends, and the seeded shuffle of ``rows`` row positions: what
    ``DataFrame.sample(frac=1, random_state=RandomState(seed))`` draws (``RandomState.choice(rows, rows,
    replace=False)``), so that :func:`split` and :func:`split_stored` cut the same rows the same way."""
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be between 0 and 1, got {train_fraction}")
    cut = int(train_fraction * rows)
    if cut == 0 or cut == rows:
        raise IrisDataError(
            f"{rows} rows cannot be split {train_fraction:.0%}/{1 - train_fraction:.0%}: "
            "both sides need at least one row"
        )
    return cut, np.random.RandomState(seed).choice(rows, size=rows, replace=False).astype(np.intp)


def _rows(frame: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """The features of ``rows`` (positions) as a (rows, 4) float64 array, gathered a column at a time
    (no copy of the whole table's features) into the column-major layout a DataFrame keeps as is."""
    out = np.empty((len(FEATURES), len(rows)), np.float64)
    for i, column in enumerate(FEATURES):
        np.take(frame[column].to_numpy(np.float64), rows, out=out[i])
    return out.T


def split_stored(
    open_table: Callable[[], AbstractContextManager[IO[bytes]]],
    seed: int,
    train_fraction: float = TRAIN_FRACTION,
) -> IrisSplit:
    """:func:`split` of the table as the IO manager stores it (CSV, a header, the five columns), without
    holding the table: one read counts its rows, so that the same shuffle can be drawn; a second read
    parses it a chunk of rows at a time, each row going straight to its place in its side. Memory: the
    two sides and the shuffle, not the table as well. ``open_table()`` opens the stored object."""
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be between 0 and 1, got {train_fraction}")
    with open_table() as fh:
        rows = _data_lines(fh)
    cut, order = _cut_and_shuffle(rows, seed, train_fraction)
    place = np.empty(rows, np.int32)  # row i of the table is row place[i] of the shuffled table
    for start in range(0, rows, PARSE_ROWS):
        place[order[start : start + PARSE_ROWS]] = np.arange(start, min(rows, start + PARSE_ROWS))
    train, test = np.empty((len(FEATURES), cut)), np.empty((len(FEATURES), rows - cut))
    train_codes, test_codes = np.empty(cut, np.int8), np.empty(rows - cut, np.int8)
    start = 0
    with open_table() as fh:
        for part in pd.read_csv(fh, chunksize=PARSE_ROWS, dtype={column: np.float64 for column in FEATURES}):
            end = start + len(part)
            if list(part.columns) != COLUMNS or end > rows:
                raise IrisDataError(f"the stored table is not the five columns {COLUMNS}, {rows} rows")
            values, codes, goes = part[FEATURES].to_numpy().T, _label_codes(part["species"]), place[start:end]
            to_train = goes < cut
            train[:, goes[to_train]] = values[:, to_train]
            test[:, goes[~to_train] - cut] = values[:, ~to_train]
            train_codes[goes[to_train]] = codes[to_train]
            test_codes[goes[~to_train] - cut] = codes[~to_train]
            start = end
    if start != rows:
        raise IrisDataError(f"the stored table has {start} rows, but {rows} lines")
    del place, part
    release_free_memory()  # the chunks'
    train_index, test_index = pd.Index(order[:cut], copy=False), pd.Index(order[cut:], copy=False)
    columns = {"species": train_codes} | {column: train[i] for i, column in enumerate(FEATURES)}
    train_frame = pd.DataFrame(columns, index=train_index, copy=False)  # (no copy of any column)
    return IrisSplit(
        train=train_frame,
        test_features=pd.DataFrame(test.T, columns=FEATURES, index=test_index, copy=False),
        test_labels=pd.Series(test_codes, index=test_index, name="true_label", copy=False),
    )


def _data_lines(fh: IO[bytes]) -> int:
    """The data rows of a CSV written with a header and no blank lines: its lines but the first."""
    lines, last = 0, b"\n"
    for block in iter(lambda: fh.read(1 << 20), b""):
        lines += block.count(b"\n")
        last = block[-1:]
    return max(0, lines + (last != b"\n") - 1)


def _label_codes(species: pd.Series) -> np.ndarray:
    """The tutorial's label of each row's species (``LABELS``), as an int8 array."""
    codes = pd.Categorical(species, categories=list(LABELS)).codes  # categories in label order: 0, 1, 2
    if (codes < 0).any():
        unknown = species[codes < 0].iloc[0]
        raise IrisDataError(f"species {unknown!r} is not one of {', '.join(sorted(LABELS))}")
    return codes.astype(np.int8)


def to_sagemaker_csv(frame: pd.DataFrame) -> bytes:
    """CSV as SageMaker's built-in algorithms read it: no header, no index."""
    return frame.to_csv(header=False, index=False).encode("utf-8")
