from __future__ import annotations

import pandas as pd
import pytest

from iris_sagemaker.core import evaluation
from iris_sagemaker.core.dataset import FEATURES


def test_parses_json_documents_per_mini_batch_and_jsonlines() -> None:
    data = (
        b'{"predictions": [{"predicted_label": 2.0}, {"predicted_label": 0.0}]}\n'
        b'{"predictions": [{"predicted_label": 1.0}]}'
    )
    assert evaluation.parse_predictions(data) == [2.0, 0.0, 1.0]
    lines = b'{"predicted_label": 1.0}\n{"predicted_label": 0.0, "distances": [0.1], "labels": [0.0]}\n'
    assert evaluation.parse_predictions(lines) == [1.0, 0.0]
    assert evaluation.parse_predictions(b'{"predicted_label": 2}\n{"predicted_label": -0.0}') == [2.0, -0.0]
    assert str(evaluation.parse_predictions(b'{"predicted_label": -0.0}')[0]) == "-0.0"


def test_equal_labels_are_one_float_object() -> None:
    """Equal labels are one float object, in what parse_predictions and shared_floats return."""
    records = [b'{"predicted_label": 2.0}', b'{"predicted_label": 1.0}'] * 5000
    labels = evaluation.parse_predictions(b'{"predictions": [' + b", ".join(records) + b"]}")
    assert labels[:2] == [2.0, 1.0] and len(labels) == 10000 and len({id(v) for v in labels}) == 2
    shared = evaluation.shared_floats([0.0, -0.0, 1, 1.0, 0.0, float("nan")])
    assert [str(v) for v in shared] == ["0.0", "-0.0", "1.0", "1.0", "0.0", "nan"]
    assert shared[0] is shared[4] and shared[2] is shared[3]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"predictions": [{"score": 1}]}', "has no 'predicted_label'"),
        (b"not json", "is not k-NN JSON output"),
    ],
)
def test_bad_output_is_reported(data: bytes, message: str) -> None:
    with pytest.raises(evaluation.PredictionsError, match=message):
        evaluation.parse_predictions(data)


def _features(n: int) -> pd.DataFrame:
    return pd.DataFrame([[1.0, 2.0, 3.0, 4.0]] * n, columns=FEATURES)


def test_scoring_and_confusion_matrix() -> None:
    table = evaluation.join_predictions(_features(4), pd.Series([0, 1, 2, 2]), [0.0, 1.0, 2.0, 1.0])
    scores = evaluation.score(table)
    assert scores.accuracy == 0.75
    assert scores.confusion.loc["Iris-setosa", "Iris-versicolor"] == 1
    assert scores.confusion.loc["Iris-virginica", "Iris-virginica"] == 1
    markdown = evaluation.confusion_markdown(scores.confusion)
    assert (
        markdown.splitlines()[0] == "| true \\ predicted | Iris-virginica | Iris-versicolor | Iris-setosa |"
    )
    assert "| Iris-setosa | 0 | 1 | 1 |" in markdown


def test_prediction_count_mismatch_is_an_error() -> None:
    with pytest.raises(evaluation.PredictionsError, match="returned 2 predictions for 3 test rows"):
        evaluation.join_predictions(_features(3), pd.Series([0, 1, 2]), [0.0, 1.0])
