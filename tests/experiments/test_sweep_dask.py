"""Sweeps on a real Dask cluster give the same runs as the local process pool."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from dask.distributed import LocalCluster

from sim.experiments import WALL_CLOCK_COLUMNS, read_runs, run_sweep

PARAMETERS = ["cluster.node_pools[n].count=1,2", "workloads[w].arrival.rate_per_s=0.2,0.5"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """Start a Dask cluster of two worker processes on 127.0.0.1."""
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        silence_logs=logging.ERROR,
    ) as started:
        yield started


def _deterministic(runs: pd.DataFrame) -> pd.DataFrame:
    return runs.drop(columns=[name for name in WALL_CLOCK_COLUMNS if name in runs.columns])


def test_dask_runs_equal_local_runs(
    tmp_path: Path, tiny_scenario: Path, cluster: LocalCluster
) -> None:
    local = run_sweep(tiny_scenario, PARAMETERS, replications=3, jobs=2, output=tmp_path / "local")
    distributed = run_sweep(
        tiny_scenario,
        PARAMETERS,
        replications=3,
        executor="dask",
        dask_address=cluster.scheduler_address,
        output=tmp_path / "dask",
    )

    local_runs = read_runs(tmp_path / "local")
    dask_runs = read_runs(tmp_path / "dask")
    assert len(dask_runs) == 12
    assert set(dask_runs["status"]) == {"ok"}
    pd.testing.assert_frame_equal(_deterministic(dask_runs), _deterministic(local_runs))
    pd.testing.assert_frame_equal(
        _deterministic(distributed.runs), _deterministic(local.runs), check_dtype=True
    )


def test_dask_runs_are_recorded_in_sweep_json(
    tmp_path: Path, tiny_scenario: Path, cluster: LocalCluster
) -> None:
    outcome = run_sweep(
        tiny_scenario,
        PARAMETERS[:1],
        replications=1,
        executor="dask",
        dask_address=cluster.scheduler_address,
        output=tmp_path / "dask",
    )

    info = (outcome.directory / "sweep.json").read_text()
    assert '"executor": "dask"' in info
    assert f'"address": "{cluster.scheduler_address}"' in info
    assert '"workers": 2' in info


def test_dask_without_address_starts_local_cluster(tmp_path: Path, tiny_scenario: Path) -> None:
    local = run_sweep(tiny_scenario, PARAMETERS[:1], replications=2, output=tmp_path / "local")

    distributed = run_sweep(
        tiny_scenario,
        PARAMETERS[:1],
        replications=2,
        executor="dask",
        jobs=2,
        output=tmp_path / "dask",
    )

    pd.testing.assert_frame_equal(_deterministic(distributed.runs), _deterministic(local.runs))
    info = (distributed.directory / "sweep.json").read_text()
    assert '"address": "local cluster on 127.0.0.1"' in info
