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
        f.FormatError, match="content type 'application/x-recordio-protobuf' is not supported"
    ):
        f.decode_request(b"", _media("application/x-recordio-protobuf"), 4, "req")


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
