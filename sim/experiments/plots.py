"""Plots of a sweep: each metric against each swept parameter, with confidence bands.

Each plot shows, for one metric and one swept parameter, the mean over the
replications of every design point (markers joined by a line) and its
confidence interval (a shaded band). When other parameters are swept too, each
combination of their values gets its own line, labelled in the legend. Points
with fewer than two values have no band. Parameters whose values are not all
numbers are placed at evenly spaced positions labelled with the values.

`report_sweep(directory)` writes every such plot into `DIRECTORY/plots/`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.experiments.stats import DEFAULT_LEVEL, summarize_runs
from sim.experiments.store import PLOTS_DIR, metric_columns, parameter_columns, read_runs

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def plot_file_name(metric: str, parameter: str) -> str:
    """Return the PNG name of the plot of `metric` against `parameter`."""
    return f"{_UNSAFE.sub('_', metric)}__vs__{_UNSAFE.sub('_', parameter)}.png"


def plot_sweep(
    sweep_dir: str | Path,
    *,
    metrics: Sequence[str] | None = None,
    parameters: Sequence[str] | None = None,
    level: float = DEFAULT_LEVEL,
    output_dir: str | Path | None = None,
) -> list[Path]:
    """Plot metrics against swept parameters with confidence bands, one PNG per pair.

    Args:
        sweep_dir: A sweep directory (with `runs.parquet`).
        metrics: Metrics to plot; default every metric with at least one value.
        parameters: Swept parameters to put on the x axis; default all.
        level: Confidence level of the bands.
        output_dir: Folder for the PNG files; default `SWEEP_DIR/plots`.

    Returns:
        The paths written, in metric order, then parameter order.

    Raises:
        FileNotFoundError: `sweep_dir` has no runs table.
        ValueError: a metric or parameter is not in the runs table.
    """
    runs = read_runs(sweep_dir)
    swept = parameter_columns(runs)
    available = metric_columns(runs)
    chosen_parameters = list(swept if parameters is None else parameters)
    for name in chosen_parameters:
        if name not in swept:
            raise ValueError(f"parameter {name!r} was not swept (swept: {', '.join(swept)})")
    if metrics is None:
        chosen_metrics = plotted_metrics(runs)
    else:
        chosen_metrics = list(metrics)
        for name in chosen_metrics:
            if name not in available:
                raise ValueError(f"metric {name!r} is not in the runs table")
    target = Path(output_dir) if output_dir is not None else Path(sweep_dir) / PLOTS_DIR
    target.mkdir(parents=True, exist_ok=True)

    summary = summarize_runs(runs, level, metrics=chosen_metrics)
    written = []
    for metric in chosen_metrics:
        rows = summary[summary["metric"] == metric]
        for parameter in chosen_parameters:
            path = target / plot_file_name(metric, parameter)
            _plot_one(rows, metric, parameter, [p for p in swept if p != parameter], level, path)
            written.append(path)
    return written


def plotted_metrics(runs: pd.DataFrame) -> list[str]:
    """Return the metrics that `plot_sweep` plots by default: those with at least one value."""
    return [name for name in metric_columns(runs) if runs[name].notna().any()]


def report_sweep(sweep_dir: str | Path, *, metrics: Sequence[str] | None = None) -> list[Path]:
    """Write the plots of each metric against each swept parameter into `SWEEP_DIR/plots/`.

    Args:
        sweep_dir: A sweep directory (with `runs.parquet`).
        metrics: Metrics to plot; default every metric with at least one value.

    Returns:
        The PNG files written.
    """
    return plot_sweep(sweep_dir, metrics=metrics)


def _plot_one(
    rows: pd.DataFrame,
    metric: str,
    parameter: str,
    others: list[str],
    level: float,
    path: Path,
) -> None:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    numeric = pd.api.types.is_numeric_dtype(rows[parameter]) and not pd.api.types.is_bool_dtype(
        rows[parameter]
    )
    categories = list(dict.fromkeys(rows[parameter].tolist()))
    figure = Figure(figsize=(6.4, 4.0))
    axes = figure.add_subplot()
    groups = rows.groupby(others, sort=True) if others else [((), rows)]
    for key, group in groups:
        if numeric:
            x = group[parameter].to_numpy(dtype="float64")
        else:
            x = np.array([categories.index(v) for v in group[parameter]], dtype="float64")
        order = np.argsort(x, kind="stable")
        x = x[order]
        mean = group["mean"].to_numpy(dtype="float64")[order]
        low = group["ci_low"].to_numpy(dtype="float64")[order]
        high = group["ci_high"].to_numpy(dtype="float64")[order]
        (line,) = axes.plot(x, mean, marker="o", label=_label(others, key))
        axes.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    if not numeric:
        axes.set_xticks(range(len(categories)), [str(value) for value in categories])
    elif pd.api.types.is_integer_dtype(rows[parameter]):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel(parameter)
    axes.set_ylabel(metric)
    axes.set_title(f"{metric}: mean and {level:.0%} confidence interval", fontsize="medium")
    axes.grid(True, alpha=0.3)
    if others:
        axes.legend(fontsize="small")
    figure.savefig(path, dpi=100, bbox_inches="tight")


def _label(others: list[str], key: Any) -> str:
    values = key if isinstance(key, tuple) else (key,)
    return ", ".join(f"{name}={_short(value)}" for name, value in zip(others, values, strict=True))


def _short(value: Any) -> str:
    if isinstance(value, float) and not math.isnan(value):
        return f"{value:g}"
    return str(value)
