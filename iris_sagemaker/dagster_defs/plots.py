"""Pictures of the predictions as small SVG documents, for Dagster metadata.

Written directly as SVG rather than through a plotting library: a 3x3 heat map and a scatter need a
few dozen shapes, and drawing them this way costs microseconds, where importing matplotlib alone cost
~0.6 s of every run (a third of Dagster's own overhead for the whole graph). The Dagster UI renders
them as images (``markdown_image``).
"""

from __future__ import annotations

import base64
import math
from html import escape

import numpy as np
import pandas as pd

COLOURS = {"Iris-setosa": "#1f77b4", "Iris-versicolor": "#ff7f0e", "Iris-virginica": "#2ca02c"}
MAX_SCATTER_POINTS = 2000  # a picture, not a data dump: larger test sets are thinned evenly
FONT = 'font-family="Helvetica, Arial, sans-serif"'


def _svg(width: int, height: int, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {FONT} font-size="12">'
        f'<rect width="{width}" height="{height}" fill="white"/>' + "".join(body) + "</svg>"
    )


def _text(x: float, y: float, text: str, **attrs: object) -> str:
    extra = " ".join(f'{k.replace("_", "-")}="{v}"' for k, v in attrs.items())
    return f'<text x="{x:.1f}" y="{y:.1f}" {extra}>{escape(text)}</text>'


def _short(name: object) -> str:
    return str(name).removeprefix("Iris-")


def _blend(share: float) -> str:
    """White at 0, the setosa blue (#1f77b4) at 1."""
    red, green, blue = (round(255 - share * (255 - c)) for c in (0x1F, 0x77, 0xB4))
    return f"rgb({red},{green},{blue})"


def confusion_matrix_svg(confusion: pd.DataFrame) -> str:
    """A heat map of true (rows) vs predicted (columns) species, with the count in each cell."""
    values = confusion.to_numpy(dtype=float)
    n = len(confusion.columns)
    cell, left, top = 64, 96, 48
    width, height = left + n * cell + 16, top + n * cell + 40
    peak = values.max() if values.size and values.max() > 0 else 1.0
    body = [_text(left + n * cell / 2, 20, "Confusion matrix", text_anchor="middle", font_size=14)]
    body.append(_text(left + n * cell / 2, 38, "predicted", text_anchor="middle", fill="#555"))
    for col, name in enumerate(confusion.columns):
        body.append(_text(left + col * cell + cell / 2, height - 22, _short(name), text_anchor="middle"))
    for row, name in enumerate(confusion.index):
        y = top + row * cell
        body.append(_text(left - 8, y + cell / 2 + 4, _short(name), text_anchor="end"))
        for col in range(n):
            share = values[row, col] / peak
            fill = _blend(share)
            x = left + col * cell
            body.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{fill}" stroke="#ccc"/>')
            colour = "white" if share > 0.5 else "black"
            body.append(
                _text(
                    x + cell / 2,
                    y + cell / 2 + 5,
                    str(int(values[row, col])),
                    text_anchor="middle",
                    fill=colour,
                    font_size=15,
                )
            )
    body.append(
        _text(
            14,
            top + n * cell / 2,
            "true",
            fill="#555",
            transform=f"rotate(-90 14 {top + n * cell / 2:.1f})",
            text_anchor="middle",
        )
    )
    return _svg(width, height, body)


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    step = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(step)) if step > 0 else 1
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= step), default=magnitude)
    start = math.ceil(low / step) * step
    return [round(start + i * step, 6) for i in range(int((high - start) / step) + 1)]


def _thin(table: pd.DataFrame, limit: int) -> pd.DataFrame:
    """At most ``limit`` rows, evenly spread, always keeping the wrong predictions (up to the limit)."""
    if len(table) <= limit:
        return table
    wrong = table[~table["correct"]].iloc[: limit // 2]
    right = table[table["correct"]]
    keep = right.iloc[np.linspace(0, len(right) - 1, limit - len(wrong)).astype(int)]
    return pd.concat([keep, wrong])


def predictions_scatter_svg(table: pd.DataFrame) -> str:
    """Petal length vs width of the test rows: dot = predicted species, ring = true species, x = wrong."""
    shown = _thin(table, MAX_SCATTER_POINTS)
    width, height, left, right, top, bottom = 440, 340, 52, 130, 34, 44
    xs, ys = shown["petal_length"].to_numpy(float), shown["petal_width"].to_numpy(float)
    x_low, x_high = (xs.min(), xs.max()) if len(xs) else (0.0, 1.0)
    y_low, y_high = (ys.min(), ys.max()) if len(ys) else (0.0, 1.0)
    x_pad, y_pad = max((x_high - x_low) * 0.05, 0.1), max((y_high - y_low) * 0.05, 0.1)
    x_low, x_high, y_low, y_high = x_low - x_pad, x_high + x_pad, y_low - y_pad, y_high + y_pad
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x_low) / (x_high - x_low) * plot_w

    def py(y: float) -> float:
        return top + plot_h - (y - y_low) / (y_high - y_low) * plot_h

    title = "Test set: predicted (dot) vs true (ring)"
    if len(shown) < len(table):
        title += f", {len(shown)} of {len(table)} rows"
    body = [_text(left + plot_w / 2, 20, title, text_anchor="middle", font_size=13)]
    body.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>')
    for tick in _ticks(x_low, x_high):
        body.append(
            f'<line x1="{px(tick):.1f}" y1="{top + plot_h}" x2="{px(tick):.1f}" y2="{top + plot_h + 4}" '
            'stroke="#333"/>'
        )
        body.append(_text(px(tick), top + plot_h + 16, f"{tick:g}", text_anchor="middle", font_size=10))
    for tick in _ticks(y_low, y_high):
        body.append(
            f'<line x1="{left - 4}" y1="{py(tick):.1f}" x2="{left}" y2="{py(tick):.1f}" stroke="#333"/>'
        )
        body.append(_text(left - 6, py(tick) + 3, f"{tick:g}", text_anchor="end", font_size=10))
    body.append(_text(left + plot_w / 2, height - 8, "petal length (cm)", text_anchor="middle"))
    body.append(
        _text(
            14,
            top + plot_h / 2,
            "petal width (cm)",
            text_anchor="middle",
            transform=f"rotate(-90 14 {top + plot_h / 2:.1f})",
        )
    )
    for x, y, true, predicted, correct in zip(
        xs, ys, shown["true_species"], shown["predicted_species"], shown["correct"], strict=True
    ):
        cx, cy = px(x), py(y)
        body.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="6" fill="none" '
            f'stroke="{COLOURS.get(true, "#888")}" stroke-width="1.3"/>'
        )
        body.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3.2" fill="{COLOURS.get(predicted, "#888")}"/>')
        if not correct:
            body.append(
                f'<path d="M{cx - 5:.1f},{cy - 5:.1f}L{cx + 5:.1f},{cy + 5:.1f}M{cx - 5:.1f},{cy + 5:.1f}'
                f'L{cx + 5:.1f},{cy - 5:.1f}" stroke="red" stroke-width="2"/>'
            )
    legend_x = width - right + 14
    for i, (species, colour) in enumerate(COLOURS.items()):
        y = top + 10 + i * 20
        body.append(f'<circle cx="{legend_x}" cy="{y}" r="4" fill="{colour}"/>')
        body.append(_text(legend_x + 10, y + 4, _short(species), font_size=11))
    wrong = int((~table["correct"]).sum())
    y = top + 10 + len(COLOURS) * 20
    body.append(
        f'<path d="M{legend_x - 4},{y - 4}L{legend_x + 4},{y + 4}M{legend_x - 4},{y + 4}L{legend_x + 4},'
        f'{y - 4}" stroke="red" stroke-width="2"/>'
    )
    body.append(_text(legend_x + 10, y + 4, f"wrong ({wrong})", font_size=11))
    return _svg(width, height, body)


def objective_svg(table: pd.DataFrame, metric: str, best_k: int | None) -> str:
    """The tuning job's trials: validation ``metric`` against k, one dot per trial, the best ringed."""
    scored = table.dropna(subset=["validation_accuracy"])
    width, height, left, right, top, bottom = 440, 300, 52, 20, 34, 44
    ks = scored["k"].to_numpy(float)
    values = scored["validation_accuracy"].to_numpy(float)
    k_low, k_high = (ks.min() - 1, ks.max() + 1) if len(ks) else (0.0, 1.0)
    v_low, v_high = (min(values.min(), 1.0) - 0.05, 1.02) if len(values) else (0.0, 1.0)
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - k_low) / (k_high - k_low) * plot_w

    def py(y: float) -> float:
        return top + plot_h - (y - v_low) / (v_high - v_low) * plot_h

    title = f"Tuning: {metric} on the validation split, {len(scored)} of {len(table)} trials scored"
    body = [_text(left + plot_w / 2, 20, title, text_anchor="middle", font_size=13)]
    body.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>')
    for tick in _ticks(k_low, k_high):
        body.append(_text(px(tick), top + plot_h + 16, f"{tick:g}", text_anchor="middle", font_size=10))
    for tick in _ticks(v_low, v_high):
        body.append(_text(left - 6, py(tick) + 3, f"{tick:.2f}", text_anchor="end", font_size=10))
    body.append(_text(left + plot_w / 2, height - 8, "k", text_anchor="middle"))
    for k, value in zip(ks, values, strict=True):
        body.append(f'<circle cx="{px(k):.1f}" cy="{py(value):.1f}" r="3.5" fill="#1f77b4"/>')
    if best_k is not None and len(scored):
        best = scored[scored["k"] == best_k]["validation_accuracy"].max()
        body.append(
            f'<circle cx="{px(best_k):.1f}" cy="{py(best):.1f}" r="8" fill="none" stroke="red" '
            'stroke-width="2"/>'
        )
        body.append(_text(px(best_k) + 10, py(best) - 8, f"best k = {best_k}", font_size=11, fill="red"))
    return _svg(width, height, body)


def markdown_image(svg: str, alt: str) -> str:
    """Markdown that the Dagster UI renders as the image itself (a data URI)."""
    encoded = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return f"![{escape(alt)}](data:image/svg+xml;base64,{encoded})"
