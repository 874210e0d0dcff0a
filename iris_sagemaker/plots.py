"""Pictures of the predictions, as PNG bytes.

matplotlib's object API (``Figure`` on the Agg canvas), imported only when a picture is drawn: no pyplot,
whose global state and backend discovery cost about a second at start-up.
"""

from __future__ import annotations

import base64
import io

import pandas as pd


def _figure_png(draw: object) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2, 3.6), dpi=100)
    draw(fig.add_subplot())  # type: ignore[operator]
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")  # Figure.savefig uses the Agg canvas for PNG
    return buffer.getvalue()


def confusion_matrix_png(confusion: pd.DataFrame) -> bytes:
    """A heat map of true (rows) vs predicted (columns) species, counts written in the cells."""

    def draw(ax) -> None:  # type: ignore[no-untyped-def]
        values = confusion.to_numpy()
        ax.imshow(values, cmap="Blues")
        short = [str(name).removeprefix("Iris-") for name in confusion.columns]
        ax.set_xticks(range(len(short)), short)
        ax.set_yticks(range(len(short)), short)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        peak = values.max() if values.size else 0
        for (row, col), count in pd.DataFrame(values).stack().items():
            ax.text(
                col,
                row,
                str(count),
                ha="center",
                va="center",
                color="white" if peak and count > peak / 2 else "black",
            )
        ax.set_title("Confusion matrix")

    return _figure_png(draw)


def predictions_scatter_png(table: pd.DataFrame) -> bytes:
    """Petal length vs width of each test row: colour = predicted species, ring = true species."""
    colours = {"Iris-setosa": "tab:blue", "Iris-versicolor": "tab:orange", "Iris-virginica": "tab:green"}

    def draw(ax) -> None:  # type: ignore[no-untyped-def]
        for species, colour in colours.items():
            predicted = table[table["predicted_species"] == species]
            ax.scatter(
                predicted["petal_length"],
                predicted["petal_width"],
                c=colour,
                s=22,
                label=f"predicted {species.removeprefix('Iris-')}",
            )
            true = table[table["true_species"] == species]
            ax.scatter(
                true["petal_length"],
                true["petal_width"],
                facecolors="none",
                edgecolors=colour,
                s=80,
                linewidths=1.2,
            )
        wrong = table[~table["correct"]]
        ax.scatter(
            wrong["petal_length"],
            wrong["petal_width"],
            marker="x",
            c="red",
            s=60,
            label=f"wrong ({len(wrong)})",
        )
        ax.set_xlabel("petal length (cm)")
        ax.set_ylabel("petal width (cm)")
        ax.set_title("Test set: predicted (dot) vs true (ring)")
        ax.legend(fontsize=7, loc="upper left")

    return _figure_png(draw)


def markdown_image(png: bytes, alt: str) -> str:
    """Markdown that the Dagster UI renders as the image itself (a data URI)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
