"""Plots of one run (or several), drawn from the results tables.

Every `plot_*` function takes `Results` and returns a matplotlib `Figure` with
a title, axis labels with units and a legend. Figures are built with the
object-oriented API on an Agg canvas that this module attaches to each figure.
Drawing therefore never depends on, or changes, the global pyplot backend, and
the same functions work in a headless report, in a test and in a notebook
(where `%matplotlib inline` displays the returned figure).

The numbers come from `sim.analysis.derived`, so a test can compare a plotted
line with the derived data it should show.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sim.analysis import derived, devices
from sim.results import Results

Latency = Literal["scheduling", "startup"]
Grouping = Literal["mode", "workload"]

LATENCY_COLUMNS: dict[str, str] = {
    "scheduling": "scheduling_latency_s",
    "startup": "startup_latency_s",
}
LATENCY_TITLES: dict[str, str] = {
    "scheduling": "Scheduling latency (created to bound)",
    "startup": "Startup latency (created to Running)",
}
GROUP_TITLES: dict[str, str] = {"mode": "allocation mode", "workload": "workload"}

STATE_COLORS: dict[str, str] = {
    # Pod states, in the order of a pod's life.
    "Created": "#f2c14e",
    "Pending": "#f2c14e",
    "Bound": "#9ecae1",
    "ContainerCreating": "#4292c6",
    "Running": "#41ab5d",
    "Terminating": "#969696",
    "Unknown": "#d9d9d9",
    "Deleting": "#636363",
    # Claim states, in the order of a claim's life.
    "claim Pending": "#fee8a0",
    "Allocated": "#c6dbef",
    "Reserved": "#807dba",
    "DeallocationRequested": "#fd8d3c",
    "claim Deleting": "#525252",
}
"""Bar colour of each state. Claim states that share a name with a pod state are prefixed."""
OTHER_STATE_COLOR = "#e7298a"

DPI = 110

MAX_GROUPS = 8
"""Maximum number of groups (workloads, modes) a plot draws, the smallest merged into one."""


def new_figure(
    rows: int = 1,
    columns: int = 1,
    *,
    width: float = 8.0,
    height: float = 4.5,
    sharex: bool = False,
) -> tuple[Figure, list[Axes]]:
    """Create a figure with an Agg canvas and a grid of axes (returned row by row)."""
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.subplots(rows, columns, sharex=sharex, squeeze=False)
    return figure, [axes for row in grid for axes in row]


def figure_png(figure: Figure) -> bytes:
    """Render the figure as PNG bytes."""
    stream = io.BytesIO()
    figure.savefig(stream, format="png", dpi=DPI)
    return stream.getvalue()


def write_atomically(path: str | Path, data: bytes) -> Path:
    """Write bytes to `path` through a temporary file in the same folder, renamed into place."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        # mkstemp creates the file readable by its owner only; give it the usual mode.
        os.chmod(staging, 0o666 & ~_current_umask())
        os.replace(staging, target)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return target


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Write the figure as a PNG file, atomically."""
    return write_atomically(path, figure_png(figure))


def _no_data(axes: Axes, message: str) -> None:
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes)


def limit_groups(
    labels: pd.Series, noun: str, limit: int = MAX_GROUPS
) -> tuple[pd.Series, list[str]]:
    """Merge all but the largest groups of `labels` into one, so that a legend stays readable.

    With at most `limit` distinct labels nothing changes. Otherwise the
    `limit - 1` most frequent labels stay (ties go to the smaller label) and
    every other label becomes `other (<k> <noun>)`.

    Returns:
        The labels after merging, and the groups in drawing order: the largest
        labels sorted, then the merged group.
    """
    counts = labels.value_counts()
    if len(counts) <= limit:
        return labels, sorted(str(label) for label in counts.index)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
    largest = sorted(str(label) for label, _ in ranked[: limit - 1])
    other = f"other ({len(counts) - len(largest)} {noun})"
    text = labels.astype(str)
    merged = text.where(text.isin(largest), other)
    return merged, [*largest, other]


def _legend_below(axes: Axes) -> None:
    """Draw the legend under the axes, where it covers neither the data nor the title."""
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncols=2, fontsize="small")


def _run_label(results: Results) -> str:
    seed = results.manifest.get("seed", results.scenario.seed)
    return f"{results.scenario.name}, seed {seed}"


# --------------------------------------------------------------------------------------
# Pods over time
# --------------------------------------------------------------------------------------


def plot_pods_over_time(results: Results) -> Figure:
    """Plot the number of pending (not yet bound) and running pods over simulated time."""
    figure, (axes,) = new_figure()
    levels = derived.pods_over_time(results)
    times = levels["time_s"].to_numpy(dtype=float)
    axes.step(times, levels["pending"].to_numpy(), where="post", label="pending (not bound)")
    axes.step(times, levels["running"].to_numpy(), where="post", label="running")
    axes.set_xlabel("simulated time (s)")
    axes.set_ylabel("pods")
    axes.set_title(f"Pending and running pods ({_run_label(results)})")
    axes.set_xlim(0, derived.end_time_s(results) or None)
    highest = float(max(levels["pending"].max(), levels["running"].max(), 1.0))
    axes.set_ylim(0, highest * 1.2)
    axes.legend(loc="upper right")
    return figure


# --------------------------------------------------------------------------------------
# Latency CDFs
# --------------------------------------------------------------------------------------


def plot_latency_cdfs(results: Results, by: Grouping = "mode") -> Figure:
    """Plot the empirical CDFs of scheduling and startup latency, one line per group.

    `by` selects the groups: the allocation mode of the pods' claims
    (`derived.pod_allocation_modes`) or the workload. Each line's x data are
    the group's sorted latencies and its y data the fractions `i/n`. A dotted
    vertical line marks the 95th percentile of all pods.
    """
    figure, panels = new_figure(1, 2, width=11.0, height=6.0)
    latencies = derived.pod_latencies(results)
    groups, order = limit_groups(latencies[by].astype(str), f"{GROUP_TITLES[by]}s")
    latencies = latencies.assign(**{by: groups})
    for axes, latency in zip(panels, ("scheduling", "startup"), strict=True):
        column = LATENCY_COLUMNS[latency]
        _draw_cdfs(axes, latencies, column, by, order)
        axes.set_title(f"{LATENCY_TITLES[latency]}\nby {GROUP_TITLES[by]}")
    figure.suptitle(f"Latency CDFs ({_run_label(results)})")
    return figure


def _draw_cdfs(axes: Axes, latencies: Any, column: str, by: str, order: list[str]) -> None:
    values = latencies[column].to_numpy(dtype=float)
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        _no_data(axes, "no pod reached this point")
    else:
        for group in order:
            x, y = derived.ecdf(latencies.loc[latencies[by] == group, column])
            if x.size:
                axes.step(x, y, where="post", label=f"{group} (n={x.size})")
        p95 = float(np.quantile(finite, 0.95))
        axes.axvline(p95, color="black", linestyle=":", label=f"p95 of all pods = {p95:.3g} s")
        _legend_below(axes)
    axes.set_xlabel("latency (s)")
    axes.set_ylabel("fraction of pods")
    axes.set_ylim(0, 1.02)


def plot_latency_comparison(runs: Mapping[str, Results]) -> Figure:
    """Overlay the scheduling and startup latency CDFs of several runs, one line per run."""
    figure, panels = new_figure(1, 2, width=11.0, height=4.5)
    for axes, latency in zip(panels, ("scheduling", "startup"), strict=True):
        column = LATENCY_COLUMNS[latency]
        drawn = False
        for label, results in runs.items():
            x, y = derived.ecdf(derived.pod_latencies(results)[column])
            if x.size:
                p95 = float(np.quantile(x, 0.95))
                axes.step(x, y, where="post", label=f"{label} (n={x.size}, p95 {p95:.3g} s)")
                drawn = True
        if drawn:
            axes.legend(loc="lower right", fontsize="small")
        else:
            _no_data(axes, "no pod reached this point")
        axes.set_title(LATENCY_TITLES[latency])
        axes.set_xlabel("latency (s)")
        axes.set_ylabel("fraction of pods")
        axes.set_ylim(0, 1.02)
    figure.suptitle("Latency CDFs compared")
    return figure


# --------------------------------------------------------------------------------------
# Devices
# --------------------------------------------------------------------------------------


def plot_device_utilization(results: Results) -> Figure:
    """Plot the devices in use over time, one panel per driver and node pool.

    Each panel shows the devices held by allocated claims (reconstructed by
    `devices.device_use`), the pool's capacity and the time-weighted mean of
    the `utilization` table.
    """
    uses = devices.device_use(results)
    figure, panels = new_figure(
        max(1, len(uses)), 1, width=10.0, height=max(3.2, 3.0 * len(uses)), sharex=True
    )
    if not uses:
        _no_data(panels[0], "no devices in this run")
        panels[0].set_xlabel("simulated time (s)")
        panels[0].set_ylabel("devices in use")
    for axes, use in zip(panels, uses, strict=False):
        pool = use.pool or "not bound to one node"
        axes.step(use.times, use.in_use, where="post", label="in use")
        if not math.isnan(use.capacity):
            axes.axhline(use.capacity, color="black", linestyle="--", label="capacity")
        if not math.isnan(use.table_mean_in_use):
            axes.axhline(
                use.table_mean_in_use,
                color="tab:red",
                linestyle=":",
                label=f"time-weighted mean = {use.table_mean_in_use:.3g}",
            )
        axes.set_title(f"{use.driver}, pool {pool}")
        axes.set_ylabel("devices in use")
        top = np.nanmax([float(np.max(use.in_use, initial=0.0)), use.capacity, 1.0])
        axes.set_ylim(0, top * 1.1)
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    panels[-1].set_xlabel("simulated time (s)")
    panels[-1].set_xlim(0, derived.end_time_s(results) or None)
    figure.suptitle(f"Device use per driver and node pool ({_run_label(results)})")
    return figure


# --------------------------------------------------------------------------------------
# Attempts and writes
# --------------------------------------------------------------------------------------


def plot_attempts_and_writes(results: Results) -> Figure:
    """Plot scheduling attempts per pod (by workload) and API writes per pod by component."""
    figure, (attempts_axes, writes_axes) = new_figure(1, 2, width=12.0, height=4.5)

    pods = derived.table(results, "pods")
    tried = pods[pods["attempts"] > 0] if not pods.empty else pods
    if tried.empty:
        _no_data(attempts_axes, "no scheduling attempts")
    else:
        groups, workloads = limit_groups(tried["workload"].astype(str), "workloads")
        highest = int(tried["attempts"].max())
        counts = np.arange(1, highest + 1)
        width = 0.8 / len(workloads)
        for index, workload in enumerate(workloads):
            attempts = tried.loc[groups == workload, "attempts"].to_numpy()
            pods_per_count = np.bincount(attempts, minlength=highest + 1)[1:]
            offset = (index - (len(workloads) - 1) / 2) * width
            attempts_axes.bar(
                counts + offset, pods_per_count, width=width, label=workload or "(none)"
            )
        attempts_axes.legend(title="workload", fontsize="small")
    attempts_axes.set_xlabel("scheduling attempts of the pod")
    attempts_axes.set_ylabel("pods")
    attempts_axes.set_title("Scheduling attempts per pod")

    writes = derived.writes_per_pod(results)
    if writes.empty:
        _no_data(writes_axes, "no API writes")
    else:
        positions = np.arange(len(writes))
        writes_axes.barh(positions, writes["succeeded"], label="succeeded")
        writes_axes.barh(
            positions, writes["failed"], left=writes["succeeded"], label="failed (4xx, 5xx)"
        )
        writes_axes.set_yticks(positions, writes["component"].tolist())
        writes_axes.invert_yaxis()
        writes_axes.legend(loc="lower right", fontsize="small")
    writes_axes.set_xlabel("API writes per created pod")
    writes_axes.set_ylabel("component")
    writes_axes.set_title("API writes per pod by component")
    figure.suptitle(f"Scheduling attempts and API writes ({_run_label(results)})")
    return figure


# --------------------------------------------------------------------------------------
# Deallocations and conflicts
# --------------------------------------------------------------------------------------


def plot_deallocations_and_conflicts(results: Results, bin_s: float | None = None) -> Figure:
    """Plot deallocations (by driver) and 409 conflicts (by component) per time bin.

    Bins are `bin_s` seconds wide (by default a round width giving about 60
    bins over the run), and the bars of one bin are stacked.
    """
    end = derived.end_time_s(results)
    width = bin_s if bin_s is not None else derived.bin_width_s(end)
    edges = np.arange(0.0, max(end, width) + width, width)
    figure, (deallocation_axes, conflict_axes) = new_figure(2, 1, height=6.5, sharex=True)

    deallocations = derived.deallocation_times(results)
    _stacked_histogram(deallocation_axes, deallocations, "driver", edges, "no deallocations")
    deallocation_axes.set_ylabel(f"deallocations per {width:g} s")
    deallocation_axes.set_title("Deallocations (claims whose allocation was cleared)")

    conflicts = derived.conflict_times(results)
    _stacked_histogram(conflict_axes, conflicts, "component", edges, "no 409 conflicts")
    conflict_axes.set_ylabel(f"409 conflicts per {width:g} s")
    conflict_axes.set_title("API requests rejected with 409 Conflict")
    conflict_axes.set_xlabel("simulated time (s)")
    conflict_axes.set_xlim(0, end or None)
    figure.suptitle(f"Deallocations and conflicts over time ({_run_label(results)})")
    return figure


def _stacked_histogram(
    axes: Axes, frame: Any, group_column: str, edges: np.ndarray, empty: str
) -> None:
    if frame.empty:
        _no_data(axes, empty)
        return
    bottom = np.zeros(edges.size - 1)
    for group in sorted(frame[group_column].unique()):
        times = frame.loc[frame[group_column] == group, "time_s"].to_numpy(dtype=float)
        counts, _ = np.histogram(times, bins=edges)
        axes.bar(edges[:-1], counts, width=np.diff(edges), bottom=bottom, align="edge", label=group)
        bottom = bottom + counts
    axes.legend(loc="upper right", fontsize="small")


# --------------------------------------------------------------------------------------
# Timeline
# --------------------------------------------------------------------------------------


def plot_timeline(results: Results, max_pods: int = 25, seed: int = 0) -> Figure:
    """Draw a Gantt chart of pod and claim states, with each scheduling attempt marked.

    With more than `max_pods` pods, a random sample of `max_pods` pods drawn
    with `seed` is shown, and the title states the sample. Each pod row is followed by the
    rows of its claims; a shared claim is drawn once, under its first pod.
    Bars are the states of the `events` table; a bar stops at a terminal
    state (Succeeded, Failed, Deleted).
    """
    pods = derived.table(results, "pods")
    sample = derived.sample_pods(results, max_pods, seed)
    links = derived.pod_claim_links(results)
    claim_of_pod: dict[str, list[tuple[str, str]]] = {}
    for link in links.itertuples(index=False):
        claim_of_pod.setdefault(str(link.pod_uid), []).append(
            (str(link.claim_uid), str(link.claim))
        )

    rows: list[tuple[str, str, str]] = []  # (kind, uid, label)
    drawn_claims: set[str] = set()
    for pod in sample.itertuples(index=False):
        rows.append(("Pod", str(pod.uid), f"pod {pod.name}"))
        for claim_uid, claim_name in claim_of_pod.get(str(pod.uid), []):
            if claim_uid not in drawn_claims:
                drawn_claims.add(claim_uid)
                rows.append(("ResourceClaim", claim_uid, f"  claim {claim_name}"))

    figure, (axes,) = new_figure(width=11.0, height=max(3.0, 1.2 + 0.28 * len(rows)))
    if not rows:
        _no_data(axes, "no pods in this run")
    row_of = {(kind, uid): index for index, (kind, uid, _) in enumerate(rows)}
    segments = [
        derived.state_segments(results, kind, [uid for k, uid, _ in rows if k == kind]).assign(
            kind=kind
        )
        for kind in ("Pod", "ResourceClaim")
    ]
    states: dict[str, list[tuple[int, float, float]]] = {}
    for frame in segments:
        for segment in frame.itertuples(index=False):
            row = row_of[(str(segment.kind), str(segment.uid))]
            state = str(segment.state)
            if segment.kind == "ResourceClaim" and state in ("Pending", "Deleting"):
                state = f"claim {state}"
            states.setdefault(state, []).append(
                (row, derived.as_float(segment.start_s), derived.as_float(segment.end_s))
            )
    order = list(STATE_COLORS)
    for state in sorted(states, key=lambda s: (order.index(s) if s in order else len(order), s)):
        bars = states[state]
        axes.barh(
            [row for row, _, _ in bars],
            [stop - start for _, start, stop in bars],
            left=[start for _, start, _ in bars],
            height=0.7,
            color=STATE_COLORS.get(state, OTHER_STATE_COLOR),
            label=state,
        )

    cycles = derived.table(results, "cycles")
    if not cycles.empty and rows:
        pod_rows = {uid: row_of[("Pod", uid)] for kind, uid, _ in rows if kind == "Pod"}
        chosen = cycles[cycles["pod_uid"].isin(list(pod_rows))]
        axes.plot(
            chosen["time_s"].to_numpy(dtype=float),
            [pod_rows[str(uid)] for uid in chosen["pod_uid"]],
            linestyle="none",
            marker="|",
            markersize=9,
            color="black",
            label="scheduling attempt",
        )

    axes.set_yticks(range(len(rows)), [label for _, _, label in rows], fontsize="small")
    if rows:
        axes.set_ylim(len(rows) - 0.5, -0.5)
    axes.set_xlabel("simulated time (s)")
    axes.set_ylabel("pod and its claims")
    axes.set_xlim(0, derived.end_time_s(results) or None)
    shown = (
        f"all {len(pods)} pods"
        if len(sample) == len(pods)
        else f"sample of {len(sample)} of {len(pods)} pods, seed {seed}"
    )
    axes.set_title(f"Pod and claim states ({shown}; {_run_label(results)})")
    if rows:
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return figure


PLOTS: Sequence[tuple[str, str]] = (
    ("pods-over-time", "Pending and running pods"),
    ("latency-cdf-by-mode", "Latency CDFs by allocation mode"),
    ("latency-cdf-by-workload", "Latency CDFs by workload"),
    ("device-utilization", "Device use per driver and node pool"),
    ("attempts-and-writes", "Scheduling attempts and API writes per pod"),
    ("deallocations-and-conflicts", "Deallocations and conflicts over time"),
    ("timeline", "Pod and claim timeline"),
)
"""File stem and title of every plot of the report, in report order."""


def draw_report_plots(
    results: Results, timeline_pods: int = 25, seed: int = 0
) -> dict[str, Figure]:
    """Draw every plot of the report, keyed by the file stems of `PLOTS`."""
    return {
        "pods-over-time": plot_pods_over_time(results),
        "latency-cdf-by-mode": plot_latency_cdfs(results, by="mode"),
        "latency-cdf-by-workload": plot_latency_cdfs(results, by="workload"),
        "device-utilization": plot_device_utilization(results),
        "attempts-and-writes": plot_attempts_and_writes(results),
        "deallocations-and-conflicts": plot_deallocations_and_conflicts(results),
        "timeline": plot_timeline(results, max_pods=timeline_pods, seed=seed),
    }
