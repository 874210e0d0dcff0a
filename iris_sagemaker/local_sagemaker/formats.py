"""Data formats of the k-NN algorithm: CSV / JSON / JSON lines in, JSON / JSON lines out, mini-batches.

Requests (SageMaker's k-NN request formats):

* ``text/csv``: one record per line, features only (``label_size`` 0, the default);
* ``application/json``: ``{"instances": [{"features": [...]}, {"data": {"features": {"values": [...]}}}]}``
  (a payload may hold several such documents one after another, as batch transform joins records);
* ``application/jsonlines``: one instance object per line;
* ``application/x-recordio-protobuf``: RecordIO-protobuf records (:mod:`.recordio`).

CSV is parsed a mini-batch at a time by pandas' C parser; anything it does not read cleanly (a bad cell,
a wrong column count, a non-finite value) is parsed again by the exact row-by-row parser, whose error
names the row and column.

Responses: ``application/json`` (the default) gives ``{"predictions": [{"predicted_label": 2.0}, ...]}``;
``application/jsonlines`` gives one ``{"predicted_label": 2.0}`` per line (each line ends with a
newline); adding ``; verbose=true`` adds ``distances`` (nearest first: ascending squared L2 distances
for L2; descending similarities for INNER_PRODUCT and COSINE, as faiss reports them) and ``labels``
(the neighbours' labels in the same order). ``application/x-recordio-protobuf`` gives one record per row
with the same members as float32 tensors.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO

import numpy as np
import pandas as pd

from . import recordio
from .errors import FormatError
from .recordio import RECORDIO

CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
REQUEST_TYPES = (CSV, JSON, JSONLINES, RECORDIO)
RESPONSE_TYPES = (JSON, JSONLINES, RECORDIO)
_READ_CHUNK = 1 << 20
STREAM_CHUNK_BYTES = 4 << 20  # mini-batch size in bytes when no payload limit applies
SMALL_CSV_BYTES = 4096  # below this, the exact row parser is faster than pandas' C parser


class ColumnCountError(FormatError):
    def __init__(self, row: int, source: str, found: int, expected: int) -> None:
        super().__init__(f"row {row} of {source} has {found} columns, expected {expected}")
        self.row = row
        self.source = source
        self.found = found
        self.expected = expected


@dataclass(frozen=True)
class MediaType:
    media: str
    params: dict[str, str]


def parse_media_type(value: str | None, default: str) -> MediaType:
    """``"application/json; verbose=true"`` -> ``MediaType("application/json", {"verbose": "true"})``."""
    parts = [p.strip() for p in (value or default).split(";")]
    params = {}
    for part in parts[1:]:
        if part:
            key, _, val = part.partition("=")
            params[key.strip().lower()] = val.strip().strip('"')
    return MediaType(parts[0].lower() or default, params)


# ---- lines and CSV ---------------------------------------------------------------------------------


def iter_lines(fh: IO[bytes]) -> Iterator[bytes]:
    """Lines of a binary stream without their line endings, read in bounded chunks."""
    pending = b""
    while True:
        chunk = fh.read(_READ_CHUNK)
        if not chunk:
            break
        pending += chunk
        lines = pending.split(b"\n")
        pending = lines.pop()
        for line in lines:
            yield line.rstrip(b"\r")
    if pending:
        yield pending.rstrip(b"\r")


def numbered_batches(lines: Iterable[bytes], batch_rows: int) -> Iterator[tuple[int, list[bytes]]]:
    """Group non-blank lines into batches of ``batch_rows``; yields (line number of the first, lines).

    Line numbers count every line of the object (1-based), blank ones included, so messages point at
    the line a user sees in an editor; rows are numbered the same way.
    """
    batch: list[bytes] = []
    numbers: list[int] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        batch.append(line)
        numbers.append(number)
        if len(batch) >= batch_rows:
            yield from _emit(numbers, batch)
            batch, numbers = [], []
    if batch:
        yield from _emit(numbers, batch)


def _emit(numbers: list[int], batch: list[bytes]) -> Iterator[tuple[int, list[bytes]]]:
    # Split at gaps so that row i of a batch is line first + i (blank lines break the numbering).
    start = 0
    for i in range(1, len(numbers) + 1):
        if i == len(numbers) or numbers[i] != numbers[i - 1] + 1:
            yield numbers[start], batch[start:i]
            start = i


def parse_csv_rows(lines: Sequence[bytes], first_row: int, source: str, columns: int) -> np.ndarray:
    """Parse CSV lines of ``columns`` numbers each into a float64 array, naming the first bad row."""
    rows = []
    for offset, line in enumerate(lines):
        try:
            cells = line.decode("utf-8").split(",")
        except UnicodeDecodeError:
            raise FormatError(f"row {first_row + offset} of {source} is not valid UTF-8 text") from None
        if len(cells) != columns:
            raise ColumnCountError(first_row + offset, source, len(cells), columns)
        rows.append(cells)
    try:
        values = np.array(rows, dtype=np.float64)
    except ValueError:
        _raise_first_bad_cell(rows, first_row, source)
        raise
    if not np.isfinite(values).all():
        bad = int(np.nonzero(~np.isfinite(values).all(axis=1))[0][0])
        raise FormatError(f"row {first_row + bad} of {source} holds a value that is not a finite number")
    return values.reshape(len(rows), columns)


def parse_csv(payload: bytes, columns: int, source: str, first_line: int = 1) -> np.ndarray:
    """The (n, columns) float32 values of CSV text (whole lines; blank lines are not rows).

    ``first_line`` is the line of ``source`` where ``payload`` starts, so errors name real lines.
    """
    if not payload.strip():
        return np.empty((0, columns), np.float32)
    if len(payload) <= SMALL_CSV_BYTES:  # a real-time request of a few rows: pandas' set-up costs more
        return _parse_csv_exactly(payload, columns, source, first_line)
    try:
        frame = pd.read_csv(
            io.BytesIO(payload), header=None, dtype=np.float32, engine="c", skip_blank_lines=True
        )
        values = frame.to_numpy(np.float32)
        if values.shape[1] == columns and np.isfinite(values).all():
            return values
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        pass
    return _parse_csv_exactly(payload, columns, source, first_line)


def _parse_csv_exactly(payload: bytes, columns: int, source: str, first_line: int) -> np.ndarray:
    lines = [line.rstrip(b"\r") for line in payload.split(b"\n")]
    parts = [
        parse_csv_rows(rows, first + first_line - 1, source, columns)
        for first, rows in numbered_batches(lines, batch_rows=len(lines))
    ]
    values = np.concatenate(parts) if parts else np.empty((0, columns))
    return values.astype(np.float32)


def line_chunks(fh: IO[bytes], max_bytes: int) -> Iterator[Payload]:
    """Whole lines packed greedily into chunks of at most ``max_bytes`` bytes (the newline ending a
    chunk is dropped), read in bounded pieces. ``max_bytes`` 0 means no limit: chunks of about
    :data:`STREAM_CHUNK_BYTES` (longer lines make a chunk of their own).

    Each chunk is a :class:`Payload` whose ``first_line`` is the 1-based line where it starts. Chunks
    holding only blank lines are not yielded.
    """
    limit = max_bytes or STREAM_CHUNK_BYTES
    buffer = b""
    line = 1
    eof = False
    while True:
        while len(buffer) <= limit and not eof:
            data = fh.read(limit + 1 - len(buffer))
            if data:
                buffer += data
            else:
                eof = True
        if not buffer:
            return
        if eof and len(buffer) <= limit:
            chunk, buffer = (buffer[:-1] if buffer.endswith(b"\n") else buffer), b""
        else:
            cut = buffer.rfind(b"\n", 0, limit + 1)
            if cut < 0:
                if max_bytes:
                    raise FormatError(f"line {line} is larger than MaxPayloadInMB ({max_bytes} bytes)")
                cut = buffer.find(b"\n", limit + 1)
                while cut < 0 and not eof:  # no limit: read on to the end of this long line
                    data = fh.read(limit)
                    eof = not data
                    buffer += data
                    cut = buffer.find(b"\n", limit + 1)
                if cut < 0:
                    cut = len(buffer)
            chunk, buffer = buffer[:cut], buffer[cut + 1 :]
        if chunk.strip():
            yield Payload(chunk, line)
        line += chunk.count(b"\n") + 1


def _raise_first_bad_cell(rows: list[list[str]], first_row: int, source: str) -> None:
    for offset, cells in enumerate(rows):
        for column, cell in enumerate(cells, start=1):
            try:
                float(cell)
            except ValueError:
                raise FormatError(
                    f"row {first_row + offset} of {source}: column {column} value {cell.strip()!r} "
                    "is not a number"
                ) from None


# ---- inference requests ---------------------------------------------------------------------------


def decode_request(
    payload: bytes, content_type: MediaType, feature_dim: int, source: str, first_line: int = 1
) -> np.ndarray:
    """The (n, feature_dim) float32 features of one request payload.

    ``first_line`` is the line of ``source`` where the payload starts (for RecordIO-protobuf, its first
    record's number), so messages name real lines and records.
    """
    if content_type.media == CSV:
        label_size = content_type.params.get("label_size", "0")
        if label_size != "0":
            raise FormatError(f"text/csv requests must have label_size=0 (features only), got {label_size}")
        return parse_csv(payload, feature_dim, source, first_line)
    if content_type.media == JSON:
        where = f"the JSON request starting at line {first_line} of {source}"
        instances = [inst for doc in _json_documents(payload, where) for inst in _instances(doc, where)]
        return _features_array(instances, feature_dim, lambda i: f"record {i + 1} of {where}")
    if content_type.media == JSONLINES:
        numbered = [
            (first_line + offset, line) for offset, line in enumerate(payload.split(b"\n")) if line.strip()
        ]
        instances = [_load_json(line, f"line {number} of {source}") for number, line in numbered]
        return _features_array(instances, feature_dim, lambda i: f"line {numbered[i][0]} of {source}")
    if content_type.media == RECORDIO:
        return recordio.decode_features(payload, feature_dim, source, first_line)
    raise FormatError(
        f"content type {content_type.media!r} is not supported by the embedded engine; "
        f"use one of {', '.join(REQUEST_TYPES)}"
    )


def _json_documents(payload: bytes, source: str) -> Iterator[object]:
    text = _decode(payload, source)
    decoder = json.JSONDecoder()
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return
        try:
            doc, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            raise FormatError(f"{source}: invalid JSON: {err}") from None
        yield doc


def _instances(doc: object, source: str) -> list[object]:
    if isinstance(doc, dict) and "instances" in doc:
        instances = doc["instances"]
        if not isinstance(instances, list):
            raise FormatError(f'{source}: "instances" must be a list')
        return instances
    return [doc]


def _load_json(line: bytes, where: str) -> object:
    try:
        return json.loads(_decode(line, where))
    except json.JSONDecodeError as err:
        raise FormatError(f"{where}: invalid JSON: {err}") from None


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{source} is not valid UTF-8 text") from None


def _features_array(instances: list[object], feature_dim: int, where_of: Callable[[int], str]) -> np.ndarray:
    out = np.empty((len(instances), feature_dim), dtype=np.float32)
    for i, instance in enumerate(instances):
        features = _features_of(instance)
        where = where_of(i)
        if features is None:
            raise FormatError(
                f'{where} has no features: expected {{"features": [...]}} or '
                '{"data": {"features": {"values": [...]}}}'
            )
        if len(features) != feature_dim:
            raise FormatError(f"{where} has {len(features)} features, expected feature_dim={feature_dim}")
        try:
            row = np.array(features, dtype=np.float64)
        except (TypeError, ValueError):
            raise FormatError(f"{where}: features must all be numbers") from None
        if not np.isfinite(row).all():
            raise FormatError(f"{where}: features must be finite numbers")
        out[i] = row
    return out


def _features_of(instance: object) -> list[object] | None:
    if not isinstance(instance, dict):
        return None
    features = instance.get("features")
    if features is None and isinstance(instance.get("data"), dict):
        inner = instance["data"].get("features")
        features = inner.get("values") if isinstance(inner, dict) else None
    return features if isinstance(features, list) else None


# ---- inference responses --------------------------------------------------------------------------


@dataclass(frozen=True)
class ResponseFormat:
    media: str
    verbose: bool


def response_format(accept: str | None) -> ResponseFormat:
    """Parse an Accept value (default ``application/json``); FormatError for unsupported ones."""
    media = parse_media_type(accept, JSON)
    if media.media not in RESPONSE_TYPES:
        raise FormatError(
            f"accept type {media.media!r} is not supported by the k-NN algorithm; use "
            f"{' or '.join(RESPONSE_TYPES)} (optionally with '; verbose=true')"
        )
    verbose = media.params.get("verbose", "false").lower()
    if verbose not in ("true", "false"):
        raise FormatError(f"verbose must be true or false, got {verbose!r}")
    return ResponseFormat(media.media, verbose == "true")


def encode_response(
    fmt: ResponseFormat, predicted: np.ndarray, distances: np.ndarray, labels: np.ndarray
) -> bytes:
    """One response body for the rows of one request."""
    if fmt.media == RECORDIO:
        return recordio.encode_predictions(predicted, distances, labels, fmt.verbose)
    entries = encode_entries(fmt, predicted, distances, labels)
    return (document_open(fmt) + entries + document_close(fmt)).encode("utf-8")


def document_open(fmt: ResponseFormat) -> str:
    return '{"predictions": [' if fmt.media == JSON else ""


def document_close(fmt: ResponseFormat) -> str:
    return "]}" if fmt.media == JSON else ""


def entries_separator(fmt: ResponseFormat) -> str:
    """What joins the entries of two consecutive row blocks inside one response document."""
    return ", " if fmt.media == JSON else ""


def encode_entries(
    fmt: ResponseFormat, predicted: np.ndarray, distances: np.ndarray, labels: np.ndarray
) -> str:
    """The rows' entries: JSON objects joined by ``", "`` (JSON), or lines ending in a newline (JSON
    lines). Without ``verbose`` an entry depends only on the label, so each distinct label is
    formatted once and the entries are gathered by numpy."""
    if not len(predicted):
        return ""
    if fmt.verbose:
        texts = [
            json.dumps(_entry(True, predicted[i], distances[i], labels[i])) for i in range(len(predicted))
        ]
    else:
        distinct, inverse = np.unique(predicted, return_inverse=True)
        table = np.array(
            [f'{{"predicted_label": {json.dumps(short_float(value))}}}' for value in distinct], dtype=object
        )
        texts = table[inverse.ravel()].tolist()
    if fmt.media == JSON:
        return ", ".join(texts)
    return "\n".join(texts) + "\n"


def _entry(verbose: bool, predicted: np.floating, distances: np.ndarray, labels: np.ndarray) -> dict:
    entry: dict[str, object] = {"predicted_label": short_float(predicted)}
    if verbose:
        entry["distances"] = [short_float(d) for d in distances]
        entry["labels"] = [short_float(v) for v in labels]
    return entry


def short_float(value: np.floating | float) -> float:
    """A float32 value as the shortest decimal that round-trips (2.0, 0.14 rather than 0.140000001)."""
    return float(str(np.float32(value)))


# ---- batch transform payloads ---------------------------------------------------------------------


@dataclass(frozen=True)
class Payload:
    """One request of a batch transform: its bytes and the line (or record) it starts at; a RecordIO
    payload carries its records already framed apart instead of bytes (the blocks that hold them)."""

    data: bytes
    first_line: int
    records: tuple[recordio.FrameBlock, ...] | None = None


def line_payloads(lines: Iterable[bytes], single_record: bool, max_bytes: int) -> Iterator[Payload]:
    """Records (lines) packed into payloads of at most ``max_bytes`` bytes (0: no limit).

    Blank lines are not records: they never start a payload (so SingleRecord skips them), and inside a
    multi-record payload they are kept only so that line numbers in error messages stay exact.
    """
    batch: list[bytes] = []
    size = 0
    first = 0
    for number, line in enumerate(lines, start=1):
        blank = not line.strip()
        if blank and not batch:
            continue
        if max_bytes and len(line) > max_bytes:
            raise FormatError(f"line {number} is larger than MaxPayloadInMB ({max_bytes} bytes)")
        full = single_record or (max_bytes and size + 1 + len(line) > max_bytes)
        if batch and not blank and full:
            yield Payload(b"\n".join(batch), first)
            batch, size = [], 0
        if blank and (single_record or (max_bytes and size + 1 > max_bytes)):
            continue
        if not batch:
            first = number
        size += len(line) + (1 if batch else 0)
        batch.append(line)
    if batch:
        yield Payload(b"\n".join(batch), first)


def whole_object_payload(fh: IO[bytes], max_bytes: int) -> Iterator[Payload]:
    """SplitType None: the whole object is one request, which must fit in ``max_bytes`` (0: no limit)."""
    data = fh.read(max_bytes + 1) if max_bytes else fh.read()
    if max_bytes and len(data) > max_bytes:
        raise FormatError(
            f"the object is larger than MaxPayloadInMB ({max_bytes} bytes) and SplitType is None; "
            "use SplitType Line or a larger MaxPayloadInMB"
        )
    if data.strip():
        yield Payload(data, 1)
