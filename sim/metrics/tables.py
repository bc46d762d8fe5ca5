"""The output tables of a run, built once from the recorder and the write tracker.

`build_tables` returns six pandas DataFrames: `pods` and `claims` (one row per
object), `events`, `api_requests` and `cycles` (the recorder's records as they
are) and `utilization` (time-weighted use per resource, driver and node pool).
Every column is defined, with its unit, in `docs/metrics.md`.

Identical runs give identical tables, down to the bytes of their Parquet
files: columns and dtypes are fixed by the `*_SCHEMA` mappings below (also for
empty tables), rows are sorted by simulated time or by creation time and
name with a stable sort, and no wall-clock value is stored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import numpy as np
import pandas as pd

from sim.metrics.recorder import CYCLE_COLUMNS, EVENT_COLUMNS, Recorder
from sim.metrics.tracker import Tracker

STRING: Final = "str"
"""pandas' default string dtype (Arrow-backed in pandas 3)."""

POD_SCHEMA: Final[Mapping[str, str]] = {
    "namespace": STRING,
    "name": STRING,
    "uid": STRING,
    "workload": STRING,
    "created_s": "float64",
    "first_attempt_s": "float64",
    "scheduled_s": "float64",
    "running_s": "float64",
    "finished_s": "float64",
    "deleted_s": "float64",
    "node": STRING,
    "attempts": "int64",
    "final_phase": STRING,
    "claims": "int64",
}
CLAIM_SCHEMA: Final[Mapping[str, str]] = {
    "namespace": STRING,
    "name": STRING,
    "uid": STRING,
    "mode": STRING,
    "resource_class": STRING,
    "driver": STRING,
    "shareable": "boolean",
    "generated": "bool",
    "created_s": "float64",
    "first_allocated_s": "float64",
    "deallocated_s": "float64",
    "deleted_s": "float64",
    "nodes": STRING,
    "max_consumers": "int64",
    "allocations": "int64",
    "deallocations": "int64",
}
EVENT_SCHEMA: Final[Mapping[str, str]] = {
    column: "float64" if column == "time_s" else STRING for column in EVENT_COLUMNS
}
API_REQUEST_SCHEMA: Final[Mapping[str, str]] = {
    "time_s": "float64",
    "component": STRING,
    "verb": STRING,
    "resource": STRING,
    "namespace": STRING,
    "name": STRING,
    "subresource": STRING,
    "code": "int64",
    "latency_s": "float64",
    "write": "bool",
}
CYCLE_SCHEMA: Final[Mapping[str, str]] = {
    "time_s": "float64",
    "namespace": STRING,
    "pod": STRING,
    "pod_uid": STRING,
    "attempt": "int64",
    "result": STRING,
    "plugin": STRING,
    "message": STRING,
    "feasible_nodes": "int64",
    "node": STRING,
    "duration_s": "float64",
}
UTILIZATION_SCHEMA: Final[Mapping[str, str]] = {
    "resource": STRING,
    "driver": STRING,
    "pool": STRING,
    "capacity": "float64",
    "mean_in_use": "float64",
    "mean_utilization": "float64",
    "peak_in_use": "float64",
}
TABLE_SCHEMAS: Final[Mapping[str, Mapping[str, str]]] = {
    "pods": POD_SCHEMA,
    "claims": CLAIM_SCHEMA,
    "events": EVENT_SCHEMA,
    "api_requests": API_REQUEST_SCHEMA,
    "cycles": CYCLE_SCHEMA,
    "utilization": UTILIZATION_SCHEMA,
}
"""The columns of each table that a results directory holds, by table name."""

RESOURCE_DEVICES: Final = "devices"
RESOURCE_CPU: Final = "cpu"
RESOURCE_MEMORY: Final = "memory"

_MILLI_PER_CORE: Final = 1000.0

DEVICE_RESOLUTION: Final = 1000
"""Device use is summed in whole thousandths of a device, the unit of a GPU share, so
that shares add up to whole devices exactly (ten shares of 0.1 make 1.0, not 0.9999...)."""

_Key = tuple[str, str]  # (driver, pool)


def build_tables(
    recorder: Recorder, tracker: Tracker, end_time_s: float
) -> dict[str, pd.DataFrame]:
    """Build the output tables of a run that ended at `end_time_s` simulated seconds.

    Args:
        recorder: The run's records.
        tracker: The write tracker that followed the run.
        end_time_s: End of the observation window [0, end_time_s] of `utilization`.

    Returns:
        The tables `pods`, `claims`, `events`, `api_requests`, `cycles` and
        `utilization`, by name.
    """
    return {
        "pods": pods_table(tracker, recorder.cycles),
        "claims": claims_table(tracker),
        "events": _time_sorted(recorder.events, EVENT_SCHEMA),
        "api_requests": _time_sorted(recorder.api_requests, API_REQUEST_SCHEMA),
        "cycles": _time_sorted(recorder.cycles, CYCLE_SCHEMA),
        "utilization": utilization_table(recorder, tracker, end_time_s),
    }


def frame(rows: Sequence[tuple[Any, ...]], schema: Mapping[str, str]) -> pd.DataFrame:
    """Return a DataFrame of `rows` with the columns and dtypes of `schema`, even when empty."""
    df = pd.DataFrame.from_records(list(rows), columns=list(schema))
    return df.astype(dict(schema))


def _time_sorted(rows: Sequence[tuple[Any, ...]], schema: Mapping[str, str]) -> pd.DataFrame:
    # A stable sort keeps records of the same instant in the order they were made.
    df = frame(rows, schema)
    return df.sort_values("time_s", kind="stable", ignore_index=True)


def _by_creation(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(
        ["created_s", "namespace", "name", "uid"],
        kind="stable",
        na_position="last",
        ignore_index=True,
    )


# --------------------------------------------------------------------------------------
# Pods and claims
# --------------------------------------------------------------------------------------


def pods_table(tracker: Tracker, cycles: Iterable[Sequence[Any]]) -> pd.DataFrame:
    """Build the `pods` table: the tracker's pod records joined with their scheduling attempts."""
    first_attempt: dict[str, float] = {}
    attempts: dict[str, int] = {}
    uid_column = CYCLE_COLUMNS.index("pod_uid")
    for cycle in cycles:
        uid = cycle[uid_column]
        time_s = float(cycle[0])
        attempts[uid] = attempts.get(uid, 0) + 1
        if time_s < first_attempt.get(uid, math.inf):
            first_attempt[uid] = time_s

    rows = [
        (
            pod.namespace,
            pod.name,
            pod.uid,
            pod.workload,
            pod.created_s,
            first_attempt.get(pod.uid, math.nan),
            pod.bound_s,
            pod.running_s,
            pod.finished_s,
            pod.deleted_s,
            pod.node,
            attempts.get(pod.uid, 0),
            pod.phase,
            pod.claims,
        )
        for pod in tracker.pods.values()
    ]
    return _by_creation(frame(rows, POD_SCHEMA))


def claims_table(tracker: Tracker) -> pd.DataFrame:
    """Build the `claims` table from the tracker's claim records."""
    rows = [
        (
            claim.namespace,
            claim.name,
            claim.uid,
            claim.mode,
            claim.resource_class,
            claim.driver or tracker.class_drivers.get(claim.resource_class, ""),
            claim.shareable,
            claim.generated,
            claim.created_s,
            claim.first_allocated_s,
            claim.deallocated_s,
            claim.deleted_s,
            ",".join(claim.nodes),
            claim.max_consumers,
            claim.allocations,
            claim.deallocations,
        )
        for claim in tracker.claims.values()
    ]
    return _by_creation(frame(rows, CLAIM_SCHEMA))


# --------------------------------------------------------------------------------------
# Utilization
# --------------------------------------------------------------------------------------


def time_weighted_level(
    times: np.ndarray, deltas: np.ndarray, end_s: float, resolution: int | None = None
) -> tuple[float, float]:
    """Return the time-weighted mean and the peak of a piecewise-constant level over [0, end_s].

    The level is 0 at time 0 and changes by `deltas[i]` at `times[i]`; changes
    after `end_s` are ignored and changes before 0 count from 0. The peak is the
    largest level held after all changes of one instant (a use that starts and
    ends at the same instant does not count), and at least 0. The mean is NaN
    when `end_s` is not positive.

    With `resolution`, every change is rounded to a whole multiple of
    `1 / resolution` and the level is summed in integers of that unit, so that
    fractional changes add up without rounding error. Integer changes give the
    same level with or without it.
    """
    times = np.maximum(np.asarray(times, dtype=np.float64), 0.0)
    deltas = np.asarray(deltas, dtype=np.float64)
    inside = times <= end_s
    times, deltas = times[inside], deltas[inside]
    if times.size == 0:
        return (0.0 if end_s > 0 else math.nan), 0.0

    instants, inverse = np.unique(times, return_inverse=True)
    changes = np.bincount(inverse, weights=deltas, minlength=instants.size)
    if resolution is not None:
        # Integers up to 2**53 add up exactly in float64.
        changes = np.rint(changes * resolution)
    levels = np.cumsum(changes, dtype=np.float64)
    if resolution is not None:
        levels = levels / resolution
    peak = max(0.0, float(levels.max()))
    if end_s <= 0:
        return math.nan, peak
    durations = np.diff(np.append(instants, end_s))
    return float(np.dot(levels, durations) / end_s), peak


def _level_series(
    rows: Iterable[tuple[_Key, float, float]],
) -> dict[_Key, tuple[list[float], list[float]]]:
    series: dict[_Key, tuple[list[float], list[float]]] = {}
    for key, time_s, delta in rows:
        times, deltas = series.setdefault(key, ([], []))
        times.append(time_s)
        deltas.append(delta)
    return series


def _utilization_rows(
    resource: str,
    capacity: Mapping[_Key, float],
    series: Mapping[_Key, tuple[list[float], list[float]]],
    end_time_s: float,
    scale: float = 1.0,
    resolution: int | None = None,
) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for key in sorted(set(capacity) | set(series)):
        times, deltas = series.get(key, ([], []))
        mean, peak = time_weighted_level(np.array(times), np.array(deltas), end_time_s, resolution)
        total = capacity.get(key, 0.0)
        utilization = mean / total if total > 0 else math.nan
        driver, pool = key
        rows.append(
            (resource, driver, pool, total / scale, mean / scale, utilization, peak / scale)
        )
    return rows


def utilization_table(recorder: Recorder, tracker: Tracker, end_time_s: float) -> pd.DataFrame:
    """Build the `utilization` table: devices per driver and pool, CPU and memory per pool."""
    pool_of = tracker.pool_of

    device_capacity: dict[_Key, float] = {}
    for (driver, node), devices in tracker.capacity.items():
        key = (driver, pool_of(node))
        device_capacity[key] = device_capacity.get(key, 0.0) + devices
    device_series = _level_series(
        ((driver, pool_of(node)), time_s, delta)
        for time_s, driver, node, delta, _uid in recorder.device_usage
    )
    rows = _utilization_rows(
        RESOURCE_DEVICES,
        device_capacity,
        device_series,
        end_time_s,
        resolution=DEVICE_RESOLUTION,
    )

    cpu_capacity: dict[_Key, float] = {}
    memory_capacity: dict[_Key, float] = {}
    for node, (cpu_milli, memory_bytes) in tracker.node_allocatable.items():
        key = ("", pool_of(node))
        cpu_capacity[key] = cpu_capacity.get(key, 0.0) + cpu_milli
        memory_capacity[key] = memory_capacity.get(key, 0.0) + memory_bytes
    cpu_series = _level_series(
        (("", pool_of(node)), time_s, cpu)
        for time_s, node, cpu, _memory, _uid in recorder.pod_requests
    )
    memory_series = _level_series(
        (("", pool_of(node)), time_s, memory)
        for time_s, node, _cpu, memory, _uid in recorder.pod_requests
    )
    rows += _utilization_rows(
        RESOURCE_CPU, cpu_capacity, cpu_series, end_time_s, scale=_MILLI_PER_CORE
    )
    rows += _utilization_rows(RESOURCE_MEMORY, memory_capacity, memory_series, end_time_s)
    return frame(rows, UTILIZATION_SCHEMA)
