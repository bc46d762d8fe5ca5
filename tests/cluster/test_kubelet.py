"""Tests of the kubelet's DRA manager and pod workers against the real API server.

No scheduler, driver or resourceclaim controller runs here: each test plays
them by hand. It creates claims, writes their allocation and `reservedFor`
through the API, and binds pods with `world.api.bind`. With the default timing
every API request takes 4 ms, every watch event arrives 2 ms after its
commit, a prepare call takes 10 ms and an unprepare call 5 ms. A pod bound at
t=0 therefore reaches the kubelet at 0.002 s, its claim is read at 0.006 s,
prepared at 0.016 s, and the pod is reported Running at 0.024 s.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from sim.api.types import (
    AllocationResult,
    ClaimSource,
    Container,
    Node,
    NodeSelector,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    ObjectMeta,
    OwnerReference,
    Pod,
    PodPhase,
    PodResourceClaim,
    PodResourceClaimStatus,
    PodSpec,
    ResourceClaim,
    ResourceClaimRef,
    ResourceClaimSpec,
    ResourceHandle,
    ResourceRequirements,
    pod_consumer_reference,
)
from sim.cluster.config import ControlPlaneConfig
from sim.cluster.kubelet import (
    RUN_DURATION_ANNOTATION,
    Kubelet,
    KubeletConfig,
    NodeFaults,
    NodePlugin,
    NodePluginFaults,
    PodState,
)
from sim.cluster.world import World

NS = "default"
DRIVER = "gpu.example.com"
HOSTNAME_LABEL = "kubernetes.io/hostname"
FAILED_PREPARE = "FailedPrepareDynamicResources"


# --------------------------------------------------------------------------------------
# Helpers: the test plays user, scheduler and driver through the API
# --------------------------------------------------------------------------------------


def make_world(version: str = "1.29") -> World:
    world = World.create(ControlPlaneConfig(kubernetes_version=version), seed=1)
    for node in ("n1", "n2"):
        world.api.create(Node(metadata=ObjectMeta(name=node, labels={HOSTNAME_LABEL: node})))
    return world


def start_kubelet(
    world: World,
    node: str = "n1",
    *,
    config: KubeletConfig | None = None,
    plugin_faults: NodePluginFaults | None = None,
    faults: NodeFaults | None = None,
) -> tuple[Kubelet, NodePlugin]:
    plugin = NodePlugin(world, node, DRIVER, plugin_faults)
    kubelet = Kubelet(world, node, config, plugins=[plugin], faults=faults)
    kubelet.start()
    return kubelet, plugin


def create_claim(world: World, name: str, owner: Pod | None = None) -> ResourceClaim:
    owners: tuple[OwnerReference, ...] = ()
    if owner is not None:
        owners = (
            OwnerReference(
                api_version="v1",
                kind="Pod",
                name=owner.metadata.name,
                uid=owner.metadata.uid,
                controller=True,
                block_owner_deletion=True,
            ),
        )
    claim = ResourceClaim(
        metadata=ObjectMeta(name=name, namespace=NS, owner_references=owners),
        spec=ResourceClaimSpec(resource_class_name="gpu"),
    )
    return world.api.create(claim)


def create_pod(
    world: World,
    name: str,
    claims: Mapping[str, str],
    *,
    template: bool = False,
    used: Sequence[str] | None = None,
    restart_policy: str = "Never",
    run_s: float | None = None,
    finalizers: tuple[str, ...] = (),
) -> Pod:
    """Create a pod whose entries (entry -> claim name) name claims or, with `template`, a template.

    For template entries the claims are created here, owned by the pod, as the
    resourceclaim controller would; 1.28+ also gets their names in the pod status.
    """
    entries = tuple(
        PodResourceClaim(
            name=entry,
            source=ClaimSource(resource_claim_template_name="gpu-template")
            if template
            else ClaimSource(resource_claim_name=claim_name),
        )
        for entry, claim_name in claims.items()
    )
    used_entries = list(claims) if used is None else list(used)
    container = Container(
        name="main",
        resources=ResourceRequirements(
            claims=tuple(ResourceClaimRef(name=entry) for entry in used_entries)
        ),
    )
    annotations = {RUN_DURATION_ANNOTATION: str(run_s)} if run_s is not None else {}
    pod = world.api.create(
        Pod(
            metadata=ObjectMeta(
                name=name, namespace=NS, annotations=annotations, finalizers=finalizers
            ),
            spec=PodSpec(
                restart_policy=restart_policy, containers=(container,), resource_claims=entries
            ),
        )
    )
    if template:
        for claim_name in claims.values():
            create_claim(world, claim_name, owner=pod)
        if world.version_at_least(28):
            statuses = tuple(
                PodResourceClaimStatus(name=entry, resource_claim_name=claim_name)
                for entry, claim_name in claims.items()
            )
            pod = world.api.update_status(pod.with_status(resource_claim_statuses=statuses))
    return pod


def allocate(
    world: World,
    claim_name: str,
    node: str,
    *,
    reserved_for: Sequence[Pod] = (),
    shareable: bool = False,
    handles: Sequence[str] = ("gpu-0",),
) -> ResourceClaim:
    """Write an allocation on `node` and the reservations, as the driver and scheduler would."""
    claim = world.api.get("ResourceClaim", claim_name, NS)
    available = NodeSelector(
        node_selector_terms=(
            NodeSelectorTerm(
                match_expressions=(
                    NodeSelectorRequirement(key=HOSTNAME_LABEL, operator="In", values=(node,)),
                )
            ),
        )
    )
    allocation = AllocationResult(
        resource_handles=tuple(ResourceHandle(driver_name=DRIVER, data=data) for data in handles),
        available_on_nodes=available,
        shareable=shareable,
    )
    return world.api.update_status(
        claim.with_status(
            allocation=allocation,
            driver_name=DRIVER,
            reserved_for=tuple(pod_consumer_reference(pod) for pod in reserved_for),
        )
    )


def reserve(world: World, claim_name: str, pod: Pod) -> ResourceClaim:
    claim = world.api.get("ResourceClaim", claim_name, NS)
    refs = (*claim.status.reserved_for, pod_consumer_reference(pod))
    return world.api.update_status(claim.with_status(reserved_for=refs))


def running_pod(
    world: World,
    name: str,
    node: str = "n1",
    *,
    template: bool = True,
    restart_policy: str = "Never",
    run_s: float | None = None,
    handles: Sequence[str] = ("gpu-0",),
) -> tuple[Pod, ResourceClaim]:
    """Create a pod with one claim allocated on `node` and reserved for it, and bind it."""
    claim_name = f"{name}-gpu" if not world.version_at_least(28) else f"{name}-gpu-7x2kq"
    if not template:
        create_claim(world, claim_name)
    pod = create_pod(
        world,
        name,
        {"gpu": claim_name},
        template=template,
        restart_policy=restart_policy,
        run_s=run_s,
    )
    claim = allocate(world, claim_name, node, reserved_for=[pod], handles=handles)
    world.api.bind(NS, name, node)
    return pod, claim


def at(world: World, time_s: float, action: Callable[[], Any]) -> None:
    """Run `action` at simulated time `time_s`."""

    def process() -> Any:
        yield world.env.timeout(time_s - world.now)
        action()

    world.env.process(process())


def pod_events(world: World, name: str) -> list[tuple[float, str, str, str]]:
    """Return the kubelet's trace of a pod: (time, from, to, reason)."""
    return [
        (time_s, from_state, to_state, reason)
        for time_s, kind, _ns, pod, _uid, from_state, to_state, actor, reason in (
            world.recorder.events
        )
        if kind == "Pod" and pod == name and actor.startswith("kubelet/")
    ]


def times_of(world: World, name: str, reason: str) -> list[float]:
    return [time_s for time_s, _from, _to, why in pod_events(world, name) if why == reason]


def kubelet_state(kubelet: Kubelet, world: World, name: str) -> PodState | None:
    return kubelet.pod_state(world.api.get("Pod", name, NS).metadata.uid)


def phase(world: World, name: str) -> str:
    return world.api.get("Pod", name, NS).status.phase


def status_writes(world: World, name: str) -> list[float]:
    """Return the times of the kubelet's pod status updates for a pod."""
    return [
        row[0]
        for row in world.recorder.api_requests
        if row[1].startswith("kubelet/")
        and row[3] == "pods"
        and row[5] == name
        and row[6] == "status"
        and row[2] == "update"
    ]


def calls(plugin: NodePlugin, method_prefix: str, claim_uid: str | None = None) -> list[Any]:
    return [
        call
        for call in plugin.calls
        if call.method.startswith(method_prefix)
        and (claim_uid is None or claim_uid in call.claim_uids)
    ]


# --------------------------------------------------------------------------------------
# Pod lifecycle
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.27", "1.28", "1.29"])
def test_pod_runs_then_succeeds_after_unprepare(version: str) -> None:
    world = make_world(version)
    kubelet, plugin = start_kubelet(world)
    _pod, claim = running_pod(world, "p", run_s=30.0)
    running_pod(world, "elsewhere", node="n2", run_s=30.0)

    world.env.run(until=60)

    assert pod_events(world, "p") == [
        (pytest.approx(0.002), "Pending", "ContainerCreating", "SyncPod"),
        (pytest.approx(0.024), "ContainerCreating", "Running", "Started"),
        (pytest.approx(30.016), "Running", "Terminating", "Completed"),
        (pytest.approx(30.029), "Terminating", "Succeeded", "PodCompleted"),
    ]
    assert pod_events(world, "elsewhere") == []
    pod = world.api.get("Pod", "p", NS)
    assert pod.status.phase == PodPhase.SUCCEEDED
    assert pod.status.start_time is not None
    # Unprepare ends before the terminal phase is written.
    (unprepare,) = calls(plugin, "NodeUnprepare", claim.metadata.uid)
    assert unprepare.end_s < status_writes(world, "p")[-1]
    assert plugin.prepared_claims() == {}
    assert kubelet.checkpoint == {}
    assert kubelet.cached_claims() == {}


def test_unprepare_failure_retried_before_terminal_phase() -> None:
    world = make_world()
    _kubelet, plugin = start_kubelet(
        world, plugin_faults=NodePluginFaults(fail_unprepare_windows_s=((0.0, 40.0),))
    )
    running_pod(world, "p", run_s=10.0)

    world.env.run(until=100)

    failures = times_of(world, "p", "FailedUnprepareDynamicResources")
    assert len(failures) >= 2
    attempts = [call.start_s for call in calls(plugin, "NodeUnprepare")]
    spacing = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert all(10.0 <= gap <= 15.0 for gap in spacing), spacing
    assert attempts[-1] >= 40.0
    assert attempts[-2] < 40.0
    # The pod stays Running (in the API) until the unprepare succeeded.
    assert status_writes(world, "p")[-1] > calls(plugin, "NodeUnprepare")[-1].end_s
    assert phase(world, "p") == PodPhase.SUCCEEDED


def test_force_deleted_running_pod_still_unprepares() -> None:
    world = make_world()
    kubelet, plugin = start_kubelet(world)
    _pod, claim = running_pod(world, "p", restart_policy="Always")
    at(world, 50.0, lambda: world.api.delete("Pod", "p", NS))

    world.env.run(until=80)

    assert pod_events(world, "p")[-2:] == [
        (pytest.approx(50.002), "Running", "Terminating", "Killing"),
        (pytest.approx(50.007), "Terminating", "Deleted", "PodRemoved"),
    ]
    (unprepare,) = calls(plugin, "NodeUnprepare", claim.metadata.uid)
    assert unprepare.start_s == pytest.approx(50.002)
    assert unprepare.errors == ("",)
    assert plugin.prepared_claims() == {}
    assert kubelet.checkpoint == {}
    assert len(status_writes(world, "p")) == 1


def test_finalizer_kept_pod_reported_failed() -> None:
    world = make_world()
    _kubelet, plugin = start_kubelet(world)
    claim = create_claim(world, "c")
    pod = create_pod(
        world, "p", {"gpu": "c"}, restart_policy="Always", finalizers=("example.com/hold",)
    )
    allocate(world, "c", "n1", reserved_for=[pod])
    world.api.bind(NS, "p", "n1")
    at(world, 50.0, lambda: world.api.delete("Pod", "p", NS))

    world.env.run(until=80)

    assert [to for _t, _from, to, _why in pod_events(world, "p")] == [
        "ContainerCreating",
        "Running",
        "Terminating",
        "Failed",
    ]
    stored = world.api.get("Pod", "p", NS)
    assert stored.status.phase == PodPhase.FAILED
    assert stored.deleting
    (unprepare,) = calls(plugin, "NodeUnprepare", claim.metadata.uid)
    assert unprepare.end_s < status_writes(world, "p")[-1]
    kubelet_deletes = [
        row
        for row in world.recorder.api_requests
        if row[1] == "kubelet/n1" and row[2] == "delete" and row[5] == "p"
    ]
    assert len(kubelet_deletes) == 1
    assert kubelet_deletes[0][0] > status_writes(world, "p")[-1]


# --------------------------------------------------------------------------------------
# Prepare failures (the pod stays ContainerCreating and retries at the resync)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault_end_s", [60.0, 200.0], ids=["cleared-at-60s", "cleared-at-200s"])
def test_failed_prepare_retried_at_resync(fault_end_s: float) -> None:
    world = make_world()
    _kubelet, plugin = start_kubelet(
        world, plugin_faults=NodePluginFaults(fail_prepare_windows_s=((0.0, fault_end_s),))
    )
    pod, claim = running_pod(world, "p", restart_policy="Always")

    world.env.run(until=fault_end_s + 100)

    failures = times_of(world, "p", FAILED_PREPARE)
    started = times_of(world, "p", "Started")
    assert failures[0] == pytest.approx(0.016)
    assert all(time_s < fault_end_s for time_s in failures)
    attempts = [call.start_s for call in calls(plugin, "NodePrepare")]
    assert len(attempts) == len(failures) + 1
    spacing = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert all(60.0 <= gap <= 90.0 for gap in spacing), spacing
    assert len(started) == 1
    assert started[0] > fault_end_s
    assert phase(world, "p") == PodPhase.RUNNING
    stored = world.api.get("ResourceClaim", claim.metadata.name, NS)
    assert stored.allocated
    assert stored.reserved_for_uid(pod.metadata.uid)


def test_unreserved_claim_blocks_until_reserved(caplog: pytest.LogCaptureFixture) -> None:
    world = make_world()
    start_kubelet(world)
    create_claim(world, "c")
    pod = create_pod(world, "p", {"gpu": "c"}, restart_policy="Always")
    allocate(world, "c", "n1")
    world.api.bind(NS, "p", "n1")
    at(world, 30.0, lambda: reserve(world, "c", pod))

    with caplog.at_level(logging.WARNING, logger="sim.cluster.kubelet"):
        world.env.run(until=120)

    failures = times_of(world, "p", FAILED_PREPARE)
    assert failures == [pytest.approx(0.006)]
    assert "is not allowed to use resource claim c" in caplog.text
    (started,) = times_of(world, "p", "Started")
    assert 60.0 <= started - 0.002 <= 90.0 + 0.03


def test_permanent_prepare_failure_keeps_allocation() -> None:
    """Seven claims allocated on a node whose plugin can really prepare only six devices."""
    world = make_world()
    kubelet, plugin = start_kubelet(world, plugin_faults=NodePluginFaults(max_devices=6))
    names = [f"web-{i}" for i in range(7)]
    for name in names:
        running_pod(world, name, restart_policy="Always")

    world.env.run(until=400)

    phases = {name: phase(world, name) for name in names}
    running = [name for name, value in phases.items() if value == PodPhase.RUNNING]
    stuck = [name for name, value in phases.items() if value == PodPhase.PENDING]
    assert len(running) == 6
    assert len(stuck) == 1
    (name,) = stuck
    assert len(times_of(world, name, FAILED_PREPARE)) >= 4
    assert kubelet_state(kubelet, world, name) is PodState.CONTAINER_CREATING
    assert plugin.devices_in_use == 6
    assert "insufficient resources" in calls(plugin, "NodePrepare")[-1].errors[0]
    for pod_name in names:
        assert world.api.get("Pod", pod_name, NS).spec.node_name == "n1"
    for claim in world.api.list("ResourceClaim", NS).items:
        assert claim.allocated
        assert len(claim.status.reserved_for) == 1


@pytest.mark.parametrize(
    ("version", "expect_running"), [("1.27", False), ("1.29", True)], ids=["1.27-10s", "1.29-45s"]
)
def test_plugin_deadline_by_version(version: str, expect_running: bool) -> None:
    world = make_world(version)
    start_kubelet(world, config=KubeletConfig(prepare_latency_s=20.0))
    running_pod(world, "p", template=False, restart_policy="Always")

    world.env.run(until=100)

    if expect_running:
        assert times_of(world, "p", "Started") == [pytest.approx(20.014)]
    else:
        assert times_of(world, "p", FAILED_PREPARE)[0] == pytest.approx(10.006)
        assert times_of(world, "p", "Started") == []


# --------------------------------------------------------------------------------------
# Claims shared between pods, batching, unused claims
# --------------------------------------------------------------------------------------


def test_shared_claim_prepared_once_per_node() -> None:
    world = make_world()
    kubelet, plugin = start_kubelet(world)
    claim = create_claim(world, "shared")
    first = create_pod(world, "a", {"gpu": "shared"}, run_s=10.0)
    second = create_pod(world, "b", {"gpu": "shared"}, run_s=30.0)
    allocate(world, "shared", "n1", reserved_for=[first, second], shareable=True)
    world.api.bind(NS, "a", "n1")
    at(world, 5.0, lambda: world.api.bind(NS, "b", "n1"))
    held_at_20: list[bool] = []
    at(world, 20.0, lambda: held_at_20.append(plugin.holds(claim.metadata.uid, "gpu-0")))

    world.env.run(until=60)

    uid = claim.metadata.uid
    assert len(calls(plugin, "NodePrepare", uid)) == 1
    (unprepare,) = calls(plugin, "NodeUnprepare", uid)
    assert unprepare.start_s == pytest.approx(5.0 + 0.006 + 30.0)
    assert held_at_20 == [True]
    assert phase(world, "a") == PodPhase.SUCCEEDED
    assert phase(world, "b") == PodPhase.SUCCEEDED
    assert kubelet.checkpoint == {}


@pytest.mark.parametrize(
    ("version", "prepare_methods", "unprepare_methods"),
    [
        ("1.27", ["NodePrepareResource"] * 3, ["NodeUnprepareResource"] * 3),
        ("1.28", ["NodePrepareResources"], ["NodeUnprepareResources"]),
        ("1.29", ["NodePrepareResources"], ["NodeUnprepareResources"]),
    ],
)
def test_plugin_calls_per_claim_or_batched(
    version: str, prepare_methods: list[str], unprepare_methods: list[str]
) -> None:
    world = make_world(version)
    _kubelet, plugin = start_kubelet(world)
    create_claim(world, "one")
    create_claim(world, "two")
    pod = create_pod(world, "p", {"a": "one", "b": "two"}, run_s=10.0)
    allocate(world, "one", "n1", reserved_for=[pod], handles=("gpu-0",))
    allocate(world, "two", "n1", reserved_for=[pod], handles=("gpu-1", "gpu-2"))
    world.api.bind(NS, "p", "n1")

    world.env.run(until=30)

    assert [call.method for call in calls(plugin, "NodePrepare")] == prepare_methods
    assert [call.method for call in calls(plugin, "NodeUnprepare")] == unprepare_methods
    assert phase(world, "p") == PodPhase.SUCCEEDED
    assert plugin.prepared_claims() == {}


@pytest.mark.parametrize(
    ("version", "used", "reserve_unused", "expected_prepared", "expected_gets", "runs"),
    [
        ("1.29", ["a"], True, {"one"}, 2, True),
        ("1.28", ["a"], True, {"one"}, 2, True),
        ("1.27", ["a"], True, {"one", "two"}, 2, True),
        ("1.29", [], True, set(), 2, True),
        ("1.27", [], True, set(), 0, True),
        ("1.29", ["a"], False, set(), 2, False),
    ],
    ids=[
        "1.29-unused-skipped",
        "1.28-unused-skipped",
        "1.27-all-prepared",
        "1.29-none-used",
        "1.27-none-used",
        "1.29-unused-still-needs-reservation",
    ],
)
def test_claims_unused_by_containers(
    version: str,
    used: list[str],
    reserve_unused: bool,
    expected_prepared: set[str],
    expected_gets: int,
    runs: bool,
) -> None:
    world = make_world(version)
    _kubelet, plugin = start_kubelet(world)
    claims = {name: create_claim(world, name) for name in ("one", "two")}
    pod = create_pod(world, "p", {"a": "one", "b": "two"}, used=used, restart_policy="Always")
    allocate(world, "one", "n1", reserved_for=[pod])
    allocate(world, "two", "n1", reserved_for=[pod] if reserve_unused else [], handles=("gpu-1",))
    world.api.bind(NS, "p", "n1")

    world.env.run(until=1)

    prepared_uids = {uid for call in calls(plugin, "NodePrepare") for uid in call.claim_uids}
    assert prepared_uids == {claims[name].metadata.uid for name in expected_prepared}
    claim_gets = [
        row
        for row in world.recorder.api_requests
        if row[1] == "kubelet/n1" and row[2] == "get" and row[3] == "resourceclaims"
    ]
    assert len(claim_gets) == expected_gets
    assert (phase(world, "p") == PodPhase.RUNNING) is runs


# --------------------------------------------------------------------------------------
# Kubelet restarts, crashes and node reboots
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("checkpoint_first", "delete_at_s", "unprepares", "second_pod_runs"),
    [
        (True, 10.0, 1, True),
        (True, 1.5, 1, True),
        (False, 10.0, 1, True),
        (False, 1.5, 0, False),
    ],
    ids=[
        "fixed-deleted-after-restart",
        "fixed-deleted-while-down",
        "checkpoint-after-call-deleted-after-restart",
        "checkpoint-after-call-deleted-while-down",
    ],
)
def test_crash_before_checkpoint(
    checkpoint_first: bool, delete_at_s: float, unprepares: int, second_pod_runs: bool
) -> None:
    """Prepare succeeds at t=1, the kubelet crashes before its checkpoint and is back at t=2."""
    world = make_world()
    kubelet, plugin = start_kubelet(
        world,
        config=KubeletConfig(prepare_latency_s=1.0, checkpoint_before_prepare=checkpoint_first),
        plugin_faults=NodePluginFaults(max_devices=1),
        faults=NodeFaults(crash_before_checkpoint_at_s=0.0, crash_down_s=1.0),
    )
    _first, first_claim = running_pod(world, "p1", restart_policy="Always")

    def delete_first() -> None:
        world.api.delete("Pod", "p1", NS)
        # The claim controller and the driver would delete and deallocate the claim.
        world.api.delete("ResourceClaim", first_claim.metadata.name, NS)

    at(world, delete_at_s, delete_first)
    at(world, 11.0, lambda: running_pod(world, "p2", restart_policy="Always"))

    world.env.run(until=200)

    assert kubelet.running
    assert len(calls(plugin, "NodeUnprepare", first_claim.metadata.uid)) == unprepares
    assert (phase(world, "p2") == PodPhase.RUNNING) is second_pod_runs
    if not second_pod_runs:
        assert len(times_of(world, "p2", FAILED_PREPARE)) >= 2
        assert first_claim.metadata.uid in plugin.prepared_claims()


@pytest.mark.parametrize(
    ("outage", "prepare_again", "prepare_calls", "last_reason", "holds"),
    [
        ("reboot", True, 2, "Started", True),
        ("reboot", False, 1, "CreateContainerError", False),
        ("restart", True, 1, "Started", True),
    ],
    ids=["reboot-prepares-again", "reboot-trusting-checkpoint", "restart-keeps-sandbox"],
)
def test_reboot_and_restart(
    outage: str, prepare_again: bool, prepare_calls: int, last_reason: str, holds: bool
) -> None:
    world = make_world()
    kubelet, plugin = start_kubelet(
        world, config=KubeletConfig(prepare_again_after_restart=prepare_again)
    )
    pod, claim = running_pod(world, "p", restart_policy="Always")
    if outage == "reboot":
        kubelet.reboot(100.0, 10.0)
    else:
        kubelet.restart(100.0, 10.0)

    world.env.run(until=200)

    uid = claim.metadata.uid
    prepares = calls(plugin, "NodePrepare", uid)
    assert len(prepares) == prepare_calls
    if prepare_calls == 2:
        assert prepares[1].start_s == pytest.approx(110.004)
    after = [event for event in pod_events(world, "p") if event[0] > 100.0]
    if outage == "restart":
        assert after == []
    else:
        assert after[0][1:] == ("Running", "ContainerCreating", "SandboxChanged")
        assert after[-1][3] == last_reason
    assert plugin.holds(uid, "gpu-0") is holds
    assert phase(world, "p") == PodPhase.RUNNING
    assert len(status_writes(world, "p")) == 1
    assert kubelet.pod_state(pod.metadata.uid) is (
        PodState.RUNNING if last_reason == "Started" else PodState.CONTAINER_CREATING
    )
