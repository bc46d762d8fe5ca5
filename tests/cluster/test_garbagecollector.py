"""Tests of the garbage collector against the real API server, in simulated time.

The world's API server runs with `synchronous_gc=False`, so every dependent
that disappears here was deleted by the collector through its own client.
With the default timing every API request takes 4 ms and every watch event
arrives 2 ms after its commit.
"""

from __future__ import annotations

import pytest

from sim.api.errors import NotFound
from sim.api.types import (
    ClaimSource,
    Container,
    ObjectMeta,
    OwnerReference,
    Pod,
    PodResourceClaim,
    PodSchedulingContext,
    PodSpec,
    ResourceClaim,
    ResourceClaimRef,
    ResourceClaimSpec,
    ResourceClaimTemplate,
    ResourceClaimTemplateSpec,
    ResourceRequirements,
)
from sim.cluster.claimcontroller import ResourceClaimController
from sim.cluster.config import ControlPlaneConfig, GarbageCollectorConfig
from sim.cluster.garbagecollector import COMPONENT, GarbageCollector
from sim.cluster.world import World

NS = "default"
FINALIZER = "gpu.example.com/deletion-protection"


def make_world(delay_s: float = 0.05, version: str = "1.29") -> World:
    config = ControlPlaneConfig(
        kubernetes_version=version, garbage_collector=GarbageCollectorConfig(delay_s=delay_s)
    )
    return World.create(config, seed=1)


def start_collector(world: World) -> GarbageCollector:
    collector = GarbageCollector(world)
    collector.start()
    return collector


def create_pod(world: World, name: str) -> Pod:
    return world.api.create(Pod(metadata=ObjectMeta(name=name, namespace=NS)))


def owner_ref(name: str, uid: str) -> OwnerReference:
    return OwnerReference(
        api_version="v1", kind="Pod", name=name, uid=uid, controller=True, block_owner_deletion=True
    )


def create_owned_claim(
    world: World, name: str, *owners: OwnerReference, finalizers: tuple[str, ...] = ()
) -> ResourceClaim:
    claim = ResourceClaim(
        metadata=ObjectMeta(
            name=name, namespace=NS, owner_references=owners, finalizers=finalizers
        ),
        spec=ResourceClaimSpec(resource_class_name="gpu"),
    )
    return world.api.create(claim)


def create_owned_scheduling_context(world: World, pod: Pod) -> PodSchedulingContext:
    scheduling = PodSchedulingContext(
        metadata=ObjectMeta(
            name=pod.metadata.name,
            namespace=NS,
            owner_references=(owner_ref(pod.metadata.name, pod.metadata.uid),),
        )
    )
    return world.api.create(scheduling)


def exists(world: World, kind: str, name: str) -> bool:
    try:
        world.api.get(kind, name, NS)
    except NotFound:
        return False
    return True


def requests(
    world: World, component: str = COMPONENT, since: float = 0.0
) -> list[tuple[float, str, str, str, int]]:
    """Requests of one component after `since`: (time, verb, resource, name, code)."""
    return [
        (round(r[0], 6), r[2], r[3], r[5], r[7])
        for r in world.recorder.api_requests
        if r[1] == component and r[0] > since
    ]


# --------------------------------------------------------------------------------------
# Background deletion
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("delay_s", [0.05, 0.5], ids=["default-delay", "slow-collector"])
def test_dependents_deleted_after_owner(delay_s: float) -> None:
    world = make_world(delay_s)
    start_collector(world)
    pod = create_pod(world, "p1")
    create_owned_claim(world, "p1-gpu", owner_ref("p1", pod.metadata.uid))
    create_owned_scheduling_context(world, pod)
    world.env.run(until=1)
    assert requests(world) == []

    world.api.delete("Pod", "p1", NS)
    world.env.run(until=2)

    # Delete event after 2 ms, then the delay, then a 4 ms request per dependent.
    expected_time = round(1 + 0.002 + delay_s + 0.004, 6)
    assert requests(world) == [
        (expected_time, "delete", "resourceclaims", "p1-gpu", 200),
        (expected_time, "delete", "podschedulingcontexts", "p1", 200),
    ]
    assert not exists(world, "ResourceClaim", "p1-gpu")
    assert not exists(world, "PodSchedulingContext", "p1")


def test_finalizer_keeps_deleted_dependent() -> None:
    world = make_world()
    start_collector(world)
    pod = create_pod(world, "p1")
    create_owned_claim(world, "p1-gpu", owner_ref("p1", pod.metadata.uid), finalizers=(FINALIZER,))
    world.api.delete("Pod", "p1", NS)
    world.env.run(until=1)

    claim = world.api.get("ResourceClaim", "p1-gpu", NS)
    assert claim.deleting
    assert requests(world) == [(0.056, "delete", "resourceclaims", "p1-gpu", 200)]


def test_owner_that_never_existed() -> None:
    world = make_world()
    start_collector(world)
    create_owned_claim(world, "orphan", owner_ref("ghost", "0000-ghost-uid"))
    world.env.run(until=1)

    # Unknown to the informers, so the owner is looked up live first.
    assert requests(world) == [
        (0.056, "get", "pods", "ghost", 404),
        (0.06, "delete", "resourceclaims", "orphan", 200),
    ]
    assert not exists(world, "ResourceClaim", "orphan")


def test_dangling_reference_removed_when_other_owner_lives() -> None:
    world = make_world()
    start_collector(world)
    pod = create_pod(world, "p1")
    alive = OwnerReference(api_version="v1", kind="Pod", name="p1", uid=pod.metadata.uid)
    create_owned_claim(world, "shared", alive, owner_ref("ghost", "0000-ghost-uid"))
    world.env.run(until=1)

    assert requests(world) == [
        (0.056, "get", "pods", "ghost", 404),
        (0.06, "update", "resourceclaims", "shared", 200),
    ]
    claim = world.api.get("ResourceClaim", "shared", NS)
    assert claim.metadata.owner_references == (alive,)


def test_scheduling_context_of_replaced_pod_deleted() -> None:
    world = make_world()
    start_collector(world)
    old = create_pod(world, "p1")
    create_owned_scheduling_context(world, old)
    world.env.run(until=1)

    # The pod is recreated under the same name: the old PodSchedulingContext is stale.
    world.api.delete("Pod", "p1", NS)
    new = create_pod(world, "p1")
    world.env.run(until=2)
    assert not exists(world, "PodSchedulingContext", "p1")

    create_owned_scheduling_context(world, new)
    world.env.run(until=3)
    kept = world.api.get("PodSchedulingContext", "p1", NS)
    assert kept.metadata.owner_references[0].uid == new.metadata.uid
    assert [r[1] for r in requests(world)] == ["delete"]


def test_dependent_of_live_owner_kept() -> None:
    world = make_world()
    start_collector(world)
    pod = create_pod(world, "p1")
    create_owned_claim(world, "p1-gpu", owner_ref("p1", pod.metadata.uid))
    world.env.run(until=5)

    assert exists(world, "ResourceClaim", "p1-gpu")
    assert requests(world) == []


# --------------------------------------------------------------------------------------
# Foreground and Orphan propagation
# --------------------------------------------------------------------------------------


def test_foreground_deletion_waits_for_blocking_dependent() -> None:
    world = make_world()
    start_collector(world)
    pod = create_pod(world, "p1")
    create_owned_claim(world, "p1-gpu", owner_ref("p1", pod.metadata.uid), finalizers=(FINALIZER,))
    world.env.run(until=1)
    world.api.delete("Pod", "p1", NS, propagation_policy="Foreground")
    world.env.run(until=2)

    # The claim is being deleted, but its finalizer keeps it, and so the pod waits.
    pod_now = world.api.get("Pod", "p1", NS)
    assert pod_now.deleting
    assert world.api.get("ResourceClaim", "p1-gpu", NS).deleting
    assert requests(world) == [(1.006, "delete", "resourceclaims", "p1-gpu", 200)]

    # The driver removes its finalizer; the claim goes, then the pod.
    claim = world.api.get("ResourceClaim", "p1-gpu", NS)
    world.api.update(claim.with_meta(finalizers=()))
    world.env.run(until=3)
    assert not exists(world, "Pod", "p1")
    assert requests(world, since=2) == [(2.006, "patch", "pods", "p1", 200)]


def test_orphan_deletion_keeps_dependents() -> None:
    world = make_world()
    start_collector(world)
    pod = create_pod(world, "p1")
    create_owned_claim(world, "p1-gpu", owner_ref("p1", pod.metadata.uid))
    world.env.run(until=1)
    world.api.delete("Pod", "p1", NS, propagation_policy="Orphan")
    world.env.run(until=2)

    assert not exists(world, "Pod", "p1")
    claim = world.api.get("ResourceClaim", "p1-gpu", NS)
    assert claim.metadata.owner_references == ()
    assert requests(world) == [(1.006, "patch", "pods", "p1", 200)]


# --------------------------------------------------------------------------------------
# Together with the resourceclaim controller
# --------------------------------------------------------------------------------------


def test_generated_claim_and_scheduling_context_go_with_pod() -> None:
    world = make_world()
    world.api.create(
        ResourceClaimTemplate(
            metadata=ObjectMeta(name="gpu", namespace=NS),
            spec=ResourceClaimTemplateSpec(spec=ResourceClaimSpec(resource_class_name="gpu")),
        )
    )
    ResourceClaimController(world).start()
    start_collector(world)
    entry = PodResourceClaim(name="gpu", source=ClaimSource(resource_claim_template_name="gpu"))
    container = Container(
        name="main", resources=ResourceRequirements(claims=(ResourceClaimRef(name="gpu"),))
    )
    pod = Pod(
        metadata=ObjectMeta(name="q", namespace=NS),
        spec=PodSpec(node_name="n1", containers=(container,), resource_claims=(entry,)),
    )
    world.api.create(pod)
    world.env.run(until=1)
    (status,) = world.api.get("Pod", "q", NS).status.resource_claim_statuses
    claim_name = status.resource_claim_name
    assert claim_name is not None
    assert exists(world, "PodSchedulingContext", "q")

    world.api.delete("Pod", "q", NS)
    world.env.run(until=2)

    assert not exists(world, "ResourceClaim", claim_name)
    assert not exists(world, "PodSchedulingContext", "q")
    deletes = {(r[2], r[3]) for r in requests(world) if r[1] == "delete"}
    assert deletes == {("resourceclaims", claim_name), ("podschedulingcontexts", "q")}
    # The controller leaves claims of pods missing from its informer to the collector.
    controller_deletes = [
        r for r in requests(world, "resourceclaim-controller") if r[1] == "delete"
    ]
    assert controller_deletes == []
