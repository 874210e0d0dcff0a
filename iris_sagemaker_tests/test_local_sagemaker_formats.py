"""Request/response formats and mini-batching."""

from __future__ import annotations

import io
import itertools
import json

import numpy as np
import pytest

from iris_sagemaker.local_sagemaker import formats as f


def _media(value: str) -> f.MediaType:
    return f.parse_media_type(value, f.CSV)


def test_parse_media_type():
    assert f.parse_media_type("Application/JSON; verbose=True", f.CSV) == f.MediaType(
        "application/json", {"verbose": "True"}
    )
    assert f.parse_media_type(None, f.JSON) == f.MediaType("application/json", {})


def test_decode_csv():
    x = f.decode_request(b"1.5,2,3,4\n\n5,6,7,8.25\n", _media("text/csv"), 4, "req")
    assert x.dtype == np.float32 and x.tolist() == [[1.5, 2, 3, 4], [5, 6, 7, 8.25]]


def test_decode_csv_names_the_bad_row():
    with pytest.raises(
        f.FormatError, match=r"^row 12 of s3://b/t\.csv: column 2 value 'abc' is not a number$"
    ):
        f.decode_request(b"1,2,3,4\n\n5,abc,7,8", _media("text/csv"), 4, "s3://b/t.csv", first_line=10)
    with pytest.raises(f.FormatError, match=r"^row 1 of req has 3 columns, expected 4$"):
        f.decode_request(b"1,2,3", _media("text/csv"), 4, "req")
    with pytest.raises(f.FormatError, match="not a finite number"):
        f.decode_request(b"1,2,3,nan", _media("text/csv"), 4, "req")
    with pytest.raises(f.FormatError, match="label_size=0"):
        f.decode_request(b"1,2,3,4", _media("text/csv;label_size=1"), 4, "req")


def test_decode_json_both_instance_shapes_and_concatenated_documents():
    doc = {
        "instances": [
            {"data": {"features": {"values": [-3, -1, -4, 2]}}},
            {"features": [3.0, 0.1, 0.04, 0.002]},
        ]
    }
    payload = (json.dumps(doc) + "\n" + json.dumps({"features": [1, 2, 3, 4]})).encode()
    x = f.decode_request(payload, _media("application/json"), 4, "req")
    np.testing.assert_allclose(x, [[-3, -1, -4, 2], [3.0, 0.1, 0.04, 0.002], [1, 2, 3, 4]], rtol=1e-6)


def test_decode_jsonlines_and_errors():
    payload = b'{"features": [1.5, 16.0, 14.0, 23.0]}\n{"data": {"features": {"values": [1, 2, 3, 4]}}}\n'
    assert f.decode_request(payload, _media("application/jsonlines"), 4, "req").shape == (2, 4)
    with pytest.raises(f.FormatError, match=r"^line 6 of req has 2 features, expected feature_dim=4$"):
        f.decode_request(b'{"features": [1, 2]}', _media("application/jsonlines"), 4, "req", first_line=6)
    with pytest.raises(f.FormatError, match="line 1 of req: invalid JSON"):
        f.decode_request(b"{nope", _media("application/jsonlines"), 4, "req")
    with pytest.raises(f.FormatError, match=r"record 1 of the JSON request .* has no features"):
        f.decode_request(b'{"x": 1}', _media("application/json"), 4, "req")
    with pytest.raises(
        f.FormatError, match="content type 'application/x-image' is not supported"
    ):
        f.decode_request(b"", _media("application/x-image"), 4, "req")


def test_response_formats():
    predicted = np.array([2.0, 0.0], dtype=np.float32)
    distances = np.array([[0.0, 0.14], [0.5, 0.75]], dtype=np.float32)
    labels = np.array([[2.0, 2.0], [0.0, 1.0]], dtype=np.float32)
    plain = f.encode_response(f.response_format(None), predicted, distances, labels)
    assert plain == b'{"predictions": [{"predicted_label": 2.0}, {"predicted_label": 0.0}]}'
    lines = f.encode_response(f.response_format("application/jsonlines"), predicted, distances, labels)
    assert lines == b'{"predicted_label": 2.0}\n{"predicted_label": 0.0}\n'
    verbose = f.encode_response(
        f.response_format("application/json; verbose=true"), predicted, distances, labels
    )
    assert json.loads(verbose)["predictions"][0] == {
        "predicted_label": 2.0,
        "distances": [0.0, 0.14],
        "labels": [2.0, 2.0],
    }


def test_unsupported_accept():
    with pytest.raises(f.FormatError, match="accept type 'text/csv' is not supported by the k-NN algorithm"):
        f.response_format("text/csv")
    with pytest.raises(f.FormatError, match="verbose must be true or false"):
        f.response_format("application/json; verbose=yes")


def test_iter_lines_across_chunks(monkeypatch):
    monkeypatch.setattr(f, "_READ_CHUNK", 3)
    assert list(f.iter_lines(io.BytesIO(b"ab,c\r\nd\n\nlast"))) == [b"ab,c", b"d", b"", b"last"]


def test_numbered_batches_keep_line_numbers():
    lines = [b"a", b"b", b"", b"c", b"d", b"e"]
    assert list(f.numbered_batches(lines, 3)) == [(1, [b"a", b"b"]), (4, [b"c"]), (5, [b"d", b"e"])]


def test_line_payloads_multi_record_respects_the_size_limit():
    lines = [b"1111", b"2222", b"", b"3333", b"4444"]
    payloads = list(f.line_payloads(lines, single_record=False, max_bytes=10))
    # A blank line is kept inside a payload (for exact line numbers) but never starts one.
    assert payloads == [f.Payload(b"1111\n2222\n", 1), f.Payload(b"3333\n4444", 4)]
    joined = b"\n".join(p.data for p in payloads)
    assert [ln for ln in joined.split(b"\n") if ln] == [b"1111", b"2222", b"3333", b"4444"]


def test_line_payloads_single_record_and_oversized_records():
    payloads = list(f.line_payloads([b"a", b"", b"b"], single_record=True, max_bytes=0))
    assert payloads == [f.Payload(b"a", 1), f.Payload(b"b", 3)]
    with pytest.raises(f.FormatError, match=r"line 2 is larger than MaxPayloadInMB \(4 bytes\)"):
        list(f.line_payloads([b"1", b"12345"], single_record=False, max_bytes=4))


def test_line_payloads_stream_lazily():
    endless = (b"1,2,3,4" for _ in itertools.count())
    first_two = list(itertools.islice(f.line_payloads(endless, single_record=False, max_bytes=16), 2))
    assert [p.data for p in first_two] == [b"1,2,3,4\n1,2,3,4"] * 2


def test_whole_object_payload_limit():
    assert list(f.whole_object_payload(io.BytesIO(b"1,2\n3,4"), 100)) == [f.Payload(b"1,2\n3,4", 1)]
    with pytest.raises(f.FormatError, match="larger than MaxPayloadInMB"):
        list(f.whole_object_payload(io.BytesIO(b"x" * 11), 10))


# ---- the fast CSV parser and byte chunks ---------------------------------------------------------------


def test_parse_csv_fast_path_equals_the_exact_parser():
    rng = np.random.default_rng(0)
    values = np.round(rng.normal(size=(500, 4)) * 100, 3)
    text = "".join(
        ",".join(repr(float(v)) for v in row) + ("\r\n" if i % 7 else "\n\n") for i, row in enumerate(values)
    )
    data = text.encode()
    fast = f.parse_csv(data, 4, "req")
    exact = f._parse_csv_exactly(data, 4, "req", 1)
    assert fast.dtype == np.float32 and fast.shape == (500, 4)
    np.testing.assert_array_equal(fast, exact)
    assert f.parse_csv(b"\n\n", 4, "req").shape == (0, 4)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"1,2,3,4\n5,abc,7,8\n", r"^row 11 of src: column 2 value 'abc' is not a number$"),
        (b"1,2,3,4\n5,6,7\n", r"^row 11 of src has 3 columns, expected 4$"),
        (b"1,2,3,4\n5,6,7,8,9\n", r"^row 11 of src has 5 columns, expected 4$"),
        (b"1,2,3\n", r"^row 10 of src has 3 columns, expected 4$"),
        (b"1,2,3,4\n\n5,6,,8\n", r"^row 12 of src: column 3 value '' is not a number$"),
        (b"1,2,3,4\n5,6,7,inf\n", r"^row 11 of src holds a value that is not a finite number$"),
        (b"1,2,3,4\n5,6,7,NA\n", r"^row 11 of src: column 4 value 'NA' is not a number$"),
        (b"1,2,3,4,\n", r"^row 10 of src has 5 columns, expected 4$"),
        (b"a,b,c,d\n1,2,3,4\n", r"^row 10 of src: column 1 value 'a' is not a number$"),
    ],
)
def test_parse_csv_falls_back_to_the_exact_error(payload, message):
    with pytest.raises(f.FormatError, match=message):
        f.parse_csv(payload, 4, "src", first_line=10)


class _Trickle(io.RawIOBase):
    """A stream that returns at most 3 bytes per read (as a network stream may)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._data.read(min(3, size) if size >= 0 else 3)


@pytest.mark.parametrize("limit", [8, 9, 10, 16, 17, 100])
def test_line_chunks_pack_lines_like_line_payloads(limit):
    lines = [b"1,2", b"33,44", b"5", b"666,7", b"8,9,10", b"1"]
    data = b"\n".join(lines) + b"\n"
    chunks = list(f.line_chunks(_Trickle(data), limit))
    expected = list(f.line_payloads(lines, single_record=False, max_bytes=limit))
    assert chunks == expected
    assert all(len(c.data) <= limit for c in chunks)


def test_line_chunks_numbers_lines_and_skips_blank_chunks():
    data = b"\n\n1,2\n\n3,4\n5,6"
    lines = data.split(b"\n")
    assert (
        list(f.line_chunks(io.BytesIO(data), 4))
        == list(f.line_payloads(lines, False, 4))
        == [
            f.Payload(b"1,2\n", 3),  # a blank line inside a chunk stays (as in line_payloads)
            f.Payload(b"3,4", 5),
            f.Payload(b"5,6", 6),
        ]
    )


def test_line_chunks_oversized_line():
    with pytest.raises(f.FormatError, match=r"^line 2 is larger than MaxPayloadInMB \(5 bytes\)$"):
        list(f.line_chunks(io.BytesIO(b"1,2\n123456\n"), 5))


def test_line_chunks_without_limit_stream_in_bounded_chunks(monkeypatch):
    monkeypatch.setattr(f, "STREAM_CHUNK_BYTES", 8)
    data = b"1,2,3\n4,5,6\n" + b"7" * 30 + b"\n8,9\n"
    chunks = list(f.line_chunks(io.BytesIO(data), 0))
    assert b"\n".join(c.data for c in chunks) + b"\n" == data
    assert [c.first_line for c in chunks] == [1, 2, 3, 4]  # a long line is a chunk of its own
    assert max(len(c.data) for c in chunks if b"7" not in c.data) <= 8


def test_encode_entries_blocks_join_into_one_document():
    fmt = f.response_format("application/json")
    first = f.encode_entries(fmt, np.array([1.0, 2.0], np.float32), np.zeros((2, 1)), np.zeros((2, 1)))
    second = f.encode_entries(fmt, np.array([0.5], np.float32), np.zeros((1, 1)), np.zeros((1, 1)))
    text = f.document_open(fmt) + first + f.entries_separator(fmt) + second + f.document_close(fmt)
    assert json.loads(text) == {
        "predictions": [{"predicted_label": 1.0}, {"predicted_label": 2.0}, {"predicted_label": 0.5}]
    }
    assert f.encode_entries(fmt, np.empty(0, np.float32), np.empty((0, 1)), np.empty((0, 1))) == ""


def test_verbose_jsonlines_response():
    fmt = f.response_format("application/jsonlines; verbose=true")
    body = f.encode_response(
        fmt,
        np.array([2.0], np.float32),
        np.array([[0.0, 0.5]], np.float32),
        np.array([[2.0, 1.0]], np.float32),
    )
    assert body == b'{"predicted_label": 2.0, "distances": [0.0, 0.5], "labels": [2.0, 1.0]}\n'


def test_regressor_labels_keep_their_short_form():
    fmt = f.response_format(None)
    predicted = np.array([0.1, 1 / 3, 2.0, 0.1], np.float32)
    body = f.encode_response(fmt, predicted, np.zeros((4, 1)), np.zeros((4, 1)))
    assert body == (
        b'{"predictions": [{"predicted_label": 0.1}, {"predicted_label": 0.33333334}, '
        b'{"predicted_label": 2.0}, {"predicted_label": 0.1}]}'
    )
