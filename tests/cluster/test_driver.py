"""The DRA driver controller against the real API server, with hand-made PodSchedulingContexts.

No scheduler runs here: each test writes the objects a scheduler or user would
write (claims, pods, contexts, deallocation requests) at fixed simulated
times and checks what the driver wrote, in which order, and the end state.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from sim.api.errors import NotFound
from sim.api.types import (
    ClaimSource,
    Container,
    GenericObject,
    Node,
    ObjectMeta,
    OwnerReference,
    Pod,
    PodResourceClaim,
    PodResourceClaimStatus,
    PodSchedulingContext,
    PodSchedulingContextSpec,
    PodSpec,
    PodStatus,
    ResourceClaim,
    ResourceClaimParametersReference,
    ResourceClaimSpec,
    ResourceClass,
)
from sim.cluster.config import ControlPlaneConfig
from sim.cluster.driver import DriverConfig, DriverController
from sim.cluster.world import World
from sim.drivers.node_local import NodeLocalModel

DRIVER = "gpu.example.com"
COMPONENT = f"driver/{DRIVER}"
FINALIZER = f"{DRIVER}/deletion-protection"
NS = "default"


# --------------------------------------------------------------------------------------
# Building the cluster state by hand
# --------------------------------------------------------------------------------------


def make_world(version: str = "1.29") -> World:
    return World.create(ControlPlaneConfig(kubernetes_version=version), seed=1)  # type: ignore[arg-type]


def add_nodes(world: World, names: Sequence[str]) -> None:
    for name in names:
        labels = {"kubernetes.io/hostname": name}
        world.api.create(Node(metadata=ObjectMeta(name=name, labels=labels)))


def add_class(world: World, name: str = "gpu", driver: str = DRIVER) -> None:
    world.api.create(ResourceClass(metadata=ObjectMeta(name=name), driver_name=driver))


def owner_ref(pod: Pod) -> OwnerReference:
    return OwnerReference(
        api_version="v1", kind="Pod", name=pod.metadata.name, uid=pod.metadata.uid, controller=True
    )


def add_claim(
    world: World,
    name: str,
    mode: str = "WaitForFirstConsumer",
    *,
    owner: Pod | None = None,
    resource_class: str = "gpu",
    parameters: ResourceClaimParametersReference | None = None,
) -> ResourceClaim:
    meta = ObjectMeta(
        name=name, namespace=NS, owner_references=(owner_ref(owner),) if owner else ()
    )
    spec = ResourceClaimSpec(
        resource_class_name=resource_class, allocation_mode=mode, parameters_ref=parameters
    )
    return world.api.create(ResourceClaim(metadata=meta, spec=spec))


def add_pod(
    world: World,
    name: str,
    named: Sequence[tuple[str, str]] = (),
    templates: Sequence[str] = (),
    *,
    record_names: bool = True,
) -> Pod:
    """Create a pod; `named` is (entry, claim) pairs.

    With `record_names`, the pod status names claim `<pod>-<entry>-x` for each
    template entry, as the 1.28+ resourceclaim controller records it.
    """
    claims = [
        PodResourceClaim(name=entry, source=ClaimSource(resource_claim_name=claim))
        for entry, claim in named
    ]
    claims += [
        PodResourceClaim(name=entry, source=ClaimSource(resource_claim_template_name="t"))
        for entry in templates
    ]
    statuses = tuple(
        PodResourceClaimStatus(name=entry, resource_claim_name=f"{name}-{entry}-x")
        for entry in templates
        if record_names
    )
    pod = Pod(
        metadata=ObjectMeta(name=name, namespace=NS),
        spec=PodSpec(containers=(Container(name="c"),), resource_claims=tuple(claims)),
        status=PodStatus(resource_claim_statuses=statuses),
    )
    return world.api.create(pod)


def add_template_claims(world: World, pod: Pod, entries: Sequence[str]) -> None:
    for entry in entries:
        add_claim(world, f"{pod.metadata.name}-{entry}-x", owner=pod)


def add_context(
    world: World, pod: Pod, selected: str = "", potential: Sequence[str] = ()
) -> PodSchedulingContext:
    context = PodSchedulingContext(
        metadata=ObjectMeta(
            name=pod.metadata.name, namespace=NS, owner_references=(owner_ref(pod),)
        ),
        spec=PodSchedulingContextSpec(selected_node=selected, potential_nodes=tuple(potential)),
    )
    return world.api.create(context)


def start_driver(world: World, **settings: Any) -> DriverController:
    settings.setdefault("name", DRIVER)
    controller = DriverController(world, DriverConfig(**settings))
    controller.start()
    return controller


def at(world: World, time_s: float, action: Callable[[], object]) -> None:
    """Run `action` (direct API writes, no latency) at simulated time `time_s`."""

    def process() -> Any:
        yield world.env.timeout(time_s)
        action()

    world.env.process(process())


def requests(
    world: World, *, since: float = 0.0, until: float = float("inf")
) -> list[tuple[Any, ...]]:
    """Return the driver's requests as (verb, resource, name, subresource, code)."""
    return [
        (verb, resource, name, sub, code)
        for time, component, verb, resource, _ns, name, sub, code, _lat, _write in (
            world.recorder.api_requests
        )
        if component == COMPONENT and since <= time < until
    ]


def writes(world: World, **window: float) -> list[tuple[Any, ...]]:
    return [r for r in requests(world, **window) if r[0] != "get"]


def claim(world: World, name: str) -> ResourceClaim:
    return world.api.get("ResourceClaim", name, NS)  # type: ignore[return-value]


def context_status(world: World, name: str) -> dict[str, tuple[str, ...]]:
    context: PodSchedulingContext = world.api.get("PodSchedulingContext", name, NS)  # type: ignore[assignment]
    return {entry.name: entry.unsuitable_nodes for entry in context.status.resource_claims}


def node_local(controller: DriverController) -> NodeLocalModel:
    assert isinstance(controller.model, NodeLocalModel)
    return controller.model


# --------------------------------------------------------------------------------------
# Immediate claims: syncClaim
# --------------------------------------------------------------------------------------


def test_immediate_claim_allocated_on_creation() -> None:
    world = make_world()
    add_nodes(world, ["n1", "n2"])
    add_class(world)
    add_claim(world, "c1", "Immediate")
    start_driver(world, model_settings={"nodes": ["n2"], "max_claims_per_node": 1})

    world.env.run(until=5)

    assert writes(world) == [
        ("update", "resourceclaims", "c1", "", 200),
        ("update", "resourceclaims", "c1", "status", 200),
    ]
    final = claim(world, "c1")
    assert final.metadata.finalizers == (FINALIZER,)
    assert final.status.driver_name == DRIVER
    assert final.status.reserved_for == ()
    allocation = final.status.allocation
    assert allocation is not None
    assert allocation.available_on_nodes is not None
    term = allocation.available_on_nodes.node_selector_terms[0]
    assert term.match_expressions[0].values == ("n2",)


def test_claim_of_other_driver_left_alone() -> None:
    world = make_world()
    add_nodes(world, ["n1"])
    add_class(world, "other", driver="other.example.com")
    add_claim(world, "c1", "Immediate", resource_class="other")
    controller = start_driver(world)

    world.env.run(until=5)

    assert writes(world) == []
    assert claim(world, "c1").status.allocation is None
    assert controller.queue.num_requeues(f"claim:{NS}/c1") >= 5
    assert controller.warnings == []


def test_deletion_deallocates_then_removes_finalizer() -> None:
    world = make_world()
    add_nodes(world, ["n1"])
    add_class(world)
    add_claim(world, "c1", "Immediate")
    controller = start_driver(world)
    at(world, 1.0, lambda: world.api.delete("ResourceClaim", "c1", NS))

    world.env.run(until=5)

    assert writes(world, since=1.0) == [
        ("update", "resourceclaims", "c1", "status", 200),
        ("update", "resourceclaims", "c1", "", 200),
    ]
    with pytest.raises(NotFound):
        claim(world, "c1")
    assert node_local(controller).deallocations == 1
    assert node_local(controller).claims_on("n1") == 0


def test_conflicting_write_retried() -> None:
    world = make_world()
    add_nodes(world, ["n1"])
    add_class(world)
    add_claim(world, "c1", "Immediate")
    controller = start_driver(world)

    def relabel() -> None:
        current = claim(world, "c1")
        world.api.update(current.with_meta(labels={"touched": "yes"}))

    # The driver reads the claim at t=0 and its finalizer write lands at t=0.004.
    at(world, 0.002, relabel)
    world.env.run(until=5)

    assert writes(world) == [
        ("update", "resourceclaims", "c1", "", 409),
        ("update", "resourceclaims", "c1", "", 200),
        ("update", "resourceclaims", "c1", "status", 200),
    ]
    assert claim(world, "c1").status.allocation is not None
    assert len(controller.warnings) == 1
    assert "add finalizer" in controller.warnings[0].message
    assert controller.warnings[0].object == f"ResourceClaim {NS}/c1"
    assert not controller.warnings[0].parameter_error


@pytest.mark.parametrize(
    ("parameters_kind", "model", "model_settings", "body", "lookup"),
    [
        pytest.param(
            "ConfigMap",
            "node-local",
            {},
            {"data": {"mode": "fast"}},
            "get",
            id="configmap-test-driver",
        ),
        pytest.param(
            "ConfigMap",
            "node-local",
            {},
            {"data": {"mode": "fast"}},
            "informer",
            id="configmap-informer",
        ),
        pytest.param(
            "GpuClaimParameters",
            "devices",
            {"nodes": {"n1": 2}},
            {"spec": {"count": 2}},
            "get",
            id="example-driver-gpus",
        ),
    ],
)
def test_parameters_created_after_claim(
    parameters_kind: str,
    model: str,
    model_settings: dict[str, Any],
    body: dict[str, Any],
    lookup: str,
) -> None:
    world = make_world()
    add_nodes(world, ["n1"])
    add_class(world)
    group = "" if parameters_kind == "ConfigMap" else "gpu.resource.example.com"
    ref = ResourceClaimParametersReference(api_group=group, kind=parameters_kind, name="params")
    add_claim(world, "c1", "Immediate", parameters=ref)
    controller = start_driver(
        world, model=model, model_settings=model_settings, parameters_lookup=lookup
    )
    api_version = "v1" if not group else f"{group}/v1alpha1"
    params = GenericObject(
        api_version=api_version,
        kind=parameters_kind,
        metadata=ObjectMeta(name="params", namespace=NS),
        body=body,
    )
    at(world, 1.0, lambda: world.api.create(params))

    world.env.run(until=5)

    assert writes(world, until=1.0) == []
    failed_reads = [r for r in requests(world, until=1.0) if r[-1] == 404]
    assert len(failed_reads) >= (5 if lookup == "get" else 0)
    assert len(controller.warnings) >= 5
    assert all("not found" in w.message for w in controller.warnings)
    allocation = claim(world, "c1").status.allocation
    assert allocation is not None
    data = json.loads(allocation.resource_handles[0].data)
    if model == "node-local":
        assert data["EnvVars"] == {"user_mode": "fast"}
    else:
        assert data == {"devices": ["dev-0", "dev-1"], "node": "n1"}


def test_parameter_warnings_marked() -> None:
    world = make_world()
    add_nodes(world, ["n1"])
    add_class(world)
    missing = ResourceClaimParametersReference(kind="ConfigMap", name="missing")
    add_claim(world, "now", "Immediate", parameters=missing)
    add_claim(world, "later", parameters=missing)
    pod = add_pod(world, "p", named=[("gpu", "later")])
    add_context(world, pod, potential=["n1"])
    controller = start_driver(world)

    world.env.run(until=1)

    marks = {(w.object, w.parameter_error) for w in controller.warnings}
    # The work items fail on the parameters: the claim, pod and context warnings
    # wrap that error. Library 0.29 also records the bare error on the claim.
    assert marks == {
        (f"ResourceClaim {NS}/now", True),
        (f"ResourceClaim {NS}/later", False),
        (f"Pod {NS}/p", True),
        (f"PodSchedulingContext {NS}/p", True),
    }
    for warning in controller.warnings:
        if warning.parameter_error:
            assert "claim parameters ConfigMap/missing" in warning.message


# --------------------------------------------------------------------------------------
# WaitForFirstConsumer claims: syncPodSchedulingContext
# --------------------------------------------------------------------------------------


def test_selected_node_allocated_and_pod_reserved() -> None:
    world = make_world()
    add_nodes(world, ["n1", "n2"])
    add_class(world)
    pod = add_pod(world, "p", templates=["gpu"])
    add_template_claims(world, pod, ["gpu"])
    add_context(world, pod, selected="n2", potential=["n1", "n2"])
    start_driver(world, model_settings={"max_claims_per_node": 1})

    world.env.run(until=5)

    assert requests(world, until=1.0) == [
        ("get", "pods", "p", "", 200),
        ("update", "resourceclaims", "p-gpu-x", "", 200),
        ("update", "resourceclaims", "p-gpu-x", "status", 200),
        ("update", "podschedulingcontexts", "p", "status", 200),
        # The echo of the driver's own status write: checked again, nothing to write.
        ("get", "pods", "p", "", 200),
    ]
    final = claim(world, "p-gpu-x")
    assert [ref.uid for ref in final.status.reserved_for] == [pod.metadata.uid]
    assert final.status.reserved_for[0].resource == "pods"
    assert context_status(world, "p") == {"gpu": ()}


def test_set_reserved_for_off_leaves_pod_out() -> None:
    world = make_world()
    add_nodes(world, ["n1"])
    add_class(world)
    pod = add_pod(world, "p", templates=["gpu"])
    add_template_claims(world, pod, ["gpu"])
    add_context(world, pod, selected="n1", potential=["n1"])
    start_driver(world, set_reserved_for=False)

    world.env.run(until=5)

    final = claim(world, "p-gpu-x")
    assert final.status.allocation is not None
    assert final.status.reserved_for == ()


@pytest.mark.parametrize(
    ("hardware", "expected"),
    [
        pytest.param(["n1", "n2"], (), id="all-suitable-still-published"),
        pytest.param(["n2"], ("n1",), id="node-without-hardware"),
    ],
)
def test_unsuitable_nodes_published_on_first_sync(
    hardware: list[str], expected: tuple[str, ...]
) -> None:
    world = make_world()
    add_nodes(world, ["n1", "n2"])
    add_class(world)
    pod = add_pod(world, "p", templates=["gpu"])
    add_template_claims(world, pod, ["gpu"])
    add_context(world, pod, potential=["n1", "n2"])
    start_driver(world, model_settings={"nodes": hardware, "max_claims_per_node": 1})

    world.env.run(until=5)

    assert writes(world) == [("update", "podschedulingcontexts", "p", "status", 200)]
    assert context_status(world, "p") == {"gpu": expected}
    assert claim(world, "p-gpu-x").status.allocation is None


def test_unsuitable_selected_node_not_allocated() -> None:
    world = make_world()
    add_nodes(world, ["n1", "n2"])
    add_class(world)
    pod = add_pod(world, "p", templates=["gpu"])
    add_template_claims(world, pod, ["gpu"])
    add_context(world, pod, selected="n1", potential=["n1", "n2"])
    controller = start_driver(world, model_settings={"nodes": ["n2"], "max_claims_per_node": 1})

    world.env.run(until=5)

    assert writes(world) == [("update", "podschedulingcontexts", "p", "status", 200)]
    assert context_status(world, "p") == {"gpu": ("n1",)}
    assert claim(world, "p-gpu-x").metadata.finalizers == ()
    assert controller.model_calls["allocate"] == 0


def test_recheck_every_30s_reads_pod_writes_nothing() -> None:
    world = make_world()
    add_nodes(world, ["n1", "n2"])
    add_class(world)
    pod = add_pod(world, "p", templates=["gpu"])
    add_template_claims(world, pod, ["gpu"])
    add_context(world, pod, potential=["n1", "n2"])
    start_driver(world, model_settings={"max_claims_per_node": 1})

    world.env.run(until=95)

    assert writes(world, since=1.0) == []
    for start in (30.0, 60.0, 90.0):
        assert requests(world, since=start, until=start + 1) == [("get", "pods", "p", "", 200)]
    assert requests(world, since=1.0, until=30.0) == []


def test_deallocation_requested_frees_claim() -> None:
    world = make_world()
    add_nodes(world, ["n1"])
    add_class(world)
    pod = add_pod(world, "p", named=[("gpu", "shared")])
    add_claim(world, "shared")
    add_context(world, pod, selected="n1", potential=["n1"])
    controller = start_driver(world, model_settings={"max_claims_per_node": 1})

    def request_deallocation() -> None:
        world.api.delete("PodSchedulingContext", "p", NS)
        current = claim(world, "shared")
        world.api.update_status(current.with_status(reserved_for=(), deallocation_requested=True))

    at(world, 1.0, request_deallocation)
    world.env.run(until=5)

    assert writes(world, since=1.0) == [
        ("update", "resourceclaims", "shared", "status", 200),
        ("update", "resourceclaims", "shared", "", 200),
    ]
    final = claim(world, "shared")
    assert final.status.allocation is None
    assert final.status.deallocation_requested is False
    assert final.status.driver_name == ""
    assert final.metadata.finalizers == ()
    assert node_local(controller).claims_on("n1") == 0


def test_claim_deleted_during_allocate_not_leaked() -> None:
    world = make_world()
    add_nodes(world, ["n1"])
    add_class(world)
    pod = add_pod(world, "p", named=[("gpu", "c1")])
    add_claim(world, "c1")
    add_context(world, pod, selected="n1", potential=["n1"])
    controller = start_driver(world, allocate_latency_s=1.0, workers=2)
    at(world, 0.5, lambda: world.api.delete("ResourceClaim", "c1", NS))

    world.env.run(until=5)

    with pytest.raises(NotFound):
        claim(world, "c1")
    assert controller.model_calls["allocate"] == 1
    assert node_local(controller).claims_on("n1") == 0
    assert node_local(controller).devices_of(pod.metadata.uid) is None


def test_outage_delays_all_work() -> None:
    world = make_world()
    add_nodes(world, ["n1"])
    add_class(world)
    pod = add_pod(world, "p", templates=["gpu"])
    add_template_claims(world, pod, ["gpu"])
    add_context(world, pod, selected="n1", potential=["n1"])
    start_driver(world, outages=[[0.0, 10.0]])

    world.env.run(until=20)

    assert requests(world, until=10.0) == []
    assert claim(world, "p-gpu-x").status.allocation is not None


# --------------------------------------------------------------------------------------
# Scenarios from bug reports, and version differences
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("legacy_names", [False, True], ids=["status-names", "legacy-names"])
def test_template_claim_name_resolution(legacy_names: bool) -> None:
    """A driver on the 1.27 library looks for `<pod>-<entry>`, which 1.28+ never creates."""
    world = make_world("1.29")
    add_nodes(world, ["n1"])
    add_class(world)
    pod = add_pod(world, "p", templates=["gpu"])
    add_template_claims(world, pod, ["gpu"])
    add_context(world, pod, selected="n1", potential=["n1"])
    start_driver(world, legacy_claim_names=legacy_names, model_settings={"max_claims_per_node": 1})

    world.env.run(until=65)

    final = claim(world, "p-gpu-x")
    if legacy_names:
        assert final.status.allocation is None
        assert writes(world) == []
        assert context_status(world, "p") == {}
        assert requests(world, since=30, until=31) == [("get", "pods", "p", "", 200)]
    else:
        assert final.status.allocation is not None
        assert context_status(world, "p") == {"gpu": ()}


def test_legacy_names_on_127_cluster() -> None:
    world = make_world("1.27")
    add_nodes(world, ["n1"])
    add_class(world)
    pod = add_pod(world, "q", templates=["gpu"], record_names=False)
    add_claim(world, "q-gpu", owner=pod)
    add_context(world, pod, selected="n1", potential=["n1"])
    controller = start_driver(world)

    world.env.run(until=5)

    assert controller.library_version == "0.27"
    assert claim(world, "q-gpu").status.allocation is not None


@pytest.mark.parametrize(
    ("library", "b_allocated", "b_unsuitable"),
    [
        pytest.param("0.29", True, (), id="0.29-allocated-claims-excluded"),
        pytest.param("0.28", False, ("n1",), id="0.28-allocated-claim-counted-again"),
    ],
)
def test_allocated_claim_not_counted_again(
    library: str, b_allocated: bool, b_unsuitable: tuple[str, ...]
) -> None:
    world = make_world()
    add_nodes(world, ["n1"])
    add_class(world)
    pod = add_pod(world, "p", named=[("a", "claim-a"), ("b", "claim-b")])
    add_claim(world, "claim-a")
    add_context(world, pod, selected="n1", potential=["n1"])
    # claim-b appears late, so the first sync allocates claim-a alone; the 30 s
    # re-check then finds claim-a allocated and claim-b pending.
    at(world, 1.0, lambda: add_claim(world, "claim-b"))
    start_driver(world, library_version=library, model_settings={"max_claims_per_node": 2})

    world.env.run(until=40)

    assert claim(world, "claim-a").status.allocation is not None
    assert (claim(world, "claim-b").status.allocation is not None) == b_allocated
    assert context_status(world, "p")["b"] == b_unsuitable


@pytest.mark.parametrize(
    ("library", "b_protected"),
    [
        pytest.param("0.27", False, id="0.27-claim-by-claim-stops-at-first-failure"),
        pytest.param("0.28", True, id="0.28-batch-protects-all-first"),
    ],
)
def test_failed_allocation_of_first_claim(library: str, b_protected: bool) -> None:
    world = make_world()
    add_nodes(world, ["n1"])
    add_class(world)
    pod = add_pod(world, "p", named=[("a", "claim-a"), ("b", "claim-b")])
    add_claim(world, "claim-a")
    add_claim(world, "claim-b")
    add_context(world, pod, selected="n1", potential=["n1"])
    controller = start_driver(world, library_version=library, allocate_failure_probability=1.0)

    world.env.run(until=5)

    assert claim(world, "claim-a").metadata.finalizers == (FINALIZER,)
    assert (claim(world, "claim-b").metadata.finalizers == (FINALIZER,)) == b_protected
    assert claim(world, "claim-a").status.allocation is None
    assert context_status(world, "p") == {}
    assert all("injected allocation failure" in w.message for w in controller.warnings)


@pytest.mark.parametrize(
    ("library", "reported"),
    [
        pytest.param("0.29", True, id="0.29-selected-node-checked"),
        pytest.param("0.28", False, id="0.28-stalls"),
        pytest.param("0.27", False, id="0.27-stalls"),
    ],
)
def test_selected_node_outside_potential_nodes(library: str, reported: bool) -> None:
    world = make_world()
    add_nodes(world, ["n1", "n2", "n3"])
    add_class(world)
    pod = add_pod(world, "p", templates=["gpu"])
    add_template_claims(world, pod, ["gpu"])
    add_context(world, pod, selected="n1", potential=["n2", "n3"])
    controller = start_driver(
        world,
        library_version=library,
        model_settings={"nodes": ["n2", "n3"], "max_claims_per_node": 1},
    )

    world.env.run(until=60)

    assert claim(world, "p-gpu-x").status.allocation is None
    if reported:
        assert context_status(world, "p") == {"gpu": ("n1",)}
        assert controller.model_calls["allocate"] == 0
    else:
        assert context_status(world, "p") == {}
        assert controller.model_calls["allocate"] >= 10
        assert any("resources exhausted on node 'n1'" in w.message for w in controller.warnings)


def test_two_contexts_race_for_one_claim() -> None:
    world = make_world()
    add_nodes(world, ["n1", "n2"])
    add_class(world)
    p1 = add_pod(world, "p1", named=[("gpu", "shared")])
    p2 = add_pod(world, "p2", named=[("gpu", "shared")])
    add_claim(world, "shared")
    add_context(world, p1, selected="n1", potential=["n1", "n2"])
    # p2's context arrives after the finalizer write for p1, while Allocate for p1 still runs.
    at(world, 0.05, lambda: add_context(world, p2, selected="n2", potential=["n1", "n2"]))
    controller = start_driver(world, workers=2, allocate_latency_s=1.0)

    world.env.run(until=5)

    model = node_local(controller)
    assert controller.model_calls["allocate"] == 2
    assert model.allocations == 1
    assert model.claims_on("n1") == 1
    assert model.claims_on("n2") == 0
    status_writes = [r for r in writes(world) if r[1] == "resourceclaims" and r[3] == "status"]
    assert status_writes == [
        ("update", "resourceclaims", "shared", "status", 200),
        ("update", "resourceclaims", "shared", "status", 409),
    ]
    final = claim(world, "shared")
    assert [ref.name for ref in final.status.reserved_for] == ["p1"]


@pytest.mark.parametrize(
    ("library", "selected"),
    [
        pytest.param("0.29", "node-150", id="0.29-selected-node-added-then-cut"),
        pytest.param("0.28", "", id="0.28-potential-nodes-only"),
    ],
)
def test_unsuitable_nodes_truncated_to_128(library: str, selected: str) -> None:
    world = make_world()
    nodes = [f"node-{i:03d}" for i in range(200)]
    add_nodes(world, nodes)
    add_class(world)
    pod = add_pod(world, "p", templates=["gpu"])
    add_template_claims(world, pod, ["gpu"])
    add_context(world, pod, selected=selected, potential=nodes[:128])
    # Only node-199 has the hardware, so every checked node is unsuitable.
    start_driver(
        world,
        library_version=library,
        model_settings={"nodes": ["node-199"], "max_claims_per_node": 1},
    )

    world.env.run(until=35)

    unsuitable = context_status(world, "p")["gpu"]
    assert len(unsuitable) == 128
    if selected:
        # 129 nodes were checked; the first one is dropped to keep the selected node.
        assert unsuitable[0] == "node-001"
        assert unsuitable[-1] == "node-150"
        # The cut list never equals the full one, so every re-check writes it again.
        assert writes(world, since=30, until=31) == [
            ("update", "podschedulingcontexts", "p", "status", 200)
        ]
    else:
        assert list(unsuitable) == nodes[:128]
        assert writes(world, since=30, until=31) == []
