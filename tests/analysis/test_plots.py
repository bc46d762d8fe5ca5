"""Tests of the plot functions: axes, labels and the data each figure draws."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.lines import Line2D

from sim import Results
from sim.analysis import derived, devices, plots


def line_labelled(axes: Axes, prefix: str) -> Line2D:
    matches = [line for line in axes.get_lines() if str(line.get_label()).startswith(prefix)]
    assert len(matches) == 1, [line.get_label() for line in axes.get_lines()]
    return matches[0]


def container_labelled(axes: Axes, label: str):
    matches = [c for c in axes.containers if c.get_label() == label]
    assert len(matches) == 1, [c.get_label() for c in axes.containers]
    return matches[0]


def test_figures_draw_on_agg_canvas(mixed: Results) -> None:
    figure = plots.plot_pods_over_time(mixed)

    assert isinstance(figure.canvas, FigureCanvasAgg)
    assert plots.figure_png(figure).startswith(b"\x89PNG")


def test_import_of_sim_loads_no_matplotlib() -> None:
    code = "import sys, sim; sim.simulate; print('matplotlib' in sys.modules)"
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout

    assert output.strip() == "False"


def test_pods_over_time_lines(mixed: Results) -> None:
    figure = plots.plot_pods_over_time(mixed)
    (axes,) = figure.axes
    levels = derived.pods_over_time(mixed)

    pending = line_labelled(axes, "pending")
    running = line_labelled(axes, "running")
    np.testing.assert_allclose(pending.get_xdata(), levels["time_s"])
    np.testing.assert_allclose(pending.get_ydata(), levels["pending"])
    np.testing.assert_allclose(running.get_ydata(), levels["running"])
    assert max(running.get_ydata()) >= 1
    assert axes.get_xlabel() == "simulated time (s)"
    assert axes.get_ylabel() == "pods"
    assert "mixed" in axes.get_title()
    assert axes.get_legend() is not None


@pytest.mark.parametrize(
    ("by", "groups"),
    [
        pytest.param("mode", {"WaitForFirstConsumer", "Immediate"}, id="by-mode"),
        pytest.param("workload", {"train", "infer", "notebook"}, id="by-workload"),
    ],
)
def test_latency_cdf_lines_are_sorted_latencies(mixed: Results, by: str, groups: set[str]) -> None:
    figure = plots.plot_latency_cdfs(mixed, by=by)  # type: ignore[arg-type]
    scheduling_axes, startup_axes = figure.axes
    latencies = derived.pod_latencies(mixed)

    for axes, column in (
        (scheduling_axes, "scheduling_latency_s"),
        (startup_axes, "startup_latency_s"),
    ):
        assert axes.get_xlabel() == "latency (s)"
        assert axes.get_ylabel() == "fraction of pods"
        for group in groups:
            line = line_labelled(axes, f"{group} (n=")
            expected = np.sort(latencies.loc[latencies[by] == group, column].to_numpy())
            np.testing.assert_allclose(line.get_xdata(), expected)
            np.testing.assert_allclose(
                line.get_ydata(), np.arange(1, expected.size + 1) / expected.size
            )
        p95 = line_labelled(axes, "p95 of all pods")
        assert p95.get_xdata()[0] == pytest.approx(np.quantile(latencies[column], 0.95))
    assert "Scheduling latency" in scheduling_axes.get_title()
    assert "Startup latency" in startup_axes.get_title()


def test_device_utilization_panels(mixed: Results) -> None:
    figure = plots.plot_device_utilization(mixed)
    uses = devices.device_use(mixed)

    assert len(figure.axes) == len(uses) == 2
    for axes, use in zip(figure.axes, uses, strict=True):
        assert use.pool in axes.get_title()
        assert axes.get_ylabel() == "devices in use"
        in_use = line_labelled(axes, "in use")
        np.testing.assert_allclose(in_use.get_xdata(), use.times)
        np.testing.assert_allclose(in_use.get_ydata(), use.in_use)
        assert line_labelled(axes, "capacity").get_ydata()[0] == use.capacity
        mean = line_labelled(axes, "time-weighted mean")
        assert mean.get_ydata()[0] == pytest.approx(use.table_mean_in_use)
    assert figure.axes[-1].get_xlabel() == "simulated time (s)"


def test_attempts_and_writes_bars(mixed: Results) -> None:
    figure = plots.plot_attempts_and_writes(mixed)
    attempts_axes, writes_axes = figure.axes

    bars = [bar for container in attempts_axes.containers for bar in container]
    assert sum(bar.get_height() for bar in bars) == len(mixed.pods)
    train = container_labelled(attempts_axes, "train")
    train_attempts = mixed.pods.loc[mixed.pods["workload"] == "train", "attempts"]
    for bar, count in zip(train, range(1, len(train) + 1), strict=True):
        assert bar.get_height() == (train_attempts == count).sum()
    assert attempts_axes.get_xlabel() == "scheduling attempts of the pod"
    assert attempts_axes.get_ylabel() == "pods"

    writes = derived.writes_per_pod(mixed)
    succeeded = container_labelled(writes_axes, "succeeded")
    np.testing.assert_allclose([bar.get_width() for bar in succeeded], writes["succeeded"])
    labels = [label.get_text() for label in writes_axes.get_yticklabels()]
    assert labels == list(writes["component"])
    assert writes_axes.get_xlabel() == "API writes per created pod"


def test_deallocation_and_conflict_bins(mixed: Results) -> None:
    figure = plots.plot_deallocations_and_conflicts(mixed, bin_s=10.0)
    deallocation_axes, conflict_axes = figure.axes

    heights = [bar.get_height() for c in deallocation_axes.containers for bar in c]
    assert sum(heights) == int(mixed.claims["deallocations"].sum())
    widths = {round(bar.get_width(), 9) for c in deallocation_axes.containers for bar in c}
    assert widths == {10.0}
    conflicts = int((mixed.api_requests["code"] == 409).sum())
    if conflicts:
        assert sum(bar.get_height() for c in conflict_axes.containers for bar in c) == conflicts
    assert deallocation_axes.get_ylabel() == "deallocations per 10 s"
    assert conflict_axes.get_ylabel() == "409 conflicts per 10 s"
    assert conflict_axes.get_xlabel() == "simulated time (s)"


def test_timeline_bars_are_state_segments(mixed: Results) -> None:
    figure = plots.plot_timeline(mixed, max_pods=50)
    (axes,) = figure.axes

    labels = [label.get_text() for label in axes.get_yticklabels()]
    assert labels[0] == f"pod {mixed.pods['name'].iloc[0]}"
    assert sum(label.startswith("pod ") for label in labels) == len(mixed.pods)
    assert sum(label.strip() == "claim shared-gpu" for label in labels) == 1
    segments = derived.state_segments(mixed, "Pod", mixed.pods["uid"])
    running = segments[segments["state"] == "Running"]
    bars = container_labelled(axes, "Running")
    np.testing.assert_allclose(sorted(bar.get_x() for bar in bars), sorted(running["start_s"]))
    np.testing.assert_allclose(
        sorted(bar.get_width() for bar in bars), sorted(running["end_s"] - running["start_s"])
    )
    attempts = line_labelled(axes, "scheduling attempt")
    assert len(attempts.get_xdata()) == len(mixed.cycles)
    assert axes.get_xlabel() == "simulated time (s)"
    assert "all 11 pods" in axes.get_title()


def test_timeline_samples_large_runs(mixed: Results) -> None:
    figure = plots.plot_timeline(mixed, max_pods=4, seed=1)
    (axes,) = figure.axes
    sample = derived.sample_pods(mixed, 4, seed=1)

    labels = [
        label.get_text() for label in axes.get_yticklabels() if label.get_text().startswith("pod ")
    ]
    assert labels == [f"pod {name}" for name in sample["name"]]
    assert "sample of 4 of 11 pods, seed 1" in axes.get_title()


def test_latency_comparison_overlays_runs(mixed: Results, quickstart_dir) -> None:
    quickstart = Results.read(quickstart_dir)
    figure = plots.plot_latency_comparison({"mixed": mixed, "quickstart": quickstart})
    scheduling_axes, _ = figure.axes

    for label, results in (("mixed", mixed), ("quickstart", quickstart)):
        line = line_labelled(scheduling_axes, f"{label} (n=")
        expected = np.sort(derived.pod_latencies(results)["scheduling_latency_s"].dropna())
        np.testing.assert_allclose(line.get_xdata(), expected)
    assert scheduling_axes.get_xlabel() == "latency (s)"


def test_save_figure_leaves_no_temporary_files(mixed: Results, tmp_path) -> None:
    path = plots.save_figure(plots.plot_pods_over_time(mixed), tmp_path / "plots" / "pods.png")

    assert path.read_bytes().startswith(b"\x89PNG")
    assert [p.name for p in path.parent.iterdir()] == ["pods.png"]


def test_limit_groups_merges_smallest() -> None:
    labels = pd.Series([f"w{i}" for i in range(12)] + ["w0", "w0", "w5"])
    merged, order = plots.limit_groups(labels, "workloads", limit=3)
    assert order == ["w0", "w5", "other (10 workloads)"]
    assert merged.value_counts().to_dict() == {"other (10 workloads)": 10, "w0": 3, "w5": 2}


def test_limit_groups_keeps_few_groups() -> None:
    labels = pd.Series(["b", "a", "b"])
    merged, order = plots.limit_groups(labels, "workloads", limit=3)
    assert order == ["a", "b"]
    assert merged.tolist() == ["b", "a", "b"]
