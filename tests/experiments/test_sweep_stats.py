"""Tests of the t-intervals, the summary table and the smallest value meeting a target."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sim.experiments.stats import (
    parse_target,
    smallest_meeting,
    summarize_runs,
    summary_metric_names,
    t_interval,
)

NODES = "cluster.node_pools[gpu].count"


def test_interval_matches_scipy_reference() -> None:
    values = [3.0, 5.0, 4.0, 8.0, 6.5]

    interval = t_interval(values, 0.95)

    low, high = stats.t.interval(0.95, df=4, loc=np.mean(values), scale=stats.sem(values))
    assert interval.n == 5
    assert interval.mean == pytest.approx(5.3)
    assert interval.std == pytest.approx(np.std(values, ddof=1))
    assert interval.low == pytest.approx(low)
    assert interval.high == pytest.approx(high)


def test_interval_ignores_nan() -> None:
    interval = t_interval([1.0, math.nan, 3.0])

    assert interval.n == 2
    assert interval.mean == pytest.approx(2.0)
    assert interval.half_width == pytest.approx(stats.t.ppf(0.975, 1) * math.sqrt(2) / math.sqrt(2))


@pytest.mark.parametrize(
    ("values", "n", "mean_is_nan", "half_width"),
    [
        ([], 0, True, math.nan),
        ([math.nan], 0, True, math.nan),
        ([2.0], 1, False, math.nan),
        ([2.0, 2.0, 2.0], 3, False, 0.0),
    ],
    ids=["empty", "only-nan", "one-value", "constant"],
)
def test_interval_small_samples(
    values: list[float], n: int, mean_is_nan: bool, half_width: float
) -> None:
    interval = t_interval(values)

    assert interval.n == n
    assert math.isnan(interval.mean) == mean_is_nan
    if math.isnan(half_width):
        assert math.isnan(interval.half_width)
    else:
        assert interval.half_width == half_width


def test_interval_rejects_bad_level() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        t_interval([1.0, 2.0], level=1.0)


def test_interval_coverage_is_nominal() -> None:
    """2000 samples of 5 normal draws: about 95 % of the intervals contain the true mean.

    The count of covering intervals is Binomial(2000, 0.95) when the code is
    right, with a standard deviation of 9.7. The tolerance of ±40 (about 4
    standard deviations, a coverage between 0.93 and 0.97) keeps the seeded
    test stable under any change of the seed. A z quantile in place of the t
    quantile gives about 0.88 and fails, and so does a missing square root.
    """
    rng = np.random.default_rng(20240531)
    true_mean = 3.0
    covered = 0
    trials = 2000
    for _ in range(trials):
        interval = t_interval(rng.normal(true_mean, 2.0, size=5), 0.95)
        covered += interval.low <= true_mean <= interval.high

    assert abs(covered - 0.95 * trials) <= 40


def test_interval_coverage_follows_level() -> None:
    rng = np.random.default_rng(7)
    trials = 2000
    covered = sum(
        (interval := t_interval(rng.normal(0.0, 1.0, size=8), 0.80)).low <= 0.0 <= interval.high
        for _ in range(trials)
    )

    assert abs(covered - 0.80 * trials) <= 72  # 4 standard deviations of Binomial(2000, 0.8)


def _runs(rows: list[tuple[int, int, int, str, float]]) -> pd.DataFrame:
    """Build a runs table: (point, nodes, replication, status, latency)."""
    return pd.DataFrame(
        {
            "point": pd.Series([row[0] for row in rows], dtype="int64"),
            NODES: pd.Series([row[1] for row in rows], dtype="int64"),
            "replication": pd.Series([row[2] for row in rows], dtype="int64"),
            "seed": pd.Series([1] * len(rows), dtype="int64"),
            "status": pd.Series([row[3] for row in rows], dtype="str"),
            "error": pd.Series(["" if row[3] == "ok" else "boom" for row in rows], dtype="str"),
            "latency_p95": pd.Series([row[4] for row in rows], dtype="float64"),
            "run_wall_time_s": 0.1,
            "started_unix_s": 0.0,
            "worker": "here:1",
        }
    )


def test_summary_counts_failed_and_missing_runs() -> None:
    runs = _runs(
        [
            (0, 2, 0, "ok", 40.0),
            (0, 2, 1, "ok", math.nan),
            (0, 2, 2, "failed", math.nan),
            (0, 2, 3, "ok", 44.0),
            (1, 3, 0, "ok", 20.0),
        ]
    )

    summary = summarize_runs(runs)

    first = summary[summary["point"] == 0].iloc[0]
    assert list(summary.columns[:3]) == ["point", NODES, "metric"]
    assert first["metric"] == "latency_p95"
    assert first["runs"] == 3
    assert first["failed"] == 1
    assert first["missing"] == 1
    assert first["n"] == 2
    assert first["mean"] == pytest.approx(42.0)
    assert first["ci_high"] == pytest.approx(
        42.0 + stats.t.ppf(0.975, 1) * math.sqrt(8) / math.sqrt(2)
    )
    second = summary[summary["point"] == 1].iloc[0]
    assert second["n"] == 1
    assert math.isnan(second["ci_low"])


SWEEP = _runs(
    [(0, 2, r, "ok", v) for r, v in enumerate([50.0, 60.0, 55.0])]
    + [(1, 3, r, "ok", v) for r, v in enumerate([20.0, 45.0, 28.0])]
    + [(2, 4, r, "ok", v) for r, v in enumerate([20.0, 22.0, 21.0])]
    + [(3, 5, r, "ok", v) for r, v in enumerate([10.0, 11.0, 12.0])]
)


def test_smallest_meeting_uses_upper_bound() -> None:
    answer = smallest_meeting(SWEEP, NODES, "latency_p95", "<=", 30.0)

    assert len(answer) == 1
    assert answer.iloc[0][NODES] == 4
    assert bool(answer.iloc[0]["met"])
    assert answer.iloc[0]["mean"] == pytest.approx(21.0)
    assert answer.iloc[0]["ci_high"] <= 30.0


def test_smallest_meeting_by_mean() -> None:
    answer = smallest_meeting(SWEEP, NODES, "latency_p95", "<=", 31.0, by="mean")

    assert answer.iloc[0][NODES] == 3


def test_smallest_meeting_lower_bound_for_at_least() -> None:
    answer = smallest_meeting(SWEEP, NODES, "latency_p95", ">=", 30.0)

    assert answer.iloc[0][NODES] == 2
    assert answer.iloc[0]["ci_low"] >= 30.0


def test_smallest_meeting_reports_none_met() -> None:
    answer = smallest_meeting(SWEEP, NODES, "latency_p95", "<", 5.0)

    assert not bool(answer.iloc[0]["met"])
    assert answer.iloc[0][NODES] is None


def test_smallest_meeting_per_other_parameter() -> None:
    fast = SWEEP.assign(driver="fast")
    slow = SWEEP.assign(
        driver="slow", latency_p95=SWEEP["latency_p95"] + 15.0, point=SWEEP["point"] + 4
    )
    both = pd.concat([fast, slow], ignore_index=True)
    ordered = ["point", NODES, "driver", *[c for c in SWEEP.columns if c not in ("point", NODES)]]
    both = both[ordered]

    answer = smallest_meeting(both, NODES, "latency_p95", "<=", 30.0)

    assert list(answer["driver"]) == ["fast", "slow"]
    assert list(answer[NODES]) == [4, 5]


@pytest.mark.parametrize(
    ("parameter", "metric", "op", "message"),
    [
        ("replicas", "latency_p95", "<=", "was not swept"),
        (NODES, "latency_p99", "<=", "not in the runs table"),
        (NODES, "latency_p95", "==", "invalid"),
    ],
    ids=["unknown-parameter", "unknown-metric", "bad-op"],
)
def test_smallest_meeting_rejects_bad_arguments(
    parameter: str, metric: str, op: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        smallest_meeting(SWEEP, parameter, metric, op, 1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "metric", "op", "value"),
    [
        ("scheduling_latency_s_p95<=30", "scheduling_latency_s_p95", "<=", 30.0),
        (" pods_succeeded >= 1e2 ", "pods_succeeded", ">=", 100.0),
        (
            "device_utilization_mean.gpu.example.com>0.5",
            "device_utilization_mean.gpu.example.com",
            ">",
            0.5,
        ),
    ],
    ids=["at-most", "spaces", "driver-metric"],
)
def test_target_parses(text: str, metric: str, op: str, value: float) -> None:
    target = parse_target(text)

    assert (target.metric, target.op, target.value) == (metric, op, value)


@pytest.mark.parametrize("text", ["latency", "latency=3", "latency<=fast", "latency<=nan"])
def test_target_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError, match="target"):
        parse_target(text)


def test_metric_names_match_summary_and_drivers() -> None:
    names = summary_metric_names(["gpu.example.com"])

    assert "scheduling_latency_s_p95" in names
    assert "wall_time_s" in names
    assert names[-1] == "device_utilization_mean.gpu.example.com"
