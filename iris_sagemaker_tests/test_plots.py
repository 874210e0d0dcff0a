from __future__ import annotations

import base64

import pandas as pd

from iris_sagemaker import evaluation, plots
from iris_sagemaker.dataset import FEATURES

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _table() -> pd.DataFrame:
    features = pd.DataFrame(
        [[5.0, 3.4, 1.5, 0.2], [6.6, 3.0, 5.6, 2.0], [5.9, 2.8, 4.3, 1.3]], columns=FEATURES
    )
    return evaluation.join_predictions(features, pd.Series([2, 0, 1]), [2.0, 1.0, 1.0])


def test_pictures_are_png_and_embed_as_markdown_images() -> None:
    table = _table()
    confusion = evaluation.score(table).confusion
    for png in (plots.confusion_matrix_png(confusion), plots.predictions_scatter_png(table)):
        assert png.startswith(PNG_MAGIC)
        assert len(png) > 2000  # a drawn figure, not an empty canvas
    markdown = plots.markdown_image(b"\x89PNG-bytes", "alt text")
    assert markdown.startswith("![alt text](data:image/png;base64,")
    assert base64.b64decode(markdown.split(",", 1)[1].rstrip(")")) == b"\x89PNG-bytes"


def test_pictures_do_not_import_pyplot() -> None:
    import subprocess
    import sys

    code = (
        "import sys, pandas as pd\n"
        "from iris_sagemaker import plots\n"
        "plots.confusion_matrix_png(pd.DataFrame([[1, 0], [0, 1]], index=['a', 'b'], columns=['a', 'b']))\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
