"""Tests of the synthetic pod sources: arrival times, limits and the pods they create.

Arrival times are checked on the generator alone (`arrival_times`) and on a
real `WorkloadSource` that creates pods through the API server of a fresh
world. A write hook records the simulated time of every pod create.
"""

from __future__ import annotations

import math
from itertools import islice
from typing import Any

import numpy as np
import pytest

from sim.api.server import WriteRecord
from sim.api.types import Pod
from sim.cluster.config import ControlPlaneConfig
from sim.cluster.kubelet import RUN_DURATION_ANNOTATION
from sim.cluster.world import World
from sim.scenario import WorkloadSpec
from sim.workload.synthetic import WORKLOAD_LABEL, WorkloadSource, arrival_times


def workload(**fields: Any) -> WorkloadSpec:
    data: dict[str, Any] = {"name": "web", "arrival": {"type": "constant", "interval_s": 1}}
    data.update(fields)
    return WorkloadSpec.model_validate(data)


def first_times(spec: WorkloadSpec, seed: int = 1, n: int = 5) -> list[float]:
    return list(islice(arrival_times(spec, np.random.default_rng(seed)), n))


def run_source(
    spec: WorkloadSpec,
    *,
    seed: int = 1,
    until_s: float = 1000.0,
    template_names: dict[str, str] | None = None,
) -> list[tuple[float, Pod]]:
    """Run one source in a fresh world; return (time, pod) for every pod created."""
    world = World.create(ControlPlaneConfig(), seed=seed)
    created: list[tuple[float, Pod]] = []

    def record(write: WriteRecord) -> None:
        if write.kind == "Pod" and write.verb == "create":
            assert isinstance(write.object, Pod)
            created.append((float(world.env.now), write.object))

    world.add_write_hook(record)
    source = WorkloadSource(world, spec, template_names or {})
    source.start()
    world.env.run(until=until_s)
    assert source.finished
    assert source.created == len(created)
    return created


# --------------------------------------------------------------------------------------
# Arrival times
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arrival", "start_s", "expected"),
    [
        pytest.param(
            {"type": "constant", "interval_s": 2.5},
            0.0,
            [2.5 * i for i in range(10)],
            id="constant",
        ),
        pytest.param(
            {"type": "constant", "interval_s": 1},
            10.0,
            [10.0 + i for i in range(10)],
            id="constant-start",
        ),
        pytest.param({"type": "times", "at_s": [3, 1, 2]}, 0.0, [1, 2, 3], id="times-sorted"),
        pytest.param({"type": "times", "at_s": [0, 5]}, 100.0, [100, 105], id="times-start"),
        pytest.param(
            {"type": "bursts", "at_s": [10, 0], "size": 2}, 0.0, [0, 0, 10, 10], id="bursts"
        ),
        pytest.param({"type": "bursts", "at_s": [0], "size": 3}, 5.0, [5, 5, 5], id="bursts-start"),
    ],
)
def test_deterministic_arrival_times(
    arrival: dict[str, Any], start_s: float, expected: list[float]
) -> None:
    spec = workload(arrival=arrival, start_s=start_s, count=100)

    # Ten at most: a constant process never ends, the listed ones stop early.
    assert first_times(spec, n=10) == pytest.approx(expected)


def test_poisson_arrivals_start_after_start_time() -> None:
    spec = workload(arrival={"type": "poisson", "rate_per_s": 2.0}, start_s=50.0, count=10)

    times = first_times(spec, n=50)

    assert times[0] > 50.0
    assert times == sorted(times)


def test_poisson_interarrival_mean_matches_rate() -> None:
    spec = workload(arrival={"type": "poisson", "rate_per_s": 4.0}, count=10)

    times = first_times(spec, n=20_000)
    gaps = np.diff([0.0, *times])

    # Exponential gaps with mean 0.25 s: the standard error of 20 000 samples is 0.0018 s.
    assert gaps.mean() == pytest.approx(0.25, abs=0.01)
    assert gaps.std() == pytest.approx(0.25, abs=0.01)
    assert gaps.min() > 0


def test_poisson_arrivals_same_seed_same_times() -> None:
    spec = workload(arrival={"type": "poisson", "rate_per_s": 1.0}, count=10)

    assert first_times(spec, seed=7) == first_times(spec, seed=7)


def test_poisson_arrivals_differ_between_seeds() -> None:
    spec = workload(arrival={"type": "poisson", "rate_per_s": 1.0}, count=10)

    assert first_times(spec, seed=7) != first_times(spec, seed=8)


# --------------------------------------------------------------------------------------
# Sources in a world: limits and determinism
# --------------------------------------------------------------------------------------


def test_source_stops_at_count() -> None:
    spec = workload(arrival={"type": "constant", "interval_s": 1}, count=4)

    created = run_source(spec)

    assert [time for time, _ in created] == [0, 1, 2, 3]
    assert [pod.metadata.name for _, pod in created] == ["web-0", "web-1", "web-2", "web-3"]


def test_source_stops_after_until() -> None:
    spec = workload(arrival={"type": "constant", "interval_s": 2}, until_s=7)

    created = run_source(spec)

    assert [time for time, _ in created] == [0, 2, 4, 6]


def test_source_includes_arrival_at_until() -> None:
    spec = workload(arrival={"type": "constant", "interval_s": 2}, until_s=6)

    created = run_source(spec)

    assert [time for time, _ in created] == [0, 2, 4, 6]


def test_source_count_and_until_whichever_first() -> None:
    by_count = workload(arrival={"type": "constant", "interval_s": 1}, count=3, until_s=100)
    by_until = workload(arrival={"type": "constant", "interval_s": 1}, count=100, until_s=2.5)

    assert len(run_source(by_count)) == 3
    assert len(run_source(by_until)) == 3


def test_source_count_zero_creates_nothing() -> None:
    spec = workload(arrival={"type": "times", "at_s": [1, 2]}, count=0)

    assert run_source(spec) == []


def test_source_bursts_create_pods_at_once() -> None:
    spec = workload(arrival={"type": "bursts", "at_s": [0, 10], "size": 3})

    created = run_source(spec)

    assert [time for time, _ in created] == [0, 0, 0, 10, 10, 10]
    assert len({pod.metadata.name for _, pod in created}) == 6


def test_source_poisson_times_per_seed() -> None:
    spec = workload(arrival={"type": "poisson", "rate_per_s": 0.5}, count=20)

    first = [time for time, _ in run_source(spec, seed=3)]
    again = [time for time, _ in run_source(spec, seed=3)]
    other = [time for time, _ in run_source(spec, seed=4)]

    assert first == again
    assert first != other
    assert len(first) == 20


def test_source_times_match_arrival_generator() -> None:
    spec = workload(arrival={"type": "poisson", "rate_per_s": 0.5}, count=10)
    world = World.create(ControlPlaneConfig(), seed=3)
    expected = list(islice(arrival_times(spec, world.streams.stream("workload/web/arrivals")), 10))

    created = [time for time, _ in run_source(spec, seed=3)]

    assert created == pytest.approx(expected)


def test_sources_draw_from_own_streams() -> None:
    """Adding a second workload does not change the arrivals of the first."""
    alone = workload(arrival={"type": "poisson", "rate_per_s": 0.5}, count=10)
    other = workload(name="batch", arrival={"type": "poisson", "rate_per_s": 3.0}, count=10)
    world = World.create(ControlPlaneConfig(), seed=5)
    times: dict[str, list[float]] = {"web": [], "batch": []}

    def record(write: WriteRecord) -> None:
        if write.kind == "Pod" and write.verb == "create":
            times[write.object.metadata.labels[WORKLOAD_LABEL]].append(float(world.env.now))

    world.add_write_hook(record)
    WorkloadSource(world, other, {}).start()
    WorkloadSource(world, alone, {}).start()
    world.env.run(until=1000)

    assert times["web"] == [time for time, _ in run_source(alone, seed=5)]
    assert len(times["batch"]) == 10


# --------------------------------------------------------------------------------------
# The pods
# --------------------------------------------------------------------------------------


def full_workload() -> WorkloadSpec:
    return workload(
        name="train",
        namespace="ml",
        arrival={"type": "times", "at_s": [0, 1]},
        pod={
            "cpu": "2",
            "memory": "4Gi",
            "labels": {"team": "vision"},
            "node_selector": {"zone": "a"},
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "priority": 100,
            "restart_policy": "OnFailure",
            "containers": 2,
        },
        claims=[
            {"name": "gpu", "template": {"resource_class": "gpu.example.com"}},
            {"name": "scratch", "claim": "shared-scratch"},
        ],
        run_duration_s={"type": "uniform", "low": 10, "high": 20},
    )


def test_pod_claim_entries() -> None:
    created = run_source(full_workload(), template_names={"gpu": "train-gpu"})

    pod = created[0][1]
    entries = {entry.name: entry.source for entry in pod.spec.resource_claims}
    assert set(entries) == {"gpu", "scratch"}
    assert entries["gpu"].resource_claim_template_name == "train-gpu"
    assert entries["gpu"].resource_claim_name is None
    assert entries["scratch"].resource_claim_name == "shared-scratch"
    assert entries["scratch"].resource_claim_template_name is None


def test_pod_container_claims_and_requests() -> None:
    pod = run_source(full_workload(), template_names={"gpu": "train-gpu"})[0][1]

    assert [container.name for container in pod.spec.containers] == ["c0", "c1"]
    for container in pod.spec.containers:
        assert [ref.name for ref in container.resources.claims] == ["gpu", "scratch"]
        assert container.resources.requests["cpu"] == "2"
        assert container.resources.requests["memory"] == "4Gi"


def test_pod_metadata_and_scheduling_fields() -> None:
    pod = run_source(full_workload(), template_names={"gpu": "train-gpu"})[1][1]

    assert pod.metadata.name == "train-1"
    assert pod.metadata.namespace == "ml"
    assert pod.metadata.labels == {"team": "vision", WORKLOAD_LABEL: "train"}
    assert pod.spec.node_selector == {"zone": "a"}
    assert [t.key for t in pod.spec.tolerations] == ["gpu"]
    assert pod.spec.priority == 100
    assert pod.spec.restart_policy == "OnFailure"


def test_pod_run_duration_annotation_is_sampled() -> None:
    created = run_source(full_workload(), template_names={"gpu": "train-gpu"})

    durations = [float(pod.metadata.annotations[RUN_DURATION_ANNOTATION]) for _, pod in created]
    assert all(10 <= duration < 20 for duration in durations)
    assert durations[0] != durations[1]


def test_pod_constant_run_duration() -> None:
    spec = workload(arrival={"type": "times", "at_s": [0]}, run_duration_s=42)

    pod = run_source(spec)[0][1]

    assert math.isclose(float(pod.metadata.annotations[RUN_DURATION_ANNOTATION]), 42.0)


def test_pod_without_run_duration_has_no_annotation() -> None:
    spec = workload(arrival={"type": "times", "at_s": [0]})

    pod = run_source(spec)[0][1]

    assert RUN_DURATION_ANNOTATION not in pod.metadata.annotations
    assert pod.spec.resource_claims == ()
