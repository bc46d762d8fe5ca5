"""Every scenario in `scenarios/` runs, produces its key outcomes and is reproducible.

Two comment lines in a scenario file steer its run here (see `sim.scenario`):

* `# test-overrides: key=value ...`: `--set` overrides, split like a shell
  command line, that shrink a large scenario so that it runs in seconds;
* `# test-expect: metric=value ...`: summary metrics the run must produce
  exactly. Without `pods_pending_at_end` there, every pod must be scheduled.

All runs check the cluster invariants after every API write.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from sim import load_scenario, simulate
from sim.results import TABLE_NAMES, Results

SCENARIOS_DIR = Path(__file__).resolve().parents[1] / "scenarios"
SCENARIOS = sorted(SCENARIOS_DIR.glob("*.yaml"))
OVERRIDES_PREFIX = "# test-overrides:"
EXPECT_PREFIX = "# test-expect:"


def directive(path: Path, prefix: str) -> list[str]:
    """Return the shell-split words of every comment line of `path` starting with `prefix`."""
    words: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(prefix):
            words.extend(shlex.split(line.removeprefix(prefix)))
    return words


def expectations(path: Path) -> dict[str, Any]:
    expected: dict[str, Any] = {"pods_pending_at_end": 0}
    for word in directive(path, EXPECT_PREFIX):
        key, _, raw = word.partition("=")
        expected[key] = yaml.safe_load(raw)
    return expected


_RUNS: dict[tuple[str, int | None], Results] = {}


def run(name: str, seed: int | None = None) -> Results:
    """Run a shipped scenario (with its test overrides) once per test session and seed."""
    key = (name, seed)
    if key not in _RUNS:
        path = SCENARIOS_DIR / f"{name}.yaml"
        scenario = load_scenario(path, overrides=directive(path, OVERRIDES_PREFIX), seed=seed)
        _RUNS[key] = simulate(scenario, check_invariants=True)
    return _RUNS[key]


# --------------------------------------------------------------------------------------
# Every scenario
# --------------------------------------------------------------------------------------


def test_scenarios_are_shipped() -> None:
    names = {path.stem for path in SCENARIOS}

    assert {"quickstart", "immediate-vs-wffc", "shared-claims", "network-attached"} <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda path: path.stem)
def test_scenario_runs_to_expected_outcome(path: Path) -> None:
    results = run(path.stem)

    summary = results.summary
    assert summary["pods_created"] > 0
    assert summary["sim_time_s"] <= results.scenario.horizon_s
    for metric, value in expectations(path).items():
        assert summary[metric] == value, metric
    assert results.pods.node.ne("").sum() == summary["pods_scheduled"]
    assert set(results.tables) == set(TABLE_NAMES)


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda path: path.stem)
def test_scenario_header_explains_it(path: Path) -> None:
    """A user who copies a scenario finds a comment block that explains it at the top."""
    lines = path.read_text(encoding="utf-8").splitlines()

    assert lines[0].startswith("# ")
    assert load_scenario(path).description


# --------------------------------------------------------------------------------------
# Key outcomes of each scenario
# --------------------------------------------------------------------------------------


def test_quickstart_pods_all_succeed() -> None:
    results = run("quickstart")

    assert results.summary["pods_succeeded"] == results.summary["pods_created"]
    assert results.summary["claims_allocated"] == results.summary["claims_created"]
    # Each claim is allocated once and deallocated once (both counted as writes).
    assert results.summary["allocations"] == results.summary["claims_allocated"]
    assert results.summary["deallocations"] == results.summary["allocations"]


def claims_of(results: Results, pod: str) -> pd.DataFrame:
    """Return the claims generated for a pod's `gpu` entry (named `<pod>-gpu-<suffix>`)."""
    claims = results.claims
    return claims[claims.name.str.startswith(f"{pod}-gpu-")]


def test_immediate_claims_allocated_before_binding() -> None:
    results = run("immediate-vs-wffc")
    pods = results.pods[results.pods.workload == "immediate"]

    assert len(pods) > 0
    for pod in pods.itertuples():
        claims = claims_of(results, pod.name)
        assert len(claims) == 1, pod.name
        claim = claims.iloc[0]
        assert claim["mode"] == "Immediate"
        assert claim["first_allocated_s"] < pod.scheduled_s, pod.name


def test_delayed_claims_on_selected_node() -> None:
    results = run("immediate-vs-wffc")
    pods = results.pods[results.pods.workload == "delayed"]

    assert len(pods) > 0
    for pod in pods.itertuples():
        claim = claims_of(results, pod.name).iloc[0]
        assert claim["mode"] == "WaitForFirstConsumer"
        assert claim["first_allocated_s"] > pod.first_attempt_s, pod.name
        assert claim["nodes"] == pod.node, pod.name


def test_scheduling_contexts_only_for_delayed() -> None:
    results = run("immediate-vs-wffc")
    requests = results.api_requests
    created = requests[
        (requests.resource == "podschedulingcontexts")
        & (requests.verb == "create")
        & (requests.code == 201)
    ]
    workload = results.pods.set_index("name").workload

    negotiated = set(workload[created.name].unique())

    assert negotiated == {"delayed"}
    assert created.name.nunique() == (results.pods.workload == "delayed").sum()


def test_both_modes_schedule_every_pod() -> None:
    pods = run("immediate-vs-wffc").pods

    scheduled = pods.groupby("workload").scheduled_s.count()

    assert scheduled.to_dict() == {"delayed": 30, "immediate": 30}


def test_shareable_claim_concurrent_consumers() -> None:
    results = run("shared-claims")
    claim = results.claims.set_index("name").loc["shared-gpu"]

    assert bool(claim["shareable"]) is True
    assert claim["max_consumers"] >= 3
    assert claim["allocations"] == 1
    readers = results.pods[results.pods.workload == "readers"]
    assert set(readers.node) == {claim["nodes"]}


def test_exclusive_claim_one_consumer() -> None:
    results = run("shared-claims")
    claim = results.claims.set_index("name").loc["exclusive-gpu"]
    batch = results.pods[results.pods.workload == "batch"].sort_values("running_s")

    assert bool(claim["shareable"]) is False
    assert claim["max_consumers"] == 1
    assert claim["allocations"] == len(batch)
    # Each pod starts only after the previous one finished and released the claim.
    assert (batch.running_s.to_numpy()[1:] > batch.finished_s.to_numpy()[:-1]).all()


def test_exclusive_claim_reservations_never_overlap() -> None:
    events = run("shared-claims").events
    transitions = events[(events.kind == "ResourceClaim") & (events.name == "exclusive-gpu")]

    # Adding a second consumer would be a Reserved -> Reserved transition.
    repeated = transitions[
        (transitions.from_state == "Reserved") & (transitions.to_state == "Reserved")
    ]
    assert repeated.empty


def test_network_pool_consumers_reach_it() -> None:
    results = run("network-attached")
    pods = results.pods

    etl_nodes = set(pods[pods.workload == "etl"].node)
    web_nodes = set(pods[pods.workload == "web"].node)

    assert etl_nodes <= {"rack-a-0", "rack-a-1", "rack-a-2"}
    assert len(etl_nodes) > 1
    assert any(node.startswith("rack-b-") for node in web_nodes)


def test_network_attached_pool_limits_units() -> None:
    results = run("network-attached")
    devices = results.utilization[results.utilization.resource == "devices"]

    assert devices.capacity.tolist() == [8.0]
    assert devices.pool.tolist() == [""]
    assert 0 < devices.peak_in_use.iloc[0] <= 8


# --------------------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------------------


def test_same_seed_identical_table_files(tmp_path: Path) -> None:
    earlier = run("quickstart")
    again = simulate(earlier.scenario, check_invariants=True)

    first = earlier.write(tmp_path / "first")
    second = again.write(tmp_path / "second")

    for name in TABLE_NAMES:
        first_bytes = (first / f"{name}.parquet").read_bytes()
        second_bytes = (second / f"{name}.parquet").read_bytes()
        assert first_bytes == second_bytes, name
    assert (first / "scenario.resolved.yaml").read_bytes() == (
        second / "scenario.resolved.yaml"
    ).read_bytes()


def test_other_seed_other_arrivals() -> None:
    default = run("quickstart").pods.sort_values("name").created_s.to_numpy()
    other = run("quickstart", seed=2).pods.sort_values("name").created_s.to_numpy()

    assert len(default) == len(other)
    assert (default != other).any()
