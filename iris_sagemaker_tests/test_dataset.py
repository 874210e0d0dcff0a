from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from iris_sagemaker.core import dataset
from iris_sagemaker.core.dataset import IrisDataError

GOOD_ROWS = "5.1,3.5,1.4,0.2,Iris-setosa\n7.0,3.2,4.7,1.4,Iris-versicolor\n6.3,3.3,6.0,2.5,Iris-virginica\n"


def test_packaged_data_is_the_150_row_uci_table() -> None:
    source, data = dataset.read_source(None)
    frame = dataset.parse_iris(data, source)
    assert source == dataset.PACKAGED_SOURCE
    assert len(frame) == 150
    assert list(frame.columns) == dataset.COLUMNS
    assert frame["species"].value_counts().to_dict() == {
        "Iris-setosa": 50,
        "Iris-versicolor": 50,
        "Iris-virginica": 50,
    }
    assert dataset.schema_problems(frame) == []
    assert frame.iloc[0].tolist() == [5.1, 3.5, 1.4, 0.2, "Iris-setosa"]


def test_header_row_and_trailing_blank_lines_are_accepted() -> None:
    text = "sepal_length,sepal_width,petal_length,petal_width,species\n" + GOOD_ROWS + "\n\n"
    frame = dataset.parse_iris(text.encode())
    assert len(frame) == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            GOOD_ROWS + "5.0,abc,1.4,0.2,Iris-setosa\n",
            r"line 4, column 'sepal_width': 'abc' is not a finite number",
        ),
        (GOOD_ROWS + "5.0,3.0,1.4,,Iris-setosa\n", r"line 4, column 'petal_width': the value is missing"),
        (GOOD_ROWS + "5.0,3.0,1.4,0.2,Iris-foo\n", r"line 4, column 'species': 'Iris-foo' is not one of"),
        ("5.0,3.0,1.4,,\n", r"line 1, column 'petal_width': the value is missing"),
        (GOOD_ROWS + "5.0,inf,1.4,0.2,Iris-setosa\n", r"line 4, column 'sepal_width': 'inf' is not a finite"),
        ("", r"has no data rows"),
        ("\n\n", r"no data rows"),
    ],
)
def test_bad_data_is_rejected_naming_line_and_column(text: str, expected: str) -> None:
    with pytest.raises(IrisDataError, match=expected):
        dataset.parse_iris(text.encode(), "iris.csv")


EXPECTED_FIELDS = r"expected 5 \(sepal_length, sepal_width, petal_length, petal_width, species\)"


@pytest.mark.parametrize(
    ("text", "line", "found"),
    [
        ("5.0,3.0,1.4,0.2\n" + GOOD_ROWS, 1, 4),  # not "column 'species': the value is missing"
        (GOOD_ROWS + "5.0,3.0,1.4,0.2\n", 4, 4),
        ("5.0,3.0,1.4,0.2,Iris-setosa,extra\n" + GOOD_ROWS, 1, 6),
        # A leading field (say, a row id) on the first line only or on every line: pandas takes it for an
        # index and shifts the species into petal_width ("'Iris-setosa' is not a finite number").
        ("1,5.0,3.0,1.4,0.2,Iris-setosa\n" + GOOD_ROWS, 1, 6),
        ("".join(f"{i},{row}\n" for i, row in enumerate(GOOD_ROWS.splitlines())), 1, 6),
        (GOOD_ROWS + "5.0,3.0,1.4,0.2,Iris-setosa,extra\n", 4, 6),
        ("sepal_length,sepal_width,petal_length,petal_width,species\n\n" + GOOD_ROWS + "6.0\n", 6, 1),
        (GOOD_ROWS + "5.0,3.0,1.4,0.2,Iris-setosa,\n", 4, 6),  # a trailing comma is a sixth, empty field
    ],
)
def test_a_wrong_field_count_is_named_with_its_line(text: str, line: int, found: int) -> None:
    plural = "field" if found == 1 else "fields"
    with pytest.raises(IrisDataError, match=f"^iris.csv, line {line}: {found} {plural}, {EXPECTED_FIELDS}$"):
        dataset.parse_iris(text.encode(), "iris.csv")


def test_five_fields_with_spaces_blank_lines_and_quotes_are_accepted() -> None:
    text = '\n 5.1, 3.5, 1.4, 0.2, "Iris-setosa"\n\n' + GOOD_ROWS + ",,,,\n"
    frame = dataset.parse_iris(text.encode(), "iris.csv")
    assert frame["species"].tolist() == ["Iris-setosa", "Iris-setosa", "Iris-versicolor", "Iris-virginica"]


def test_non_utf8_is_rejected() -> None:
    with pytest.raises(IrisDataError, match="not UTF-8"):
        dataset.parse_iris(b"\xff\xfe5.1,3.5")


def test_encoding_and_seeded_split_match_the_tutorial() -> None:
    frame = dataset.parse_iris(dataset.read_source(None)[1])
    first = dataset.split(frame, seed=7)
    again = dataset.split(frame, seed=7)
    other = dataset.split(frame, seed=8)
    assert len(first.train) == 105 and len(first.test_features) == 45
    assert list(first.train.columns) == ["species", *dataset.FEATURES]
    assert list(first.test_features.columns) == dataset.FEATURES
    pd.testing.assert_frame_equal(first.train, again.train)
    assert not first.train.index.equals(other.train.index)
    # Train and test are disjoint and together are the whole table.
    assert set(first.train.index).isdisjoint(first.test_features.index)
    assert len(set(first.train.index) | set(first.test_features.index)) == 150
    # The held-out labels are the encoded species of exactly the test rows.
    expected = frame.loc[first.test_features.index, "species"].map(dataset.LABELS)
    assert first.test_labels.tolist() == expected.tolist()
    assert dataset.LABELS == {"Iris-virginica": 0, "Iris-versicolor": 1, "Iris-setosa": 2}


def test_sagemaker_csv_has_no_header_and_label_first() -> None:
    frame = dataset.parse_iris(GOOD_ROWS.encode())
    csv = dataset.to_sagemaker_csv(dataset.encode(frame)).decode()
    assert csv.splitlines()[0] == "2,5.1,3.5,1.4,0.2"


def test_split_too_small_is_an_error() -> None:
    frame = dataset.parse_iris(b"5.1,3.5,1.4,0.2,Iris-setosa\n")
    with pytest.raises(IrisDataError, match="cannot be split"):
        dataset.split(frame, seed=1)


def test_schema_problems_report_missing_classes_and_nulls() -> None:
    frame = dataset.parse_iris(b"5.1,3.5,1.4,0.2,Iris-setosa\n4.9,3.0,1.4,0.2,Iris-setosa\n")
    frame.loc[0, "sepal_length"] = float("nan")
    problems = dataset.schema_problems(frame)
    assert any("sepal_length' has 1 null" in p for p in problems)
    assert any("expected all three" in p for p in problems)


def test_file_url_is_read(tmp_path) -> None:
    path = tmp_path / "iris.csv"
    path.write_text(GOOD_ROWS)
    source, data = dataset.read_source(path.as_uri())
    assert source == path.as_uri()
    assert len(dataset.parse_iris(data)) == 3


def test_missing_file_and_unknown_scheme_are_clear(tmp_path) -> None:
    with pytest.raises(IrisDataError, match="could not read IRIS_SAGEMAKER_DATA_URL"):
        dataset.read_source((tmp_path / "missing.csv").as_uri())
    with pytest.raises(IrisDataError, match="unsupported scheme"):
        dataset.read_source("ftp://example.invalid/iris.data")


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/iris.data":
            body = GOOD_ROWS.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_response(404)
            self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def http_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_source_is_fetched_from_a_local_server(http_server: str) -> None:
    source, data = dataset.read_source(f"{http_server}/iris.data")
    assert source.endswith("/iris.data")
    assert len(dataset.parse_iris(data, source)) == 3


def test_http_error_names_the_url(http_server: str) -> None:
    with pytest.raises(IrisDataError, match=r"could not fetch IRIS_SAGEMAKER_DATA_URL=.*/missing.*404"):
        dataset.read_source(f"{http_server}/missing")


def test_scarce_species_and_splits_missing_a_species_are_reported() -> None:
    rows = "".join(
        f"5.{i},3.5,1.4,0.2,{name}\n"
        for name, count in (("Iris-setosa", 3), ("Iris-versicolor", 6), ("Iris-virginica", 6))
        for i in range(count)
    )
    frame = dataset.parse_iris(rows.encode())
    assert any("too few rows" in p and "'Iris-setosa': 3" in p for p in dataset.schema_problems(frame))
    missing = [
        problems
        for seed in range(40)
        if (problems := dataset.split_problems(dataset.split(frame, seed=seed)))
    ]
    assert missing, "some seed leaves a species out of the 5-row test split"
    assert "the test split (5 rows) has no Iris-setosa" in missing[0][0]
    assert "IRIS_SAGEMAKER_SPLIT_SEED" in missing[0][0]
    full = dataset.parse_iris(dataset.read_source(None)[1])
    assert dataset.split_problems(dataset.split(full, seed=42)) == []


def _many_rows(n: int) -> bytes:
    species = ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]
    return "".join(
        f"{4 + (i % 30) / 10},{2 + (i % 17) / 10},{1 + (i % 50) / 10},{(i % 25) / 10},{species[i % 3]}\n"
        for i in range(n)
    ).encode()


def test_chunked_parsing_equals_one_piece(monkeypatch) -> None:
    """Chunks of lines are parsed on their own; the table, and every line number in an error, are as if
    the text were parsed in one piece (here a chunk is about 40 lines)."""
    data = b"sepal_length,sepal_width,petal_length,petal_width,species\n" + _many_rows(500) + b"\n\n"
    whole = dataset.parse_iris(data)
    monkeypatch.setattr(dataset, "PARSE_CHUNK_BYTES", 1000)
    chunked = dataset.parse_iris(data)
    pd.testing.assert_frame_equal(chunked, whole)
    assert len(chunked) == 500 and chunked["species"].dtype == whole["species"].dtype
    lines = data.split(b"\n")
    for bad, expected in [
        (b"5.0,abc,1.4,0.2,Iris-setosa", r"line 400, column 'sepal_width': 'abc' is not a finite number"),
        (b"5.0,3.0,1.4,,Iris-setosa", r"line 400, column 'petal_width': the value is missing"),
        (b"5.0,3.0,1.4,0.2,Iris-foo", r"line 400, column 'species': 'Iris-foo' is not one of"),
        (b"5.0,3.0,1.4,0.2,Iris-setosa,extra", r"line 400: 6 fields, expected 5"),
        (b"5.0,3.0,1.4,0.2", r"line 400: 4 fields, expected 5"),
    ]:
        broken = b"\n".join([*lines[:399], bad, *lines[400:]])
        with pytest.raises(IrisDataError, match=expected):
            dataset.parse_iris(broken, "iris.csv")
    offset = len(b"\n".join(lines[:399])) + 1
    with pytest.raises(IrisDataError, match=f"not UTF-8 text \\(byte {offset + 3}\\)"):
        dataset.parse_iris(b"\n".join([*lines[:399], b"5.0\xff,3.0,1.4,0.2,Iris-setosa", *lines[400:]]))


def test_a_file_source_is_parsed_as_it_is_read(tmp_path) -> None:
    path = tmp_path / "iris.csv"
    path.write_bytes(_many_rows(300))
    source, frame = dataset.load_iris(path.as_uri())
    assert source == path.as_uri()
    pd.testing.assert_frame_equal(frame, dataset.parse_iris(path.read_bytes()))
    with pytest.raises(IrisDataError, match="could not read IRIS_SAGEMAKER_DATA_URL"):
        dataset.load_iris((tmp_path / "missing.csv").as_uri())


@pytest.mark.parametrize("seed", [0, 42])
def test_splitting_the_stored_table_equals_splitting_it_in_memory(tmp_path, monkeypatch, seed) -> None:
    """The split streamed from the stored raw table (as split_iris reads it) draws the same shuffle and
    gives the same sides, indexes and labels as dataset.split of the loaded table."""
    from iris_sagemaker.core.storage import LocalObjectStore, read_csv, write_csv

    monkeypatch.setattr(dataset, "PARSE_ROWS", 64)
    store = LocalObjectStore(tmp_path)
    write_csv(store, "b-1", "raw.csv", dataset.parse_iris(_many_rows(1000)))
    expected = dataset.split(read_csv(store, "b-1", "raw.csv"), seed)
    got = dataset.split_stored(lambda: store.open_read("b-1", "raw.csv"), seed)
    pd.testing.assert_frame_equal(got.train, expected.train)
    pd.testing.assert_frame_equal(got.test_features, expected.test_features)
    pd.testing.assert_series_equal(got.test_labels, expected.test_labels)
    assert dataset.to_sagemaker_csv(got.train) == dataset.to_sagemaker_csv(expected.train)
    header = b"sepal_length,sepal_width,petal_length,petal_width,species\n"
    store.put_bytes("b-1", "one.csv", header + b"1,2,3,4,Iris-setosa\n")
    with pytest.raises(IrisDataError, match="cannot be split"):
        dataset.split_stored(lambda: store.open_read("b-1", "one.csv"), seed)
