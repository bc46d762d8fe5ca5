"""A sweep killed halfway resumes without repeating the runs it had finished."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
from conftest import CLI, TINY_SCENARIO, write_scenario

from sim.experiments import read_runs

POINTS = 2
REPLICATIONS = 10
KILL_AFTER_RUNS = 4
WAIT_S = 120.0


def _sweep_command(scenario: Path, output: Path, *extra: str) -> list[str]:
    return [
        *CLI, "sweep", str(scenario), "--param", "cluster.node_pools[n].count=1,2",
        "--replications", str(REPLICATIONS), "-o", str(output), "--quiet", *extra,
    ]  # fmt: skip


def _rows(output: Path) -> int:
    try:
        return len(read_runs(output))
    except (FileNotFoundError, OSError):
        return 0


def test_killed_sweep_resumes_without_repeats(tmp_path: Path) -> None:
    """SIGKILL gives the sweep no chance to clean up, the hardest case for resuming."""
    scenario = write_scenario(tmp_path, TINY_SCENARIO)
    output = tmp_path / "sweep"
    process = subprocess.Popen(
        _sweep_command(scenario, output),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + WAIT_S
        while _rows(output) < KILL_AFTER_RUNS and time.monotonic() < deadline:
            assert process.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    before = read_runs(output)
    total = POINTS * REPLICATIONS
    assert KILL_AFTER_RUNS <= len(before) < total
    assert not before.duplicated(["point", "replication"]).any()

    resumed = subprocess.run(
        _sweep_command(scenario, output, "--resume"),
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        check=False,
    )

    assert resumed.returncode == 0, resumed.stderr
    after = read_runs(output)
    assert len(after) == total
    assert not after.duplicated(["point", "replication"]).any()
    assert set(after["status"]) == {"ok"}
    # A run's start time is its marker: runs finished before the kill keep theirs.
    keys = ["point", "replication"]
    kept = before[[*keys, "started_unix_s"]].merge(after[[*keys, "started_unix_s"]], on=keys)
    assert len(kept) == len(before)
    pd.testing.assert_series_equal(
        kept["started_unix_s_x"], kept["started_unix_s_y"], check_names=False
    )
    new = after.merge(before[keys], on=keys, how="left", indicator=True)
    assert (new["_merge"] == "left_only").sum() == total - len(before)
    assert not list(output.glob(".*.tmp"))
