from __future__ import annotations

import base64
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from iris_sagemaker.core import evaluation
from iris_sagemaker.core.dataset import FEATURES
from iris_sagemaker.dagster_defs import plots

pytestmark = [pytest.mark.dagster]

SVG = "{http://www.w3.org/2000/svg}"


def _table(rows: int = 3) -> pd.DataFrame:
    base = [[5.0, 3.4, 1.5, 0.2], [6.6, 3.0, 5.6, 2.0], [5.9, 2.8, 4.3, 1.3]]
    features = pd.DataFrame([base[i % 3] for i in range(rows)], columns=FEATURES)
    true = pd.Series([2, 0, 1] * (rows // 3) + [2, 0, 1][: rows % 3])
    predicted = [2.0, 1.0, 1.0] * (rows // 3) + [2.0, 1.0, 1.0][: rows % 3]
    return evaluation.join_predictions(features, true, predicted)


def test_confusion_matrix_picture_has_a_cell_per_pair_with_its_count() -> None:
    confusion = evaluation.score(_table()).confusion
    root = ET.fromstring(plots.confusion_matrix_svg(confusion))
    cells = [r for r in root.iter(f"{SVG}rect") if r.get("stroke") == "#ccc"]
    assert len(cells) == 9
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert texts.count("1") == 3 and texts.count("0") == 6  # the counts, written in the cells
    assert {"setosa", "versicolor", "virginica", "predicted", "true"} <= set(texts)


def test_scatter_marks_every_row_and_the_wrong_ones() -> None:
    table = _table()
    root = ET.fromstring(plots.predictions_scatter_svg(table))
    rings = [c for c in root.iter(f"{SVG}circle") if c.get("fill") == "none"]
    assert len(rings) == len(table)
    assert any(t.text == "wrong (1)" for t in root.iter(f"{SVG}text"))


def test_big_test_sets_are_thinned_keeping_the_wrong_rows() -> None:
    table = _table(30_000)
    svg = plots.predictions_scatter_svg(table)
    root = ET.fromstring(svg)
    rings = [c for c in root.iter(f"{SVG}circle") if c.get("fill") == "none"]
    assert len(rings) == plots.MAX_SCATTER_POINTS
    assert any("2000 of 30000 rows" in (t.text or "") for t in root.iter(f"{SVG}text"))
    assert len(svg) < 600_000


def test_markdown_image_is_a_data_uri_of_the_svg() -> None:
    svg = plots.confusion_matrix_svg(pd.DataFrame(np.eye(3, dtype=int)))
    markdown = plots.markdown_image(svg, "confusion matrix")
    assert markdown.startswith("![confusion matrix](data:image/svg+xml;base64,")
    assert base64.b64decode(markdown.split(",", 1)[1].rstrip(")")).decode() == svg
