"""Tests of the output tables and the summary metrics, built from real simulated runs.

The scenario: two nodes in two pools, kube-scheduler and one kubelet (on
node-1), two batch pods pinned to node-1, and one claim that a hand-written
driver allocates on node-1, kube-scheduler reserves and the resourceclaim
controller releases. Every API request takes 0.25 s and every watch event
arrives 0.125 s after its commit. One scheduling cycle costs 0.0005 s plus
0.000002 s per node. The claim is allocated at 0.25 s, reserved at 0.5 s,
released at 3.75 s and deallocated at 4.0 s.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Generator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.analysis.summary import summary_unit
from sim.api.types import (
    AllocationResult,
    Container,
    Node,
    NodeSelector,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    NodeStatus,
    ObjectMeta,
    Pod,
    PodSpec,
    ResourceClaim,
    ResourceClaimSpec,
    ResourceRequirements,
    pod_consumer_reference,
)
from sim.cluster.client import APIClient
from sim.cluster.config import ControlPlaneConfig
from sim.cluster.kubelet import RUN_DURATION_ANNOTATION, Kubelet
from sim.cluster.scheduler.scheduler import KubeScheduler
from sim.cluster.world import World
from sim.metrics.recorder import API_REQUEST_COLUMNS, CYCLE_COLUMNS, EVENT_COLUMNS
from sim.metrics.summary import summarize
from sim.metrics.tables import (
    API_REQUEST_SCHEMA,
    CLAIM_SCHEMA,
    CYCLE_SCHEMA,
    EVENT_SCHEMA,
    POD_SCHEMA,
    TABLE_SCHEMAS,
    UTILIZATION_SCHEMA,
    build_tables,
    frame,
    time_weighted_level,
)
from sim.metrics.tracker import WORKLOAD_LABEL, Tracker

NS = "default"
DRIVER = "gpu.example.com"
LATENCY_S = 0.25
CYCLE_S = 0.0005 + 2 * 0.000002
END_S = 20.0
GIB = 2**30
SCHEMAS = TABLE_SCHEMAS

Process = Generator[simpy.Event, Any, None]


# --------------------------------------------------------------------------------------
# The scenario
# --------------------------------------------------------------------------------------


def make_world(seed: int = 1) -> World:
    config = ControlPlaneConfig(request_latency_s=LATENCY_S, watch_delay_s=LATENCY_S / 2)
    return World.create(config, seed=seed)


def add_node(world: World, name: str, cpu: str, memory: str) -> None:
    world.api.create(
        Node(
            metadata=ObjectMeta(name=name, labels={"kubernetes.io/hostname": name}),
            status=NodeStatus(allocatable={"cpu": cpu, "memory": memory, "pods": "110"}),
        )
    )


def on_node(node: str) -> AllocationResult:
    requirement = NodeSelectorRequirement(
        key="kubernetes.io/hostname", operator="In", values=(node,)
    )
    return AllocationResult(
        available_on_nodes=NodeSelector(
            node_selector_terms=(NodeSelectorTerm(match_expressions=(requirement,)),)
        )
    )


def batch_pod(name: str, run_s: float, cpu: str, memory: str) -> Pod:
    return Pod(
        metadata=ObjectMeta(
            name=name,
            namespace=NS,
            labels={WORKLOAD_LABEL: "train"},
            annotations={RUN_DURATION_ANNOTATION: str(run_s)},
        ),
        spec=PodSpec(
            restart_policy="Never",
            node_selector={"kubernetes.io/hostname": "node-1"},
            containers=(
                Container(
                    name="main",
                    resources=ResourceRequirements(requests={"cpu": cpu, "memory": memory}),
                ),
            ),
        ),
    )


def run_scenario(seed: int = 1) -> tuple[World, Tracker]:
    world = make_world(seed)
    add_node(world, "node-1", cpu="4", memory="8Gi")
    add_node(world, "node-2", cpu="8", memory="16Gi")
    tracker = Tracker(
        world,
        capacity={(DRIVER, "node-1"): 2, (DRIVER, "node-2"): 2},
        pools={"node-1": "a", "node-2": "b"},
    )
    tracker.start()
    KubeScheduler(world).start()
    Kubelet(world, "node-1").start()

    first = world.api.create(batch_pod("first", run_s=10.0, cpu="1", memory="2Gi"))
    claim = world.api.create(
        ResourceClaim(
            metadata=ObjectMeta(name="gpu", namespace=NS),
            spec=ResourceClaimSpec(resource_class_name="gpu"),
        )
    )
    driver = APIClient(world, "driver")
    scheduler = APIClient(world, "kube-scheduler")
    controller = APIClient(world, "resourceclaim-controller")

    def claim_life() -> Process:
        current = yield from driver.update_status(
            claim.with_status(allocation=on_node("node-1"), driver_name=DRIVER), reason="allocate"
        )
        current = yield from scheduler.update_status(
            current.with_status(reserved_for=(pod_consumer_reference(first),)), reason="reserve"
        )
        yield world.env.timeout(3.0)
        current = yield from controller.update_status(
            current.with_status(reserved_for=(), deallocation_requested=True), reason="release"
        )
        yield from driver.update_status(
            current.with_status(allocation=None, driver_name="", deallocation_requested=False),
            reason="deallocate",
        )

    def second_pod() -> Process:
        yield world.env.timeout(2.0)
        user = APIClient(world, "user")
        yield from user.create(batch_pod("second", run_s=4.0, cpu="2", memory="1Gi"))

    world.env.process(claim_life())
    world.env.process(second_pod())
    world.env.run(until=END_S)
    return world, tracker


@pytest.fixture(scope="module")
def scenario() -> tuple[World, Tracker, dict[str, pd.DataFrame]]:
    world, tracker = run_scenario()
    return world, tracker, build_tables(world.recorder, tracker, END_S)


# Times of the pods, derived from the timing in the module docstring: the scheduler receives
# a pod one watch delay after its creation and binds it one cycle plus one request later.
# The kubelet receives the binding one watch delay later, starts the containers, then writes
# phase Running with a GET and an update (two requests). The containers exit the run time
# after they started, and the terminal phase is written two requests after that.
FIRST_BOUND_S = 0.125 + CYCLE_S + 0.25
FIRST_RUNNING_S = FIRST_BOUND_S + 0.125 + 0.5
FIRST_FINISHED_S = FIRST_RUNNING_S - 0.5 + 10.0 + 0.5
SECOND_CREATED_S = 2.25
SECOND_BOUND_S = SECOND_CREATED_S + 0.125 + CYCLE_S + 0.25
SECOND_RUNNING_S = SECOND_BOUND_S + 0.125 + 0.5
SECOND_FINISHED_S = SECOND_RUNNING_S - 0.5 + 4.0 + 0.5


# --------------------------------------------------------------------------------------
# Schemas and rows
# --------------------------------------------------------------------------------------


def test_schemas_match_recorder_columns() -> None:
    assert tuple(EVENT_SCHEMA) == EVENT_COLUMNS
    assert tuple(API_REQUEST_SCHEMA) == API_REQUEST_COLUMNS
    assert tuple(CYCLE_SCHEMA) == CYCLE_COLUMNS


def test_empty_run_has_schema(
    scenario: tuple[World, Tracker, dict[str, pd.DataFrame]],
) -> None:
    world = make_world()
    tracker = Tracker(world)
    tracker.start()
    world.env.run(until=1.0)
    empty = build_tables(world.recorder, tracker, 1.0)
    full = scenario[2]

    assert sorted(empty) == sorted(SCHEMAS)
    for name, schema in SCHEMAS.items():
        assert list(empty[name].columns) == list(schema), name
        assert empty[name].empty, name
        assert empty[name].dtypes.to_dict() == full[name].dtypes.to_dict(), name


def test_pods_table_rows(scenario: tuple[World, Tracker, dict[str, pd.DataFrame]]) -> None:
    pods = scenario[2]["pods"]

    assert list(pods["name"]) == ["first", "second"]
    assert list(pods["workload"]) == ["train", "train"]
    assert list(pods["node"]) == ["node-1", "node-1"]
    assert list(pods["final_phase"]) == ["Succeeded", "Succeeded"]
    assert list(pods["attempts"]) == [1, 1]
    assert list(pods["claims"]) == [0, 0]
    assert pods["created_s"].tolist() == [0.0, SECOND_CREATED_S]
    assert pods["first_attempt_s"].tolist() == [0.125, SECOND_CREATED_S + 0.125]
    assert pods["scheduled_s"].tolist() == pytest.approx([FIRST_BOUND_S, SECOND_BOUND_S])
    assert pods["running_s"].tolist() == pytest.approx([FIRST_RUNNING_S, SECOND_RUNNING_S])
    assert pods["finished_s"].tolist() == pytest.approx([FIRST_FINISHED_S, SECOND_FINISHED_S])
    assert pods["deleted_s"].isna().all()


def test_claims_table_row(scenario: tuple[World, Tracker, dict[str, pd.DataFrame]]) -> None:
    claims = scenario[2]["claims"]

    assert len(claims) == 1
    row = claims.iloc[0].to_dict()
    uid = row.pop("uid")
    assert isinstance(uid, str)
    assert len(uid) == 36
    assert row == {
        "namespace": NS,
        "name": "gpu",
        "mode": "WaitForFirstConsumer",
        "resource_class": "gpu",
        "driver": DRIVER,
        "shareable": False,
        "generated": False,
        "created_s": 0.0,
        "first_allocated_s": 0.25,
        "deallocated_s": 4.0,
        "deleted_s": row["deleted_s"],
        "nodes": "node-1",
        "max_consumers": 1,
        "allocations": 1,
        "deallocations": 1,
    }
    assert math.isnan(row["deleted_s"])


def test_events_sorted_by_time(
    scenario: tuple[World, Tracker, dict[str, pd.DataFrame]],
) -> None:
    events = scenario[2]["events"]
    claim_events = events[events["kind"] == "ResourceClaim"]

    assert events["time_s"].is_monotonic_increasing
    assert list(claim_events["to_state"]) == [
        "Pending",
        "Allocated",
        "Reserved",
        "DeallocationRequested",
        "Pending",
    ]
    assert list(claim_events["actor"]) == [
        "user",
        "driver",
        "kube-scheduler",
        "resourceclaim-controller",
        "driver",
    ]


def test_utilization_table(scenario: tuple[World, Tracker, dict[str, pd.DataFrame]]) -> None:
    table = scenario[2]["utilization"]
    rows = {
        (row.resource, row.driver, row.pool): (
            row.capacity,
            row.mean_in_use,
            row.mean_utilization,
            row.peak_in_use,
        )
        for row in table.itertuples()
    }
    # The claim uses one device on node-1 (pool a) from 0.25 s to 4.0 s.
    device_mean = (4.0 - 0.25) / END_S
    # Both pods hold their requests on node-1 from binding to their terminal phase.
    first_s = FIRST_FINISHED_S - FIRST_BOUND_S
    second_s = SECOND_FINISHED_S - SECOND_BOUND_S
    cpu_mean = (1.0 * first_s + 2.0 * second_s) / END_S
    memory_mean = (2 * GIB * first_s + 1 * GIB * second_s) / END_S

    assert list(rows) == [
        ("devices", DRIVER, "a"),
        ("devices", DRIVER, "b"),
        ("cpu", "", "a"),
        ("cpu", "", "b"),
        ("memory", "", "a"),
        ("memory", "", "b"),
    ]
    assert rows["devices", DRIVER, "a"] == pytest.approx((2.0, device_mean, device_mean / 2, 1.0))
    assert rows["devices", DRIVER, "b"] == (2.0, 0.0, 0.0, 0.0)
    assert rows["cpu", "", "a"] == pytest.approx((4.0, cpu_mean, cpu_mean / 4, 3.0))
    assert rows["cpu", "", "b"] == (8.0, 0.0, 0.0, 0.0)
    assert rows["memory", "", "a"] == pytest.approx(
        (8.0 * GIB, memory_mean, memory_mean / (8 * GIB), 3.0 * GIB)
    )
    assert rows["memory", "", "b"] == (16.0 * GIB, 0.0, 0.0, 0.0)


def test_tables_deterministic() -> None:
    runs = [run_scenario(seed=7) for _ in range(2)]
    tables = [build_tables(world.recorder, tracker, END_S) for world, tracker in runs]

    for name in SCHEMAS:
        pd.testing.assert_frame_equal(tables[0][name], tables[1][name], check_exact=True)
        parquet = []
        for run in tables:
            buffer = io.BytesIO()
            run[name].to_parquet(buffer)
            parquet.append(buffer.getvalue())
        assert parquet[0] == parquet[1], name


def test_different_seed_changes_uids() -> None:
    """The determinism test compares tables that could differ."""
    world_a, tracker_a = run_scenario(seed=7)
    world_b, tracker_b = run_scenario(seed=8)
    pods_a = build_tables(world_a.recorder, tracker_a, END_S)["pods"]
    pods_b = build_tables(world_b.recorder, tracker_b, END_S)["pods"]
    assert list(pods_a["uid"]) != list(pods_b["uid"])


# --------------------------------------------------------------------------------------
# Time-weighted levels
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "end_s", "expected"),
    [
        pytest.param([], 10.0, (0.0, 0.0), id="no-changes"),
        pytest.param([(2.0, 1), (6.0, -1)], 10.0, (0.4, 1.0), id="one-interval"),
        pytest.param([(2.0, 1), (12.0, -1)], 10.0, (0.8, 1.0), id="open-at-end"),
        pytest.param([(12.0, 5)], 10.0, (0.0, 0.0), id="after-end-ignored"),
        pytest.param([(3.0, 2), (3.0, -2)], 10.0, (0.0, 0.0), id="same-instant-blip"),
        pytest.param([(0.0, 1), (5.0, 1), (5.0, -1)], 10.0, (1.0, 1.0), id="handover"),
        pytest.param([(0.0, 1)], 0.0, (math.nan, 1.0), id="empty-window"),
    ],
)
def test_time_weighted_level(
    changes: list[tuple[float, int]], end_s: float, expected: tuple[float, float]
) -> None:
    times = np.array([time for time, _ in changes], dtype=np.float64)
    deltas = np.array([delta for _, delta in changes], dtype=np.float64)
    assert time_weighted_level(times, deltas, end_s) == pytest.approx(expected, nan_ok=True)


intervals_strategy = st.lists(
    st.tuples(st.integers(0, 30), st.integers(0, 10)), min_size=1, max_size=8
)


@settings(max_examples=40, deadline=None)
@given(intervals=intervals_strategy, end_s=st.integers(1, 25))
def test_device_utilization_matches_hand_computation(
    intervals: list[tuple[int, int]], end_s: int
) -> None:
    """Claims allocated over [start, start + duration) through real writes; one device each."""
    world = make_world()
    capacity = len(intervals)
    tracker = Tracker(world, capacity={(DRIVER, "node-1"): capacity}, pools={"node-1": "a"})
    tracker.start()

    def hold(index: int, start: int, duration: int) -> Process:
        claim = world.api.create(
            ResourceClaim(
                metadata=ObjectMeta(name=f"claim-{index}", namespace=NS),
                spec=ResourceClaimSpec(resource_class_name="gpu"),
            )
        )
        yield world.env.timeout(start)
        claim = world.api.update_status(
            claim.with_status(allocation=on_node("node-1"), driver_name=DRIVER)
        )
        yield world.env.timeout(duration)
        world.api.update_status(claim.with_status(allocation=None, driver_name=""))

    for index, (start, duration) in enumerate(intervals):
        world.env.process(hold(index, start, duration))
    world.env.run()
    table = build_tables(world.recorder, tracker, float(end_s))["utilization"]
    row = table[(table["resource"] == "devices") & (table["pool"] == "a")].iloc[0]

    busy = sum(max(0, min(start + duration, end_s) - start) for start, duration in intervals)
    instants = {start for start, _ in intervals if start <= end_s}
    peak = max(
        [sum(start <= t < start + duration for start, duration in intervals) for t in instants],
        default=0,
    )
    assert 0.0 <= row["mean_utilization"] <= 1.0
    assert row["mean_in_use"] == pytest.approx(busy / end_s)
    assert row["mean_utilization"] == pytest.approx(busy / end_s / capacity)
    assert row["peak_in_use"] == peak


# --------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------


def test_summary_of_scenario(scenario: tuple[World, Tracker, dict[str, pd.DataFrame]]) -> None:
    world, _, tables = scenario
    summary = summarize(tables, wall_time_s=2.0, sim_time_s=END_S, events_processed=500)
    latencies = [FIRST_BOUND_S, SECOND_BOUND_S - SECOND_CREATED_S]
    startups = [FIRST_RUNNING_S, SECOND_RUNNING_S - SECOND_CREATED_S]
    writes = sum(1 for request in world.recorder.api_requests if request[-1])

    assert summary["pods_created"] == 2
    assert summary["pods_scheduled"] == 2
    assert summary["pods_running_or_done"] == 2
    assert summary["pods_succeeded"] == 2
    assert summary["pods_failed"] == 0
    assert summary["pods_pending_at_end"] == 0
    assert summary["scheduling_latency_s_p50"] == pytest.approx(np.quantile(latencies, 0.5))
    assert summary["scheduling_latency_s_p95"] == pytest.approx(np.quantile(latencies, 0.95))
    assert summary["scheduling_latency_s_p99"] == pytest.approx(np.quantile(latencies, 0.99))
    assert summary["startup_latency_s_p50"] == pytest.approx(np.quantile(startups, 0.5))
    assert summary["startup_latency_s_p95"] == pytest.approx(np.quantile(startups, 0.95))
    assert summary["attempts_per_pod_mean"] == 1.0
    assert summary["api_writes"] == writes
    assert summary["api_writes_per_pod_mean"] == writes / 2
    assert summary["claims_created"] == 1
    assert summary["claims_allocated"] == 1
    assert summary["allocations"] == 1
    assert summary["deallocations"] == 1
    assert summary[f"device_utilization_mean.{DRIVER}"] == pytest.approx(3.75 / END_S / 4)
    assert summary["wall_time_s"] == 2.0
    assert summary["sim_seconds_per_wall_second"] == 10.0
    assert summary["events_per_wall_second"] == 250.0


def test_summary_of_empty_run_is_json() -> None:
    world = make_world()
    tracker = Tracker(world)
    tracker.start()
    tables = build_tables(world.recorder, tracker, 0.0)
    summary = summarize(tables, wall_time_s=0.0, sim_time_s=0.0, events_processed=0)

    text = json.dumps(summary, allow_nan=False)
    assert json.loads(text) == summary
    assert summary["pods_created"] == 0
    assert summary["scheduling_latency_s_p50"] is None
    assert summary["attempts_per_pod_mean"] is None
    assert summary["api_writes_per_pod_mean"] is None
    assert summary["cpu_requested_fraction_mean"] is None
    assert summary["sim_seconds_per_wall_second"] is None
    assert not any(key.startswith("device_utilization_mean.") for key in summary)


def claim_row(name: str, allocations: int, deallocations: int) -> tuple[Any, ...]:
    """Return a `claims` row of an allocated WaitForFirstConsumer claim on node-1."""
    deallocated_s = 2.0 if deallocations else math.nan
    return (
        NS, name, f"uid-{name}", "WaitForFirstConsumer", "gpu", DRIVER, False, True,
        0.0, 1.0, deallocated_s, math.nan, "node-1", 1, allocations, deallocations,
    )  # fmt: skip


def test_summary_allocation_counts_share_unit() -> None:
    # Claim a was allocated, deallocated, allocated again and deallocated again.
    tables = {
        "pods": frame([], POD_SCHEMA),
        "claims": frame([claim_row("a", 2, 2), claim_row("b", 1, 0)], CLAIM_SCHEMA),
        "api_requests": frame([], API_REQUEST_SCHEMA),
        "utilization": frame([], UTILIZATION_SCHEMA),
    }

    summary = summarize(tables, wall_time_s=1.0, sim_time_s=1.0, events_processed=0)

    assert summary["claims_allocated"] == 2
    assert summary["allocations"] == 3
    assert summary["deallocations"] == 2
    assert summary_unit("claims_created") == "claims"
    assert summary_unit("claims_allocated") == "claims"
    assert summary_unit("allocations") == "writes"
    assert summary_unit("deallocations") == "writes"
