"""Confidence intervals over replications, and the smallest parameter value meeting a target.

Each design point's replications are independent runs (they differ only in
their random streams), so a metric's mean over them gets a Student t
confidence interval: `mean ± t_{(1+level)/2, n-1} · s / sqrt(n)`, with `s` the
sample standard deviation (ddof 1) and `t` from `scipy.stats.t`. The interval
assumes roughly normal means. With few replications and skewed metrics (tail
percentiles, counts near zero) its coverage can fall below `level`.

Missing values:

* Failed runs are left out of every statistic. `failed` counts them.
* A run whose summary has null for a metric (for example a latency
  percentile when no pod was scheduled) is left out of that metric's
  statistics. `missing` counts such runs, so `n = runs - missing`.
* With `n = 0`, `mean` is NaN. With `n = 1`, `std` and the interval are NaN.
  With `n ≥ 2` and all values equal, the half-width is 0.

NOTE: dropping null values conditions the statistic on the metric being
defined. A design point whose p95 latency is null in some runs because nothing
was scheduled looks better than it is, so check `missing` before trusting it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from sim.experiments.store import metric_columns, parameter_columns, read_runs

DEFAULT_LEVEL = 0.95
SUMMARY_STATISTICS = (
    "runs",
    "failed",
    "missing",
    "n",
    "mean",
    "std",
    "level",
    "ci_half_width",
    "ci_low",
    "ci_high",
)
"""Columns of the summary table after `point`, the parameters and `metric`."""

Comparison = Literal["<", "<=", ">", ">="]
_TARGET = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(<=|>=|<|>)\s*(\S+)\s*$")


@dataclass(frozen=True)
class Interval:
    """A t confidence interval for a mean."""

    n: int
    mean: float
    std: float
    half_width: float
    level: float

    @property
    def low(self) -> float:
        """Lower bound, `mean - half_width`."""
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        """Upper bound, `mean + half_width`."""
        return self.mean + self.half_width


def t_interval(values: Sequence[float] | np.ndarray, level: float = DEFAULT_LEVEL) -> Interval:
    """Compute the two-sided t confidence interval for the mean of `values`, ignoring NaN.

    Raises:
        ValueError: `level` is not strictly between 0 and 1.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be between 0 and 1, exclusive (got {level})")
    data = np.asarray(values, dtype="float64")
    data = data[~np.isnan(data)]
    n = int(data.size)
    if n == 0:
        return Interval(n=0, mean=math.nan, std=math.nan, half_width=math.nan, level=level)
    mean = float(data.mean())
    if n == 1:
        return Interval(n=1, mean=mean, std=math.nan, half_width=math.nan, level=level)
    std = float(data.std(ddof=1))
    quantile = float(stats.t.ppf((1.0 + level) / 2.0, df=n - 1))
    return Interval(n=n, mean=mean, std=std, half_width=quantile * std / math.sqrt(n), level=level)


def summary_metric_names(drivers: Iterable[str] = ()) -> list[str]:
    """Return the names of the summary metrics a run can have, given its drivers.

    The fixed metrics come from `sim.metrics.summary.summarize` itself (run on
    empty tables), followed by one `device_utilization_mean.<driver>` per
    driver. A driver's key appears in a run's summary only when the driver has
    devices, so a name listed here can still be missing from a runs table.
    """
    from sim.metrics.summary import DEVICE_UTILIZATION_PREFIX, summarize
    from sim.metrics.tables import (
        API_REQUEST_SCHEMA,
        CLAIM_SCHEMA,
        POD_SCHEMA,
        UTILIZATION_SCHEMA,
        frame,
    )

    empty = {
        "pods": frame([], POD_SCHEMA),
        "claims": frame([], CLAIM_SCHEMA),
        "api_requests": frame([], API_REQUEST_SCHEMA),
        "utilization": frame([], UTILIZATION_SCHEMA),
    }
    names = list(summarize(empty, wall_time_s=0.0, sim_time_s=0.0, events_processed=0))
    return names + [DEVICE_UTILIZATION_PREFIX + driver for driver in drivers]


def summarize_runs(
    runs: pd.DataFrame, level: float = DEFAULT_LEVEL, *, metrics: Sequence[str] | None = None
) -> pd.DataFrame:
    """Summarize a runs table: one row per design point and metric.

    Columns: `point`, the parameter columns, `metric`, then
    `SUMMARY_STATISTICS`. Rows are sorted by point, then by metric in table
    order. See the module docstring for how failed runs and null values count.

    Args:
        runs: A runs table (the contents of `runs.parquet`).
        level: Confidence level of the intervals.
        metrics: Metrics to summarize; default all metric columns.
    """
    parameters = parameter_columns(runs)
    if metrics is None:
        metrics = metric_columns(runs)
    rows: list[dict[str, Any]] = []
    for _, group in runs.groupby("point", sort=True):
        ok = group[group["status"] == "ok"]
        first = group.iloc[0]
        for metric in metrics:
            values = ok[metric].to_numpy(dtype="float64")
            interval = t_interval(values, level)
            row: dict[str, Any] = {"point": int(group["point"].to_numpy()[0])}
            row.update({name: first[name] for name in parameters})
            row.update(
                metric=metric,
                runs=len(ok),
                failed=len(group) - len(ok),
                missing=len(ok) - interval.n,
                n=interval.n,
                mean=interval.mean,
                std=interval.std,
                level=level,
                ci_half_width=interval.half_width,
                ci_low=interval.low,
                ci_high=interval.high,
            )
            rows.append(row)
    columns = ["point", *parameters, "metric", *SUMMARY_STATISTICS]
    summary = pd.DataFrame(rows, columns=columns)
    for name in parameters:
        summary[name] = summary[name].astype(runs[name].dtype)
    return summary


@dataclass(frozen=True)
class Target:
    """A requirement on a metric, such as `scheduling_latency_s_p95 <= 30`."""

    metric: str
    op: Comparison
    value: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"

    def met_by(self, number: float) -> bool:
        """Return whether `number` satisfies the target (NaN never does)."""
        if math.isnan(number):
            return False
        if self.op == "<":
            return number < self.value
        if self.op == "<=":
            return number <= self.value
        if self.op == ">":
            return number > self.value
        return number >= self.value


def parse_target(text: str) -> Target:
    """Parse `metric<=value` (also `<`, `>`, `>=`).

    Raises:
        ValueError: the text is not of that form, or the value is not a number.
    """
    match = _TARGET.match(text)
    if match is None:
        raise ValueError(
            f"target {text!r}: expected METRIC<=VALUE (or <, >, >=), "
            "e.g. 'scheduling_latency_s_p95<=30'"
        )
    metric, op, raw = match.groups()
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"target {text!r}: {raw!r} is not a number") from None
    if math.isnan(value):
        raise ValueError(f"target {text!r}: the value must be a number, not NaN")
    comparison: Comparison = op  # type: ignore[assignment]
    return Target(metric=metric, op=comparison, value=value)


def smallest_meeting(
    sweep: str | Path | pd.DataFrame,
    parameter: str,
    metric: str,
    op: Comparison,
    value: float,
    level: float = DEFAULT_LEVEL,
    by: Literal["bound", "mean"] = "bound",
) -> pd.DataFrame:
    """Find the smallest value of `parameter` whose design point meets `metric op value`.

    With `by="bound"` (the default), a design point meets the target when the
    whole confidence interval does: for `<` and `<=` its upper bound
    `ci_high`, for `>` and `>=` its lower bound `ci_low`. That is a one-sided
    confidence bound of level `(1 + level) / 2` (97.5 % for the default 0.95).
    A point with fewer than two values has no interval and never meets the
    target this way. With `by="mean"`, the mean is compared instead.

    The result is the smallest value that meets the target, not the start of
    a range where every larger value meets it too. A metric that is not
    monotone in the parameter can fail again at larger values.

    Args:
        sweep: A sweep directory, or its runs table (the contents of `runs.parquet`).
        parameter: The swept key to minimize, e.g. `cluster.node_pools[gpu-node].count`.
        metric: A summary metric, e.g. `scheduling_latency_s_p95`.
        op: One of `<`, `<=`, `>`, `>=`.
        value: The threshold, in the metric's unit.
        level: Confidence level of the interval.
        by: Compare the interval bound (`bound`) or the mean (`mean`).

    Returns:
        One row per combination of the other swept parameters (a single row
        when only `parameter` is swept), sorted by them. Columns: the other
        parameters, `parameter` (the smallest value meeting the target, or
        missing when none does), `met` (bool), then the `n`, `mean`,
        `ci_low` and `ci_high` of the design point found (NaN when none).

    Raises:
        ValueError: `parameter` was not swept, its values cannot be ordered,
            the metric is not in the runs table, or `op` or `by` is invalid.
    """
    runs = read_runs(sweep) if isinstance(sweep, str | Path) else sweep
    target = Target(metric=metric, op=op, value=float(value))
    if op not in ("<", "<=", ">", ">="):
        raise ValueError(f"comparison {op!r} is invalid; use <, <=, > or >=")
    if by not in ("bound", "mean"):
        raise ValueError(f"by={by!r} is invalid; use 'bound' or 'mean'")
    parameters = parameter_columns(runs)
    if parameter not in parameters:
        raise ValueError(
            f"parameter {parameter!r} was not swept (swept: {', '.join(parameters) or 'none'})"
        )
    if metric not in metric_columns(runs):
        raise ValueError(
            f"metric {metric!r} is not in the runs table "
            f"(metrics: {', '.join(metric_columns(runs))})"
        )
    if not pd.api.types.is_numeric_dtype(runs[parameter]):
        raise ValueError(f"parameter {parameter!r} has values that are not numbers")

    summary = summarize_runs(runs, level, metrics=[metric])
    others = [name for name in parameters if name != parameter]
    answers = []
    groups = summary.groupby(others, sort=True) if others else [((), summary)]
    for key, group in groups:
        answer: dict[str, Any] = {}
        fixed = key if isinstance(key, tuple) else (key,)
        answer.update(zip(others, fixed, strict=True))
        answer.update(_first_meeting(group, parameter, target, by))
        answers.append(answer)
    columns = [*others, parameter, "met", "n", "mean", "ci_low", "ci_high"]
    return pd.DataFrame(answers, columns=columns)


def _first_meeting(
    group: pd.DataFrame, parameter: str, target: Target, by: Literal["bound", "mean"]
) -> dict[str, Any]:
    for _, row in group.sort_values(parameter, kind="stable").iterrows():
        if by == "mean":
            compared = float(row["mean"])
        elif target.op in ("<", "<="):
            compared = float(row["ci_high"])
        else:
            compared = float(row["ci_low"])
        if target.met_by(compared):
            return {
                parameter: row[parameter],
                "met": True,
                "n": int(row["n"]),
                "mean": float(row["mean"]),
                "ci_low": float(row["ci_low"]),
                "ci_high": float(row["ci_high"]),
            }
    return {
        parameter: None,
        "met": False,
        "n": 0,
        "mean": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
    }
