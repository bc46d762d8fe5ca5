"""Summary metrics of one run: a flat dict of numbers computed from the output tables.

Every value is a Python int, float or None (None where a metric is undefined,
for example latency percentiles of a run in which no pod was scheduled), so the
dict is valid JSON as it is: `json.dumps(summary, allow_nan=False)` never fails.
Per-driver metrics use flat keys `<metric>.<driver>`, which keeps every value a
scalar and lets replications be stacked into one DataFrame row each. Formulas
and units are in `docs/metrics.md`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import pandas as pd

from sim.metrics.tables import RESOURCE_CPU, RESOURCE_DEVICES, RESOURCE_MEMORY

DEVICE_UTILIZATION_PREFIX: Final = "device_utilization_mean."
"""Key prefix of the per-driver device utilization; the driver name follows."""

_CONFLICT: Final = 409


def summarize(
    tables: Mapping[str, pd.DataFrame],
    *,
    wall_time_s: float,
    sim_time_s: float,
    events_processed: int,
) -> dict[str, Any]:
    """Compute the summary metrics of a run from its tables (see `build_tables`).

    Args:
        tables: The output tables of the run.
        wall_time_s: Wall-clock duration of the run, seconds.
        sim_time_s: Simulated duration of the run, seconds.
        events_processed: SimPy events processed during the run.

    Returns:
        Metric name -> int, float or None, in a fixed order.
    """
    pods = tables["pods"]
    claims = tables["claims"]
    requests = tables["api_requests"]
    utilization = tables["utilization"]

    created = pods["created_s"].notna()
    scheduled = pods["scheduled_s"].notna()
    pods_created = int(created.sum())
    scheduling_latency = (pods["scheduled_s"] - pods["created_s"]).dropna()
    startup_latency = (pods["running_s"] - pods["created_s"]).dropna()
    attempted = pods.loc[pods["attempts"] > 0, "attempts"]
    api_writes = int(requests["write"].sum())

    summary: dict[str, Any] = {
        "pods_created": pods_created,
        "pods_scheduled": int(scheduled.sum()),
        "pods_running_or_done": int((pods["running_s"].notna() | pods["finished_s"].notna()).sum()),
        "pods_succeeded": int((pods["final_phase"] == "Succeeded").sum()),
        "pods_failed": int((pods["final_phase"] == "Failed").sum()),
        "pods_pending_at_end": int((~scheduled & pods["deleted_s"].isna()).sum()),
        "scheduling_latency_s_mean": _mean(scheduling_latency),
        "scheduling_latency_s_p50": _quantile(scheduling_latency, 0.50),
        "scheduling_latency_s_p95": _quantile(scheduling_latency, 0.95),
        "scheduling_latency_s_p99": _quantile(scheduling_latency, 0.99),
        "startup_latency_s_p50": _quantile(startup_latency, 0.50),
        "startup_latency_s_p95": _quantile(startup_latency, 0.95),
        "attempts_per_pod_mean": _mean(attempted),
        "api_requests": len(requests),
        "api_writes": api_writes,
        "api_conflicts": int((requests["code"] == _CONFLICT).sum()),
        "api_writes_per_pod_mean": _ratio(api_writes, pods_created),
        "claims_created": int(claims["created_s"].notna().sum()),
        # Counts claims, so a claim allocated again after a deallocation counts once.
        "claims_allocated": int((claims["allocations"] > 0).sum()),
        # These two count writes that set or cleared status.allocation, so they compare.
        "allocations": int(claims["allocations"].sum()),
        "deallocations": int(claims["deallocations"].sum()),
    }

    devices = utilization[utilization["resource"] == RESOURCE_DEVICES]
    for driver in sorted(devices["driver"].unique()):
        rows = devices[devices["driver"] == driver]
        summary[DEVICE_UTILIZATION_PREFIX + str(driver)] = _pooled_utilization(rows)
    summary["cpu_requested_fraction_mean"] = _pooled_utilization(
        utilization[utilization["resource"] == RESOURCE_CPU]
    )
    summary["memory_requested_fraction_mean"] = _pooled_utilization(
        utilization[utilization["resource"] == RESOURCE_MEMORY]
    )

    summary["wall_time_s"] = _number(wall_time_s)
    summary["sim_time_s"] = _number(sim_time_s)
    summary["sim_seconds_per_wall_second"] = _ratio(sim_time_s, wall_time_s)
    summary["events_processed"] = int(events_processed)
    summary["events_per_wall_second"] = _ratio(events_processed, wall_time_s)
    return summary


def _number(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _ratio(numerator: float, denominator: float) -> float | None:
    if denominator <= 0:
        return None
    return _number(numerator / denominator)


def _mean(values: pd.Series) -> float | None:
    if values.empty:
        return None
    return _number(float(values.mean()))


def _quantile(values: pd.Series, q: float) -> float | None:
    # numpy's default (linear interpolation between the closest ranks).
    if values.empty:
        return None
    return _number(float(np.quantile(values.to_numpy(dtype=np.float64), q)))


def _pooled_utilization(rows: pd.DataFrame) -> float | None:
    """Return sum(mean_in_use) / sum(capacity) over the rows whose capacity is positive."""
    counted = rows[rows["capacity"] > 0]
    return _ratio(float(counted["mean_in_use"].sum()), float(counted["capacity"].sum()))
