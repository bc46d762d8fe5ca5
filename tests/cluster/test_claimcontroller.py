"""Tests of the resourceclaim controller against the real API server, in simulated time.

No scheduler, driver or kubelet runs here: tests create pods directly, bind
them with `world.api.bind`, set pod phases as the kubelet would, and write
allocations by hand where a driver would. With the default timing every API
request takes 4 ms and every watch event arrives 2 ms after its commit, so a
pod created at t=0 reaches the controller at 0.002 s and its claim is created
at 0.006 s.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from sim.api.types import (
    AllocationMode,
    AllocationResult,
    ClaimSource,
    Container,
    NodeSelector,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    ObjectMeta,
    OwnerReference,
    Pod,
    PodPhase,
    PodResourceClaim,
    PodSchedulingContext,
    PodSchedulingContextSpec,
    PodSpec,
    ResourceClaim,
    ResourceClaimConsumerReference,
    ResourceClaimRef,
    ResourceClaimSpec,
    ResourceClaimTemplate,
    ResourceClaimTemplateSpec,
    ResourceHandle,
    ResourceRequirements,
    pod_consumer_reference,
)
from sim.cluster.claimcontroller import (
    COMPONENT,
    POD_CLAIM_NAME_ANNOTATION,
    DeletedPodCache,
    ResourceClaimController,
    generate_name_for,
    generated_claim_base_name,
)
from sim.cluster.config import ClaimControllerConfig, ControlPlaneConfig
from sim.cluster.world import World

NS = "default"
DRIVER = "gpu.example.com"
FINALIZER = f"{DRIVER}/deletion-protection"


# --------------------------------------------------------------------------------------
# Helpers: building objects and reading the request log
# --------------------------------------------------------------------------------------


def make_world(version: str = "1.29", **config: Any) -> World:
    return World.create(ControlPlaneConfig(kubernetes_version=version, **config), seed=1)


def start_controller(
    world: World, config: ClaimControllerConfig | None = None
) -> ResourceClaimController:
    controller = ResourceClaimController(world, config)
    controller.start()
    return controller


def create_template(
    world: World, name: str = "gpu", mode: str = AllocationMode.WAIT_FOR_FIRST_CONSUMER
) -> ResourceClaimTemplate:
    template = ResourceClaimTemplate(
        metadata=ObjectMeta(name=name, namespace=NS),
        spec=ResourceClaimTemplateSpec(
            metadata=ObjectMeta(labels={"team": "ml"}, annotations={"note": "from template"}),
            spec=ResourceClaimSpec(resource_class_name="gpu", allocation_mode=mode),
        ),
    )
    return world.api.create(template)


def create_claim(
    world: World, name: str, mode: str = AllocationMode.WAIT_FOR_FIRST_CONSUMER
) -> ResourceClaim:
    claim = ResourceClaim(
        metadata=ObjectMeta(name=name, namespace=NS),
        spec=ResourceClaimSpec(resource_class_name="gpu", allocation_mode=mode),
    )
    return world.api.create(claim)


def create_pod(
    world: World,
    name: str,
    *,
    templates: dict[str, str] | None = None,
    claims: dict[str, str] | None = None,
    node_name: str = "",
) -> Pod:
    """Create a pod whose containers use every entry; `templates`/`claims` map entry -> source."""
    entries = [
        PodResourceClaim(name=entry, source=ClaimSource(resource_claim_template_name=template))
        for entry, template in (templates or {}).items()
    ] + [
        PodResourceClaim(name=entry, source=ClaimSource(resource_claim_name=claim))
        for entry, claim in (claims or {}).items()
    ]
    container = Container(
        name="main",
        resources=ResourceRequirements(
            claims=tuple(ResourceClaimRef(name=e.name) for e in entries)
        ),
    )
    pod = Pod(
        metadata=ObjectMeta(name=name, namespace=NS),
        spec=PodSpec(node_name=node_name, containers=(container,), resource_claims=tuple(entries)),
    )
    return world.api.create(pod)


def get_claim(world: World, name: str) -> ResourceClaim:
    claim = world.api.get("ResourceClaim", name, NS)
    assert isinstance(claim, ResourceClaim)
    return claim


def get_pod(world: World, name: str) -> Pod:
    pod = world.api.get("Pod", name, NS)
    assert isinstance(pod, Pod)
    return pod


def claims_of(world: World) -> list[ResourceClaim]:
    return [c for c in world.api.list("ResourceClaim", NS).items if isinstance(c, ResourceClaim)]


def recorded_name(world: World, pod_name: str, entry: str) -> str | None:
    for status in get_pod(world, pod_name).status.resource_claim_statuses:
        if status.name == entry:
            return status.resource_claim_name
    return None


def node_selector(node: str) -> NodeSelector:
    requirement = NodeSelectorRequirement(key="metadata.name", operator="In", values=(node,))
    return NodeSelector(node_selector_terms=(NodeSelectorTerm(match_fields=(requirement,)),))


def allocate(
    world: World,
    claim_name: str,
    node: str,
    *,
    reserve: tuple[Pod, ...] = (),
    shareable: bool = False,
) -> ResourceClaim:
    """Play the driver: add its finalizer, then write allocation and reservations in one write."""
    claim = get_claim(world, claim_name)
    claim = world.api.update(claim.with_meta(finalizers=(FINALIZER,)))
    allocation = AllocationResult(
        resource_handles=(ResourceHandle(driver_name=DRIVER, data="device-0"),),
        available_on_nodes=node_selector(node),
        shareable=shareable,
    )
    return world.api.update_status(
        claim.with_status(
            allocation=allocation,
            driver_name=DRIVER,
            reserved_for=tuple(pod_consumer_reference(p) for p in reserve),
        )
    )


def set_phase(world: World, pod_name: str, phase: str) -> Pod:
    pod = get_pod(world, pod_name)
    return world.api.update_status(pod.with_status(phase=phase))


def requests(world: World, since: float = 0.0) -> list[tuple[float, str, str, str, str, int]]:
    """The controller's requests after `since`: (time, verb, resource, name, subresource, code)."""
    return [
        (round(r[0], 6), r[2], r[3], r[5], r[6], r[7])
        for r in world.recorder.api_requests
        if r[1] == COMPONENT and r[0] > since
    ]


def writes(world: World, since: float = 0.0) -> list[tuple[str, str, str, str]]:
    """The controller's successful writes after `since`: (verb, resource, name, subresource)."""
    return [
        (verb, resource, name, subresource)
        for _, verb, resource, name, subresource, code in requests(world, since)
        if verb != "get" and code < 300
    ]


# --------------------------------------------------------------------------------------
# Generated names
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pod_name", "entry", "expected"),
    [
        ("p1", "gpu", "p1-gpu"),
        ("a" * 40, "b" * 16, "a" * 40 + "-" + "b" * 16),  # exactly 57
        ("a" * 60, "b" * 20, "a" * 42 + "-" + "b" * 14),  # 81 -> 57: factors 57/81
        ("a" * 100, "gpu", "a" * 54 + "-" + "g"),  # 104 -> 56: factors 57/104
        ("p", "c" * 63, "p-" + "c" * 55),  # a part never shrinks to nothing
        ("a" * 150, "x", "a" * 55 + "-x"),  # ... and the other part gives way
    ],
    ids=["short", "limit", "both-long", "long-pod", "long-entry", "one-char-entry"],
)
def test_base_name_shortened_proportionally(pod_name: str, entry: str, expected: str) -> None:
    base = generated_claim_base_name(pod_name, entry)
    assert base == expected
    assert len(base) <= 57


@pytest.mark.parametrize(
    ("minor", "expected"), [(28, "p1-gpu"), (29, "p1-gpu-")], ids=["1.28", "1.29"]
)
def test_generate_name_per_version(minor: int, expected: str) -> None:
    assert generate_name_for("p1", "gpu", minor) == expected


# --------------------------------------------------------------------------------------
# Claims from templates
# --------------------------------------------------------------------------------------

CREATE_CASES = [
    # version, claim name pattern, generateName, annotation expected, API requests
    (
        "1.27",
        r"p1-gpu",
        "",
        False,
        [(0.006, "create", "resourceclaims", "p1-gpu", "", 201)],
    ),
    (
        "1.28",
        r"p1-gpu[b-z2-9]{5}",
        "p1-gpu",
        True,
        [
            (0.006, "create", "resourceclaims", "", "", 201),
            (0.01, "apply", "pods", "p1", "status", 200),
        ],
    ),
    (
        "1.29",
        r"p1-gpu-[b-z2-9]{5}",
        "p1-gpu-",
        True,
        [
            (0.006, "create", "resourceclaims", "", "", 201),
            (0.01, "apply", "pods", "p1", "status", 200),
        ],
    ),
]


@pytest.mark.parametrize(
    ("version", "name_pattern", "generate_name", "annotated", "expected_requests"),
    CREATE_CASES,
    ids=[case[0] for case in CREATE_CASES],
)
def test_claim_created_from_template(
    version: str,
    name_pattern: str,
    generate_name: str,
    annotated: bool,
    expected_requests: list[tuple[float, str, str, str, str, int]],
) -> None:
    world = make_world(version)
    template = create_template(world)
    start_controller(world)
    pod = create_pod(world, "p1", templates={"gpu": "gpu"})
    world.env.run(until=1)

    (claim,) = claims_of(world)
    assert re.fullmatch(name_pattern, claim.metadata.name)
    assert claim.metadata.generate_name == generate_name
    assert claim.metadata.owner_references == (
        OwnerReference(
            api_version="v1",
            kind="Pod",
            name="p1",
            uid=pod.metadata.uid,
            controller=True,
            block_owner_deletion=True,
        ),
    )
    expected_annotations = {"note": "from template"}
    if annotated:
        expected_annotations[POD_CLAIM_NAME_ANNOTATION] = "gpu"
    assert claim.metadata.annotations == expected_annotations
    assert claim.metadata.labels == {"team": "ml"}
    assert claim.spec == template.spec.spec

    expected_status = claim.metadata.name if version != "1.27" else None
    assert recorded_name(world, "p1", "gpu") == expected_status
    assert requests(world) == expected_requests


def test_long_pod_name_gives_63_character_claim_name() -> None:
    world = make_world("1.29")
    create_template(world)
    start_controller(world)
    pod_name = "p" * 60
    entry = "e" * 20
    create_pod(world, pod_name, templates={entry: "gpu"})
    world.env.run(until=1)

    (claim,) = claims_of(world)
    assert claim.metadata.generate_name == "p" * 42 + "-" + "e" * 14 + "-"
    assert len(claim.metadata.name) == 63
    assert recorded_name(world, pod_name, entry) == claim.metadata.name


def test_one_status_patch_for_several_entries() -> None:
    world = make_world("1.29")
    create_template(world)
    start_controller(world)
    create_pod(world, "p1", templates={"a": "gpu", "b": "gpu"})
    world.env.run(until=1)

    names = {
        c.metadata.annotations[POD_CLAIM_NAME_ANNOTATION]: c.metadata.name for c in claims_of(world)
    }
    assert set(names) == {"a", "b"}
    assert recorded_name(world, "p1", "a") == names["a"]
    assert recorded_name(world, "p1", "b") == names["b"]
    assert writes(world) == [
        ("create", "resourceclaims", "", ""),
        ("create", "resourceclaims", "", ""),
        ("apply", "pods", "p1", "status"),
    ]


def test_orphan_reused_after_status_entry_lost() -> None:
    world = make_world("1.29")
    create_template(world)
    start_controller(world)
    create_pod(world, "p1", templates={"gpu": "gpu"})
    world.env.run(until=1)
    (claim,) = claims_of(world)

    # Failure injection: the recorded name disappears, as if the status patch had failed.
    world.api.update_status(get_pod(world, "p1").with_status(resource_claim_statuses=()))
    world.env.run(until=2)

    assert claims_of(world) == [claim]
    assert recorded_name(world, "p1", "gpu") == claim.metadata.name
    assert writes(world, since=1) == [("apply", "pods", "p1", "status")]


def test_orphan_found_in_mutation_cache_while_informer_lags() -> None:
    # Watch events take 50 ms, longer than the first retry backoff (5 ms), so the
    # retry runs before the informer has the claim created by the failed attempt.
    world = make_world("1.29", watch_delay_s=0.05)
    create_template(world, "first")
    controller = start_controller(world)
    create_pod(world, "p1", templates={"a": "first", "b": "second"})
    world.env.run(until=0.07)

    # Entry "a" got its claim, entry "b" failed (template missing), so no name was recorded.
    assert len(claims_of(world)) == 1
    assert recorded_name(world, "p1", "a") is None
    assert controller.claims.list() == []
    assert controller.queue.num_requeues("pod:default/p1") >= 2

    create_template(world, "second")
    world.env.run(until=5)

    names = {
        c.metadata.annotations[POD_CLAIM_NAME_ANNOTATION]: c.metadata.name for c in claims_of(world)
    }
    assert set(names) == {"a", "b"}
    assert recorded_name(world, "p1", "a") == names["a"]
    assert recorded_name(world, "p1", "b") == names["b"]
    creates = [w for w in writes(world) if w[0] == "create"]
    assert len(creates) == 2


def test_missing_template_warns_and_retries(caplog: pytest.LogCaptureFixture) -> None:
    world = make_world("1.29")
    controller = start_controller(world)
    create_pod(world, "p1", templates={"gpu": "gpu"})
    with caplog.at_level(logging.WARNING, logger="sim.cluster.claimcontroller"):
        world.env.run(until=2)

    assert claims_of(world) == []
    assert controller.queue.num_requeues("pod:default/p1") >= 5
    failures = [r for r in caplog.records if "FailedResourceClaimCreation" in r.getMessage()]
    assert failures
    assert "ResourceClaimTemplate default/gpu not found" in failures[0].getMessage()

    # Nothing watches templates: the claim appears at the next retry after the template does.
    create_template(world)
    world.env.run(until=10)
    (claim,) = claims_of(world)
    create_time = next(r[0] for r in requests(world) if r[1] == "create")
    assert create_time > 2
    assert recorded_name(world, "p1", "gpu") == claim.metadata.name


# --------------------------------------------------------------------------------------
# Name collisions (deterministic names in 1.27, generated names later)
# --------------------------------------------------------------------------------------


def test_deterministic_names_collide_in_1_27() -> None:
    world = make_world("1.27")
    create_template(world)
    controller = start_controller(world)
    foo = create_pod(world, "foo", templates={"bar-baz": "gpu"})
    world.env.run(until=1)
    create_pod(world, "foo-bar", templates={"baz": "gpu"})
    world.env.run(until=5)

    (claim,) = claims_of(world)
    assert claim.metadata.name == "foo-bar-baz"
    assert claim.metadata.owner_references[0].uid == foo.metadata.uid
    # The second pod is blocked: its sync fails again and again, and it never gets a claim.
    assert controller.queue.num_requeues("pod:default/foo-bar") >= 5
    assert writes(world, since=1) == []


def test_generated_names_never_collide() -> None:
    world = make_world("1.29")
    create_template(world)
    decoy = create_claim(world, "foo-bar-baz")
    start_controller(world)
    foo = create_pod(world, "foo", templates={"bar-baz": "gpu"})
    world.env.run(until=1)
    foo_bar = create_pod(world, "foo-bar", templates={"baz": "gpu"})
    world.env.run(until=2)

    foo_claim = get_claim(world, recorded_name(world, "foo", "bar-baz") or "")
    foo_bar_claim = get_claim(world, recorded_name(world, "foo-bar", "baz") or "")
    assert foo_claim.metadata.name != foo_bar_claim.metadata.name
    assert foo_claim.metadata.owner_references[0].uid == foo.metadata.uid
    assert foo_bar_claim.metadata.owner_references[0].uid == foo_bar.metadata.uid
    assert "foo-bar-baz" not in (foo_claim.metadata.name, foo_bar_claim.metadata.name)
    # The hand-made claim is never touched.
    assert get_claim(world, "foo-bar-baz") == decoy


# --------------------------------------------------------------------------------------
# Releasing reservations (syncClaim)
# --------------------------------------------------------------------------------------


def run_pod_to_success(version: str) -> tuple[World, str]:
    """Pod p1 with a generated claim runs on n1 and succeeds at t=10; return the claim name."""
    world = make_world(version)
    create_template(world)
    start_controller(world)
    create_pod(world, "p1", templates={"gpu": "gpu"})
    world.env.run(until=1)
    (claim,) = claims_of(world)
    pod = world.api.bind(NS, "p1", "n1")
    allocate(world, claim.metadata.name, "n1", reserve=(pod,))
    set_phase(world, "p1", PodPhase.RUNNING)
    world.env.run(until=10)
    set_phase(world, "p1", PodPhase.SUCCEEDED)
    world.env.run(until=12)
    return world, claim.metadata.name


def test_succeeded_pod_releases_and_deletes_claim() -> None:
    world, claim_name = run_pod_to_success("1.29")

    # One write drops the reservation and requests deallocation, then the claim is
    # deleted and the driver's finalizer keeps it. The update events of the status write
    # and of the first DELETE each trigger a sync that sends the DELETE again, as the
    # real controller does. Those repeats change nothing.
    assert requests(world, since=10) == [
        (10.006, "update", "resourceclaims", claim_name, "status", 200),
        (10.01, "delete", "resourceclaims", claim_name, "", 200),
        (10.014, "delete", "resourceclaims", claim_name, "", 200),
        (10.018, "delete", "resourceclaims", claim_name, "", 200),
    ]
    claim = get_claim(world, claim_name)
    assert claim.status.reserved_for == ()
    assert claim.status.deallocation_requested
    assert claim.deleting


def test_succeeded_pod_keeps_reservation_in_1_27() -> None:
    world, claim_name = run_pod_to_success("1.27")

    claim = get_claim(world, claim_name)
    assert len(claim.status.reserved_for) == 1
    assert not claim.deleting
    assert writes(world, since=10) == []


RELEASE_CASES = [
    # version, allocation mode, deallocationRequested expected after the last consumer left
    ("1.29", AllocationMode.WAIT_FOR_FIRST_CONSUMER, True),
    ("1.29", AllocationMode.IMMEDIATE, False),
    ("1.28", AllocationMode.WAIT_FOR_FIRST_CONSUMER, True),
    ("1.27", AllocationMode.WAIT_FOR_FIRST_CONSUMER, False),
]


@pytest.mark.parametrize(
    ("version", "mode", "deallocation_requested"),
    RELEASE_CASES,
    ids=[f"{v}-{m}" for v, m, _ in RELEASE_CASES],
)
def test_named_claim_released_when_last_consumer_deleted(
    version: str, mode: str, deallocation_requested: bool
) -> None:
    world = make_world(version)
    create_claim(world, "shared", mode)
    start_controller(world)
    create_pod(world, "p1", claims={"gpu": "shared"})
    pod = world.api.bind(NS, "p1", "n1")
    allocate(world, "shared", "n1", reserve=(pod,), shareable=True)
    world.env.run(until=10)
    world.api.delete("Pod", "p1", NS)
    world.env.run(until=11)

    claim = get_claim(world, "shared")
    assert claim.status.reserved_for == ()
    assert claim.allocated
    assert claim.status.deallocation_requested is deallocation_requested
    # The deleted-pod LRU contains p1, so no live GET is needed. A named claim is not deleted.
    assert requests(world, since=10) == [
        (10.006, "update", "resourceclaims", "shared", "status", 200)
    ]


def test_other_consumers_keep_claim_allocated() -> None:
    world = make_world("1.29")
    create_claim(world, "shared")
    start_controller(world)
    p1 = create_pod(world, "p1", claims={"gpu": "shared"})
    p2 = create_pod(world, "p2", claims={"gpu": "shared"})
    allocate(world, "shared", "n1", reserve=(p1, p2), shareable=True)
    world.env.run(until=10)
    world.api.delete("Pod", "p1", NS)
    world.env.run(until=11)

    claim = get_claim(world, "shared")
    assert claim.status.reserved_for == (pod_consumer_reference(p2),)
    assert not claim.status.deallocation_requested


def test_deleted_pod_memory_is_bounded() -> None:
    world = make_world("1.29")
    create_claim(world, "shared")
    start_controller(world, ClaimControllerConfig(deleted_pod_memory=1))
    p1 = create_pod(world, "p1", claims={"gpu": "shared"})
    p2 = create_pod(world, "p2", claims={"gpu": "shared"})
    allocate(world, "shared", "n1", reserve=(p1, p2), shareable=True)
    world.env.run(until=10)
    world.api.delete("Pod", "p1", NS)
    world.api.delete("Pod", "p2", NS)
    world.env.run(until=11)

    # Only p2 is still remembered as deleted, so p1 needs a live GET (404). p2's delete
    # event queues the claim again during the first sync. The second sync still reads
    # the old claim from the informer, so its write fails with 409, and the retry finds
    # nothing left to do.
    assert requests(world, since=10) == [
        (10.006, "get", "pods", "p1", "", 404),
        (10.01, "update", "resourceclaims", "shared", "status", 200),
        (10.014, "get", "pods", "p1", "", 404),
        (10.018, "update", "resourceclaims", "shared", "status", 409),
    ]
    assert get_claim(world, "shared").status.reserved_for == ()


def test_deleted_pod_cache_evicts_least_recently_used() -> None:
    cache = DeletedPodCache(2)
    cache.add("a")
    cache.add("b")
    assert cache.has("a")  # a use: b is now the oldest
    cache.add("c")
    assert cache.has("a")
    assert not cache.has("b")
    assert cache.has("c")
    assert len(cache) == 2


LIVE_GET_CASES = [
    # reservedFor entry (name, uid from the real pod?), expected kept, expected GET result
    ("p1", True, True, 200),
    ("p1", False, False, 200),
    ("ghost", False, False, 404),
]


@pytest.mark.parametrize(
    ("reserved_name", "same_uid", "kept", "get_code"),
    LIVE_GET_CASES,
    ids=["pod-exists", "pod-replaced", "pod-never-existed"],
)
def test_live_get_when_informer_lacks_pod(
    reserved_name: str, same_uid: bool, kept: bool, get_code: int
) -> None:
    world = make_world("1.29")
    create_claim(world, "shared")
    controller = start_controller(world)
    pod = create_pod(world, "p1")
    claim = allocate(world, "shared", "n1", shareable=True)
    world.env.run(until=1)
    assert writes(world) == []

    # The controller's pod informer lags: it has not seen p1 yet when the reservation arrives.
    controller.pods.cache.pop(pod.key)
    uid = pod.metadata.uid if same_uid else "0000-other-uid"
    reference = ResourceClaimConsumerReference(resource="pods", name=reserved_name, uid=uid)
    world.api.update_status(get_claim(world, "shared").with_status(reserved_for=(reference,)))
    world.env.run(until=2)

    assert requests(world, since=1)[0] == (1.006, "get", "pods", reserved_name, "", get_code)
    reserved = get_claim(world, "shared").status.reserved_for
    assert reserved == ((reference,) if kept else ())
    assert claim.allocated


def test_non_pod_consumer_is_retried_forever(caplog: pytest.LogCaptureFixture) -> None:
    world = make_world("1.29")
    create_claim(world, "shared")
    claim = allocate(world, "shared", "n1", shareable=True)
    gadget = ResourceClaimConsumerReference(
        api_group="example.com", resource="gadgets", name="g1", uid="g1-uid"
    )
    world.api.update_status(claim.with_status(reserved_for=(gadget,)))
    with caplog.at_level(logging.DEBUG, logger="sim.cluster.claimcontroller"):
        controller = start_controller(world)
        world.env.run(until=2)

    assert controller.queue.num_requeues("claim:default/shared") >= 7
    assert requests(world) == []
    assert get_claim(world, "shared").status.reserved_for == (gadget,)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "unsupported reservedFor entry" in warnings[0].getMessage()


@pytest.mark.parametrize(
    ("reserve_for_finished_pods", "min_updates"),
    [(False, 1), (True, 4)],
    ids=["fixed", "1.28-1.29-flaw"],
)
def test_finished_bound_pod_not_reserved_again(
    reserve_for_finished_pods: bool, min_updates: int
) -> None:
    world = make_world("1.29")
    create_claim(world, "shared", AllocationMode.IMMEDIATE)
    start_controller(
        world, ClaimControllerConfig(reserve_for_finished_pods=reserve_for_finished_pods)
    )
    p1 = create_pod(world, "p1", claims={"gpu": "shared"}, node_name="n1")
    p2 = create_pod(world, "p2", claims={"gpu": "shared"}, node_name="n1")
    allocate(world, "shared", "n1", reserve=(p1, p2), shareable=True)
    world.env.run(until=10)
    set_phase(world, "p1", PodPhase.SUCCEEDED)
    world.env.run(until=11)

    updates = [w for w in writes(world, since=10) if w[0] == "update"]
    if reserve_for_finished_pods:
        # Release and reservation undo each other for as long as the pod exists.
        assert len(updates) >= min_updates
    else:
        assert len(updates) == min_updates
        assert get_claim(world, "shared").status.reserved_for == (pod_consumer_reference(p2),)


# --------------------------------------------------------------------------------------
# Pods that already have spec.nodeName
# --------------------------------------------------------------------------------------


def test_bound_pod_gets_scheduling_context_then_reservation() -> None:
    world = make_world("1.29")
    create_template(world)
    start_controller(world)
    q = create_pod(world, "q", templates={"gpu": "gpu"}, node_name="n1")
    r = create_pod(world, "r", templates={"gpu": "gpu"}, node_name="n2")
    world.env.run(until=1)

    for pod, node in ((q, "n1"), (r, "n2")):
        scheduling = world.api.get("PodSchedulingContext", pod.metadata.name, NS)
        assert isinstance(scheduling, PodSchedulingContext)
        assert scheduling.spec == PodSchedulingContextSpec(selected_node=node)
        (owner,) = scheduling.metadata.owner_references
        assert (owner.kind, owner.name, owner.uid, owner.controller) == (
            "Pod",
            pod.metadata.name,
            pod.metadata.uid,
            True,
        )
    assert ("create", "podschedulingcontexts", "q", "") in writes(world)

    # The driver allocates q's claim on n1 without reserving it; the controller reserves it.
    q_claim = recorded_name(world, "q", "gpu") or ""
    allocate(world, q_claim, "n1")
    world.env.run(until=2)

    assert get_claim(world, q_claim).status.reserved_for == (pod_consumer_reference(q),)
    assert writes(world, since=1) == [("update", "resourceclaims", q_claim, "status")]
    # r's claim stays unallocated because no driver allocates it on n2 in this test.
    assert not get_claim(world, recorded_name(world, "r", "gpu") or "").allocated


def test_bound_pod_selected_node_corrected() -> None:
    world = make_world("1.29")
    create_claim(world, "shared")
    start_controller(world)
    pod = create_pod(world, "q", claims={"gpu": "shared"}, node_name="n1")
    owner = OwnerReference(
        api_version="v1", kind="Pod", name="q", uid=pod.metadata.uid, controller=True
    )
    world.api.create(
        PodSchedulingContext(
            metadata=ObjectMeta(name="q", namespace=NS, owner_references=(owner,)),
            spec=PodSchedulingContextSpec(selected_node="n7", potential_nodes=("n7", "n1")),
        )
    )
    world.env.run(until=1)

    scheduling = world.api.get("PodSchedulingContext", "q", NS)
    assert isinstance(scheduling, PodSchedulingContext)
    assert scheduling.spec.selected_node == "n1"
    assert writes(world) == [("update", "podschedulingcontexts", "q", "")]


def test_bound_pod_left_alone_in_1_27() -> None:
    world = make_world("1.27")
    create_template(world)
    start_controller(world)
    create_pod(world, "q", templates={"gpu": "gpu"}, node_name="n1")
    world.env.run(until=1)
    allocate(world, "q-gpu", "n1")
    world.env.run(until=2)

    assert writes(world) == [("create", "resourceclaims", "q-gpu", "")]
    assert world.api.list("PodSchedulingContext", NS).items == ()
    assert get_claim(world, "q-gpu").status.reserved_for == ()
