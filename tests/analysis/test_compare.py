"""Tests of `compare`: two runs' summary metrics side by side, and their latency plot."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sim import Results
from sim.analysis import derived
from sim.analysis.compare import compare_summaries, format_comparison, run_labels
from sim.analysis.summary import ordered_summary_keys
from sim.cli import app


def test_differences_and_ratios(mixed: Results, legacy_dir: Path) -> None:
    legacy = Results.read(legacy_dir)
    frame = compare_summaries(mixed, legacy).set_index("metric")

    created = frame.loc["pods_created"]
    assert created["a"] == mixed.summary["pods_created"]
    assert created["b"] == legacy.summary["pods_created"]
    assert created["difference"] == created["b"] - created["a"]
    assert created["ratio"] == pytest.approx(created["b"] / created["a"])
    assert math.isnan(frame.loc["pods_failed", "ratio"])
    assert frame.loc["scheduling_latency_s_p95", "unit"] == "s"
    assert list(frame.index) == ordered_summary_keys(frame.index)


def test_format_shows_signs_and_missing_values(mixed: Results) -> None:
    frame = compare_summaries(mixed, mixed)
    text = format_comparison(frame, "left", "right")
    header, *rows = text.splitlines()

    assert header.split() == ["metric", "unit", "left", "right", "b", "-", "a", "b", "/", "a"]
    pods = next(row for row in rows if row.startswith("pods_created "))
    assert pods.split()[-2:] == ["0", "1"]
    failed = next(row for row in rows if row.startswith("pods_failed "))
    assert failed.split()[-1] == "-"


def test_labels_stay_distinct(tmp_path: Path) -> None:
    first = tmp_path / "a" / "results"
    second = tmp_path / "b" / "results"

    assert run_labels(first, second) == ("a/results", "b/results")
    assert run_labels(tmp_path / "x", tmp_path / "y") == ("x", "y")


def test_cli_compare_prints_and_plots(mixed_dir: Path, legacy_dir: Path, tmp_path: Path) -> None:
    output = tmp_path / "comparison"
    arguments = ["compare", str(mixed_dir), str(legacy_dir), "-o", str(output)]
    result = CliRunner().invoke(app, arguments)

    assert result.exit_code == 0, result.output
    assert "scheduling_latency_s_p95" in result.output
    plot = output / "latency-comparison.png"
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert f"plot: {plot}" in result.output


def test_cli_compare_rejects_missing_run(mixed_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["compare", str(mixed_dir), str(tmp_path / "none")])

    assert result.exit_code == 2
    assert "results directory not found" in result.output


def test_comparison_plot_lines_per_run(mixed: Results, legacy_dir: Path) -> None:
    from sim.analysis.plots import plot_latency_comparison

    legacy = Results.read(legacy_dir)
    figure = plot_latency_comparison({"1.29": mixed, "1.27": legacy})
    _, startup_axes = figure.axes
    lines = {str(line.get_label()).split(" ")[0]: line for line in startup_axes.get_lines()}

    expected = np.sort(derived.pod_latencies(legacy)["startup_latency_s"].dropna())
    np.testing.assert_allclose(lines["1.27"].get_xdata(), expected)
    assert set(lines) == {"1.29", "1.27"}
