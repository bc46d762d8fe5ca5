"""Tests of the Python API: `simulate` on the quick-start scenario, its tables, summary and files.

The table columns, dtypes and summary metrics are read from `docs/metrics.md`,
so the page and the code cannot drift apart unnoticed.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import sim
from sim import load_scenario, simulate
from sim.results import TABLE_NAMES, Results

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"
METRICS_DOC = ROOT / "docs" / "metrics.md"


def documented_tables() -> dict[str, dict[str, str]]:
    """Return {table: {column: dtype}} from the column tables of docs/metrics.md."""
    tables: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in METRICS_DOC.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"## `(\w+)`", line)
        if heading:
            current = tables.setdefault(heading.group(1), {})
        elif line.startswith("## "):
            current = None
        elif current is not None and line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            for column in re.findall(r"`([^`]+)`", cells[0]):
                current[column] = cells[1]
    return tables


def documented_metrics(drivers: list[str]) -> list[str]:
    """Return the summary metric names of docs/metrics.md, in their documented order."""
    text = METRICS_DOC.read_text(encoding="utf-8")
    section = text[text.index("## Summary metrics") :]
    names: list[str] = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = line.strip("|").split("|")[0]
        listed = re.findall(r"`([^`]+)`", first_cell)
        base = listed[0]
        for name in listed:
            if name.startswith("_"):
                # `scheduling_latency_s_p50`, `_p95` stands for scheduling_latency_s_p95.
                name = base.rsplit("_", 1)[0] + name
            if "<driver>" in name:
                names.extend(name.replace("<driver>", driver) for driver in drivers)
            else:
                names.append(name)
    return names


def dtype_matches(series: pd.Series, documented: str) -> bool:
    if documented == "str":
        return pd.api.types.is_string_dtype(series.dtype)
    return str(series.dtype) == documented


@pytest.fixture(scope="module")
def results() -> Results:
    return simulate(load_scenario(QUICKSTART), check_invariants=True)


# --------------------------------------------------------------------------------------
# The public API and the tables
# --------------------------------------------------------------------------------------


def test_package_exports_api() -> None:
    assert sim.load_scenario is load_scenario
    assert sim.simulate is simulate
    assert sim.Results is Results
    with pytest.raises(AttributeError):
        sim.no_such_name  # noqa: B018


def test_documentation_lists_every_table() -> None:
    assert set(TABLE_NAMES) <= set(documented_tables())


@pytest.mark.parametrize("name", TABLE_NAMES)
def test_table_has_documented_columns(results: Results, name: str) -> None:
    columns = documented_tables()[name]

    table = getattr(results, name)

    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == list(columns)
    assert len(table) > 0
    for column, dtype in columns.items():
        assert dtype_matches(table[column], dtype), f"{name}.{column}: {table[column].dtype}"


def test_unknown_table_attribute_raises(results: Results) -> None:
    with pytest.raises(AttributeError):
        results.no_such_table  # noqa: B018


def test_summary_has_documented_metrics_in_order(results: Results) -> None:
    assert list(results.summary) == documented_metrics(["gpu.example.com"])


def test_summary_values_are_json_scalars(results: Results) -> None:
    for key, value in results.summary.items():
        assert value is None or isinstance(value, int | float), key
        assert not (isinstance(value, float) and math.isnan(value)), key


# --------------------------------------------------------------------------------------
# Summary consistent with the tables
# --------------------------------------------------------------------------------------


def test_pod_counts_match_pods_table(results: Results) -> None:
    pods = results.pods
    summary = results.summary

    assert summary["pods_created"] == len(pods) == 100
    assert summary["pods_scheduled"] == pods.scheduled_s.notna().sum()
    assert summary["pods_succeeded"] == (pods.final_phase == "Succeeded").sum()
    assert summary["pods_failed"] == (pods.final_phase == "Failed").sum()
    assert summary["pods_pending_at_end"] == (pods.scheduled_s.isna() & pods.deleted_s.isna()).sum()


def test_latency_metrics_match_pods_table(results: Results) -> None:
    pods = results.pods
    latency = (pods.scheduled_s - pods.created_s).dropna().to_numpy()
    startup = (pods.running_s - pods.created_s).dropna().to_numpy()

    summary = results.summary

    assert summary["scheduling_latency_s_mean"] == pytest.approx(latency.mean())
    assert summary["scheduling_latency_s_p50"] == pytest.approx(np.quantile(latency, 0.5))
    assert summary["scheduling_latency_s_p95"] == pytest.approx(np.quantile(latency, 0.95))
    assert summary["scheduling_latency_s_p99"] == pytest.approx(np.quantile(latency, 0.99))
    assert summary["startup_latency_s_p50"] == pytest.approx(np.quantile(startup, 0.5))


def test_attempts_match_cycles_table(results: Results) -> None:
    pods = results.pods
    cycles = results.cycles

    assert pods.attempts.sum() == len(cycles)
    per_pod = cycles.groupby("pod_uid").size()
    assert (pods.set_index("uid").attempts[per_pod.index] == per_pod).all()
    assert results.summary["attempts_per_pod_mean"] == pytest.approx(
        pods.attempts[pods.attempts > 0].mean()
    )


def test_api_metrics_match_requests_table(results: Results) -> None:
    requests = results.api_requests
    summary = results.summary

    assert summary["api_requests"] == len(requests)
    assert summary["api_writes"] == requests.write.sum()
    assert summary["api_conflicts"] == (requests.code == 409).sum()
    assert summary["api_writes_per_pod_mean"] == pytest.approx(
        summary["api_writes"] / summary["pods_created"]
    )


def test_claim_metrics_match_claims_table(results: Results) -> None:
    claims = results.claims
    summary = results.summary

    assert summary["claims_created"] == len(claims) == 100
    assert summary["claims_allocated"] == (claims.allocations >= 1).sum()
    assert summary["deallocations"] == claims.deallocations.sum()


def test_utilization_metrics_match_table(results: Results) -> None:
    utilization = results.utilization
    devices = utilization[utilization.resource == "devices"]
    cpu = utilization[utilization.resource == "cpu"]

    summary = results.summary

    assert devices.capacity.sum() == 16
    assert summary["device_utilization_mean.gpu.example.com"] == pytest.approx(
        devices.mean_in_use.sum() / devices.capacity.sum()
    )
    assert summary["cpu_requested_fraction_mean"] == pytest.approx(
        cpu.mean_in_use.sum() / cpu.capacity.sum()
    )


def test_run_metrics_match_manifest(results: Results) -> None:
    summary = results.summary
    manifest = results.manifest

    assert summary["sim_time_s"] == manifest["sim_time_s"]
    assert summary["wall_time_s"] == manifest["wall_time_s"] > 0
    assert summary["events_processed"] == manifest["events_processed"] > 0
    assert summary["sim_seconds_per_wall_second"] == pytest.approx(
        summary["sim_time_s"] / summary["wall_time_s"]
    )


def test_manifest_records_versions_and_seed(results: Results) -> None:
    manifest = results.manifest

    assert manifest["dra_sim_version"] == sim.__version__
    assert manifest["python"].count(".") == 2
    assert {"simpy", "numpy", "pandas", "pyarrow", "pydantic"} <= set(manifest["libraries"])
    assert manifest["scenario"] == "quickstart"
    assert manifest["seed"] == 1
    assert manifest["replication"] == 0


def test_run_stops_once_drained(results: Results) -> None:
    """Every pod finished, so the run ends before the 900 s horizon."""
    assert results.summary["pods_succeeded"] == 100
    assert results.summary["sim_time_s"] < results.scenario.horizon_s
    assert results.pods.finished_s.max() <= results.summary["sim_time_s"]


# --------------------------------------------------------------------------------------
# simulate() options
# --------------------------------------------------------------------------------------


def test_simulate_until_stops_early() -> None:
    shrunk = load_scenario(QUICKSTART, overrides=["workloads.0.count=30"])

    results = simulate(shrunk, until_s=40.0)

    assert results.summary["sim_time_s"] == 40.0
    assert results.pods.created_s.max() <= 40.0
    assert results.summary["pods_created"] < 30


def test_simulate_seed_overrides_scenario_seed() -> None:
    shrunk = load_scenario(QUICKSTART, overrides=["workloads.0.count=10"])

    default = simulate(shrunk)
    reseeded = simulate(shrunk, seed=99)

    assert reseeded.manifest["seed"] == 99
    assert reseeded.scenario.seed == 99
    assert not np.array_equal(default.pods.created_s, reseeded.pods.created_s)


def test_simulate_replications_differ() -> None:
    shrunk = load_scenario(QUICKSTART, overrides=["workloads.0.count=10"])

    first = simulate(shrunk, replication=0)
    second = simulate(shrunk, replication=1)

    assert second.manifest["replication"] == 1
    assert not np.array_equal(first.pods.created_s, second.pods.created_s)


# --------------------------------------------------------------------------------------
# Writing and reading results directories
# --------------------------------------------------------------------------------------


def test_write_then_read_round_trip(results: Results, tmp_path: Path) -> None:
    written = results.write(tmp_path / "run")

    again = Results.read(written)

    assert again.scenario == results.scenario
    assert again.summary == results.summary
    assert again.manifest == json.loads(json.dumps(results.manifest))
    for name in TABLE_NAMES:
        pd.testing.assert_frame_equal(again.tables[name], results.tables[name])


def test_write_creates_expected_files(results: Results, tmp_path: Path) -> None:
    written = results.write(tmp_path / "nested" / "run")

    names = {path.name for path in written.iterdir()}

    expected = {"scenario.resolved.yaml", "manifest.json", "summary.json"}
    expected |= {f"{name}.parquet" for name in TABLE_NAMES}
    assert expected <= names
    assert [path.name for path in (tmp_path / "nested").iterdir()] == ["run"]


def test_write_uses_umask_permissions(results: Results, tmp_path: Path) -> None:
    """The directory gets the mode of any new directory, not the 0700 of a temporary one."""
    reference = tmp_path / "reference"
    reference.mkdir()

    written = results.write(tmp_path / "run")

    assert written.stat().st_mode & 0o777 == reference.stat().st_mode & 0o777


def test_write_refuses_existing_directory(results: Results, tmp_path: Path) -> None:
    target = tmp_path / "run"
    target.mkdir()
    (target / "keep.txt").write_text("mine", encoding="utf-8")

    with pytest.raises(FileExistsError):
        results.write(target)

    assert [path.name for path in target.iterdir()] == ["keep.txt"]
    assert [path.name for path in tmp_path.iterdir()] == ["run"]


def test_failed_write_leaves_nothing(
    results: Results, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    # The last table written fails, after the others are complete.
    monkeypatch.setattr(results.tables[TABLE_NAMES[-1]], "to_parquet", disk_full)

    with pytest.raises(OSError, match="No space left"):
        results.write(tmp_path / "run")

    assert list(tmp_path.iterdir()) == []
