"""End-to-end tests of `run_sweep` and `dra-sim sweep` on the local executor."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import CLI, TINY_RATE_PER_S, TINY_SCENARIO, TINY_UNTIL_S, write_scenario
from typer.testing import CliRunner

from sim.cli import app
from sim.experiments import (
    WALL_CLOCK_COLUMNS,
    SweepError,
    is_sweep_directory,
    read_runs,
    report_sweep,
    run_sweep,
)
from sim.experiments.design import read_base, scenario_for
from sim.experiments.plots import plot_sweep, plotted_metrics
from sim.experiments.stats import summary_metric_names
from sim.results import simulate

NODES = "cluster.node_pools[n].count"
INVALID_MANIFEST = """\
apiVersion: resource.k8s.io/v1alpha2
kind: ResourceClass
metadata: {name: Not_A_Valid_Name}
driverName: gpu.example.com
"""
"""A manifest that loads but that the API server rejects when the run builds its cluster."""
RATE = "workloads[w].arrival.rate_per_s"


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Return (scenario file, sweep directory) of a 2 x 2 design with 3 replications."""
    folder = tmp_path_factory.mktemp("finished")
    scenario = write_scenario(folder, TINY_SCENARIO)
    outcome = run_sweep(
        scenario, [f"{NODES}=1,2", f"{RATE}=0.2,0.4"], output=folder / "sweep", jobs=1
    )
    assert outcome.executed == 12
    return scenario, outcome.directory


def test_sweep_writes_all_files(finished: tuple[Path, Path]) -> None:
    _, directory = finished

    names = sorted(path.name for path in directory.iterdir())

    assert names == ["runs.parquet", "scenario.resolved.yaml", "summary.csv", "sweep.json"]
    assert is_sweep_directory(directory)


def test_runs_table_layout(finished: tuple[Path, Path]) -> None:
    _, directory = finished

    runs = read_runs(directory)

    columns = list(runs.columns)
    assert columns[:7] == ["point", NODES, RATE, "replication", "seed", "status", "error"]
    assert columns[-3:] == ["run_wall_time_s", "started_unix_s", "worker"]
    assert columns[7:-3] == sorted(columns[7:-3])
    assert set(columns[7:-3]) == set(summary_metric_names())
    assert list(zip(runs["point"], runs["replication"], strict=True)) == [
        (point, replication) for point in range(4) for replication in range(3)
    ]
    assert list(runs[NODES]) == [1] * 6 + [2] * 6
    assert list(runs[RATE]) == [0.2, 0.2, 0.2, 0.4, 0.4, 0.4] * 2
    assert runs[NODES].dtype == np.int64
    assert runs[RATE].dtype == np.float64
    assert set(runs["seed"]) == {TINY_SCENARIO["seed"]}
    assert set(runs["status"]) == {"ok"}
    assert set(runs["error"]) == {""}


def test_runs_match_single_runs(finished: tuple[Path, Path]) -> None:
    """Replication r of a design point is `simulate(point scenario, replication=r)`."""
    scenario_path, directory = finished
    runs = read_runs(directory)
    row = runs[(runs["point"] == 3) & (runs["replication"] == 2)].iloc[0]

    scenario = scenario_for(read_base(scenario_path), [f"{NODES}=2", f"{RATE}=0.4"])
    summary = simulate(scenario, replication=2).summary

    for metric, value in summary.items():
        if metric in WALL_CLOCK_COLUMNS:
            continue
        expected = math.nan if value is None else float(value)
        assert row[metric] == pytest.approx(expected, nan_ok=True), metric


def test_replications_share_arrivals_in_sweep(finished: tuple[Path, Path]) -> None:
    runs = read_runs(directory=finished[1])
    created = runs.pivot(index="replication", columns="point", values="pods_created")

    # The node count does not change arrivals: points 0 and 2 differ only in it.
    assert list(created[0]) == list(created[2])
    assert list(created[1]) == list(created[3])


def test_summary_csv_matches_runs(finished: tuple[Path, Path]) -> None:
    _, directory = finished
    runs = read_runs(directory)
    summary = pd.read_csv(directory / "summary.csv")

    row = summary[(summary["point"] == 1) & (summary["metric"] == "pods_created")].iloc[0]
    values = runs.loc[runs["point"] == 1, "pods_created"]
    assert row[NODES] == 1
    assert row[RATE] == 0.4
    assert row["n"] == 3
    assert row["mean"] == pytest.approx(values.mean())
    assert row["std"] == pytest.approx(values.std(ddof=1))
    assert row["ci_low"] < row["mean"] < row["ci_high"]
    assert row["level"] == 0.95


def test_sweep_json_records_design(finished: tuple[Path, Path]) -> None:
    _, directory = finished

    info = json.loads((directory / "sweep.json").read_text())

    assert info["parameters"] == [
        {"key": NODES, "values": [1, 2]},
        {"key": RATE, "values": [0.2, 0.4]},
    ]
    assert info["replications"] == 3
    assert info["executor"] == "local"
    assert info["jobs"] == 1
    assert info["runs_ok"] == 12
    assert info["runs_failed"] == 0
    assert info["status"] == "complete"
    assert {"dra_sim", "python", "joblib", "dask"} <= set(info["versions"])


def test_resolved_scenario_is_the_base(finished: tuple[Path, Path]) -> None:
    _, directory = finished

    resolved = yaml.safe_load((directory / "scenario.resolved.yaml").read_text())

    assert resolved["cluster"]["node_pools"][0]["count"] == 1
    assert resolved["workloads"][0]["arrival"]["rate_per_s"] == TINY_RATE_PER_S
    assert "control_plane" in resolved


def test_report_writes_one_plot_per_metric_and_parameter(finished: tuple[Path, Path]) -> None:
    _, directory = finished
    metrics = ["pods_created", "scheduling_latency_s_p95"]

    written = report_sweep(directory, metrics=metrics)

    assert [path.name for path in written] == [
        "pods_created__vs__cluster.node_pools_n_.count.png",
        "pods_created__vs__workloads_w_.arrival.rate_per_s.png",
        "scheduling_latency_s_p95__vs__cluster.node_pools_n_.count.png",
        "scheduling_latency_s_p95__vs__workloads_w_.arrival.rate_per_s.png",
    ]
    for path in written:
        assert path.parent == directory / "plots"
        assert path.read_bytes().startswith(b"\x89PNG")


def test_default_plots_cover_metrics_with_values(finished: tuple[Path, Path]) -> None:
    runs = read_runs(finished[1])

    metrics = plotted_metrics(runs)

    assert "pods_created" in metrics
    assert "scheduling_latency_s_p95" in metrics
    assert "run_wall_time_s" not in metrics
    assert all(runs[name].notna().any() for name in metrics)


def test_plot_rejects_unknown_metric(finished: tuple[Path, Path]) -> None:
    with pytest.raises(ValueError, match="not in the runs table"):
        plot_sweep(finished[1], metrics=["no_such_metric"])


def test_resume_of_finished_sweep_runs_nothing(finished: tuple[Path, Path]) -> None:
    scenario, directory = finished
    before = read_runs(directory)

    outcome = run_sweep(
        scenario, [f"{NODES}=1,2", f"{RATE}=0.2,0.4"], output=directory, resume=True
    )

    assert outcome.executed == 0
    assert outcome.skipped == 12
    pd.testing.assert_frame_equal(read_runs(directory), before)


def test_resume_adds_replications(tmp_path: Path, tiny_scenario: Path) -> None:
    first = run_sweep(tiny_scenario, [f"{NODES}=1,2"], replications=2, output=tmp_path / "s")
    started = first.runs.set_index(["point", "replication"])["started_unix_s"]

    second = run_sweep(
        tiny_scenario, [f"{NODES}=1,2"], replications=3, output=tmp_path / "s", resume=True
    )

    assert second.executed == 2
    assert len(second.runs) == 6
    again = second.runs.set_index(["point", "replication"])["started_unix_s"]
    assert list(again.loc[started.index]) == list(started)


def test_cli_counts_executed_and_reused_runs(tmp_path: Path, tiny_scenario: Path) -> None:
    output = str(tmp_path / "s")
    sweep = ["sweep", str(tiny_scenario), "--param", f"{NODES}=1,2", "-o", output]

    first = CliRunner().invoke(app, [*sweep, "-r", "1"])
    resumed = CliRunner().invoke(app, [*sweep, "-r", "2", "--resume"])

    assert first.exit_code == 0, first.stderr
    assert "2 runs executed, 0 failed" in first.stdout.splitlines()
    assert resumed.exit_code == 0, resumed.stderr
    assert "4 runs (2 executed now, 2 reused from earlier), 0 failed" in (
        resumed.stdout.splitlines()
    )


def test_resume_rejects_other_parameters(finished: tuple[Path, Path]) -> None:
    scenario, directory = finished

    with pytest.raises(SweepError, match="started with other parameters"):
        run_sweep(scenario, [f"{NODES}=1,2,3", f"{RATE}=0.2,0.4"], output=directory, resume=True)


def test_resume_rejects_other_base(finished: tuple[Path, Path]) -> None:
    scenario, directory = finished

    with pytest.raises(SweepError, match="another scenario or other --set"):
        run_sweep(
            scenario,
            [f"{NODES}=1,2", f"{RATE}=0.2,0.4"],
            output=directory,
            resume=True,
            overrides=["horizon_s=50"],
        )


def test_poisson_count_interval_covers_truth(tmp_path: Path, tiny_scenario: Path) -> None:
    """`pods_created` is Poisson(rate x until_s), so its exact mean is known.

    Two rates, 8 replications each: each 95 % interval contains the true mean.
    The run is seeded, so the outcome is fixed. The coverage rate over many
    sweeps is checked by the slow test below.
    """
    outcome = run_sweep(
        tiny_scenario, [f"{RATE}=0.2,0.6"], replications=8, output=tmp_path / "s", jobs=1
    )

    rows = outcome.summary[outcome.summary["metric"] == "pods_created"]
    for _, row in rows.iterrows():
        truth = row[RATE] * TINY_UNTIL_S
        assert row["n"] == 8
        assert row["ci_low"] <= truth <= row["ci_high"], (truth, row["ci_low"], row["ci_high"])


@pytest.mark.slow
def test_poisson_count_coverage_over_many_points(tmp_path: Path, tiny_scenario: Path) -> None:
    """60 seeds x 5 replications: about 95 % of the intervals contain the Poisson mean 8.

    The t-interval is not exact for a discrete, skewed count, so the check
    allows coverage from 0.85 up: 3 binomial standard deviations (0.028 each
    for 60 intervals) below 0.95, with a margin for the slight under-coverage
    of t-intervals on Poisson(8) data with n = 5.
    """
    seeds = ",".join(str(seed) for seed in range(100, 160))
    outcome = run_sweep(
        tiny_scenario,
        [f"seed={seeds}", f"{RATE}=0.4"],
        replications=5,
        output=tmp_path / "s",
        jobs=2,
    )

    rows = outcome.summary[outcome.summary["metric"] == "pods_created"]
    truth = 0.4 * TINY_UNTIL_S
    covered = ((rows["ci_low"] <= truth) & (truth <= rows["ci_high"])).mean()
    assert len(rows) == 60
    assert covered >= 0.85


def test_failed_run_is_recorded_and_sweep_continues(tmp_path: Path, tiny_scenario: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(INVALID_MANIFEST, encoding="utf-8")

    outcome = run_sweep(
        tiny_scenario, [f"manifests=[],[{bad}]"], replications=2, output=tmp_path / "s"
    )

    runs = outcome.runs
    assert list(runs["status"]) == ["ok", "ok", "failed", "failed"]
    assert outcome.failed == 2
    failed = runs[runs["status"] == "failed"]
    assert failed["error"].str.startswith("SetupError: ").all()
    assert failed["error"].str.contains("Not_A_Valid_Name").all()
    assert failed["pods_created"].isna().all()
    assert list(runs["manifests"]) == ["[]", "[]", f"[{bad}]", f"[{bad}]"]
    info = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert info["runs_failed"] == 2
    summary = outcome.summary
    assert set(summary.loc[summary["point"] == 1, "failed"]) == {2}


def test_cli_exit_one_when_a_run_fails(tmp_path: Path, tiny_scenario: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(INVALID_MANIFEST, encoding="utf-8")

    done = subprocess.run(
        [
            *CLI,
            "sweep",
            str(tiny_scenario),
            "--param",
            f"manifests=[],[{bad}]",
            "-r",
            "1",
            "-o",
            str(tmp_path / "s"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 1, done.stderr
    assert len(read_runs(tmp_path / "s")) == 2


def test_cli_prints_target_answer(tmp_path: Path, tiny_scenario: Path) -> None:
    done = CliRunner().invoke(
        app,
        [
            "sweep",
            str(tiny_scenario),
            "--param",
            f"{RATE}=0.1,0.3,0.6",
            "-r",
            "4",
            "-o",
            str(tmp_path / "s"),
            "--quiet",
            "--target",
            "pods_created>=4",
        ],
    )

    assert done.exit_code == 0, done.stderr
    assert "target: pods_created >= 4 (lower bound of the 95% confidence interval)" in done.stdout
    answer = [line for line in done.stdout.splitlines() if "smallest" in line]
    assert len(answer) == 1
    assert answer[0].strip().startswith(f"smallest {RATE}: 0.")


BAD_INPUT: list[tuple[list[str], str]] = [
    (["--param", "cluster.nodepools.0.count=1,2"], "did you mean 'node_pools'"),
    (["--param", f"{NODES}=1,,2"], "empty value"),
    (["--param", "drivers[x.workers=1,2"], "--param drivers[x.workers: invalid key"),
    (["--param", f"{NODES}"], "expected dotted.key=v1,v2"),
    (["--param", f"{NODES}=1", "--param", f"{NODES}=2"], "given more than once"),
    (["--param", "horizon_s=10,-1"], "design point 1"),
    (["--executor", "spark"], "unknown executor"),
    (["--dask-address", "not-an-address", "--executor", "dask"], "cannot connect"),
    (["--dask-address", "tcp://127.0.0.1:9", "--executor", "local"], "needs --executor dask"),
    (["--dask-address", "tcp://127.0.0.1:9", "--dask-timeout", "0.5"], "cannot connect"),
    (["--target", "latency<=fast", "--param", f"{NODES}=1"], "is not a number"),
    (["--target", "no_such_metric<=1", "--param", f"{NODES}=1"], "unknown metric"),
    (["--target", "pods_created>=1"], "needs a --param"),
    (["--resume"], "--resume needs"),
]


@pytest.mark.parametrize(
    ("options", "message"),
    BAD_INPUT,
    ids=[
        "unknown-key",
        "empty-value",
        "unclosed-bracket",
        "no-values",
        "repeated-key",
        "invalid-value",
        "unknown-executor",
        "malformed-address",
        "address-without-dask",
        "unreachable-scheduler",
        "target-value",
        "target-metric",
        "target-without-param",
        "resume-without-output",
    ],
)
def test_cli_bad_input_exits_two(
    tmp_path: Path, tiny_scenario: Path, options: list[str], message: str
) -> None:
    output = tmp_path / "s"
    args = ["sweep", str(tiny_scenario), "--quiet", *options]
    if "--resume" not in options:
        args += ["-o", str(output)]

    done = CliRunner().invoke(app, args)

    assert done.exit_code == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert not output.exists()


def test_cli_rejects_existing_output(tmp_path: Path, tiny_scenario: Path) -> None:
    (tmp_path / "s").mkdir()

    done = CliRunner().invoke(app, ["sweep", str(tiny_scenario), "-o", str(tmp_path / "s"), "-q"])

    assert done.exit_code == 2
    assert "already exists; use --resume" in done.stderr


def test_default_replications_come_from_scenario(tmp_path: Path) -> None:
    data: dict[str, Any] = {**TINY_SCENARIO, "replications": 2}
    scenario = write_scenario(tmp_path, data)

    outcome = run_sweep(scenario, output=tmp_path / "s")

    assert list(outcome.runs["replication"]) == [0, 1]
    assert list(outcome.runs["point"]) == [0, 0]
