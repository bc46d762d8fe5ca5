"""Side-by-side comparison of two runs: summary metrics with differences and ratios."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from sim.analysis import derived
from sim.analysis.summary import format_metric, ordered_summary_keys, summary_unit
from sim.results import Results


def compare_summaries(first: Results, second: Results) -> pd.DataFrame:
    """Return the summary metrics of two runs side by side.

    Columns: `metric`, `unit`, `a` and `b` (the two values, NaN where a run
    lacks the metric or it is null), `difference` (`b - a`) and `ratio`
    (`b / a`, NaN when `a` is 0 or missing). Rows follow the order of
    `sim.analysis.summary.SUMMARY_ORDER`.
    """
    keys = ordered_summary_keys([*first.summary, *second.summary])
    rows = []
    for key in keys:
        a = _number(first.summary.get(key))
        b = _number(second.summary.get(key))
        ratio = b / a if not math.isnan(a) and a != 0 else math.nan
        rows.append((key, summary_unit(key), a, b, b - a, ratio))
    return pd.DataFrame(rows, columns=["metric", "unit", "a", "b", "difference", "ratio"])


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def format_comparison(frame: pd.DataFrame, label_a: str, label_b: str) -> str:
    """Render a `compare_summaries` frame as an aligned text table."""
    header = ("metric", "unit", label_a, label_b, "b - a", "b / a")
    rows = [header]
    for metric in frame.itertuples(index=False):
        rows.append(
            (
                str(metric.metric),
                str(metric.unit),
                format_metric(metric.a),
                format_metric(metric.b),
                _signed(derived.as_float(metric.difference)),
                format_metric(metric.ratio),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells.extend(cell.rjust(width) for cell, width in zip(row[2:], widths[2:], strict=True))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _signed(value: float) -> str:
    if math.isnan(value):
        return "-"
    if value == 0:
        return "0"
    return f"{value:+.4g}"


def run_labels(first: Path, second: Path) -> tuple[str, str]:
    """Return short, distinct labels for two results directories (their names, or more)."""
    a, b = first.resolve(), second.resolve()
    label_a, label_b = a.name, b.name
    depth = 1
    while label_a == label_b and depth < min(len(a.parts), len(b.parts)):
        depth += 1
        label_a = "/".join(a.parts[-depth:])
        label_b = "/".join(b.parts[-depth:])
    return label_a, label_b
