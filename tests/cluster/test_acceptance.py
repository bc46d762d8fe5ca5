"""Acceptance scenarios: faults that users of classic DRA reported, replayed end to end.

Every test builds a whole simulated cluster from a scenario: kube-scheduler,
the resourceclaim controller, the garbage collector, one driver controller with
its model, and one kubelet per node with the driver's plugin. It replays a
short timeline through the API server and checks the end state and the key
steps of the timeline. The default mode is Kubernetes 1.29, where the outcome is the
correct one. Where the simulator has a switch that reproduces the faulty
behaviour of an older release or driver, a second test checks that outcome.

Notation shared by all scenarios: one ResourceClass `gpu` served by driver
`gpu.example.com` with the `devices` model. Its defaults give every claim one
device, `availableOnNodes` naming the chosen node, and `shareable` true for
user-created claims and false for claims generated from a template
(`test_devices_model_defaults_match_notation` checks this). Node pool `nX`
has one node, which `build` names `nX-0`.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from sim.api.server import WriteRecord
from sim.api.types import (
    ClaimSource,
    Container,
    ObjectMeta,
    OwnerReference,
    Pod,
    PodResourceClaim,
    PodSchedulingContext,
    PodSchedulingContextSpec,
    PodSpec,
    ResourceClaim,
    ResourceClaimRef,
    ResourceClaimSpec,
    ResourceClaimTemplate,
    ResourceClaimTemplateSpec,
    ResourceClass,
    ResourceRequirements,
    is_controlled_by,
)
from sim.cluster.driver import ClaimAllocation
from sim.cluster.kubelet import (
    RUN_DURATION_ANNOTATION,
    NodeFaults,
    NodePlugin,
    NodePluginFaults,
    PodState,
)
from sim.drivers.devices import DevicesModel, DevicesSettings
from sim.drivers.node_local import NodeLocalModel, NodeLocalSettings
from sim.drivers.registry import register_driver_model
from sim.metrics.tracker import ClaimRecord, single_hostname
from sim.scenario import parse_scenario
from sim.simulation import Simulation, build

DRIVER = "gpu.example.com"
CLASS = "gpu"
TEMPLATE = "gpu-template"
N1, N2, N3 = "n1-0", "n2-0", "n3-0"
NAMESPACE = "default"
MAX_BACKOFF_S = 10.0
"""kube-scheduler's podMaxBackoffSeconds (default)."""
BACKOFF_FLUSH_S = 1.0
"""Period of kube-scheduler's backoffQ sweep."""


# --------------------------------------------------------------------------------------
# A driver model that fails the first Allocate of chosen pod claims
# --------------------------------------------------------------------------------------


class _FailOnceMixin:
    """Fails the first Allocate of each listed pod claim, as a transient driver error would."""

    settings: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.failed_once: set[str] = set()
        """UIDs of the claims whose first Allocate already failed."""

    def allocate(self, claims: list[ClaimAllocation], selected_node: str) -> None:
        passing = []
        for claim in claims:
            uid = claim.claim.metadata.uid
            if claim.pod_claim_name in self.settings.fail_once and uid not in self.failed_once:
                self.failed_once.add(uid)
                claim.error = "transient error injected by the test driver"
            else:
                passing.append(claim)
        if passing:
            super().allocate(passing, selected_node)  # type: ignore[misc]


class FailOnceDevicesSettings(DevicesSettings):
    fail_once: tuple[str, ...] = ()


class FailOnceNodeLocalSettings(NodeLocalSettings):
    fail_once: tuple[str, ...] = ()


@register_driver_model("test-devices-fail-once")
class FailOnceDevices(_FailOnceMixin, DevicesModel):
    Settings: ClassVar[type[BaseModel]] = FailOnceDevicesSettings


@register_driver_model("test-node-local-fail-once")
class FailOnceNodeLocal(_FailOnceMixin, NodeLocalModel):
    Settings: ClassVar[type[BaseModel]] = FailOnceNodeLocalSettings


# --------------------------------------------------------------------------------------
# Building the cluster and replaying a timeline
# --------------------------------------------------------------------------------------


def cluster(
    devices: dict[str, int],
    *,
    version: str = "1.29",
    driver: dict[str, Any] | None = None,
    kubelet: dict[str, Any] | None = None,
    shared_claims: Sequence[str] = (),
    with_class: bool = True,
) -> Simulation:
    """Build a cluster with one node per entry of `devices` (pool name -> devices of the driver).

    The template `gpu-template` (one claim of class `gpu`) is created too.
    """
    pools = []
    for pool, count in devices.items():
        spec: dict[str, Any] = {"name": pool, "count": 1}
        if count:
            spec["devices"] = {DRIVER: {"count": count}}
        pools.append(spec)
    scenario = parse_scenario(
        {
            "cluster": {"node_pools": pools},
            "drivers": [{"name": DRIVER, "model": "devices", **(driver or {})}],
            "resource_classes": [{"name": CLASS, "driver_name": DRIVER}] if with_class else [],
            "control_plane": {"kubernetes_version": version},
            "kubelet": kubelet or {},
            "shared_claims": [{"name": name, "resource_class": CLASS} for name in shared_claims],
        }
    )
    sim = build(scenario, check_invariants=True)
    as_actor(
        sim,
        lambda: sim.world.api.create(
            ResourceClaimTemplate(
                metadata=ObjectMeta(name=TEMPLATE, namespace=NAMESPACE),
                spec=ResourceClaimTemplateSpec(spec=ResourceClaimSpec(resource_class_name=CLASS)),
            )
        ),
    )
    return sim


def from_template() -> ClaimSource:
    return ClaimSource(resource_claim_template_name=TEMPLATE)


def named(claim: str) -> ClaimSource:
    return ClaimSource(resource_claim_name=claim)


def make_pod(
    name: str,
    claims: dict[str, ClaimSource],
    *,
    node_name: str = "",
    restart_policy: str = "Never",
    run_s: float | None = None,
    scheduler_name: str = "",
) -> Pod:
    """Return a pod whose one container uses every entry of `claims` (entry name -> source)."""
    annotations = {} if run_s is None else {RUN_DURATION_ANNOTATION: repr(float(run_s))}
    refs = tuple(ResourceClaimRef(name=entry) for entry in claims)
    return Pod(
        metadata=ObjectMeta(name=name, namespace=NAMESPACE, annotations=annotations),
        spec=PodSpec(
            node_name=node_name,
            restart_policy=restart_policy,
            scheduler_name=scheduler_name,
            containers=(Container(name="main", resources=ResourceRequirements(claims=refs)),),
            resource_claims=tuple(
                PodResourceClaim(name=entry, source=source) for entry, source in claims.items()
            ),
        ),
    )


def as_actor(sim: Simulation, action: Callable[[], object], actor: str = "user") -> None:
    """Run `action` (direct API server calls) as `actor`, as the write log shows it."""
    world = sim.world
    world.current_actor, world.current_reason = actor, "test step"
    try:
        action()
    finally:
        world.current_actor = world.current_reason = ""


def at(sim: Simulation, time_s: float, action: Callable[[], object]) -> None:
    """Run `action` as the user at simulated time `time_s`."""
    env = sim.world.env

    def step() -> Any:
        yield env.timeout(time_s - env.now)
        as_actor(sim, action)

    env.process(step())


def create_at(sim: Simulation, time_s: float, *pods: Pod) -> None:
    def create() -> None:
        for pod in pods:
            sim.world.api.create(pod)

    at(sim, time_s, create)


def delete_at(sim: Simulation, time_s: float, pod_name: str) -> None:
    at(sim, time_s, lambda: sim.world.api.delete("Pod", pod_name, NAMESPACE))


def run_until(sim: Simulation, time_s: float) -> None:
    """Advance to `time_s`; `Simulation.run` would stop early while no pod exists."""
    sim.world.env.run(until=time_s)


# --------------------------------------------------------------------------------------
# Reading the outcome
# --------------------------------------------------------------------------------------


def get_pod(sim: Simulation, name: str) -> Pod:
    pod = sim.world.api.get("Pod", name, NAMESPACE)
    assert isinstance(pod, Pod)
    return pod


def pod_exists(sim: Simulation, name: str) -> bool:
    return any(pod.metadata.name == name for pod in sim.world.api.list("Pod").items)


def get_claim(sim: Simulation, name: str) -> ResourceClaim:
    claim = sim.world.api.get("ResourceClaim", name, NAMESPACE)
    assert isinstance(claim, ResourceClaim)
    return claim


def get_context(sim: Simulation, pod_name: str) -> PodSchedulingContext:
    context = sim.world.api.get("PodSchedulingContext", pod_name, NAMESPACE)
    assert isinstance(context, PodSchedulingContext)
    return context


def claim_of(sim: Simulation, pod_name: str, entry: str) -> ResourceClaim:
    """Return the claim recorded for a template entry in the pod's status."""
    pod = get_pod(sim, pod_name)
    names = [s.resource_claim_name for s in pod.status.resource_claim_statuses if s.name == entry]
    assert names and names[0], f"pod {pod_name} has no claim recorded for entry {entry!r}"
    return get_claim(sim, names[0])


def claim_names(sim: Simulation) -> set[str]:
    return {claim.metadata.name for claim in sim.world.api.list("ResourceClaim").items}


def node_of(claim: ResourceClaim) -> str:
    """Return the single node of the claim's allocation, "" when it is not allocated."""
    allocation = claim.status.allocation
    return "" if allocation is None else single_hostname(allocation)


def reserved(claim: ResourceClaim) -> list[str]:
    return [ref.name for ref in claim.status.reserved_for]


def record(sim: Simulation, name: str) -> ClaimRecord:
    """Return the write tracker's record of the claim with this exact name."""
    found = [entry for entry in sim.tracker.claims.values() if entry.name == name]
    assert len(found) == 1, f"expected one claim named {name}, found {len(found)}"
    return found[0]


def generated_record(sim: Simulation, pod_name: str, entry: str) -> ClaimRecord:
    """Return the record of the claim generated for a template entry (even after its deletion)."""
    prefix = f"{pod_name}-{entry}-"
    found = [c for c in sim.tracker.claims.values() if c.name.startswith(prefix) and c.generated]
    assert len(found) == 1, f"expected one claim named {prefix}*, found {len(found)}"
    return found[0]


def devices_of(sim: Simulation, claim: ResourceClaim) -> tuple[str, list[str]] | None:
    return sim.drivers[DRIVER].model.devices_of(claim.metadata.uid)


def cycles(sim: Simulation, pod_name: str) -> list[tuple[Any, ...]]:
    """Return the pod's scheduling attempts (columns of `CYCLE_COLUMNS`)."""
    return [row for row in sim.world.recorder.cycles if row[2] == pod_name]


def kubelet_events(sim: Simulation, pod_name: str, reason: str) -> list[float]:
    """Return the times at which a kubelet recorded a pod transition with this reason."""
    return [
        row[0]
        for row in sim.world.recorder.events
        if row[1] == "Pod"
        and row[3] == pod_name
        and row[7].startswith("kubelet/")
        and row[8] == reason
    ]


def claim_events(sim: Simulation, uid: str) -> list[tuple[float, str, str]]:
    """Return (time, new state, actor) of every recorded transition of a claim."""
    return [
        (row[0], str(row[6]), row[7])
        for row in sim.world.recorder.events
        if row[1] == "ResourceClaim" and row[4] == uid
    ]


def plugin_calls(sim: Simulation, node: str, method_prefix: str, claim_uid: str) -> list[Any]:
    plugin = sim.kubelets[node].plugins[DRIVER]
    return [
        call
        for call in plugin.calls
        if call.method.startswith(method_prefix) and claim_uid in call.claim_uids
    ]


def condition_message(pod: Pod) -> str:
    for condition in pod.status.conditions:
        if condition.type == "PodScheduled":
            return condition.message
    return ""


def kubelet_state(sim: Simulation, node: str, pod_name: str) -> PodState | None:
    return sim.kubelets[node].pod_state(get_pod(sim, pod_name).metadata.uid)


def assert_gaps_between(times: Sequence[float], low_s: float, high_s: float) -> None:
    for earlier, later in itertools.pairwise(times):
        assert low_s <= later - earlier <= high_s, f"retry gap {later - earlier:.1f} s in {times}"


def unsuitable(context: PodSchedulingContext, entry: str) -> tuple[str, ...]:
    status = context.claim_status(entry)
    return () if status is None else status.unsuitable_nodes


class ContextLog:
    """Write hook that keeps every committed PodSchedulingContext of one pod, with its writer."""

    def __init__(self, sim: Simulation, pod_name: str) -> None:
        self.sim = sim
        self.pod_name = pod_name
        self.writes: list[tuple[float, str, PodSchedulingContext]] = []
        sim.world.add_write_hook(self._on_write)

    def _on_write(self, write: WriteRecord) -> None:
        obj = write.object
        if isinstance(obj, PodSchedulingContext) and obj.metadata.name == self.pod_name:
            self.writes.append((self.sim.world.now, self.sim.world.current_actor, obj))

    def by(self, actor: str) -> list[tuple[float, PodSchedulingContext]]:
        return [(time, ctx) for time, writer, ctx in self.writes if writer == actor]


# --------------------------------------------------------------------------------------
# The notation's defaults
# --------------------------------------------------------------------------------------


def test_devices_model_defaults_match_notation() -> None:
    """The devices model gives each claim one device and availableOnNodes naming its node. It sets
    shareable true for a user-created claim and false for a claim generated from a template."""
    sim = cluster({"n1": 2}, shared_claims=["shared"])
    create_at(
        sim,
        0.0,
        make_pod("user-claim", {"gpu": named("shared")}),
        make_pod("template-claim", {"gpu": from_template()}),
    )
    run_until(sim, 60)

    shared = get_claim(sim, "shared")
    generated = claim_of(sim, "template-claim", "gpu")
    for claim, shareable in ((shared, True), (generated, False)):
        allocation = claim.status.allocation
        assert allocation is not None
        assert allocation.shareable is shareable
        assert node_of(claim) == N1
        placed = devices_of(sim, claim)
        assert placed is not None
        assert placed[0] == N1
        assert len(placed[1]) == 1


# --------------------------------------------------------------------------------------
# Claim names generated from templates
# --------------------------------------------------------------------------------------


WITH_USER_CLAIM_IDS = ["templates-only", "plus-user-claim"]


def create_colliding_pods(sim: Simulation, with_user_claim: bool) -> None:
    """Create pod foo (entry bar-baz) at t=0 and pod foo-bar (entry baz) at t=1."""
    if with_user_claim:
        as_actor(
            sim,
            lambda: sim.world.api.create(
                ResourceClaim(
                    metadata=ObjectMeta(name="foo-bar-baz", namespace=NAMESPACE),
                    spec=ResourceClaimSpec(resource_class_name=CLASS),
                )
            ),
        )
    create_at(sim, 0.0, make_pod("foo", {"bar-baz": from_template()}))
    create_at(sim, 1.0, make_pod("foo-bar", {"baz": from_template()}))


@pytest.mark.parametrize("with_user_claim", [False, True], ids=WITH_USER_CLAIM_IDS)
def test_generated_claim_names_never_collide(with_user_claim: bool) -> None:
    """Pods whose `<pod>-<entry>` names coincide each get a claim with a random suffix, owned by the
    pod and recorded in its status, and both run on n1 on different devices. A user-created
    claim with the colliding name is never allocated or reserved."""
    sim = cluster({"n1": 2})
    create_colliding_pods(sim, with_user_claim)
    run_until(sim, 60)

    foo = claim_of(sim, "foo", "bar-baz")
    foo_bar = claim_of(sim, "foo-bar", "baz")
    assert foo.metadata.name != foo_bar.metadata.name
    for pod_name, claim in (("foo", foo), ("foo-bar", foo_bar)):
        assert claim.metadata.name.startswith("foo-bar-baz-")
        assert is_controlled_by(claim, get_pod(sim, pod_name).metadata.uid)
        assert get_pod(sim, pod_name).status.phase == "Running"
        assert get_pod(sim, pod_name).spec.node_name == N1
        assert reserved(claim) == [pod_name]
    foo_devices = devices_of(sim, foo)
    foo_bar_devices = devices_of(sim, foo_bar)
    assert foo_devices is not None
    assert foo_bar_devices is not None
    assert not set(foo_devices[1]) & set(foo_bar_devices[1])
    if with_user_claim:
        user_claim = record(sim, "foo-bar-baz")
        assert user_claim.allocations == 0
        assert user_claim.max_consumers == 0


@pytest.mark.parametrize("with_user_claim", [False, True], ids=WITH_USER_CLAIM_IDS)
def test_legacy_claim_names_collide_in_1_27(with_user_claim: bool) -> None:
    """With the 1.27 rule `<pod>-<entry>`, pod foo-bar finds foo-bar-baz owned by pod foo and stays
    Pending. A user-created claim of that name blocks pod foo as well, and no pod ever uses it."""
    sim = cluster({"n1": 2}, version="1.27")
    create_colliding_pods(sim, with_user_claim)
    run_until(sim, 60)

    foo_bar = get_pod(sim, "foo-bar")
    assert foo_bar.status.phase == "Pending"
    assert foo_bar.spec.node_name == ""
    assert "not created for pod default/foo-bar" in condition_message(foo_bar)
    assert all(row[5] != "Scheduled" for row in cycles(sim, "foo-bar"))
    claim = get_claim(sim, "foo-bar-baz")
    if with_user_claim:
        assert claim.metadata.owner_references == ()
        assert get_pod(sim, "foo").status.phase == "Pending"
        assert record(sim, "foo-bar-baz").allocations == 0
        assert record(sim, "foo-bar-baz").max_consumers == 0
    else:
        assert is_controlled_by(claim, get_pod(sim, "foo").metadata.uid)
        assert get_pod(sim, "foo").status.phase == "Running"
        assert reserved(claim) == ["foo"]
    assert claim_names(sim) == {"foo-bar-baz"}


@pytest.mark.parametrize("legacy_names", [False, True], ids=["status-names", "legacy-names"])
def test_driver_claim_name_rule(legacy_names: bool, caplog: pytest.LogCaptureFixture) -> None:
    """A driver that resolves template claims through the pod status allocates P's claim on n1
    and P runs. A driver built on the 1.27 helper finds no pending claim, so it never allocates
    or reports unsuitable nodes, and P stays Pending with n1 selected."""
    caplog.set_level(logging.DEBUG, logger="sim.cluster.driver")
    sim = cluster({"n1": 1}, driver={"legacy_claim_names": legacy_names})
    create_at(sim, 0.0, make_pod("p", {"gpu": from_template()}))
    run_until(sim, 120)

    pod = get_pod(sim, "p")
    claim = claim_of(sim, "p", "gpu")
    driver = sim.drivers[DRIVER]
    if not legacy_names:
        assert pod.status.phase == "Running"
        assert pod.spec.node_name == N1
        assert node_of(claim) == N1
        assert reserved(claim) == ["p"]
        return
    assert pod.status.phase == "Pending"
    assert pod.spec.node_name == ""
    assert claim.status.allocation is None
    context = get_context(sim, "p")
    assert context.spec.selected_node == N1
    assert context.status.resource_claims == ()
    assert driver.model_calls["allocate"] == 0
    assert driver.model_calls["unsuitable_nodes"] == 0
    assert "found no pending pod claims for default/p" in caplog.text


# --------------------------------------------------------------------------------------
# Releasing claims when their consumers are done
# --------------------------------------------------------------------------------------


def replay_finished_job_pod(version: str) -> Simulation:
    """P1 (restartPolicy Never) runs 5 s and stays as a Succeeded pod; P2 arrives at t=30."""
    sim = cluster({"n1": 1}, version=version)
    create_at(sim, 0.0, make_pod("p1", {"gpu": from_template()}, run_s=5.0))
    create_at(sim, 30.0, make_pod("p2", {"gpu": from_template()}))
    run_until(sim, 29.0)
    assert get_pod(sim, "p1").status.phase == "Succeeded"
    return sim


def test_finished_pod_releases_generated_claim() -> None:
    """A Succeeded pod that is not deleted loses its reservation, and its generated claim is
    deleted and deallocated once. P2 runs on n1 within a few seconds while P1 still exists."""
    sim = replay_finished_job_pod("1.29")
    run_until(sim, 60)

    p1_claim = generated_record(sim, "p1", "gpu")
    states = [(state, actor) for _time, state, actor in claim_events(sim, p1_claim.uid)]
    assert states == [
        ("Pending", "resourceclaim-controller"),
        ("Reserved", "driver/gpu.example.com"),
        ("DeallocationRequested", "resourceclaim-controller"),
        ("Deleting", "resourceclaim-controller"),
        ("Deleted", "driver/gpu.example.com"),
    ]
    assert p1_claim.deallocations == 1
    assert pod_exists(sim, "p1")
    assert get_pod(sim, "p1").status.phase == "Succeeded"

    p2 = get_pod(sim, "p2")
    assert p2.status.phase == "Running"
    assert p2.spec.node_name == N1
    assert sim.tracker.pods[p2.metadata.uid].running_s - 30.0 < 10.0
    assert generated_record(sim, "p2", "gpu").nodes == [N1]


def test_finished_pod_keeps_claim_in_1_27() -> None:
    """Before the fix a Succeeded pod kept its generated claim reserved and allocated, so P2 stayed
    Pending with n1 unsuitable. P2 ran on n1 only after P1 was deleted at t=100."""
    sim = replay_finished_job_pod("1.27")
    delete_at(sim, 100.0, "p1")
    run_until(sim, 99.0)

    p1_claim = get_claim(sim, "p1-gpu")
    assert reserved(p1_claim) == ["p1"]
    assert node_of(p1_claim) == N1
    assert get_pod(sim, "p2").status.phase == "Pending"
    assert "unsuitable" in condition_message(get_pod(sim, "p2"))

    run_until(sim, 160)
    assert "p1-gpu" not in claim_names(sim)
    assert get_pod(sim, "p2").status.phase == "Running"
    assert get_pod(sim, "p2").spec.node_name == N1
    assert sim.tracker.pods[get_pod(sim, "p2").metadata.uid].running_s > 100.0


def replay_named_claim_handover(version: str) -> Simulation:
    """P1 uses named claim C from t=0 and is deleted at t=20; P2 with a template arrives at t=21."""
    sim = cluster({"n1": 1}, version=version, shared_claims=["c"])
    create_at(sim, 0.0, make_pod("p1", {"gpu": named("c")}))
    delete_at(sim, 20.0, "p1")
    create_at(sim, 21.0, make_pod("p2", {"gpu": from_template()}))
    run_until(sim, 19.0)
    assert get_pod(sim, "p1").status.phase == "Running"
    assert node_of(get_claim(sim, "c")) == N1
    run_until(sim, 90)
    return sim


def test_named_claim_deallocated_after_last_consumer() -> None:
    """When the last consumer of a user-created WaitForFirstConsumer claim is deleted, the
    controller sets deallocationRequested and the driver clears it with the allocation. P2 then
    runs on n1, and C stays unallocated without a consumer."""
    sim = replay_named_claim_handover("1.29")

    c = get_claim(sim, "c")
    assert c.status.allocation is None
    assert not c.status.deallocation_requested
    assert reserved(c) == []
    c_record = record(sim, "c")
    assert (c_record.allocations, c_record.deallocations) == (1, 1)
    states = [(state, actor) for _time, state, actor in claim_events(sim, c.metadata.uid)]
    requested = states.index(("DeallocationRequested", "resourceclaim-controller"))
    assert states[requested + 1] == ("Pending", "driver/gpu.example.com")
    driver_status_writes = [
        row
        for row in sim.world.recorder.api_requests
        if row[1] == f"driver/{DRIVER}"
        and row[3] == "resourceclaims"
        and row[5] == "c"
        and row[6] == "status"
        and row[7] == 200
    ]
    # One write allocates, and one clears the allocation together with the request.
    assert len(driver_status_writes) == 2

    p2 = get_pod(sim, "p2")
    assert p2.status.phase == "Running"
    assert p2.spec.node_name == N1


def test_named_claim_stays_allocated_in_1_27() -> None:
    """Before the fix nothing deallocated a named claim whose reservedFor became empty. C keeps the
    only device of n1 and P2 stays Pending."""
    sim = replay_named_claim_handover("1.27")

    c = get_claim(sim, "c")
    assert node_of(c) == N1
    assert reserved(c) == []
    assert record(sim, "c").deallocations == 0
    p2 = get_pod(sim, "p2")
    assert p2.status.phase == "Pending"
    assert "unsuitable" in condition_message(p2)


@pytest.mark.parametrize("p2_created_first", [True, False], ids=["shared-first", "template-first"])
def test_second_pod_waits_for_only_device(p2_created_first: bool) -> None:
    """On a node with one device, the pod scheduled first runs and the other stays Pending, with
    n1 unsuitable for its claim and a scheduling message that reports it. Deleting the running
    pod at t=100 deallocates its claim, and the other pod then runs on n1."""
    sim = cluster({"n1": 1}, shared_claims=["c"])
    pods = [make_pod("p2", {"gpu": named("c")}), make_pod("p1", {"gpu": from_template()})]
    create_at(sim, 0.0, *(pods if p2_created_first else reversed(pods)))
    run_until(sim, 99.0)

    running = [name for name in ("p1", "p2") if get_pod(sim, name).status.phase == "Running"]
    assert len(running) == 1
    first = running[0]
    second = "p1" if first == "p2" else "p2"

    def claim_used_by(pod_name: str) -> ResourceClaim:
        return get_claim(sim, "c") if pod_name == "p2" else claim_of(sim, "p1", "gpu")

    assert node_of(claim_used_by(first)) == N1
    assert reserved(claim_used_by(first)) == [first]
    assert claim_used_by(second).status.allocation is None
    waiting = get_pod(sim, second)
    assert waiting.status.phase == "Pending"
    assert "resourceclaim cannot be allocated for the node (unsuitable)" in condition_message(
        waiting
    )
    context = get_context(sim, second)
    assert unsuitable(context, "gpu") == (N1,)

    delete_at(sim, 100.0, first)
    run_until(sim, 160)
    if first == "p2":
        c = get_claim(sim, "c")
        assert c.status.allocation is None
        assert record(sim, "c").deallocations == 1
    else:
        assert generated_record(sim, "p1", "gpu").deallocations == 1
    assert get_pod(sim, second).status.phase == "Running"
    assert node_of(claim_used_by(second)) == N1
    assert reserved(claim_used_by(second)) == [second]


# --------------------------------------------------------------------------------------
# Pods created with spec.nodeName
# --------------------------------------------------------------------------------------


def replay_pods_with_node_name(version: str) -> Simulation:
    """Q (nodeName n1) and R (nodeName n2, no devices) use a template each from t=0."""
    sim = cluster({"n1": 1, "n2": 0}, version=version)
    create_at(
        sim,
        0.0,
        make_pod("q", {"gpu": from_template()}, node_name=N1),
        make_pod("r", {"gpu": from_template()}, node_name=N2),
    )
    run_until(sim, 90)
    return sim


def test_controller_allocates_for_bound_pod() -> None:
    """For pods created with nodeName the controller creates PodSchedulingContexts that only
    select that node, so Q's claim is allocated on n1 and reserved, and Q runs. R's claim cannot
    be allocated on n2, so R never starts, and deleting R removes its claim and context."""
    sim = replay_pods_with_node_name("1.29")

    q_claim = claim_of(sim, "q", "gpu")
    assert node_of(q_claim) == N1
    assert reserved(q_claim) == ["q"]
    assert get_pod(sim, "q").status.phase == "Running"
    created = [
        row
        for row in sim.world.recorder.api_requests
        if row[1] == "resourceclaim-controller"
        and row[2] == "create"
        and row[3] == "podschedulingcontexts"
        and row[7] == 201
    ]
    assert sorted(row[5] for row in created) == ["q", "r"]
    assert cycles(sim, "q") == []

    r_context = get_context(sim, "r")
    assert r_context.spec.selected_node == N2
    assert r_context.spec.potential_nodes == ()
    assert claim_of(sim, "r", "gpu").status.allocation is None
    assert get_pod(sim, "r").status.phase == "Pending"
    assert kubelet_events(sim, "r", "Started") == []
    driver_failures = [w for w in sim.drivers[DRIVER].warnings if "default/r" in w.object]
    assert len(driver_failures) >= 3
    assert all("no devices on node 'n2-0'" in w.message for w in driver_failures)

    r_claim = claim_of(sim, "r", "gpu").metadata.name
    delete_at(sim, 100.0, "r")
    run_until(sim, 120)
    assert r_claim not in claim_names(sim)
    assert not any(c.metadata.name == "r" for c in sim.world.api.list("PodSchedulingContext").items)


def test_bound_pod_stuck_in_1_27() -> None:
    """Before the fix only kube-scheduler asked for allocation. A pod created with nodeName kept an
    unallocated claim and never started, even on a node with a free device."""
    sim = replay_pods_with_node_name("1.27")

    for name in ("q", "r"):
        assert get_claim(sim, f"{name}-gpu").status.allocation is None
        assert get_pod(sim, name).status.phase == "Pending"
        assert kubelet_events(sim, name, "Started") == []
    assert sim.world.api.list("PodSchedulingContext").items == ()


# --------------------------------------------------------------------------------------
# The node side: prepare failures, kubelet crashes and reboots
# --------------------------------------------------------------------------------------


def replace_plugin(sim: Simulation, node: str, faults: NodePluginFaults) -> NodePlugin:
    """Register a fresh plugin with faults for the driver on `node` (before the run starts)."""
    plugin = NodePlugin(sim.world, node, DRIVER, faults=faults)
    sim.kubelets[node].register_plugin(plugin)
    return plugin


@pytest.mark.parametrize("cleared_at_s", [60.0, 300.0], ids=["cleared-at-60s", "cleared-at-300s"])
def test_failed_prepare_reported_and_retried(cleared_at_s: float) -> None:
    """A plugin rejects NodePrepareResources until the fault clears, while P's claim stays
    allocated and reserved on n1. The kubelet records one FailedPrepareDynamicResources per
    attempt, 60-90 s apart, and P runs on the first retry after the fault clears."""
    sim = cluster({"n1": 1})
    replace_plugin(sim, N1, NodePluginFaults(fail_prepare_windows_s=((0.0, cleared_at_s),)))
    create_at(sim, 0.0, make_pod("p", {"gpu": from_template()}))
    run_until(sim, cleared_at_s - 1.0)

    assert get_pod(sim, "p").spec.node_name == N1
    assert get_pod(sim, "p").status.phase == "Pending"
    assert kubelet_state(sim, N1, "p") == PodState.CONTAINER_CREATING
    claim = claim_of(sim, "p", "gpu")
    assert node_of(claim) == N1
    assert reserved(claim) == ["p"]

    run_until(sim, cleared_at_s + 100.0)
    failures = kubelet_events(sim, "p", "FailedPrepareDynamicResources")
    prepare_calls = plugin_calls(sim, N1, "NodePrepare", claim.metadata.uid)
    failed_calls = [call for call in prepare_calls if any(call.errors)]
    assert len(failures) == len(failed_calls) >= 1
    assert all(time < cleared_at_s for time in failures)
    started = kubelet_events(sim, "p", "Started")
    assert len(started) == 1
    assert_gaps_between([*failures, started[0]], 60.0, 90.0)
    assert started[0] >= cleared_at_s
    assert get_pod(sim, "p").status.phase == "Running"
    assert [row[5] for row in cycles(sim, "p")].count("Scheduled") == 1
    assert generated_record(sim, "p", "gpu").deallocations == 0


def test_unpreparable_device_leaves_pod_creating() -> None:
    """The driver allocates 7 devices on n1, but the node can prepare only 6. All 7 claims stay
    allocated and reserved, 6 pods run, and 1 stays ContainerCreating with repeated prepare
    failures, without any rescheduling or deallocation."""
    sim = cluster({"n1": 7})
    replace_plugin(sim, N1, NodePluginFaults(max_devices=6))
    names = [f"worker-{index}" for index in range(7)]
    create_at(sim, 0.0, *(make_pod(name, {"gpu": from_template()}) for name in names))
    run_until(sim, 300)

    for name in names:
        claim = claim_of(sim, name, "gpu")
        assert node_of(claim) == N1
        assert reserved(claim) == [name]
        assert [row[5] for row in cycles(sim, name)].count("Scheduled") == 1
        assert generated_record(sim, name, "gpu").deallocations == 0
    states = {name: kubelet_state(sim, N1, name) for name in names}
    stuck = [name for name, state in states.items() if state == PodState.CONTAINER_CREATING]
    assert list(states.values()).count(PodState.RUNNING) == 6
    assert len(stuck) == 1
    assert get_pod(sim, stuck[0]).status.phase == "Pending"
    assert len(kubelet_events(sim, stuck[0], "FailedPrepareDynamicResources")) >= 3


def crash_after_first_prepare(sim: Simulation, down_s: float) -> None:
    """Crash n1's kubelet after the first successful prepare, before it writes its checkpoint."""
    replace_plugin(sim, N1, NodePluginFaults(max_devices=1))
    sim.kubelets[N1].faults = NodeFaults(crash_before_checkpoint_at_s=0.0, crash_down_s=down_s)


def test_crash_before_checkpoint_unprepares_once() -> None:
    """The kubelet crashes between a successful prepare and its checkpoint and restarts 1 s later.
    Deleting P1 at t=30 sends exactly one unprepare for its claim, the claim is deleted and
    deallocated, and P2 runs on n1."""
    sim = cluster({"n1": 1})
    crash_after_first_prepare(sim, down_s=1.0)
    create_at(sim, 0.0, make_pod("p1", {"gpu": from_template()}))
    delete_at(sim, 30.0, "p1")
    create_at(sim, 31.0, make_pod("p2", {"gpu": from_template()}))
    run_until(sim, 90)

    p1_claim = generated_record(sim, "p1", "gpu")
    # The restarted kubelet prepares the claim again before it creates the sandbox.
    assert len(plugin_calls(sim, N1, "NodePrepare", p1_claim.uid)) == 2
    assert len(plugin_calls(sim, N1, "NodeUnprepare", p1_claim.uid)) == 1
    assert p1_claim.deallocations == 1
    assert p1_claim.uid not in {c.metadata.uid for c in sim.world.api.list("ResourceClaim").items}
    assert get_pod(sim, "p2").status.phase == "Running"
    assert get_pod(sim, "p2").spec.node_name == N1


@pytest.mark.parametrize(
    "checkpoint_before_prepare", [True, False], ids=["checkpoint-first", "checkpoint-after-call"]
)
def test_pod_deleted_while_kubelet_down(checkpoint_before_prepare: bool) -> None:
    """The kubelet crashes between a successful prepare and its checkpoint, and P1 is deleted while
    it is down. With the checkpoint written first the restarted kubelet unprepares P1's claim
    once and P2 runs on n1. With the old order nothing unprepares the claim, so the plugin
    keeps the device prepared and P2's prepare keeps failing, although the control plane shows
    the device free."""
    sim = cluster({"n1": 1}, kubelet={"checkpoint_before_prepare": checkpoint_before_prepare})
    crash_after_first_prepare(sim, down_s=20.0)
    kubelet_down_at_deletion: list[bool] = []
    create_at(sim, 0.0, make_pod("p1", {"gpu": from_template()}))

    def delete_p1() -> None:
        kubelet_down_at_deletion.append(not sim.kubelets[N1].running)
        sim.world.api.delete("Pod", "p1", NAMESPACE)

    at(sim, 10.0, delete_p1)
    create_at(sim, 40.0, make_pod("p2", {"gpu": from_template()}))
    run_until(sim, 250)

    assert kubelet_down_at_deletion == [True]
    p1_claim = generated_record(sim, "p1", "gpu")
    assert p1_claim.deallocations == 1
    p2_claim = claim_of(sim, "p2", "gpu")
    assert node_of(p2_claim) == N1
    assert reserved(p2_claim) == ["p2"]
    unprepares = plugin_calls(sim, N1, "NodeUnprepare", p1_claim.uid)
    p2_failures = kubelet_events(sim, "p2", "FailedPrepareDynamicResources")
    if checkpoint_before_prepare:
        assert len(unprepares) == 1
        assert p2_failures == []
        assert get_pod(sim, "p2").status.phase == "Running"
        return
    assert unprepares == []
    assert p1_claim.uid in sim.kubelets[N1].plugins[DRIVER].prepared_claims()
    assert len(p2_failures) >= 2
    assert kubelet_state(sim, N1, "p2") == PodState.CONTAINER_CREATING
    failed = plugin_calls(sim, N1, "NodePrepare", p2_claim.metadata.uid)
    assert all("1 of 1 in use" in call.errors[0] for call in failed)


@pytest.mark.parametrize("prepare_again", [True, False], ids=["prepare-again", "trust-checkpoint"])
def test_node_reboot_prepares_claims_again(prepare_again: bool) -> None:
    """A node reboot at t=100 wipes the plugin state but keeps the checkpoint. The kubelet that is
    back at t=110 prepares P's claim again and P runs again, while a kubelet that trusts its
    checkpoint skips the call and P is stuck in CreateContainerError."""
    sim = cluster({"n1": 1}, kubelet={"prepare_again_after_restart": prepare_again})
    sim.kubelets[N1].reboot(100.0, 10.0)
    create_at(sim, 0.0, make_pod("p", {"gpu": from_template()}, restart_policy="Always"))
    run_until(sim, 99.0)
    assert kubelet_state(sim, N1, "p") == PodState.RUNNING
    run_until(sim, 200)

    claim = claim_of(sim, "p", "gpu")
    prepares = [call.start_s for call in plugin_calls(sim, N1, "NodePrepare", claim.metadata.uid)]
    sandbox_changed = kubelet_events(sim, "p", "SandboxChanged")
    assert len(sandbox_changed) == 1
    assert 100.0 <= sandbox_changed[0] <= 111.0
    assert node_of(claim) == N1
    assert reserved(claim) == ["p"]
    if prepare_again:
        assert len(prepares) == 2
        assert prepares[1] >= 110.0
        assert kubelet_state(sim, N1, "p") == PodState.RUNNING
        assert kubelet_events(sim, "p", "CreateContainerError") == []
        return
    assert len(prepares) == 1
    assert kubelet_state(sim, N1, "p") == PodState.CONTAINER_CREATING
    assert len(kubelet_events(sim, "p", "CreateContainerError")) >= 3


# --------------------------------------------------------------------------------------
# The driver's node checks and the PodSchedulingContext protocol
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "library", "counts_twice"),
    [
        ("test-devices-fail-once", "0.29", False),
        # The devices model counts an allocated claim only through the devices it uses,
        # so the allocated claims that the 0.28 library also passes do no harm.
        ("test-devices-fail-once", "0.28", False),
        ("test-node-local-fail-once", "0.29", False),
        ("test-node-local-fail-once", "0.28", True),
    ],
    ids=["devices-0.29", "devices-0.28", "node-local-0.29", "node-local-0.28"],
)
def test_allocated_claim_not_counted_twice(model: str, library: str, counts_twice: bool) -> None:
    """The driver allocates P/a on n1 (2 devices), but its first Allocate of P/b fails. The 0.29
    library then checks only the pending P/b, so n1 stays suitable and P runs with both devices.
    The 0.28 library also passes P/a, which the Kubernetes test driver counts twice, so it
    reports n1 unsuitable for P/b and P stays Pending."""
    settings: dict[str, Any] = (
        {"nodes": {N1: 2}}
        if model == "test-devices-fail-once"
        else {"nodes": [N1], "max_claims_per_node": 2}
    )
    sim = cluster(
        {"n1": 2},
        driver={
            "model": model,
            "library_version": library,
            "model_settings": {**settings, "fail_once": ["b"]},
        },
    )
    log = ContextLog(sim, "p")
    create_at(sim, 0.0, make_pod("p", {"a": from_template(), "b": from_template()}))
    run_until(sim, 120)

    claim_a = claim_of(sim, "p", "a")
    claim_b = claim_of(sim, "p", "b")
    transient = [w for w in sim.drivers[DRIVER].warnings if "transient error" in w.message]
    assert len(transient) == 1
    assert claim_b.metadata.name in transient[0].message
    assert node_of(claim_a) == N1
    assert generated_record(sim, "p", "a").deallocations == 0
    reports = [unsuitable(ctx, "b") for _time, ctx in log.by(f"driver/{DRIVER}")]
    pod = get_pod(sim, "p")
    if counts_twice:
        assert (N1,) in reports
        assert claim_b.status.allocation is None
        assert pod.status.phase == "Pending"
        assert "unsuitable" in condition_message(pod)
        return
    assert all(N1 not in nodes for nodes in reports)
    assert node_of(claim_b) == N1
    assert pod.status.phase == "Running"
    assert pod.spec.node_name == N1
    devices_a = devices_of(sim, claim_a)
    devices_b = devices_of(sim, claim_b)
    assert devices_a is not None
    assert devices_b is not None
    assert not set(devices_a[1]) & set(devices_b[1])


def inject_context(sim: Simulation, pod: Pod, selected: str, potential: Iterable[str]) -> None:
    """Create the pod and a PodSchedulingContext for it, as a faulty scheduler would write it."""

    def create() -> None:
        created = sim.world.api.create(pod)
        owner = OwnerReference(
            api_version="v1",
            kind="Pod",
            name=pod.metadata.name,
            uid=created.metadata.uid,
            controller=True,
        )
        sim.world.api.create(
            PodSchedulingContext(
                metadata=ObjectMeta(
                    name=pod.metadata.name, namespace=NAMESPACE, owner_references=(owner,)
                ),
                spec=PodSchedulingContextSpec(
                    selected_node=selected, potential_nodes=tuple(potential)
                ),
            )
        )

    at(sim, 0.0, create)


def label_nodes_at(sim: Simulation, time_s: float, labels: dict[str, str]) -> None:
    """Add labels to every node at `time_s`, as a node provisioner marking nodes ready would."""

    def label() -> None:
        for node in sim.world.api.list("Node").items:
            sim.world.api.update(node.with_meta(labels={**node.metadata.labels, **labels}))

    at(sim, time_s, label)


def test_selected_node_outside_potential_nodes() -> None:
    """A PodSchedulingContext selects n1 (no devices) but lists only n2 and n3 as potential nodes.
    The driver also checks the selected node, so it reports n1 unsuitable without trying to
    allocate there, and once the nodes are ready at t=5 P runs on n2 or n3."""
    sim = cluster({"n1": 0, "n2": 1, "n3": 1})
    log = ContextLog(sim, "p")
    ready = {"provisioner.example.com/ready": "true"}
    pod = make_pod("p", {"gpu": from_template()})
    pod = pod.model_copy(update={"spec": pod.spec.model_copy(update={"node_selector": ready})})
    inject_context(sim, pod, N1, [N2, N3])
    label_nodes_at(sim, 5.0, ready)
    run_until(sim, 5.0)

    assert log.by("kube-scheduler") == []
    driver_writes = log.by(f"driver/{DRIVER}")
    assert len(driver_writes) == 1
    assert driver_writes[0][1].spec.selected_node == N1
    assert unsuitable(driver_writes[0][1], "gpu") == (N1,)

    run_until(sim, 60)
    assert not any(N1 in warning.message for warning in sim.drivers[DRIVER].warnings)
    scheduled = get_pod(sim, "p")
    assert scheduled.status.phase == "Running"
    assert scheduled.spec.node_name in (N2, N3)
    assert node_of(claim_of(sim, "p", "gpu")) == scheduled.spec.node_name


@pytest.mark.parametrize("library", ["0.29", "0.28"])
def test_driver_alone_with_faulty_context(library: str) -> None:
    """The pod names a scheduler that does not exist, so only the driver reacts to the faulty
    context. The 0.29 library reports n1 unsuitable and stops, while the 0.28 library keeps
    failing to allocate on n1, never reports it, and P stays Pending."""
    sim = cluster({"n1": 0, "n2": 1, "n3": 1}, driver={"library_version": library})
    pod = make_pod("p", {"gpu": from_template()}, scheduler_name="autoscaler-experiment")
    inject_context(sim, pod, N1, [N2, N3])
    run_until(sim, 120)

    context = get_context(sim, "p")
    failures = [w for w in sim.drivers[DRIVER].warnings if "no devices on node 'n1-0'" in w.message]
    assert claim_of(sim, "p", "gpu").status.allocation is None
    assert get_pod(sim, "p").status.phase == "Pending"
    if library == "0.29":
        assert unsuitable(context, "gpu") == (N1,)
        assert failures == []
        return
    assert context.status.resource_claims == ()
    assert len(failures) >= 5
    assert sim.drivers[DRIVER].model_calls["allocate"] == len(failures)


def allocate_as_driver(sim: Simulation, claim_name: str, node: str) -> None:
    """Allocate a claim on `node` through the driver's model and write it as the driver would."""
    driver = sim.drivers[DRIVER]
    api = sim.world.api
    claim = get_claim(sim, claim_name)
    resource_class = api.get("ResourceClass", CLASS)
    assert isinstance(resource_class, ResourceClass)
    request = ClaimAllocation("", claim, resource_class)
    driver.model.allocate([request], node)
    assert request.allocation is not None, request.error

    def write() -> None:
        protected = api.update(claim.with_meta(finalizers=(driver.finalizer,)))
        api.update_status(protected.with_status(allocation=request.allocation, driver_name=DRIVER))

    as_actor(sim, write, actor=driver.component)


def test_reallocation_clears_selected_node_first() -> None:
    """Named claim C is left allocated on n1 (one device) when P arrives with C and a template, so
    PostFilter clears selectedNode before it requests deallocation of C. C is deallocated exactly
    once, and both claims end up on n2 (two devices), where P runs."""
    sim = cluster({"n1": 1, "n2": 2}, shared_claims=["c"])
    allocate_as_driver(sim, "c", N1)
    log = ContextLog(sim, "p")
    create_at(sim, 1.0, make_pod("p", {"c": named("c"), "t": from_template()}))
    run_until(sim, 120)

    c = get_claim(sim, "c")
    c_record = record(sim, "c")
    assert c_record.deallocations == 1
    assert c_record.nodes == [N1, N2]
    requested = [
        time
        for time, state, actor in claim_events(sim, c.metadata.uid)
        if state == "DeallocationRequested" and actor == "kube-scheduler"
    ]
    assert len(requested) == 1
    cleared = [
        time
        for time, ctx in log.by("kube-scheduler")
        if ctx.spec.selected_node == "" and time <= requested[0]
    ]
    assert cleared
    assert c_record.allocations == 2
    assert sim.drivers[DRIVER].model_calls["deallocate"] == 1
    selections = [ctx.spec.selected_node for _time, ctx in log.by("kube-scheduler")]
    assert [node for node in selections if node][-1] == N2
    assert node_of(c) == N2
    assert node_of(claim_of(sim, "p", "t")) == N2
    pod = get_pod(sim, "p")
    assert pod.status.phase == "Running"
    assert pod.spec.node_name == N2
    assert reserved(c) == ["p"]


@pytest.mark.parametrize(
    ("version", "failed_result"),
    [("1.29", "Unschedulable"), ("1.28", "Error")],
    ids=["1.29-unschedulable", "1.28-error"],
)
def test_missing_class_keeps_pods_pending(version: str, failed_result: str) -> None:
    """Two pods share claim C of class `gpu`, which does not exist, so both stay Pending with a
    message naming the class and nothing is allocated (1.29 waits as unschedulable, 1.28
    parks the Error). The class appears at t=30: 1.29 retries on the class event, 1.28 has no
    ResourceClass event and retries at the 5-minute unschedulable sweep. Then C is allocated on
    n1 as shareable with both pods running there and reserving it."""
    sim = cluster({"n1": 2}, version=version, with_class=False)
    as_actor(
        sim,
        lambda: sim.world.api.create(
            ResourceClaim(
                metadata=ObjectMeta(name="c", namespace=NAMESPACE),
                spec=ResourceClaimSpec(resource_class_name=CLASS),
            )
        ),
    )
    create_at(sim, 0.0, make_pod("p1", {"gpu": named("c")}), make_pod("p2", {"gpu": named("c")}))
    at(
        sim,
        30.0,
        lambda: sim.world.api.create(
            ResourceClass(metadata=ObjectMeta(name=CLASS), driver_name=DRIVER)
        ),
    )
    run_until(sim, 29.9)

    for name in ("p1", "p2"):
        pod = get_pod(sim, name)
        assert pod.status.phase == "Pending"
        assert "resource class gpu does not exist" in condition_message(pod)
        assert {row[5] for row in cycles(sim, name)} == {failed_result}
    assert get_claim(sim, "c").status.allocation is None

    run_until(sim, 90 if version == "1.29" else 400)
    c = get_claim(sim, "c")
    assert record(sim, "c").first_allocated_s >= 30.0
    assert c.status.allocation is not None
    assert c.status.allocation.shareable is True
    assert node_of(c) == N1
    assert sorted(reserved(c)) == ["p1", "p2"]
    for name in ("p1", "p2"):
        assert get_pod(sim, name).status.phase == "Running"
        assert get_pod(sim, name).spec.node_name == N1
        retry = min(row[0] for row in cycles(sim, name) if row[0] >= 30.0)
        # 1.28 parks the Error until the sweep moves pods that waited 5 minutes (every 30 s).
        limit = MAX_BACKOFF_S + BACKOFF_FLUSH_S if version == "1.29" else 300.0 + 30.0
        assert retry - 30.0 <= limit


# --------------------------------------------------------------------------------------
# Scheduling latency of pods that wait for their generated claims
# --------------------------------------------------------------------------------------


def test_ungated_pod_scheduled_without_backoff() -> None:
    """kube-scheduler 1.29 never treats a pod that PreEnqueue gated as backing off, so the first
    attempt follows right after the controller records the generated claim's name."""
    sim = cluster({"n1": 1})
    create_at(sim, 0.0, make_pod("p", {"gpu": from_template()}))
    run_until(sim, 10)

    recorded = [
        row[0]
        for row in sim.world.recorder.api_requests
        if row[1] == "resourceclaim-controller" and row[3] == "pods" and row[6] == "status"
    ]
    first_attempt = cycles(sim, "p")[0][0]
    assert first_attempt - recorded[0] < 0.1
