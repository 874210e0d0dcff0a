"""RecordIO-protobuf (``application/x-recordio-protobuf``): k-NN's default data format.

A stream is a sequence of frames. Each frame is a little-endian uint32 magic number ``0xced7230a``, a
little-endian uint32 whose low 29 bits give the record's length (the high 3 bits mark the parts of a
multi-part record, which SageMaker's writers never produce, so they are refused), the record's bytes, and
zero padding to a multiple of 4 bytes. Each record is SageMaker's ``aialgs.data.Record`` protobuf message
(``record.proto`` beside this module):

* ``features["values"]``: the data point, a dense Float32, Float64 or Int32 tensor of ``feature_dim``
  values (a sparse tensor, one with ``keys``, is refused with a message saying so);
* ``label["values"]``: the class or regression target, one value (training and test channels);
* a response record holds ``label["predicted_label"]`` and, when verbose, ``label["distances"]`` and
  ``label["labels"]`` (float32 tensors).

The messages come from ``record.desc``, the descriptor set ``make proto`` generates from ``record.proto``
with protoc, loaded into a private descriptor pool: the SageMaker Python SDK registers its own
``aialgs.data`` messages in protobuf's default pool, and a second registration there would make importing
both fail. All encoding and parsing is protobuf's; this module only frames records and maps them to
numpy arrays.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator, Sequence
from importlib import resources
from typing import IO, Any, NamedTuple

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from .errors import FormatError

RECORDIO = "application/x-recordio-protobuf"
MAGIC = 0xCED7230A
_HEADER = struct.Struct("<II")
_LENGTH_MASK = (1 << 29) - 1
_READ_CHUNK = 1 << 20
DECODE_BATCH_RECORDS = 65536  # records turned into one array at a time when streaming an object
_TENSORS = ("float32_tensor", "float64_tensor", "int32_tensor")


def _record_class() -> Any:
    data = resources.files(__package__).joinpath("record.desc").read_bytes()
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(data).file:
        pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("aialgs.data.Record"))


Record = _record_class()


# ---- framing ----------------------------------------------------------------------------------------


def frame(record: bytes) -> bytes:
    """One RecordIO frame around a serialized record."""
    return _HEADER.pack(MAGIC, len(record)) + record + b"\0" * (-len(record) % 4)


def framed_size(length: int) -> int:
    """The bytes a record of ``length`` bytes takes in a stream: header, record, padding."""
    return _HEADER.size + length + (-length % 4)


class Frame(NamedTuple):
    number: int  # 1-based position of the record in its object
    offset: int  # byte offset of the frame's header in its object
    data: bytes  # the serialized record


def iter_frames(fh: IO[bytes], source: str, first_number: int = 1) -> Iterator[Frame]:
    """The records of a RecordIO stream, read in chunks of about a megabyte.

    FormatError names the record, its byte offset and what is wrong: a wrong magic number, a multi-part
    record, or a stream that ends inside a frame. The last frame's padding may be missing.
    """
    header = _HEADER.size
    unpack = _HEADER.unpack_from
    buffer = b""
    base = 0  # object offset of buffer[0]
    number = first_number
    eof = False
    while True:
        pos = 0
        size = len(buffer)
        while size - pos >= header:  # every whole frame already in the buffer
            magic, word = unpack(buffer, pos)
            if magic != MAGIC or word >> 29:
                _refuse_header(magic, word, number, source, base + pos)
            length = word & _LENGTH_MASK
            end = pos + header + length
            if end > size:
                break
            yield Frame(number, base + pos, buffer[pos + header : end])
            number += 1
            pos = end + (-length % 4)
        if eof:
            if pos < size:
                _refuse_truncated(buffer, pos, number, source, base)
            return
        need = header if size - pos < header else header + (unpack(buffer, pos)[1] & _LENGTH_MASK)
        data = fh.read(max(_READ_CHUNK, need))
        eof = not data
        base += min(pos, size)
        buffer = buffer[pos:] + data


def _refuse_header(magic: int, word: int, number: int, source: str, offset: int) -> None:
    where = f"record {number} of {source} (byte {offset})"
    if magic != MAGIC:
        raise FormatError(
            f"{where} does not start with the RecordIO magic number 0x{MAGIC:08x} (found 0x{magic:08x}): "
            "the data is not RecordIO-protobuf (check the ContentType), or an earlier record's length "
            "is wrong"
        )
    raise FormatError(f"{where} is part of a multi-part RecordIO record, which k-NN does not read")


def _refuse_truncated(buffer: bytes, pos: int, number: int, source: str, base: int) -> None:
    where = f"record {number} of {source} (byte {base + pos})"
    left = len(buffer) - pos
    if left < _HEADER.size:
        raise FormatError(
            f"{where} is truncated: the data ends {left} bytes into a {_HEADER.size}-byte RecordIO header"
        )
    length = _HEADER.unpack_from(buffer, pos)[1] & _LENGTH_MASK
    raise FormatError(
        f"{where} is truncated: its header announces {length} bytes, but only {left - _HEADER.size} follow"
    )


# ---- records to arrays ------------------------------------------------------------------------------


def decode_records(
    frames: Sequence[Frame], feature_dim: int, source: str, labelled: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """The (n, feature_dim) float64 features of consecutive records, and their (n,) labels when
    ``labelled``. FormatError names the record and what is wrong with it.

    This loop is the cost of reading RecordIO (a few microseconds a record, all of it protobuf's own
    parsing and field access), so it touches each record as little as it can: one ``ListFields`` per
    tensor finds its values and tells a dense tensor from anything else; anything else takes the slow
    path that explains what is wrong.
    """
    values: list[float] = []
    labels: list[float] = []
    parse = Record.FromString
    for item in frames:
        try:
            record = parse(item.data)
        except DecodeError as err:
            raise FormatError(
                f"record {item.number} of {source} (byte {item.offset}) is not an aialgs.data.Record "
                f"protobuf message: {err}"
            ) from None
        features = _dense_values(record.features.get("values"))
        if features is None:
            features = _checked_values(record.features, "features", item, source)
        if len(features) != feature_dim:
            raise FormatError(
                f"record {item.number} of {source} has {len(features)} features, expected "
                f"feature_dim={feature_dim}"
            )
        values.extend(features)
        if labelled:
            label = _dense_values(record.label.get("values"))
            if label is None:
                label = _checked_values(record.label, "label", item, source)
            if len(label) != 1:
                raise FormatError(
                    f"record {item.number} of {source} has {len(label)} values in label['values'], "
                    "expected one"
                )
            labels.extend(label)
    array = np.array(values, dtype=np.float64).reshape(len(frames), feature_dim)
    target = np.array(labels, dtype=np.float64) if labelled else None
    finite = np.isfinite(array).all(axis=1)
    if target is not None:
        finite &= np.isfinite(target)
    if not finite.all():
        bad = frames[int(np.nonzero(~finite)[0][0])]
        raise FormatError(
            f"record {bad.number} of {source} holds a value that is not a finite number (NaN or infinity)"
        )
    return array, target


def _dense_values(value: Any) -> Any:
    """The values of a Value holding a dense tensor with only ``values`` set; None for anything else."""
    if value is None:
        return None
    kind = value.WhichOneof("value")
    if kind not in _TENSORS:
        return None
    fields = getattr(value, kind).ListFields()
    return fields[0][1] if len(fields) == 1 and fields[0][0].name == "values" else None


def decode_features(payload: bytes, feature_dim: int, source: str, first_number: int = 1) -> np.ndarray:
    """The (n, feature_dim) float32 features of a RecordIO-protobuf request body."""
    frames = list(iter_frames(io.BytesIO(payload), source, first_number))
    return decode_records(frames, feature_dim, source, labelled=False)[0].astype(np.float32)


def labelled_batches(
    fh: IO[bytes], source: str, feature_dim: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(labels, features) float32 arrays of up to :data:`DECODE_BATCH_RECORDS` records each."""
    batch: list[Frame] = []
    for item in iter_frames(fh, source):
        batch.append(item)
        if len(batch) >= DECODE_BATCH_RECORDS:
            yield _labelled(batch, feature_dim, source)
            batch = []
    if batch:
        yield _labelled(batch, feature_dim, source)


def _labelled(batch: list[Frame], feature_dim: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    features, labels = decode_records(batch, feature_dim, source, labelled=True)
    assert labels is not None
    return labels.astype(np.float32), features.astype(np.float32)


def _checked_values(entries: Any, member: str, item: Frame, source: str) -> Any:
    """The slow path: the values of ``member['values']`` if usable after all (a dense tensor that also
    states its shape, or an empty one); otherwise FormatError saying what it holds."""
    where = f"record {item.number} of {source}"
    value = entries.get("values")
    if value is None:
        present = ", ".join(repr(key) for key in entries) or "none"
        raise FormatError(f"{where} has no {member}['values'] (its {member} keys: {present})")
    kind = value.WhichOneof("value")
    if kind not in _TENSORS:
        raise FormatError(
            f"{where}: {member}['values'] holds {kind or 'nothing'}; k-NN reads a Float32, Float64 or "
            "Int32 tensor"
        )
    tensor = getattr(value, kind)
    if len(tensor.keys):
        raise FormatError(
            f"{where}: {member}['values'] is a sparse tensor (keys are set); the embedded engine reads "
            "dense tensors only: write every value, without keys"
        )
    if len(tensor.shape) and int(np.prod(tensor.shape)) != len(tensor.values):
        raise FormatError(
            f"{where}: {member}['values'] has shape {list(tensor.shape)} but {len(tensor.values)} values"
        )
    return tensor.values


# ---- arrays to records ------------------------------------------------------------------------------


def encode_dense(features: np.ndarray, labels: np.ndarray | None = None) -> bytes:
    """RecordIO-protobuf of dense rows (float32 tensors; float64 ones for float64 input), with labels."""
    features = np.asarray(features)
    tensor = "float64_tensor" if features.dtype == np.float64 else "float32_tensor"
    out = []
    for i, row in enumerate(features.tolist()):
        record = Record()
        getattr(record.features["values"], tensor).values.extend(row)
        if labels is not None:
            getattr(record.label["values"], tensor).values.append(float(labels[i]))
        out.append(frame(record.SerializeToString()))
    return b"".join(out)


def encode_predictions(
    predicted: np.ndarray, distances: np.ndarray, labels: np.ndarray, verbose: bool
) -> bytes:
    """One response record per row: ``label["predicted_label"]``, plus ``distances`` and ``labels``
    (the neighbours', nearest first) when verbose. Without verbose a record depends only on the label,
    so each distinct label is encoded once."""
    if not len(predicted):
        return b""
    if verbose:
        return b"".join(
            _prediction_frame(predicted[i], distances[i], labels[i]) for i in range(len(predicted))
        )
    distinct, inverse = np.unique(predicted, return_inverse=True)
    table = np.array([_prediction_frame(value, None, None) for value in distinct], dtype=object)
    return b"".join(table[inverse.ravel()].tolist())


def _prediction_frame(predicted: Any, distances: np.ndarray | None, labels: np.ndarray | None) -> bytes:
    record = Record()
    record.label["predicted_label"].float32_tensor.values.append(float(predicted))
    if distances is not None and labels is not None:
        record.label["distances"].float32_tensor.values.extend(np.asarray(distances, np.float32).tolist())
        record.label["labels"].float32_tensor.values.extend(np.asarray(labels, np.float32).tolist())
    return frame(record.SerializeToString())


def read_predictions(body: bytes, source: str = "the response") -> list[dict[str, list[float]]]:
    """The label tensors of response records, as ``{"predicted_label": [2.0], ...}`` per record."""
    out = []
    for item in iter_frames(io.BytesIO(body), source):
        try:
            record = Record.FromString(item.data)
        except DecodeError as err:
            message = f"record {item.number} of {source} is not an aialgs.data.Record: {err}"
            raise FormatError(message) from None
        tensors = {key: getattr(value, value.WhichOneof("value")) for key, value in record.label.items()}
        out.append({key: list(tensor.values) for key, tensor in tensors.items()})
    return out
