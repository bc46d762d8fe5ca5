"""Tests of the invariant checker: each rule is broken once, and a correct run passes.

Rules that the API server's validation also enforces (the `reserved-for-*`
rules and `reservation-while-deallocating`) cannot be broken through the
server. Their tests show that the server rejects the write, then hand the
same object to the checker as the write record a defective server would
have produced.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from sim.api.errors import Invalid
from sim.api.server import WriteRecord
from sim.api.types import (
    ClaimSource,
    Container,
    Node,
    NodeStatus,
    ObjectMeta,
    Pod,
    PodPhase,
    PodResourceClaim,
    PodSpec,
    ResourceClaim,
    ResourceClaimConsumerReference,
    ResourceClaimRef,
    ResourceClaimSpec,
    ResourceClaimTemplate,
    ResourceClaimTemplateSpec,
    ResourceClass,
    ResourceRequirements,
    pod_consumer_reference,
)
from sim.cluster.claimcontroller import ResourceClaimController
from sim.cluster.config import ControlPlaneConfig
from sim.cluster.driver import (
    HOSTNAME_LABEL,
    APINodeView,
    ClaimAllocation,
    DriverConfig,
    DriverController,
    DriverModel,
    ModelContext,
)
from sim.cluster.garbagecollector import GarbageCollector
from sim.cluster.invariants import InvariantChecker, Rule, model_devices
from sim.cluster.kubelet import RUN_DURATION_ANNOTATION, Kubelet, NodePlugin
from sim.cluster.scheduler.scheduler import KubeScheduler
from sim.cluster.world import SimulationInvariantError, World
from sim.drivers.node_local import NodeLocalModel, NodeLocalSettings

NS = "default"
DRIVER = "gpu.example.com"


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def make_world(version: str = "1.29") -> World:
    world = World.create(ControlPlaneConfig(kubernetes_version=version), seed=1)
    allocatable: dict[str, str | int | float] = {"cpu": "8", "memory": "16Gi", "pods": 110}
    for node in ("n1", "n2"):
        world.api.create(
            Node(
                metadata=ObjectMeta(name=node, labels={HOSTNAME_LABEL: node}),
                status=NodeStatus(allocatable=allocatable),
            )
        )
    world.api.create(ResourceClass(metadata=ObjectMeta(name="gpu"), driver_name=DRIVER))
    return world


def make_model(world: World) -> NodeLocalModel:
    context = ModelContext(DRIVER, world.streams.stream("test/model"), APINodeView(world.api))
    return NodeLocalModel(NodeLocalSettings(), context)


def create_claim(world: World, name: str) -> ResourceClaim:
    return world.api.create(
        ResourceClaim(
            metadata=ObjectMeta(name=name, namespace=NS),
            spec=ResourceClaimSpec(resource_class_name="gpu"),
        )
    )


def allocate(
    world: World,
    model: DriverModel,
    name: str,
    node: str,
    *,
    reserved_for: Sequence[Pod] = (),
    shareable: bool = False,
) -> ResourceClaim:
    """Let a driver model allocate the claim on `node` and write the result, as the driver does."""
    claim = world.api.get("ResourceClaim", name, NS)
    request = ClaimAllocation("", claim, world.api.get("ResourceClass", "gpu"))
    model.allocate([request], node)
    assert request.allocation is not None, request.error
    allocation = request.allocation.model_copy(update={"shareable": shareable})
    return world.api.update_status(
        claim.with_status(
            allocation=allocation,
            driver_name=DRIVER,
            reserved_for=tuple(pod_consumer_reference(pod) for pod in reserved_for),
        )
    )


def create_pod(
    world: World,
    name: str,
    claim_name: str | None,
    *,
    run_s: float | None = None,
    template: bool = False,
) -> Pod:
    source = (
        ClaimSource(resource_claim_template_name="gpu-template")
        if template
        else ClaimSource(resource_claim_name=claim_name)
    )
    annotations = {RUN_DURATION_ANNOTATION: str(run_s)} if run_s is not None else {}
    return world.api.create(
        Pod(
            metadata=ObjectMeta(name=name, namespace=NS, annotations=annotations),
            spec=PodSpec(
                restart_policy="Never",
                containers=(
                    Container(
                        name="main",
                        resources=ResourceRequirements(claims=(ResourceClaimRef(name="gpu"),)),
                    ),
                ),
                resource_claims=(PodResourceClaim(name="gpu", source=source),),
            ),
        )
    )


def set_running(world: World, name: str) -> Pod:
    pod = world.api.get("Pod", name, NS)
    return world.api.update_status(pod.with_status(phase=PodPhase.RUNNING))


def advance(world: World, time_s: float) -> None:
    world.env.run(until=time_s)


def expect_violation(
    action: Callable[[], Any], rule: Rule, obj: str, time_s: float
) -> SimulationInvariantError:
    with pytest.raises(SimulationInvariantError) as caught:
        action()
    error = caught.value
    assert error.rule == rule
    assert error.obj == obj
    assert error.time_s == pytest.approx(time_s)
    return error


def claim_record(claim: ResourceClaim) -> WriteRecord:
    """The write record a server would produce for a status write of `claim`."""
    return WriteRecord(
        "update",
        "ResourceClaim",
        claim.metadata.namespace,
        claim.metadata.name,
        "status",
        int(claim.metadata.resource_version) + 1,
        claim,
    )


def consumer(index: int) -> ResourceClaimConsumerReference:
    return ResourceClaimConsumerReference(resource="pods", name=f"p{index}", uid=f"uid-{index}")


@pytest.fixture
def world() -> World:
    return make_world()


@pytest.fixture
def checker(world: World) -> InvariantChecker:
    checker = InvariantChecker(world)
    checker.attach()
    return checker


# --------------------------------------------------------------------------------------
# Devices
# --------------------------------------------------------------------------------------


def test_device_allocated_to_two_claims(world: World, checker: InvariantChecker) -> None:
    # Two instances of one driver, each with its own bookkeeping (no leader election).
    first_model, second_model = make_model(world), make_model(world)
    checker.add_device_source(model_devices(world.api, {DRIVER: first_model}))
    checker.add_device_source(model_devices(world.api, {DRIVER: second_model}))
    create_claim(world, "c1")
    create_claim(world, "c2")
    advance(world, 3.0)
    allocate(world, first_model, "c1", "n1")

    error = expect_violation(
        lambda: allocate(world, second_model, "c2", "n1"),
        Rule.DEVICE_ALLOCATED_ONCE,
        "ResourceClaim default/c2",
        3.0,
    )

    assert "'slot-0'" in str(error)
    assert "default/c1" in str(error)


def test_one_model_devices_never_collide(world: World, checker: InvariantChecker) -> None:
    model = make_model(world)
    checker.add_device_source(model_devices(world.api, {DRIVER: model}))
    for name in ("c1", "c2", "c3"):
        create_claim(world, name)
        allocate(world, model, name, "n1")

    assert model.devices_of(world.api.get("ResourceClaim", "c3", NS).metadata.uid) == (
        "n1",
        ["slot-2"],
    )


# --------------------------------------------------------------------------------------
# reservedFor limits (also rejected by the API server's validation)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shareable", "consumers", "rule"),
    [
        (True, [consumer(i) for i in range(33)], Rule.RESERVED_FOR_MAX_SIZE),
        (False, [consumer(1), consumer(2)], Rule.RESERVED_FOR_EXCLUSIVE),
        (True, [consumer(1), consumer(1)], Rule.RESERVED_FOR_UNIQUE),
    ],
    ids=["33-consumers", "two-on-exclusive", "duplicate-uid"],
)
def test_reserved_for_limits(
    world: World,
    checker: InvariantChecker,
    shareable: bool,
    consumers: list[ResourceClaimConsumerReference],
    rule: Rule,
) -> None:
    create_claim(world, "c")
    claim = allocate(world, make_model(world), "c", "n1", shareable=shareable)
    advance(world, 7.0)
    bad = claim.with_status(reserved_for=tuple(consumers))

    with pytest.raises(Invalid):
        world.api.update_status(bad)
    expect_violation(
        lambda: checker.check_write(claim_record(bad)), rule, "ResourceClaim default/c", 7.0
    )


@pytest.mark.parametrize("deleting", [False, True], ids=["deallocation-requested", "deleting"])
def test_reservation_added_while_deallocating(
    world: World, checker: InvariantChecker, deleting: bool
) -> None:
    create_claim(world, "c")
    claim = allocate(world, make_model(world), "c", "n1", shareable=True)
    if deleting:
        claim = world.api.update(claim.with_meta(finalizers=(f"{DRIVER}/deletion-protection",)))
        claim = world.api.delete("ResourceClaim", "c", NS)
    else:
        claim = world.api.update_status(claim.with_status(deallocation_requested=True))
    advance(world, 4.0)
    bad = claim.with_status(reserved_for=(consumer(1),))

    with pytest.raises(Invalid):
        world.api.update_status(bad)
    error = expect_violation(
        lambda: checker.check_write(claim_record(bad)),
        Rule.RESERVATION_WHILE_DEALLOCATING,
        "ResourceClaim default/c",
        4.0,
    )
    assert "uid-1" in str(error)


# --------------------------------------------------------------------------------------
# Running pods
# --------------------------------------------------------------------------------------


def test_running_pod_with_unallocated_claim(world: World, checker: InvariantChecker) -> None:
    create_claim(world, "c")
    create_pod(world, "p", "c")
    world.api.bind(NS, "p", "n1")
    advance(world, 5.0)

    expect_violation(
        lambda: set_running(world, "p"), Rule.RUNNING_POD_CLAIM_ALLOCATED, "Pod default/p", 5.0
    )


@pytest.mark.parametrize("template", [False, True], ids=["claim-missing", "name-not-recorded"])
def test_running_pod_without_claim(world: World, checker: InvariantChecker, template: bool) -> None:
    create_pod(world, "p", "never-created", template=template)
    world.api.bind(NS, "p", "n1")
    advance(world, 2.0)

    expect_violation(
        lambda: set_running(world, "p"), Rule.RUNNING_POD_CLAIM_ALLOCATED, "Pod default/p", 2.0
    )


def test_running_pod_with_unreserved_claim(world: World, checker: InvariantChecker) -> None:
    create_claim(world, "c")
    create_pod(world, "p", "c")
    allocate(world, make_model(world), "c", "n1")
    world.api.bind(NS, "p", "n1")
    advance(world, 5.0)

    expect_violation(
        lambda: set_running(world, "p"), Rule.RUNNING_POD_CLAIM_RESERVED, "Pod default/p", 5.0
    )


def test_reservation_removed_from_running_pod(world: World, checker: InvariantChecker) -> None:
    create_claim(world, "c")
    pod = create_pod(world, "p", "c")
    claim = allocate(world, make_model(world), "c", "n1", reserved_for=[pod])
    world.api.bind(NS, "p", "n1")
    set_running(world, "p")
    advance(world, 9.0)

    expect_violation(
        lambda: world.api.update_status(claim.with_status(reserved_for=())),
        Rule.RUNNING_POD_CLAIM_RESERVED,
        "Pod default/p",
        9.0,
    )


def test_running_pod_on_wrong_node(world: World, checker: InvariantChecker) -> None:
    create_claim(world, "c")
    pod = create_pod(world, "p", "c")
    allocate(world, make_model(world), "c", "n2", reserved_for=[pod])
    world.api.bind(NS, "p", "n1")
    advance(world, 5.0)

    error = expect_violation(
        lambda: set_running(world, "p"), Rule.RUNNING_POD_CLAIM_ON_NODE, "Pod default/p", 5.0
    )
    assert "'n1'" in str(error)


def test_running_pod_on_right_node(world: World, checker: InvariantChecker) -> None:
    create_claim(world, "c")
    pod = create_pod(world, "p", "c")
    allocate(world, make_model(world), "c", "n1", reserved_for=[pod])
    world.api.bind(NS, "p", "n1")

    assert set_running(world, "p").status.phase == PodPhase.RUNNING


# --------------------------------------------------------------------------------------
# A correct run
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.27", "1.29"])
def test_hand_played_run_raises_nothing(version: str) -> None:
    world = make_world(version)
    # The test writes the driver's allocations itself, so the controller is never started.
    driver = DriverController(world, DriverConfig(name=DRIVER))
    model = driver.model
    checker = InvariantChecker.for_drivers(world, {DRIVER: driver})
    checker.attach()
    kubelets = [
        Kubelet(world, node, plugins=[NodePlugin(world, node, DRIVER)]) for node in ("n1", "n2")
    ]
    for kubelet in kubelets:
        kubelet.start()
    create_claim(world, "shared")
    sharing = [create_pod(world, f"s{i}", "shared", run_s=20.0 + i) for i in range(3)]
    allocate(world, model, "shared", "n1", reserved_for=sharing, shareable=True)
    for pod in sharing:
        world.api.bind(NS, pod.metadata.name, "n1")
    for i in range(4):
        node = f"n{1 + i % 2}"
        create_claim(world, f"c{i}")
        pod = create_pod(world, f"p{i}", f"c{i}", run_s=10.0)
        allocate(world, model, f"c{i}", node, reserved_for=[pod])
        world.api.bind(NS, f"p{i}", node)

    world.env.run(until=60)

    phases = {pod.metadata.name: pod.status.phase for pod in world.api.list("Pod", NS).items}
    assert set(phases.values()) == {PodPhase.SUCCEEDED}
    assert len(phases) == 7
    assert checker.writes_checked >= 7 * 2


def test_detached_checker_ignores_writes(world: World, checker: InvariantChecker) -> None:
    create_claim(world, "c")
    create_pod(world, "p", "c")
    world.api.bind(NS, "p", "n1")
    checker.detach()

    assert set_running(world, "p").status.phase == PodPhase.RUNNING


@pytest.mark.parametrize("version", ["1.27", "1.28", "1.29"])
def test_full_control_plane_raises_nothing(version: str) -> None:
    """Scheduler, claim controller, garbage collector, driver and kubelets with the checker on."""
    world = make_world(version)
    driver = DriverController(
        world, DriverConfig(name=DRIVER, model_settings={"max_claims_per_node": 2})
    )
    checker = InvariantChecker.for_drivers(world, {DRIVER: driver})
    checker.attach()
    components: list[Any] = [
        KubeScheduler(world),
        ResourceClaimController(world),
        GarbageCollector(world),
        driver,
    ]
    components += [
        Kubelet(world, node, plugins=[NodePlugin(world, node, DRIVER)]) for node in ("n1", "n2")
    ]
    for component in components:
        component.start()
    world.api.create(
        ResourceClaimTemplate(
            metadata=ObjectMeta(name="gpu-template", namespace=NS),
            spec=ResourceClaimTemplateSpec(spec=ResourceClaimSpec(resource_class_name="gpu")),
        )
    )
    for i in range(6):
        create_pod(world, f"p{i}", None, run_s=10.0, template=True)

    world.env.run(until=300)

    phases = [pod.status.phase for pod in world.api.list("Pod", NS).items]
    # Four devices for six pods: 1.28+ frees a claim when its pod ends, 1.27 does not.
    expected_done = 4 if version == "1.27" else 6
    assert phases.count(PodPhase.SUCCEEDED) == expected_done
    assert checker.writes_checked > 50
