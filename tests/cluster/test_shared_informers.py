"""Controllers of kube-controller-manager share one informer per kind."""

from __future__ import annotations

from typing import Any

from sim.api.types import ObjectMeta, ResourceClass
from sim.cluster.client import KUBE_CONTROLLER_MANAGER, shared_informer
from sim.cluster.world import World
from sim.scenario import parse_scenario
from sim.simulation import build


def test_controller_manager_watches_each_kind_once() -> None:
    scenario = parse_scenario({"name": "shared", "horizon_s": 1}, source="test")
    simulation = build(scenario)
    pods = simulation.claim_controller.pods
    assert simulation.garbage_collector.informers["Pod"] is pods
    assert simulation.pod_gc.pods is pods
    claims = simulation.claim_controller.claims
    assert simulation.garbage_collector.informers["ResourceClaim"] is claims
    # kube-scheduler is another process with its own informers.
    assert simulation.scheduler.pods is not pods


def test_late_handler_sees_cached_objects() -> None:
    world = World.create()
    world.api.create(ResourceClass(metadata=ObjectMeta(name="gpu"), driver_name="gpu.example.com"))
    informer = shared_informer(world, KUBE_CONTROLLER_MANAGER, "ResourceClass")
    informer.start()
    seen: list[Any] = []
    informer.add_handler(on_add=seen.append)
    assert [obj.metadata.name for obj in seen] == ["gpu"]
    assert shared_informer(world, KUBE_CONTROLLER_MANAGER, "ResourceClass") is informer
    assert shared_informer(world, "other-process", "ResourceClass") is not informer
