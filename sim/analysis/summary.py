"""Summary metrics for people: their order, units and formatting (see docs/metrics.md)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

SUMMARY_ORDER = (
    "pods_created",
    "pods_scheduled",
    "pods_running_or_done",
    "pods_succeeded",
    "pods_failed",
    "pods_pending_at_end",
    "scheduling_latency_s_mean",
    "scheduling_latency_s_p50",
    "scheduling_latency_s_p95",
    "scheduling_latency_s_p99",
    "startup_latency_s_p50",
    "startup_latency_s_p95",
    "attempts_per_pod_mean",
    "api_requests",
    "api_writes",
    "api_conflicts",
    "api_writes_per_pod_mean",
    "claims_created",
    "claims_allocated",
    "allocations",
    "deallocations",
    "device_utilization_mean.",
    "cpu_requested_fraction_mean",
    "memory_requested_fraction_mean",
    "wall_time_s",
    "sim_time_s",
    "sim_seconds_per_wall_second",
    "events_processed",
    "events_per_wall_second",
)
"""Order of the summary metrics (as in docs/metrics.md); a key ending in "." is a prefix."""

WALL_CLOCK_METRICS = frozenset(
    {"wall_time_s", "sim_seconds_per_wall_second", "events_per_wall_second"}
)
"""Summary metrics that depend on the machine, so identical runs differ in them."""


def summary_unit(key: str) -> str:
    """Return the unit of a summary metric (see docs/metrics.md)."""
    if "latency_s" in key or key in ("wall_time_s", "sim_time_s"):
        return "s"
    if key.startswith("device_utilization_mean.") or key.endswith("_fraction_mean"):
        return "fraction"
    units = {
        "claims_created": "claims",
        "claims_allocated": "claims",
        # One allocation or deallocation is one write that set or cleared status.allocation.
        "allocations": "writes",
        "deallocations": "writes",
        "attempts_per_pod_mean": "attempts",
        "api_writes_per_pod_mean": "writes per pod",
        "sim_seconds_per_wall_second": "ratio",
        "events_per_wall_second": "events/s",
    }
    return units.get(key, "count")


def ordered_summary_keys(keys: Iterable[str]) -> list[str]:
    """Sort summary keys as `SUMMARY_ORDER` lists them; unknown keys go last, sorted."""
    remaining = sorted(set(keys))
    ordered: list[str] = []
    for entry in SUMMARY_ORDER:
        if entry.endswith("."):
            matches = [key for key in remaining if key.startswith(entry)]
        else:
            matches = [key for key in remaining if key == entry]
        ordered.extend(matches)
        remaining = [key for key in remaining if key not in matches]
    return ordered + remaining


def format_metric(value: Any) -> str:
    """Format a summary value: "-" for null and NaN, 4 significant digits for floats."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4g}"
    return str(value)
