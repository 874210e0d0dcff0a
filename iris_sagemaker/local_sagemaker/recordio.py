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

Reading is vectorised, because per-record Python (a parse call and a few field accesses, microseconds
each) would cost 25x the CSV parser. Frames are located a run at a time: records of equal length (what
every writer of dense tensors produces) sit at a fixed stride, so numpy checks a whole run's headers at
once. A block of records is then decoded by one protobuf parse: the records' bytes, concatenated, are
parsed as a single :data:`RecordView`, a message derived from ``Record`` (same field numbers) whose map
entries and tensor oneof are plain singular fields; protobuf merges repeated occurrences of a singular
message field and concatenates repeated ones, so one parse yields every record's values in one array.
That merge would hide a record that differs from the others, so the fast path first checks that every
record of the block has the same bytes as a template record (serialized by protobuf from the first
record's own structure: its tensor types, ``feature_dim`` values, one label) everywhere but in the
values' bytes; a block where any record differs, or whose first record is not a plain dense one, is
decoded record by record, which also names the record at fault and what is wrong with it.
"""

from __future__ import annotations

import functools
import io
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
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
BULK_RECORDS = 16  # from this many records a block is worth one bulk parse (fewer: record by record)
_TENSORS = ("float32_tensor", "float64_tensor", "int32_tensor")


def _record_class() -> Any:
    data = resources.files(__package__).joinpath("record.desc").read_bytes()
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(data).file:
        pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("aialgs.data.Record"))


def _record_view_class(record: Any) -> Any:
    """``RecordView``: ``Record`` with each map and the tensor oneof as plain singular fields (and the
    map keys and strings as repeated ones), so that parsing many records' bytes concatenated merges them
    into one message whose tensors hold every record's values in order. Built from ``Record``'s own
    descriptor (same field numbers), in a pool of its own."""
    fields = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto()
    record.DESCRIPTOR.file.CopyToProto(file)
    package, view = file.package, file.package + ".view"
    file.name, file.package = "record_view.proto", view
    tensors = [message for message in file.message_type if message.name not in ("Record", "Value")]
    for message in tensors:
        for field in message.field:
            if field.type_name:
                field.type_name = field.type_name.replace(f".{package}.", f".{view}.")
    value = descriptor_pb2.DescriptorProto(name="Value")  # the oneof's members, each on its own
    for member in (
        record.DESCRIPTOR.fields_by_name["features"].message_type.fields_by_name["value"].message_type.fields
    ):
        value.field.add(
            name=member.name,
            number=member.number,
            label=fields.LABEL_OPTIONAL,
            type=fields.TYPE_MESSAGE,
            type_name=f".{view}.{member.message_type.name}",
        )
    entry = descriptor_pb2.DescriptorProto(name="Entry")  # a map entry: key 1, value 2
    entry.field.add(name="key", number=1, label=fields.LABEL_REPEATED, type=fields.TYPE_STRING)
    entry.field.add(
        name="value",
        number=2,
        label=fields.LABEL_OPTIONAL,
        type=fields.TYPE_MESSAGE,
        type_name=f".{view}.Value",
    )
    merged = descriptor_pb2.DescriptorProto(name="RecordView")
    for field in record.DESCRIPTOR.fields:
        if field.message_type is not None:  # the two maps
            merged.field.add(
                name=field.name,
                number=field.number,
                label=fields.LABEL_OPTIONAL,
                type=fields.TYPE_MESSAGE,
                type_name=f".{view}.Entry",
            )
        else:
            merged.field.add(
                name=field.name, number=field.number, label=fields.LABEL_REPEATED, type=field.type
            )
    del file.message_type[:]
    file.message_type.extend([*tensors, value, entry, merged])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{view}.RecordView"))


Record = _record_class()
RecordView = _record_view_class(Record)


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


@dataclass(frozen=True, eq=False)
class FrameBlock:
    """Consecutive records of one object, located in a shared buffer: record ``i`` is number
    ``first_number + i`` of its object, its bytes are ``buffer[starts[i]:starts[i] + lengths[i]]``, and
    its frame's header is at byte ``base + starts[i] - 8`` of the object."""

    buffer: bytes
    starts: np.ndarray  # int64
    lengths: np.ndarray  # int64
    first_number: int
    base: int

    def __len__(self) -> int:
        return len(self.starts)

    def data(self, i: int) -> bytes:
        start = int(self.starts[i])
        return self.buffer[start : start + int(self.lengths[i])]

    def frames(self) -> list[Frame]:
        return [
            Frame(self.first_number + i, self.base + int(self.starts[i]) - _HEADER.size, self.data(i))
            for i in range(len(self))
        ]

    def part(self, begin: int, end: int) -> FrameBlock:
        """Records ``begin`` to ``end`` (exclusive) of this block."""
        return FrameBlock(
            self.buffer, self.starts[begin:end], self.lengths[begin:end], self.first_number + begin, self.base
        )

    def framed_sizes(self) -> np.ndarray:
        return _HEADER.size + self.lengths + (-self.lengths % 4)

    def matrix(self) -> np.ndarray:
        """The records' bytes as an (n, length) uint8 array; all records must be ``lengths[0]`` long.
        Records at a fixed stride (the usual case) are a view of the buffer, not a copy."""
        length = int(self.lengths[0])
        raw = np.frombuffer(self.buffer, np.uint8)
        steps = np.diff(self.starts)
        if not len(steps) or (steps == steps[0]).all():
            stride = int(steps[0]) if len(steps) else length
            return np.lib.stride_tricks.as_strided(
                raw[int(self.starts[0]) :], shape=(len(self), length), strides=(stride, 1), writeable=False
            )
        return raw[self.starts[:, None] + np.arange(length)]


def iter_frame_blocks(
    fh: IO[bytes], source: str, first_number: int = 1, max_records: int = DECODE_BATCH_RECORDS
) -> Iterator[FrameBlock]:
    """The records of a RecordIO stream in blocks of up to ``max_records``, read in chunks of about a
    megabyte.

    FormatError names the record, its byte offset and what is wrong: a wrong magic number, a multi-part
    record, or a stream that ends inside a frame. The last frame's padding may be missing.
    """
    buffer = b""
    pos = 0  # where the next frame's header starts in buffer (beyond its end: padding still to come)
    base = 0  # object offset of buffer[0]
    number = first_number
    eof = False
    while True:
        starts, lengths, pos = _locate(buffer, pos, number, source, base, max_records)
        if len(starts):
            yield FrameBlock(buffer, starts, lengths, number, base)
            number += len(starts)
            if len(starts) == max_records:
                continue
        size = len(buffer)
        if eof:
            if pos < size:
                _refuse_truncated(buffer, pos, number, source, base)
            return
        need = _HEADER.size if size - pos < _HEADER.size else _HEADER.size + _length_at(buffer, pos)
        data = fh.read(max(_READ_CHUNK, need))
        eof = not data
        buffer = buffer[pos:] + data if pos <= size else data[pos - size :]  # (skip the padding to come)
        base += pos
        pos = 0


def iter_frames(fh: IO[bytes], source: str, first_number: int = 1) -> Iterator[Frame]:
    """The records of a RecordIO stream one by one (see :func:`iter_frame_blocks`)."""
    for block in iter_frame_blocks(fh, source, first_number):
        yield from block.frames()


def _length_at(buffer: bytes, pos: int) -> int:
    return int(_HEADER.unpack_from(buffer, pos)[1] & _LENGTH_MASK)


def _locate(
    buffer: bytes, pos: int, number: int, source: str, base: int, max_records: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """(starts, lengths, next position) of up to ``max_records`` whole frames from ``pos`` on.

    Frames are taken a run at a time: when the next frame has the same header, numpy checks the
    headers at that stride to the end of the buffer, so equal-length records cost no Python each."""
    runs: list[tuple[int, int, int, int]] = []  # (first record's start, records, stride, length)
    count = 0
    size = len(buffer)
    unpack = _HEADER.unpack_from
    while count < max_records and size - pos >= _HEADER.size:
        magic, word = unpack(buffer, pos)
        if magic != MAGIC or word >> 29:
            _refuse_header(magic, word, number + count, source, base + pos)
        length = word & _LENGTH_MASK
        if pos + _HEADER.size + length > size:
            break
        stride = framed_size(length)
        run = 1
        following = pos + stride
        same_next = size - following >= _HEADER.size and unpack(buffer, following) == (MAGIC, word)
        if same_next and max_records - count > 1:
            fits = min((size - pos) // stride, max_records - count)
            heads = np.ndarray((fits, 2), "<u4", buffer, pos, (stride, 4))
            same = (heads[:, 0] == MAGIC) & (heads[:, 1] == word)
            run = fits if same.all() else int(same.argmin())
        runs.append((pos + _HEADER.size, run, stride, length))
        count += run
        pos += run * stride
    if not runs:
        return np.empty(0, np.int64), np.empty(0, np.int64), pos
    firsts, counts, strides, lengths = (np.array(column, np.int64) for column in zip(*runs, strict=True))
    if len(runs) == 1:
        starts = firsts[0] + strides[0] * np.arange(counts[0], dtype=np.int64)
    else:
        within = np.arange(count, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
        starts = np.repeat(firsts, counts) + within * np.repeat(strides, counts)
    return starts, np.repeat(lengths, counts), pos


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


def decode_block(
    block: FrameBlock, feature_dim: int, source: str, labelled: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """The (n, feature_dim) float32 features of a block's records, and their (n,) float32 labels when
    ``labelled``. One protobuf parse for a block of plain dense records; record by record otherwise
    (see the module's notes). FormatError names the record and what is wrong with it."""
    uniform = _decode_uniform(block, feature_dim, labelled) if len(block) >= BULK_RECORDS else None
    if uniform is None:
        features, labels = decode_records(block.frames(), feature_dim, source, labelled)
    else:
        features, labels = uniform
        finite = np.isfinite(features).all(axis=1)
        if labels is not None:
            finite &= np.isfinite(labels)
        if not finite.all():
            bad = block.first_number + int(np.argmin(finite))
            raise FormatError(
                f"record {bad} of {source} holds a value that is not a finite number (NaN or infinity)"
            )
    return features.astype(np.float32), None if labels is None else labels.astype(np.float32)


def decode_records(
    frames: Sequence[Frame], feature_dim: int, source: str, labelled: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """The (n, feature_dim) float64 features of consecutive records, and their (n,) labels when
    ``labelled``, parsed record by record. FormatError names the record and what is wrong with it.

    One ``ListFields`` per tensor finds its values and tells a dense tensor from anything else;
    anything else takes the slow path that explains what is wrong.
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
    blocks = iter_frame_blocks(io.BytesIO(payload), source, first_number, max_records=1 << 30)
    parts = [decode_block(block, feature_dim, source, labelled=False)[0] for block in blocks]
    if not parts:
        return np.empty((0, feature_dim), np.float32)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def labelled_batches(fh: IO[bytes], source: str, feature_dim: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(labels, features) float32 arrays of up to :data:`DECODE_BATCH_RECORDS` records each."""
    for block in iter_frame_blocks(fh, source):
        features, labels = decode_block(block, feature_dim, source, labelled=True)
        assert labels is not None
        yield labels, features


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


# ---- one parse for a block of plain dense records ---------------------------------------------------


_FIXED_WIDTH = {"float32_tensor": (4, "<f4", b"\x01" * 4), "float64_tensor": (8, "<f8", b"\x01" * 8)}


@dataclass(frozen=True)
class _Template:
    """The serialized form shared by plain dense records of one shape: their bytes outside the values."""

    feature_kind: str
    label_kind: str | None
    label_count: int
    length: int
    fixed: np.ndarray  # positions of the bytes that are the same in every such record
    fixed_bytes: np.ndarray  # ... and those bytes


def _decode_uniform(
    block: FrameBlock, feature_dim: int, labelled: bool
) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Features and labels of a block whose records all have the first record's plain dense shape, by
    one protobuf parse of their concatenation as a :data:`RecordView`; None when the block is not
    like that (the caller then reads it record by record)."""
    count = len(block)
    if not count or not (block.lengths == block.lengths[0]).all():
        return None
    template = _template_of(block.data(0), feature_dim, labelled)
    if template is None or template.length != int(block.lengths[0]):
        return None
    matrix = block.matrix()
    if not (matrix[:, template.fixed] == template.fixed_bytes).all():
        return None
    try:
        view = RecordView.FromString(matrix.tobytes())
    except DecodeError:
        return None
    features = _merged_values(view.features.value, template.feature_kind, count * feature_dim)
    labels = _merged_values(view.label.value, template.label_kind, count) if labelled else None
    if features is None or (labelled and labels is None):
        return None
    return features.reshape(count, feature_dim), labels


def _merged_values(value: Any, kind: str | None, count: int) -> np.ndarray | None:
    """The ``count`` values protobuf merged into ``value``'s ``kind`` tensor, as a numpy array: the
    tensor is serialized again by protobuf (its one packed field: tag, length, little-endian values)."""
    if kind is None:
        return None
    width, dtype, _ = _FIXED_WIDTH[kind]
    tensor = getattr(value, kind)
    if len(tensor.values) != count:
        return None
    packed = tensor.SerializeToString()
    body = count * width
    if packed[:1] != b"\x0a" or len(packed) != 1 + _varint_size(body) + body:
        return np.array(tensor.values, dtype=np.float64)
    return np.frombuffer(packed, dtype, count=count, offset=len(packed) - body)


def _varint_size(value: int) -> int:
    return max(1, (value.bit_length() + 6) // 7)


def _template_of(data: bytes, feature_dim: int, labelled: bool) -> _Template | None:
    """The template of a record with only ``features['values']`` (a dense float32 or float64 tensor of
    ``feature_dim`` values) and, optionally, ``label['values']`` (one value when ``labelled``); None for
    any other record, or one not serialized as protobuf serializes it."""
    try:
        record = Record.FromString(data)
    except DecodeError:
        return None
    if {field.name for field, _ in record.ListFields()} - {"features", "label"}:
        return None
    feature_kind, features = _plain_tensor(record.features)
    if feature_kind is None or features != feature_dim:
        return None
    label_kind, labels = _plain_tensor(record.label) if len(record.label) else (None, 0)
    if (labelled and (label_kind is None or labels != 1)) or (len(record.label) and label_kind is None):
        return None
    template = _template(feature_kind, feature_dim, label_kind, labels)
    if template is None or template.length != len(data):
        return None
    mine = np.frombuffer(data, np.uint8)
    return template if (mine[template.fixed] == template.fixed_bytes).all() else None


def _plain_tensor(entries: Any) -> tuple[str | None, int]:
    """(tensor kind, number of values) when ``entries`` is just ``{"values": dense fixed-width}``."""
    if list(entries.keys()) != ["values"]:
        return None, 0
    value = entries["values"]
    kind = value.WhichOneof("value")
    if kind not in _FIXED_WIDTH:
        return None, 0
    fields = getattr(value, kind).ListFields()
    if len(fields) != 1 or fields[0][0].name != "values":
        return None, 0
    return kind, len(fields[0][1])


@functools.lru_cache(maxsize=64)
def _template(feature_kind: str, feature_dim: int, label_kind: str | None, labels: int) -> _Template | None:
    """Serialize a record of this shape twice, with zeros and with values whose every byte is 1: the
    bytes that differ are the values' (all of them, or this is no template)."""

    def serialized(fill: bytes) -> np.ndarray:
        record = Record()
        width, dtype, _ = _FIXED_WIDTH[feature_kind]
        one = float(np.frombuffer(fill[:width], dtype)[0])
        getattr(record.features["values"], feature_kind).values.extend([one] * feature_dim)
        if label_kind is not None:
            width, dtype, _ = _FIXED_WIDTH[label_kind]
            getattr(record.label["values"], label_kind).values.extend(
                [float(np.frombuffer(fill[:width], dtype)[0])] * labels
            )
        return np.frombuffer(record.SerializeToString(deterministic=True), np.uint8)

    zeros, ones = serialized(b"\0" * 8), serialized(b"\x01" * 8)
    value_bytes = _FIXED_WIDTH[feature_kind][0] * feature_dim
    if label_kind is not None:
        value_bytes += _FIXED_WIDTH[label_kind][0] * labels
    if len(zeros) != len(ones) or int((zeros != ones).sum()) != value_bytes:
        return None
    fixed = np.nonzero(zeros == ones)[0]
    return _Template(feature_kind, label_kind, labels, len(zeros), fixed, zeros[fixed])


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
