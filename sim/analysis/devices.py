"""Devices held by allocated claims, over time, per driver and node pool.

The results tables record when each claim was allocated and deallocated, but
not how many devices an allocation holds. Use over time is therefore
reconstructed here from the claims' state transitions and an estimate of each
claim's device count. The estimate is the `count` of the claim's or its
class's parameters in the scenario, as the `devices` and `network-attached`
models read it. For the `gpushare` model it is the claim's GPUs as that model
counts them, a share of one GPU as its fraction (`gpu_milli` / 1000). It is 1
for the `node-local` model and for claims with no count. `device_use` also
returns the `utilization` table's mean, so a reader can check the estimate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sim.analysis import derived
from sim.drivers.gpushare import scenario_claim_devices
from sim.metrics.tables import DEVICE_RESOLUTION
from sim.results import Results


def node_pools(results: Results) -> dict[str, str]:
    """Return the node pool of every node the scenario creates."""
    return {
        node: pool.name
        for pool in results.scenario.cluster.node_pools
        for node in pool.node_names()
    }


def _count_of(parameters: Mapping[str, Any] | None) -> int | None:
    if not parameters:
        return None
    value = parameters.get("count")
    return int(value) if isinstance(value, int) and value > 0 else None


def claim_devices(results: Results) -> dict[str, float]:
    """Return the estimated devices of each claim while allocated, by claim UID (see above)."""
    claims = derived.table(results, "claims")
    if claims.empty:
        return {}
    scenario = results.scenario
    models = {driver.name: driver.model for driver in scenario.drivers}
    class_counts = {cls.name: _count_of(cls.parameters) for cls in scenario.resource_classes}
    shared_parameters = {
        (claim.namespace, claim.name): claim.parameters for claim in scenario.shared_claims
    }
    entry_parameters: dict[tuple[str, str, str], Mapping[str, Any] | None] = {}
    for workload in scenario.workloads:
        for entry in workload.claims:
            if entry.template is not None:
                key = (workload.namespace, workload.name, entry.name)
                entry_parameters[key] = entry.template.parameters

    links = derived.pod_claim_links(results)
    pods = derived.table(results, "pods")
    workload_of_pod = dict(zip(pods["uid"], pods["workload"], strict=True))
    claim_entry = {
        str(link.claim_uid): (
            str(link.namespace),
            str(workload_of_pod[link.pod_uid]),
            str(link.entry),
        )
        for link in links.itertuples(index=False)
    }

    devices: dict[str, float] = {}
    for claim in claims.itertuples(index=False):
        uid = str(claim.uid)
        model = models.get(str(claim.driver))
        if model == "node-local":
            # The Kubernetes test driver counts claims per node, one slot each.
            devices[uid] = 1
            continue
        parameters: Mapping[str, Any] | None = shared_parameters.get(
            (str(claim.namespace), str(claim.name))
        )
        if parameters is None and uid in claim_entry:
            parameters = entry_parameters.get(claim_entry[uid])
        if model == "gpushare":
            devices[uid] = scenario_claim_devices(parameters or {})
            continue
        own = _count_of(parameters)
        devices[uid] = own or class_counts.get(str(claim.resource_class)) or 1
    return devices


def claim_allocations(results: Results) -> pd.DataFrame:
    """Return one row per allocation of a claim: when it started and ended, where, and its size.

    Columns: `claim_uid`, `namespace`, `name`, `driver`, `node`, `pool`,
    `devices`, `start_s`, `end_s` (NaN while still allocated at the end).

    An allocation starts when the `events` table shows the claim entering an
    allocated state (Allocated, Reserved or DeallocationRequested) and ends
    when it goes back to Pending or is removed. A claim deallocated while it
    was being deleted shows no transition for the deallocation, so its
    allocation ends at the claim's `deallocated_s`.

    NOTE: `claims.nodes` lists distinct nodes in order of first allocation.
    The node of the i-th allocation is therefore only known when every
    allocation of the claim went to a new node. Otherwise later allocations
    get the last node listed.
    """
    columns = [
        "claim_uid",
        "namespace",
        "name",
        "driver",
        "node",
        "pool",
        "devices",
        "start_s",
        "end_s",
    ]
    claims = derived.table(results, "claims")
    events = derived.table(results, "events")
    if claims.empty or events.empty:
        return pd.DataFrame(columns=columns)
    pools = node_pools(results)
    devices = claim_devices(results)
    models = {driver.name: driver.model for driver in results.scenario.drivers}
    claim_rows = {str(row.uid): row for row in claims.itertuples(index=False)}
    claim_events = events[events["kind"] == "ResourceClaim"]

    rows: list[tuple[Any, ...]] = []
    for uid, history in claim_events.groupby("uid", sort=False):
        claim = claim_rows.get(str(uid))
        if claim is None:
            continue
        intervals = _allocation_intervals(history, derived.as_float(claim.deallocated_s))
        nodes = [node for node in str(claim.nodes).split(",") if node]
        network = models.get(str(claim.driver)) == "network-attached"
        for index, (start, end) in enumerate(intervals):
            node = "" if network or not nodes else nodes[min(index, len(nodes) - 1)]
            rows.append(
                (
                    str(uid),
                    str(claim.namespace),
                    str(claim.name),
                    str(claim.driver),
                    node,
                    pools.get(node, ""),
                    devices.get(str(uid), 1),
                    start,
                    end,
                )
            )
    return pd.DataFrame(rows, columns=columns)


def _allocation_intervals(history: pd.DataFrame, deallocated_s: float) -> list[tuple[float, float]]:
    intervals: list[tuple[float, float]] = []
    start: float | None = None
    for time_s, state in zip(history["time_s"], history["to_state"], strict=True):
        if state in derived.ALLOCATED_CLAIM_STATES and start is None:
            start = float(time_s)
        elif state == "Pending" and start is not None:
            intervals.append((start, float(time_s)))
            start = None
        elif state == "Deleted" and start is not None:
            intervals.append((start, _quiet_deallocation(start, float(time_s), deallocated_s)))
            start = None
    if start is not None:
        intervals.append((start, _quiet_deallocation(start, math.nan, deallocated_s)))
    return intervals


def _quiet_deallocation(start: float, removed: float, deallocated_s: float) -> float:
    """End of an allocation that no state transition shows: the deallocation, else the removal."""
    deallocated = not math.isnan(deallocated_s) and deallocated_s >= start
    if deallocated and (math.isnan(removed) or deallocated_s <= removed):
        return deallocated_s
    return removed


@dataclass(frozen=True)
class DeviceUse:
    """Devices of one driver in one node pool: use over time and capacity."""

    driver: str
    pool: str
    times: np.ndarray
    in_use: np.ndarray
    capacity: float
    table_mean_in_use: float
    """`mean_in_use` of the `utilization` table for the same driver and pool (NaN if absent)."""

    @property
    def mean_in_use(self) -> float:
        """Time-weighted mean of the reconstructed use, devices."""
        end = float(self.times[-1]) if self.times.size else 0.0
        return derived.time_weighted_mean(self.times, self.in_use, end)


def device_use(results: Results) -> list[DeviceUse]:
    """Return the devices in use over time for every (driver, pool) with capacity or use.

    The pairs of the `utilization` table come first, in its order, then pairs
    that hold devices without a row there.
    """
    end = derived.end_time_s(results)
    allocations = claim_allocations(results)
    utilization = derived.table(results, "utilization")

    keys: list[tuple[str, str]] = []
    capacity: dict[tuple[str, str], float] = {}
    table_mean: dict[tuple[str, str], float] = {}
    if not utilization.empty:
        rows = utilization[utilization["resource"] == "devices"]
        for row in rows.itertuples(index=False):
            key = (str(row.driver), str(row.pool))
            keys.append(key)
            capacity[key] = derived.as_float(row.capacity)
            table_mean[key] = derived.as_float(row.mean_in_use)

    held_keys = allocations[["driver", "pool"]].drop_duplicates().sort_values(["driver", "pool"])
    for driver_name, pool_name in held_keys.itertuples(index=False):
        if (str(driver_name), str(pool_name)) not in capacity:
            keys.append((str(driver_name), str(pool_name)))

    uses = []
    for driver, pool in keys:
        held = allocations[(allocations["driver"] == driver) & (allocations["pool"] == pool)]
        # Summed in whole thousandths, as the utilization table sums them, so that
        # GPU shares add up to whole devices exactly.
        thousandths = np.rint(held["devices"].to_numpy(dtype=float) * DEVICE_RESOLUTION)
        times, levels = derived.level_over_time(held["start_s"], held["end_s"], thousandths, end)
        levels = levels / DEVICE_RESOLUTION
        uses.append(
            DeviceUse(
                driver=driver,
                pool=pool,
                times=times,
                in_use=levels,
                capacity=capacity.get((driver, pool), math.nan),
                table_mean_in_use=table_mean.get((driver, pool), math.nan),
            )
        )
    return uses
