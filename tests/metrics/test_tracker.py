"""Tests of the write tracker against the real API server, in simulated time.

Claims and pods are written directly on `world.api` (actor "user") or through
an `APIClient` per role, with statuses set by hand as a driver, kube-scheduler
or the resourceclaim controller would set them. Every API request takes
0.25 s and every watch event arrives 0.125 s after its commit, so the
timestamps below are exact binary fractions.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import pytest
import simpy

from sim.api.types import (
    AllocationMode,
    AllocationResult,
    Container,
    Node,
    NodeSelector,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    NodeStatus,
    ObjectMeta,
    OwnerReference,
    Pod,
    PodSpec,
    ResourceClaim,
    ResourceClaimSpec,
    ResourceClass,
    ResourceRequirements,
    pod_consumer_reference,
)
from sim.cluster.client import APIClient
from sim.cluster.config import ControlPlaneConfig
from sim.cluster.kubelet import RUN_DURATION_ANNOTATION, Kubelet
from sim.cluster.scheduler.scheduler import KubeScheduler
from sim.cluster.world import World
from sim.metrics.recorder import Recorder
from sim.metrics.tracker import (
    WORKLOAD_LABEL,
    ClaimState,
    Tracker,
    one_device_per_claim,
    single_hostname,
)

NS = "default"
DRIVER = "gpu.example.com"
FINALIZER = f"{DRIVER}/deletion-protection"
LATENCY_S = 0.25

Process = Generator[simpy.Event, Any, None]


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def make_world() -> World:
    config = ControlPlaneConfig(request_latency_s=LATENCY_S, watch_delay_s=LATENCY_S / 2)
    return World.create(config, seed=1)


def hostname_selector(*nodes: str, key: str = "kubernetes.io/hostname") -> NodeSelector:
    requirement = NodeSelectorRequirement(key=key, operator="In", values=nodes)
    return NodeSelector(node_selector_terms=(NodeSelectorTerm(match_expressions=(requirement,)),))


def allocation(node: str = "node-1", *, shareable: bool = False) -> AllocationResult:
    return AllocationResult(available_on_nodes=hostname_selector(node), shareable=shareable)


def create_claim(
    world: World,
    name: str = "gpu",
    *,
    mode: str = AllocationMode.WAIT_FOR_FIRST_CONSUMER,
    owners: tuple[OwnerReference, ...] = (),
) -> ResourceClaim:
    claim = ResourceClaim(
        metadata=ObjectMeta(name=name, namespace=NS, owner_references=owners),
        spec=ResourceClaimSpec(resource_class_name="gpu", allocation_mode=mode),
    )
    return world.api.create(claim)


def create_pod(world: World, name: str, **spec: Any) -> Pod:
    return world.api.create(Pod(metadata=ObjectMeta(name=name, namespace=NS), spec=PodSpec(**spec)))


def run(world: World, *processes: Callable[[], Process], until: float = 100.0) -> None:
    for process in processes:
        world.env.process(process())
    world.env.run(until=until)


def events_of(world: World, uid: str) -> list[tuple[Any, ...]]:
    """Return (time_s, from_state, to_state, actor, reason) of every event of one object."""
    return [(e[0], e[5], e[6], e[7], e[8]) for e in world.recorder.events if e[4] == uid]


# --------------------------------------------------------------------------------------
# Claims
# --------------------------------------------------------------------------------------


def test_claim_lifecycle_transitions() -> None:
    world = make_world()
    tracker = Tracker(world)
    tracker.start()
    claim = create_claim(world)
    first = create_pod(world, "first")
    second = create_pod(world, "second")
    driver = APIClient(world, "driver")
    scheduler = APIClient(world, "kube-scheduler")
    controller = APIClient(world, "resourceclaim-controller")

    def lifecycle() -> Process:
        current = yield from driver.update(
            claim.with_meta(finalizers=(FINALIZER,)), reason="add finalizer"
        )
        current = yield from driver.update_status(
            current.with_status(allocation=allocation(shareable=True), driver_name=DRIVER),
            reason="allocate",
        )
        current = yield from scheduler.update_status(
            current.with_status(reserved_for=(pod_consumer_reference(first),)), reason="reserve"
        )
        current = yield from scheduler.update_status(
            current.with_status(
                reserved_for=(pod_consumer_reference(first), pod_consumer_reference(second))
            ),
            reason="reserve",
        )
        current = yield from controller.update_status(
            current.with_status(reserved_for=(), deallocation_requested=True), reason="release"
        )
        current = yield from driver.update_status(
            current.with_status(allocation=None, driver_name="", deallocation_requested=False),
            reason="deallocate",
        )
        yield from driver.update(current.with_meta(finalizers=()), reason="remove finalizer")
        yield from controller.delete("ResourceClaim", "gpu", NS, reason="delete unused claim")

    run(world, lifecycle)

    assert events_of(world, claim.metadata.uid) == [
        (0.0, "", "Pending", "user", ""),
        (0.5, "Pending", "Allocated", "driver", "allocate"),
        (0.75, "Allocated", "Reserved", "kube-scheduler", "reserve"),
        (1.0, "Reserved", "Reserved", "kube-scheduler", "reserve"),
        (1.25, "Reserved", "DeallocationRequested", "resourceclaim-controller", "release"),
        (1.5, "DeallocationRequested", "Pending", "driver", "deallocate"),
        (2.0, "Pending", "Deleted", "resourceclaim-controller", "delete unused claim"),
    ]
    uid = claim.metadata.uid
    assert world.recorder.device_usage == [
        (0.5, DRIVER, "node-1", 1, uid),
        (1.5, DRIVER, "node-1", -1, uid),
    ]
    record = tracker.claims[uid]
    assert (record.created_s, record.first_allocated_s) == (0.0, 0.5)
    assert (record.deallocated_s, record.deleted_s) == (1.5, 2.0)
    assert (record.allocations, record.deallocations, record.max_consumers) == (1, 1, 2)
    assert record.nodes == ["node-1"]
    assert record.shareable is True
    assert record.driver == DRIVER
    assert record.generated is False
    assert record.mode == AllocationMode.WAIT_FOR_FIRST_CONSUMER


def test_claim_deleted_while_reserved() -> None:
    world = make_world()
    tracker = Tracker(world)
    tracker.start()
    pod = create_pod(world, "p")
    claim = world.api.create(
        ResourceClaim(
            metadata=ObjectMeta(name="gpu", namespace=NS, finalizers=(FINALIZER,)),
            spec=ResourceClaimSpec(resource_class_name="gpu"),
        )
    )
    claim = world.api.update_status(
        claim.with_status(
            allocation=allocation("node-2"),
            driver_name=DRIVER,
            reserved_for=(pod_consumer_reference(pod),),
        )
    )
    driver = APIClient(world, "driver")
    controller = APIClient(world, "resourceclaim-controller")
    user = APIClient(world, "kubectl")

    def teardown() -> Process:
        deleting = yield from user.delete("ResourceClaim", "gpu", NS, reason="delete claim")
        current = yield from controller.update_status(
            deleting.with_status(reserved_for=()), reason="pod gone"
        )
        current = yield from driver.update_status(
            current.with_status(allocation=None, driver_name=""), reason="deallocate"
        )
        yield from driver.update(current.with_meta(finalizers=()), reason="remove finalizer")

    run(world, teardown)

    uid = claim.metadata.uid
    assert events_of(world, uid) == [
        (0.0, "", "Pending", "user", ""),
        (0.0, "Pending", "Reserved", "user", ""),
        (0.25, "Reserved", "Deleting", "kubectl", "delete claim"),
        (1.0, "Deleting", "Deleted", "driver", "remove finalizer"),
    ]
    assert world.recorder.device_usage == [
        (0.0, DRIVER, "node-2", 1, uid),
        (0.75, DRIVER, "node-2", -1, uid),
    ]
    record = tracker.claims[uid]
    assert (record.deallocations, record.deallocated_s, record.deleted_s) == (1, 0.75, 1.0)


def test_claim_removed_while_allocated() -> None:
    """A finalizer dropped without deallocation frees the devices but is no deallocation."""
    world = make_world()
    tracker = Tracker(world)
    tracker.start()
    claim = world.api.create(
        ResourceClaim(
            metadata=ObjectMeta(name="gpu", namespace=NS, finalizers=(FINALIZER,)),
            spec=ResourceClaimSpec(resource_class_name="gpu"),
        )
    )
    claim = world.api.update_status(claim.with_status(allocation=allocation(), driver_name=DRIVER))
    admin = APIClient(world, "admin")

    def force_remove() -> Process:
        deleting = yield from admin.delete("ResourceClaim", "gpu", NS, reason="delete")
        yield from admin.update(deleting.with_meta(finalizers=()), reason="drop finalizer")

    run(world, force_remove)

    uid = claim.metadata.uid
    assert [event[2] for event in events_of(world, uid)] == [
        "Pending",
        "Allocated",
        "Deleting",
        "Deleted",
    ]
    assert world.recorder.device_usage == [
        (0.0, DRIVER, "node-1", 1, uid),
        (0.5, DRIVER, "node-1", -1, uid),
    ]
    record = tracker.claims[uid]
    assert (record.allocations, record.deallocations) == (1, 0)
    assert record.deleted_s == 0.5


def test_claim_generated_and_class_driver() -> None:
    world = make_world()
    world.api.create(ResourceClass(metadata=ObjectMeta(name="gpu"), driver_name=DRIVER))
    tracker = Tracker(world)
    tracker.start()
    pod = create_pod(world, "p")
    owner = OwnerReference(
        api_version="v1", kind="Pod", name="p", uid=pod.metadata.uid, controller=True
    )
    generated = create_claim(world, "p-gpu", owners=(owner,), mode=AllocationMode.IMMEDIATE)

    record = tracker.claims[generated.metadata.uid]
    assert record.generated is True
    assert record.driver == DRIVER
    assert record.mode == AllocationMode.IMMEDIATE
    assert record.shareable is None


def test_custom_device_count() -> None:
    world = make_world()

    def four_devices(claim: ResourceClaim) -> tuple[str, str, int] | None:
        if claim.status.allocation is None:
            return None
        return "fractional.example.com", "node-7", 4

    tracker = Tracker(world, device_count=four_devices)
    tracker.start()
    claim = create_claim(world)
    claim = world.api.update_status(claim.with_status(allocation=allocation(), driver_name=DRIVER))
    claim = world.api.update_status(claim.with_status(allocation=None, driver_name=""))

    uid = claim.metadata.uid
    assert world.recorder.device_usage == [
        (0.0, "fractional.example.com", "node-7", 4, uid),
        (0.0, "fractional.example.com", "node-7", -4, uid),
    ]
    assert tracker.claims[uid].nodes == ["node-7"]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        pytest.param(hostname_selector("node-1"), "node-1", id="one-hostname"),
        pytest.param(hostname_selector("node-1", "node-2"), "", id="two-hostnames"),
        pytest.param(hostname_selector("rack-1", key="topology/rack"), "", id="other-label"),
        pytest.param(None, "", id="no-selector"),
        pytest.param(
            NodeSelector(
                node_selector_terms=hostname_selector("a").node_selector_terms
                + hostname_selector("b").node_selector_terms
            ),
            "",
            id="two-terms",
        ),
        pytest.param(
            NodeSelector(
                node_selector_terms=(
                    NodeSelectorTerm(
                        match_expressions=(
                            NodeSelectorRequirement(
                                key="kubernetes.io/hostname", operator="NotIn", values=("a",)
                            ),
                        )
                    ),
                )
            ),
            "",
            id="not-in",
        ),
    ],
)
def test_single_hostname(selector: NodeSelector | None, expected: str) -> None:
    assert single_hostname(AllocationResult(available_on_nodes=selector)) == expected


def test_one_device_per_claim_unallocated() -> None:
    assert one_device_per_claim(ResourceClaim()) is None


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param({}, ClaimState.PENDING, id="pending"),
        pytest.param(
            {"allocation": allocation(), "driver_name": DRIVER},
            ClaimState.ALLOCATED,
            id="allocated",
        ),
        pytest.param(
            {"allocation": allocation(), "driver_name": DRIVER, "deallocation_requested": True},
            ClaimState.DEALLOCATION_REQUESTED,
            id="deallocation-requested",
        ),
    ],
)
def test_claim_state_of_status(status: dict[str, Any], expected: ClaimState) -> None:
    world = make_world()
    tracker = Tracker(world)
    tracker.start()
    claim = create_claim(world)
    if status:
        world.api.update_status(claim.with_status(**status))
    assert tracker.claims[claim.metadata.uid].state == expected


# --------------------------------------------------------------------------------------
# Pods
# --------------------------------------------------------------------------------------


def add_node(world: World, name: str = "node-1") -> None:
    world.api.create(
        Node(
            metadata=ObjectMeta(name=name, labels={"kubernetes.io/hostname": name}),
            status=NodeStatus(allocatable={"cpu": "4", "memory": "8Gi", "pods": "110"}),
        )
    )


def batch_pod(name: str, run_s: float, cpu: str = "1") -> Pod:
    return Pod(
        metadata=ObjectMeta(
            name=name,
            namespace=NS,
            labels={WORKLOAD_LABEL: "train"},
            annotations={RUN_DURATION_ANNOTATION: str(run_s)},
        ),
        spec=PodSpec(
            restart_policy="Never",
            containers=(
                Container(name="main", resources=ResourceRequirements(requests={"cpu": cpu})),
            ),
        ),
    )


def test_pod_transitions_deduplicated() -> None:
    """Bound, Running and Succeeded are recorded by the components, once each."""
    world = make_world()
    add_node(world)
    tracker = Tracker(world)
    tracker.start()
    KubeScheduler(world).start()
    Kubelet(world, "node-1").start()
    pod = world.api.create(batch_pod("p", run_s=10.0))

    world.env.run(until=20)

    timeline = [(round(e[0], 6), e[1], e[2], e[3]) for e in events_of(world, pod.metadata.uid)]
    # The scheduler's cycle costs 0.000502 s; binding takes one request.
    assert timeline == [
        (0.0, "", "Created", "user"),
        (0.375502, "Pending", "Bound", "kube-scheduler"),
        (0.500502, "Pending", "ContainerCreating", "kubelet/node-1"),
        (1.000502, "ContainerCreating", "Running", "kubelet/node-1"),
        (10.500502, "Running", "Terminating", "kubelet/node-1"),
        (11.000502, "Terminating", "Succeeded", "kubelet/node-1"),
    ]
    record = tracker.pods[pod.metadata.uid]
    assert record.workload == "train"
    assert record.node == "node-1"
    assert record.phase == "Succeeded"
    assert record.created_s == 0.0
    assert record.bound_s == pytest.approx(0.375502)
    assert record.running_s == pytest.approx(1.000502)
    assert record.finished_s == pytest.approx(11.000502)
    assert [(round(r[0], 6), r[1], r[2], r[3]) for r in world.recorder.pod_requests] == [
        (0.375502, "node-1", 1000, 0),
        (11.000502, "node-1", -1000, 0),
    ]


def test_pod_deleted_while_running() -> None:
    world = make_world()
    add_node(world)
    tracker = Tracker(world)
    tracker.start()
    KubeScheduler(world).start()
    Kubelet(world, "node-1").start()
    pod = world.api.create(batch_pod("p", run_s=100.0))
    user = APIClient(world, "kubectl")

    def delete_later() -> Process:
        yield world.env.timeout(5.0)
        yield from user.delete("Pod", "p", NS, reason="scale down")

    run(world, delete_later, until=20.0)

    deleted = [e for e in events_of(world, pod.metadata.uid) if e[2] == "Deleted"]
    # The API server removes the pod at once; the kubelet notices one watch delay later.
    assert deleted[0][0] == 5.25
    assert deleted[0][3:] == ("kubectl", "scale down")
    assert deleted[1][3:] == ("kubelet/node-1", "PodRemoved")
    record = tracker.pods[pod.metadata.uid]
    assert record.deleted_s == 5.25
    assert record.phase == "Running"
    assert record.finished_s != record.finished_s  # NaN: the pod never finished
    assert world.recorder.pod_requests[-1][0] == 5.25
    assert world.recorder.pod_requests[-1][2] == -1000


def test_imported_pod_bound_and_running() -> None:
    world = make_world()
    tracker = Tracker(world)
    tracker.start()
    pod = Pod(
        metadata=ObjectMeta(name="p", namespace=NS),
        spec=PodSpec(node_name="node-3"),
    ).with_status(phase="Running")
    pod = world.api.create(pod)

    assert events_of(world, pod.metadata.uid) == [
        (0.0, "", "Created", "user", ""),
        (0.0, "Created", "Bound", "user", ""),
        (0.0, "Bound", "Running", "user", ""),
    ]
    record = tracker.pods[pod.metadata.uid]
    assert (record.created_s, record.bound_s, record.running_s) == (0.0, 0.0, 0.0)


def test_pod_deleting_with_finalizer() -> None:
    world = make_world()
    tracker = Tracker(world)
    tracker.start()
    pod = world.api.create(
        Pod(metadata=ObjectMeta(name="p", namespace=NS, finalizers=("example.com/keep",)))
    )
    client = APIClient(world, "kubectl")

    def delete_then_release() -> Process:
        deleting = yield from client.delete("Pod", "p", NS, reason="delete")
        yield from client.update(deleting.with_meta(finalizers=()), reason="release")

    run(world, delete_then_release)

    assert events_of(world, pod.metadata.uid) == [
        (0.0, "", "Created", "user", ""),
        (0.25, "Created", "Deleting", "kubectl", "delete"),
        (0.5, "Deleting", "Deleted", "kubectl", "release"),
    ]


def test_start_reads_existing_nodes() -> None:
    world = make_world()
    add_node(world, "early")
    tracker = Tracker(world)
    tracker.start()
    add_node(world, "late")
    world.api.delete("Node", "early")

    assert tracker.node_allocatable == {"late": (4000, 8 * 2**30)}


# --------------------------------------------------------------------------------------
# Recorder deduplication between components and the tracker
# --------------------------------------------------------------------------------------


def record_component(recorder: Recorder, time_s: float, to_state: str, reason: str) -> None:
    recorder.event(time_s, "Pod", NS, "p", "uid-1", "Pending", to_state, "kubelet/n", reason)


def record_write(recorder: Recorder, time_s: float, to_state: str) -> bool:
    return recorder.write_transition(time_s, "Pod", NS, "p", "uid-1", to_state, "kubelet/n", "w")


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param(
            [("write", 1.0, "Running"), ("component", 1.0, "Running")],
            [(1.0, "Pending", "Running", "component")],
            id="component-replaces-write",
        ),
        pytest.param(
            [("component", 1.0, "Running"), ("write", 1.0, "Running")],
            [(1.0, "Pending", "Running", "component")],
            id="write-after-component-dropped",
        ),
        pytest.param(
            [("write", 1.0, "Running"), ("component", 2.0, "Running")],
            [(1.0, "", "Running", "w"), (2.0, "Pending", "Running", "component")],
            id="different-times-kept",
        ),
        pytest.param(
            [("component", 1.0, "ContainerCreating"), ("component", 1.0, "ContainerCreating")],
            [
                (1.0, "Pending", "ContainerCreating", "component"),
                (1.0, "Pending", "ContainerCreating", "component"),
            ],
            id="component-repeats-kept",
        ),
        pytest.param(
            [("write", 1.0, "Bound"), ("write", 1.0, "Running"), ("component", 1.0, "Bound")],
            [(1.0, "Pending", "Bound", "component"), (1.0, "Bound", "Running", "w")],
            id="replaced-in-place",
        ),
    ],
)
def test_recorder_deduplicates_transitions(
    steps: list[tuple[str, float, str]], expected: list[tuple[Any, ...]]
) -> None:
    recorder = Recorder()
    for source, time_s, state in steps:
        if source == "write":
            record_write(recorder, time_s, state)
        else:
            record_component(recorder, time_s, state, "component")
    assert [(e[0], e[5], e[6], e[8]) for e in recorder.events] == expected


def test_recorder_last_state_after_replacement() -> None:
    recorder = Recorder()
    record_write(recorder, 1.0, "Bound")
    record_write(recorder, 1.0, "Running")
    record_component(recorder, 1.0, "Bound", "component")
    assert recorder.last_state("Pod", "uid-1") == "Running"
