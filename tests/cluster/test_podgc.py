"""The pod garbage collector keeps the number of terminated pods at its threshold."""

from __future__ import annotations

from typing import Any

import pytest

from sim.scenario import parse_scenario
from sim.simulation import Simulation, build

THRESHOLD = 5
PODS = 30


def _scenario(threshold: int) -> dict[str, Any]:
    return {
        "name": "pod-gc",
        "seed": 3,
        "horizon_s": 600,
        "cluster": {
            "node_pools": [
                {"name": "node", "count": 2, "devices": {"gpu.example.com": {"count": 4}}}
            ]
        },
        "drivers": [{"name": "gpu.example.com", "model": "node-local"}],
        "resource_classes": [{"name": "gpu", "driver_name": "gpu.example.com"}],
        "control_plane": {"pod_gc": {"terminated_pod_threshold": threshold}},
        "workloads": [
            {
                "name": "batch",
                "arrival": {"type": "constant", "interval_s": 2},
                "count": PODS,
                "pod": {"cpu": "100m", "memory": "100Mi"},
                "claims": [{"name": "gpu", "template": {"resource_class": "gpu"}}],
                "run_duration_s": 10,
            }
        ],
    }


def _run(threshold: int) -> Simulation:
    simulation = build(parse_scenario(_scenario(threshold), source="test"))
    simulation.run()
    return simulation


@pytest.fixture(scope="module")
def collected() -> Simulation:
    return _run(THRESHOLD)


CHECK_PERIOD_S = 20.0


def test_check_deletes_oldest_beyond_threshold(collected: Simulation) -> None:
    finished = sorted(pod.finished_s for pod in collected.tracker.pods.values())
    requests = collected.world.recorder.tables()["api_requests"]
    deletes = requests[
        (requests.component == "pod-garbage-collector") & (requests.verb == "delete")
    ]
    assert len(deletes) == collected.pod_gc.deleted > 0
    checks = [
        CHECK_PERIOD_S * k
        for k in range(1, int(collected.end_time_s // CHECK_PERIOD_S) + 1)
        if CHECK_PERIOD_S * k < collected.end_time_s
    ]
    for check in checks:
        # No pod finishes right at a check, so the count the controller saw is certain.
        assert all(abs(t - check) > 0.01 for t in finished)
        terminated = sum(1 for t in finished if t < check)
        deleted_so_far = int((deletes.time_s < check + 1).sum())
        assert deleted_so_far == max(0, terminated - THRESHOLD), check
    # The survivors are the newest pods: every deleted pod was created before any survivor.
    left = collected.world.api.list("Pod").items
    assert len(left) == PODS - collected.pod_gc.deleted
    survivors = {pod.metadata.name for pod in left}
    created = {pod.name: pod.created_s for pod in collected.tracker.pods.values()}
    assert max(t for name, t in created.items() if name not in survivors) < min(
        created[name] for name in survivors
    )


def test_claims_of_deleted_pods_are_gone(collected: Simulation) -> None:
    claims = collected.world.api.list("ResourceClaim").items
    owners = {ref.uid for claim in claims for ref in claim.metadata.owner_references}
    live = {pod.metadata.uid for pod in collected.world.api.list("Pod").items}
    assert owners <= live


def test_threshold_zero_keeps_every_pod() -> None:
    simulation = _run(0)
    assert len(simulation.world.api.list("Pod").items) == PODS
    assert simulation.pod_gc.deleted == 0
