"""Derived tables: what plots, reports and explanations compute from a results directory.

Every function here reads a `Results` object (from `Results.read(directory)`
or from `simulate`) and returns plain pandas or numpy data. Nothing here draws
or prints, so the plots and the explanations share one definition of each
derived quantity, and tests can check the numbers without pixels. Device use
over time is in `sim.analysis.devices`, the order and units of the summary
metrics in `sim.analysis.summary`.

The results tables do not say which pod a claim belongs to. It is
reconstructed here: generated claims are matched by name (the resourceclaim
controller names them `<pod>-<entry>`, plus a random suffix from 1.28 on),
and shared claims by the claim names the scenario's workloads use.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sim.cluster.claimcontroller import generated_claim_base_name
from sim.results import Results

ALLOCATED_CLAIM_STATES = frozenset({"Allocated", "Reserved", "DeallocationRequested"})
"""Claim states of the `events` table in which `status.allocation` is set."""

NO_CLAIMS = "no claims"
MIXED_MODES = "mixed"
UNKNOWN_MODE = "unknown"

GENERATED_NAME_SUFFIX_LENGTH = 5
"""Random characters the API server appends to a `generateName` (as Kubernetes does)."""


def as_float(value: Any) -> float:
    """Convert a table cell to float (pandas types cells as a union of every scalar type)."""
    return float(value)


def as_int(value: Any) -> int:
    """Convert a table cell to int."""
    return int(value)


def end_time_s(results: Results) -> float:
    """Return the simulated time at which the run stopped, seconds."""
    value = results.manifest.get("sim_time_s")
    if isinstance(value, int | float) and not math.isnan(value):
        return float(value)
    times = [
        float(table["time_s"].max())
        for name in ("events", "api_requests", "cycles")
        if (table := results.tables.get(name)) is not None and len(table)
    ]
    return max(times, default=0.0)


def table(results: Results, name: str) -> pd.DataFrame:
    """Return one results table, or an empty frame when the run did not write it."""
    found = results.tables.get(name)
    return found if found is not None else pd.DataFrame()


def kubernetes_minor(results: Results) -> int:
    """Return the minor Kubernetes version the run modelled (27, 28 or 29)."""
    return int(results.scenario.control_plane.kubernetes_version.split(".")[1])


# --------------------------------------------------------------------------------------
# Pods and their claims
# --------------------------------------------------------------------------------------


def _generated_base(name: str, minor: int) -> str:
    """Return the `<pod>-<entry>` base of a generated claim name (see `pod_claim_links`)."""
    if minor <= 27:
        return name
    if minor == 28:
        return name[:-GENERATED_NAME_SUFFIX_LENGTH]
    stem = name[: -GENERATED_NAME_SUFFIX_LENGTH - 1]
    return stem if name[-GENERATED_NAME_SUFFIX_LENGTH - 1] == "-" else ""


@dataclass(frozen=True)
class _ClaimRecord:
    uid: str
    name: str
    created_s: float
    deleted_s: float


def pod_claim_links(results: Results) -> pd.DataFrame:
    """Return one row per (pod, claim) that the pod uses.

    Columns: `pod_uid`, `namespace`, `pod`, `entry` (the pod's claim entry
    name, "" when unknown), `claim_uid`, `claim`.

    Pods of a scenario workload are matched through the workload's claim
    entries. A template entry matches the first generated claim, created
    during the pod's life, whose name the resourceclaim controller derives
    from the pod and the entry: `<pod>-<entry>` in 1.27, followed by 5 random
    characters in 1.28, and by a hyphen and 5 random characters in 1.29. A
    shared entry matches the claim of that name that existed when the pod was
    created. Pods that no scenario workload describes (from manifests) are
    matched to generated claims whose name starts with `<pod>-`.
    """
    pods = table(results, "pods")
    claims = table(results, "claims")
    columns = ["pod_uid", "namespace", "pod", "entry", "claim_uid", "claim"]
    if pods.empty or claims.empty:
        return pd.DataFrame(columns=columns)

    minor = kubernetes_minor(results)
    end = end_time_s(results)
    generated: dict[tuple[str, str], list[_ClaimRecord]] = {}
    by_name: dict[tuple[str, str], list[_ClaimRecord]] = {}
    for claim in claims.itertuples(index=False):
        record = _ClaimRecord(
            str(claim.uid), str(claim.name), as_float(claim.created_s), as_float(claim.deleted_s)
        )
        by_name.setdefault((str(claim.namespace), record.name), []).append(record)
        if bool(claim.generated):
            base = _generated_base(record.name, minor)
            generated.setdefault((str(claim.namespace), base), []).append(record)

    generated_by_name = sorted(
        (
            (namespace, record.name, record)
            for (namespace, _), records in generated.items()
            for record in records
        ),
        key=lambda item: item[:2],
    )
    workloads = {(w.namespace, w.name): w for w in results.scenario.workloads}
    rows: list[tuple[str, str, str, str, str, str]] = []
    for pod in pods.itertuples(index=False):
        namespace, name = str(pod.namespace), str(pod.name)
        born = as_float(pod.created_s) if not math.isnan(as_float(pod.created_s)) else 0.0
        died = as_float(pod.deleted_s) if not math.isnan(as_float(pod.deleted_s)) else end
        workload = workloads.get((namespace, str(pod.workload)))
        if workload is None:
            found = _unknown_pod_claims(generated_by_name, namespace, name, born, died)
            rows.extend((str(pod.uid), namespace, name, "", uid, claim) for uid, claim in found)
            continue
        for entry in workload.claims:
            if entry.claim is not None:
                match = _shared_claim(by_name.get((namespace, entry.claim), []), born)
            else:
                base = generated_claim_base_name(name, entry.name)
                match = _generated_claim(generated.get((namespace, base), []), born, died)
            if match is not None:
                rows.append((str(pod.uid), namespace, name, entry.name, match.uid, match.name))
    return pd.DataFrame(rows, columns=columns)


def _shared_claim(records: list[_ClaimRecord], born: float) -> _ClaimRecord | None:
    """Return the claim that existed when the pod was created, else the first of that name."""
    alive = [r for r in records if r.created_s <= born and not r.deleted_s <= born]
    if alive:
        return alive[-1]
    return records[0] if records else None


def _generated_claim(records: list[_ClaimRecord], born: float, died: float) -> _ClaimRecord | None:
    for record in records:
        if born <= record.created_s <= died:
            return record
    return None


def _unknown_pod_claims(
    generated: list[tuple[str, str, _ClaimRecord]],
    namespace: str,
    pod: str,
    born: float,
    died: float,
) -> list[tuple[str, str]]:
    """Return generated claims named `<pod>-...` created during the pod's life.

    `generated` contains (namespace, name, record) sorted by namespace and
    name, so the claims with the prefix form one contiguous range.
    """
    prefix = pod + "-"
    index = bisect.bisect_left(generated, (namespace, prefix), key=lambda item: item[:2])
    found = []
    while index < len(generated):
        claim_namespace, name, record = generated[index]
        if claim_namespace != namespace or not name.startswith(prefix):
            break
        if born <= record.created_s <= died:
            found.append((record.uid, record.name))
        index += 1
    return found


def pod_allocation_modes(results: Results) -> pd.Series:
    """Return the allocation mode of each pod's claims, indexed by pod UID.

    Values: Immediate, WaitForFirstConsumer, "mixed" (claims of both modes),
    "no claims", or "unknown" (the pod has claims that could not be matched).
    """
    pods = table(results, "pods")
    claims = table(results, "claims")
    links = pod_claim_links(results)
    mode_of_claim = dict(zip(claims["uid"], claims["mode"], strict=True)) if len(claims) else {}
    modes_by_pod: dict[str, set[str]] = {}
    for link in links.itertuples(index=False):
        modes_by_pod.setdefault(str(link.pod_uid), set()).add(mode_of_claim[link.claim_uid])
    values = []
    for pod in pods.itertuples(index=False):
        modes = modes_by_pod.get(str(pod.uid), set())
        if len(modes) == 1:
            values.append(next(iter(modes)))
        elif len(modes) > 1:
            values.append(MIXED_MODES)
        else:
            values.append(NO_CLAIMS if as_int(pod.claims) == 0 else UNKNOWN_MODE)
    return pd.Series(values, index=pods["uid"].astype(str) if len(pods) else None, dtype=object)


def pod_latencies(results: Results) -> pd.DataFrame:
    """Return one row per pod with its latencies and groups.

    Columns: `uid`, `namespace`, `name`, `workload`, `mode` (see
    `pod_allocation_modes`), `scheduling_latency_s` (`scheduled_s -
    created_s`) and `startup_latency_s` (`running_s - created_s`); a latency
    is NaN when the pod never reached that point.
    """
    pods = table(results, "pods")
    if pods.empty:
        return pd.DataFrame(
            columns=[
                "uid",
                "namespace",
                "name",
                "workload",
                "mode",
                "scheduling_latency_s",
                "startup_latency_s",
            ]
        )
    modes = pod_allocation_modes(results)
    frame = pd.DataFrame(
        {
            "uid": pods["uid"].astype(str),
            "namespace": pods["namespace"].astype(str),
            "name": pods["name"].astype(str),
            "workload": pods["workload"].astype(str).replace("", "(none)"),
            "mode": modes.reindex(pods["uid"].astype(str)).to_numpy(),
            "scheduling_latency_s": (pods["scheduled_s"] - pods["created_s"]).to_numpy(),
            "startup_latency_s": (pods["running_s"] - pods["created_s"]).to_numpy(),
        }
    )
    return frame.reset_index(drop=True)


def ecdf(values: Iterable[float]) -> tuple[np.ndarray, np.ndarray]:
    """Return the empirical CDF of the finite values: sorted values and fractions `i/n`."""
    data = np.sort(np.asarray([v for v in values if not math.isnan(v)], dtype=float))
    if data.size == 0:
        return data, data
    return data, np.arange(1, data.size + 1, dtype=float) / data.size


# --------------------------------------------------------------------------------------
# Levels over time
# --------------------------------------------------------------------------------------


def count_over_time(
    starts: Iterable[float], ends: Iterable[float], end_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return the number of intervals `[start, end)` that cover each instant, as a step function.

    NaN starts are skipped and NaN ends mean "still open at `end_s`". The
    result is `(times, counts)`, where `counts[i]` is the count from
    `times[i]` to `times[i + 1]`. It starts at time 0 and ends with a point at
    `end_s`.
    """
    return level_over_time(starts, ends, None, end_s)


def level_over_time(
    starts: Iterable[float],
    ends: Iterable[float],
    amounts: Iterable[float] | None,
    end_s: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the summed amount of the intervals open at each instant, as a step function.

    Like `count_over_time`, with each interval weighted by its amount (1 when
    `amounts` is None). Changes of the same instant are applied together.
    """
    start_array = np.asarray(list(starts), dtype=float)
    end_array = np.asarray(list(ends), dtype=float)
    amount_array = (
        np.ones_like(start_array) if amounts is None else np.asarray(list(amounts), dtype=float)
    )
    keep = ~np.isnan(start_array)
    start_array, end_array, amount_array = start_array[keep], end_array[keep], amount_array[keep]
    # Intervals still open at `end_s` (NaN end, or an end after it) never close.
    closes = ~np.isnan(end_array) & (end_array < end_s)
    times = np.concatenate([[0.0], start_array, end_array[closes], [end_s]])
    deltas = np.concatenate([[0.0], amount_array, -amount_array[closes], [0.0]])
    unique_times, inverse = np.unique(times, return_inverse=True)
    summed = np.zeros(unique_times.size)
    np.add.at(summed, inverse, deltas)
    levels = np.cumsum(summed)
    # Sums of opposite floats leave tiny remainders; the levels are counts of whole units.
    levels = np.where(np.abs(levels) < 1e-9, 0.0, levels)
    return unique_times, levels


def time_weighted_mean(times: np.ndarray, levels: np.ndarray, end_s: float) -> float:
    """Return the mean of a step function over `[0, end_s]` (NaN when `end_s` is 0)."""
    if end_s <= 0 or times.size == 0:
        return math.nan
    clipped = np.clip(np.append(times, end_s), 0.0, end_s)
    widths = np.diff(clipped)
    return float(np.sum(levels * widths) / end_s)


def pods_over_time(results: Results) -> pd.DataFrame:
    """Return the number of pending and running pods as step functions of time.

    A pod is pending from its creation until it is bound (or removed), and
    running from its first Running write until it finishes (or is removed).
    Columns: `time_s`, `pending`, `running`. Each row's counts last until the
    next row.
    """
    pods = table(results, "pods")
    end = end_time_s(results)
    if pods.empty:
        return pd.DataFrame({"time_s": [0.0, end], "pending": [0.0, 0.0], "running": [0.0, 0.0]})
    pending_end = pods[["scheduled_s", "deleted_s"]].min(axis=1, skipna=True)
    running_end = pods[["finished_s", "deleted_s"]].min(axis=1, skipna=True)
    pending_times, pending = count_over_time(pods["created_s"], pending_end, end)
    running_times, running = count_over_time(pods["running_s"], running_end, end)
    times = np.union1d(pending_times, running_times)
    return pd.DataFrame(
        {
            "time_s": times,
            "pending": _sample_steps(pending_times, pending, times),
            "running": _sample_steps(running_times, running, times),
        }
    )


def _sample_steps(times: np.ndarray, levels: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Return the step function's value at each of `at` (the value of the last change)."""
    index = np.searchsorted(times, at, side="right") - 1
    return np.where(index >= 0, levels[np.clip(index, 0, None)], 0.0)


# --------------------------------------------------------------------------------------
# Attempts, writes, deallocations and conflicts
# --------------------------------------------------------------------------------------


def component_group(component: str) -> str:
    """Return the component's kind: `kubelet/<node>` becomes `kubelet`; others stay."""
    return "kubelet" if component.startswith("kubelet/") else component


def writes_per_pod(results: Results) -> pd.DataFrame:
    """Return API writes per created pod by component, split by result.

    Columns: `component` (kubelets of all nodes together), `succeeded` and
    `failed` (writes with a code of 400 or more), each divided by the number
    of pods created. Sorted by total, largest first.
    """
    requests = table(results, "api_requests")
    pods_created = len(table(results, "pods"))
    if requests.empty or pods_created == 0:
        return pd.DataFrame(columns=["component", "succeeded", "failed"])
    writes = requests[requests["write"]]
    grouped = pd.DataFrame(
        {
            "component": writes["component"].astype(str).map(component_group),
            "failed": writes["code"] >= 400,
        }
    )
    counts = grouped.groupby(["component", "failed"]).size().unstack(fill_value=0)
    frame = pd.DataFrame(
        {
            "component": counts.index.astype(str),
            "succeeded": counts.get(False, pd.Series(0, index=counts.index)).to_numpy()
            / pods_created,
            "failed": counts.get(True, pd.Series(0, index=counts.index)).to_numpy() / pods_created,
        }
    )
    frame["total"] = frame["succeeded"] + frame["failed"]
    frame = frame.sort_values(["total", "component"], ascending=[False, True], kind="stable")
    return frame.drop(columns="total").reset_index(drop=True)


def deallocation_times(results: Results) -> pd.DataFrame:
    """Return one row per deallocation: `time_s`, `driver`, `namespace`, `claim`.

    A deallocation is a transition of a claim from an allocated state to
    Pending, or the claim's `deallocated_s` when the claim was deallocated
    while being deleted (which no transition shows). The row count equals
    the sum of `claims.deallocations` when every deallocation shows one way
    or the other.
    """
    claims = table(results, "claims")
    events = table(results, "events")
    columns = ["time_s", "driver", "namespace", "claim"]
    if claims.empty or events.empty:
        return pd.DataFrame(columns=columns)
    claim_rows = {str(row.uid): row for row in claims.itertuples(index=False)}
    rows: list[tuple[float, str, str, str]] = []
    claim_events = events[events["kind"] == "ResourceClaim"]
    for uid, history in claim_events.groupby("uid", sort=False):
        claim = claim_rows.get(str(uid))
        if claim is None:
            continue
        times = [
            float(time_s)
            for time_s, before, after in zip(
                history["time_s"], history["from_state"], history["to_state"], strict=True
            )
            if before in ALLOCATED_CLAIM_STATES and after == "Pending"
        ]
        last = as_float(claim.deallocated_s)
        if not math.isnan(last) and last not in times and as_int(claim.deallocations) > len(times):
            times.append(last)
        rows.extend((t, str(claim.driver), str(claim.namespace), str(claim.name)) for t in times)
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("time_s", kind="stable").reset_index(drop=True)


def conflict_times(results: Results) -> pd.DataFrame:
    """Return the API requests rejected with 409 Conflict: `time_s`, `component`, `resource`."""
    requests = table(results, "api_requests")
    if requests.empty:
        return pd.DataFrame(columns=["time_s", "component", "resource"])
    conflicts = requests[requests["code"] == 409]
    return pd.DataFrame(
        {
            "time_s": conflicts["time_s"].to_numpy(dtype=float),
            "component": conflicts["component"].astype(str).map(component_group).to_numpy(),
            "resource": conflicts["resource"].astype(str).to_numpy(),
        }
    )


def bin_width_s(end_s: float, bins: int = 60) -> float:
    """Return a round bin width (1, 2 or 5 times a power of ten) giving about `bins` bins."""
    if end_s <= 0:
        return 1.0
    raw = end_s / bins
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 5.0, 10.0):
        if raw <= factor * power:
            return factor * power
    return 10.0 * power


# --------------------------------------------------------------------------------------
# Timelines
# --------------------------------------------------------------------------------------

TERMINAL_STATES = frozenset({"Succeeded", "Failed", "Deleted"})
"""States after which an object's timeline bar stops."""


def state_segments(results: Results, kind: str, uids: Iterable[str]) -> pd.DataFrame:
    """Return the state intervals of the given objects, from the `events` table.

    Each transition starts a segment in its `to_state` that lasts until the
    object's next transition, or until the end of the run. Segments in a
    terminal state (Succeeded, Failed, Deleted) are left out, as are empty ones.
    Columns: `uid`, `name`, `state`, `start_s`, `end_s`.
    """
    events = table(results, "events")
    columns = ["uid", "name", "state", "start_s", "end_s"]
    wanted = set(uids)
    if events.empty or not wanted:
        return pd.DataFrame(columns=columns)
    end = end_time_s(results)
    chosen = events[(events["kind"] == kind) & events["uid"].isin(wanted)]
    rows: list[tuple[str, str, str, float, float]] = []
    for uid, history in chosen.groupby("uid", sort=False):
        times = history["time_s"].to_numpy(dtype=float)
        states = history["to_state"].astype(str).to_numpy()
        names = history["name"].astype(str).to_numpy()
        for index, state in enumerate(states):
            stop = float(times[index + 1]) if index + 1 < len(times) else end
            if state in TERMINAL_STATES or stop <= times[index]:
                continue
            rows.append((str(uid), str(names[index]), str(state), float(times[index]), stop))
    return pd.DataFrame(rows, columns=columns)


def sample_pods(results: Results, max_pods: int, seed: int) -> pd.DataFrame:
    """Return all pods when there are at most `max_pods`, else a seeded random sample of them.

    The rows keep the order of the `pods` table (by creation time).
    """
    pods = table(results, "pods")
    if len(pods) <= max_pods:
        return pods
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(pods), size=max_pods, replace=False))
    return pods.iloc[chosen]
