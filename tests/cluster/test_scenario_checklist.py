"""The scenario checklist of classic DRA, run end to end on the whole simulated control plane.

Each test builds a small cluster from a scenario: kube-scheduler, the
resourceclaim controller, the garbage collector, driver controllers with the
`node-local` model (the Kubernetes test driver) and one kubelet per node. It
replays a short timeline and checks the end state and the key steps:
scheduling attempts per pod from `recorder.cycles`, who wrote what in which
order from `recorder.api_requests`, and allocations and deallocations from
the driver models. The checklist items are, in order:

1. one template claim: the write sequence, attempts per version, clean-up;
2. first selected node full: the driver reports it unsuitable, 3 attempts;
3. four claims from two drivers: no node is selected before both drivers answer;
4. and 5. an Immediate claim shared by five pods, exclusive and shareable;
6. a user WaitForFirstConsumer claim is deallocated when its consumer finishes (1.28+);
7. a ResourceClass created after the pod;
8. class suitableNodes changing from no node to every node;
9. a pod created with spec.nodeName;
10. NodePrepareResources failing for a while;
11. reallocation when the second driver fails on the selected node;
12. and 13. reduced scheduler_perf workloads, including more than 128 nodes;
14. a force-deleted running pod is still unprepared;
15. queueing hints on versus off in 1.29.

Timing: every API request takes 4 ms and every watch event arrives 2 ms after
its commit; the driver and kubelet plugin calls take no time unless a test sets
a latency.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Generator, Sequence
from typing import Any

import pytest
import simpy

from sim.api.server import WriteRecord
from sim.api.types import (
    ClaimSource,
    Container,
    NodeSelector,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    ObjectMeta,
    Pod,
    PodResourceClaim,
    PodSpec,
    ResourceClaim,
    ResourceClaimRef,
    ResourceClaimSpec,
    ResourceClaimTemplate,
    ResourceClaimTemplateSpec,
    ResourceClass,
    ResourceRequirements,
)
from sim.cluster.client import APIClient
from sim.cluster.kubelet import RUN_DURATION_ANNOTATION, NodePlugin, NodePluginFaults
from sim.scenario import parse_scenario
from sim.simulation import Simulation, build

NS = "default"
GPU = "gpu.example.com"
NIC = "nic.example.com"
SCHEDULER = "kube-scheduler"
CONTROLLER = "resourceclaim-controller"


# --------------------------------------------------------------------------------------
# Building clusters and replaying timelines
# --------------------------------------------------------------------------------------


def pool(
    name: str,
    count: int = 1,
    *,
    devices: dict[str, int] | None = None,
    taints: Sequence[dict[str, str]] = (),
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "count": count, "taints": list(taints)}
    if devices:
        spec["devices"] = {driver: {"count": number} for driver, number in devices.items()}
    if labels:
        spec["labels"] = labels
    return spec


def cluster(
    pools: Sequence[dict[str, Any]],
    *,
    version: str = "1.29",
    hints: bool = False,
    drivers: Sequence[str] = (GPU,),
    driver_settings: dict[str, dict[str, Any]] | None = None,
    classes: Sequence[dict[str, Any]] | None = None,
    shared_claims: Sequence[dict[str, Any]] = (),
    workloads: Sequence[dict[str, Any]] = (),
    scheduler: dict[str, Any] | None = None,
    seed: int = 1,
) -> Simulation:
    """Build a cluster whose drivers use the node-local model and whose classes are named
    after their drivers; templates `<driver>-template` are created for every driver."""
    settings = driver_settings or {}
    scenario = parse_scenario(
        {
            "seed": seed,
            "cluster": {"node_pools": list(pools)},
            "drivers": [
                {"name": driver, "model": "node-local", **settings.get(driver, {})}
                for driver in drivers
            ],
            "resource_classes": list(classes)
            if classes is not None
            else [{"name": driver, "driver_name": driver} for driver in drivers],
            "control_plane": {
                "kubernetes_version": version,
                "queueing_hints": hints,
                "scheduler": scheduler or {},
            },
            "shared_claims": list(shared_claims),
            "workloads": list(workloads),
        }
    )
    sim = build(scenario, check_invariants=True)
    world = sim.world
    world.current_actor, world.current_reason = "test", "claim template"
    for driver in drivers:
        world.api.create(
            ResourceClaimTemplate(
                metadata=ObjectMeta(name=f"{driver}-template", namespace=NS),
                spec=ResourceClaimTemplateSpec(spec=ResourceClaimSpec(resource_class_name=driver)),
            )
        )
    return sim


def pod_with_claims(
    name: str,
    claims: dict[str, ClaimSource],
    *,
    run_s: float | None = None,
    node_name: str = "",
) -> Pod:
    annotations = {} if run_s is None else {RUN_DURATION_ANNOTATION: repr(float(run_s))}
    refs = tuple(ResourceClaimRef(name=entry) for entry in claims)
    return Pod(
        metadata=ObjectMeta(name=name, namespace=NS, annotations=annotations),
        spec=PodSpec(
            node_name=node_name,
            restart_policy="Never",
            containers=(Container(name="main", resources=ResourceRequirements(claims=refs)),),
            resource_claims=tuple(
                PodResourceClaim(name=entry, source=source) for entry, source in claims.items()
            ),
        ),
    )


def template(driver: str = GPU) -> ClaimSource:
    return ClaimSource(resource_claim_template_name=f"{driver}-template")


def named(claim: str) -> ClaimSource:
    return ClaimSource(resource_claim_name=claim)


def at(sim: Simulation, time_s: float, action: Callable[[], object]) -> None:
    """Run `action` (direct API server calls) as the user at simulated time `time_s`."""
    env = sim.world.env

    def step() -> Generator[simpy.Event, Any, None]:
        yield env.timeout(time_s - env.now)
        sim.world.current_actor, sim.world.current_reason = "user", "test step"
        action()

    env.process(step())


def create_as_user(sim: Simulation, time_s: float, pod: Pod) -> None:
    """Create a pod through an API client named "user", so the request log shows it."""
    client = APIClient(sim.world, "user")
    env = sim.world.env

    def step() -> Generator[simpy.Event, Any, None]:
        yield env.timeout(time_s - env.now)
        yield from client.create(pod, reason="user creates pod")

    env.process(step())


def run_until(sim: Simulation, time_s: float) -> None:
    sim.world.env.run(until=time_s)


class WriteLog:
    """Every committed write of one kind, with the simulated time and the writer."""

    def __init__(self, sim: Simulation, kind: str) -> None:
        self.sim = sim
        self.records: list[tuple[float, str, WriteRecord]] = []

        def hook(record: WriteRecord) -> None:
            if record.kind == kind:
                self.records.append((sim.world.now, sim.world.current_actor, record))

        sim.world.add_write_hook(hook)

    def objects(self, name: str | None = None) -> list[tuple[float, str, str, Any]]:
        """Return (time, writer, verb/subresource, object) of the writes of one object."""
        return [
            (time, actor, f"{record.verb}/{record.subresource}", record.object)
            for time, actor, record in self.records
            if name is None or record.name == name
        ]

    def deallocation_requests(self) -> list[tuple[float, str, str]]:
        """Return (time, writer, claim name) of each claim write that set deallocationRequested."""
        requested: dict[str, bool] = {}
        found = []
        for time, actor, record in self.records:
            if record.object is None:
                continue
            now = bool(record.object.status.deallocation_requested)
            if now and not requested.get(record.name, False):
                found.append((time, actor, record.name))
            requested[record.name] = now
        return found


# --------------------------------------------------------------------------------------
# Reading the outcome
# --------------------------------------------------------------------------------------


def attempts(sim: Simulation, pod: str) -> list[tuple[float, str, str]]:
    """Return (start time, result, message) of each scheduling attempt of a pod."""
    return [(row[0], row[5], row[7]) for row in sim.world.recorder.cycles if row[2] == pod]


def writes(sim: Simulation, until_s: float | None = None) -> list[tuple[str, str, str, str]]:
    """Return (component, verb, resource, subresource) of every write request, in order."""
    return [
        (row[1], row[2], row[3], row[6])
        for row in sim.world.recorder.api_requests
        if row[9] and (until_s is None or row[0] <= until_s)
    ]


def get_pod(sim: Simulation, name: str) -> Pod:
    pod: Pod = sim.world.api.get("Pod", name, NS)
    return pod


def claims_of(sim: Simulation, pod: str) -> list[ResourceClaim]:
    """Return the claims generated for a pod (controlled by it)."""
    uid = get_pod(sim, pod).metadata.uid
    return [
        claim
        for claim in sim.world.api.list("ResourceClaim", NS).items
        if any(ref.uid == uid for ref in claim.metadata.owner_references)
    ]


def bind_time(sim: Simulation, pod: str) -> float:
    times = [row[0] for row in sim.world.recorder.events if row[3] == pod and row[6] == "Bound"]
    assert len(times) == 1, f"pod {pod} bound {len(times)} times"
    return float(times[0])


def kubelet_events(sim: Simulation, pod: str, reason: str) -> list[float]:
    return [
        float(row[0])
        for row in sim.world.recorder.events
        if row[1] == "Pod" and row[3] == pod and row[7].startswith("kubelet/") and row[8] == reason
    ]


def phase_changes(sim: Simulation, pods: Sequence[str]) -> dict[str, dict[str, float]]:
    """Return, per pod, the time of its first Running and Succeeded kubelet transitions."""
    changes: dict[str, dict[str, float]] = {pod: {} for pod in pods}
    for row in sim.world.recorder.events:
        if row[1] == "Pod" and row[3] in changes and row[7].startswith("kubelet/"):
            state = str(row[6])
            changes[row[3]].setdefault(state, float(row[0]))
    return changes


def devices_in_use(sim: Simulation, driver: str = GPU) -> dict[str, int]:
    return {node: use.used for node, use in sim.drivers[driver].model.inventory().items()}


def node_selector(key: str, value: str) -> NodeSelector:
    requirement = NodeSelectorRequirement(key=key, operator="In", values=(value,))
    return NodeSelector(node_selector_terms=(NodeSelectorTerm(match_expressions=(requirement,)),))


# --------------------------------------------------------------------------------------
# 1. One template claim: the common flow
# --------------------------------------------------------------------------------------

B1_WRITES_1_29 = [
    ("user", "create", "pods", ""),
    (CONTROLLER, "create", "resourceclaims", ""),
    (CONTROLLER, "apply", "pods", "status"),
    (SCHEDULER, "create", "podschedulingcontexts", ""),
    (SCHEDULER, "patch", "pods", "status"),
    (f"driver/{GPU}", "update", "resourceclaims", ""),
    (f"driver/{GPU}", "update", "resourceclaims", "status"),
    (f"driver/{GPU}", "update", "podschedulingcontexts", "status"),
    (SCHEDULER, "create", "pods", "binding"),
    (SCHEDULER, "delete", "podschedulingcontexts", ""),
]
"""The writes of the template flow up to the PodSchedulingContext delete (1.28/1.29, 2 attempts).

Pod create 1, resourceclaim controller 2 (claim, pod status), scheduler 4 (context
create, PodScheduled condition, binding, context delete), driver 3 (finalizer,
allocation with the pod in reservedFor, unsuitable-node status).
"""

B1_WRITES_1_27 = [
    ("user", "create", "pods", ""),
    (CONTROLLER, "create", "resourceclaims", ""),
    # Attempt 1 fails in PreFilter: the claim is not in the scheduler's cache yet.
    (SCHEDULER, "patch", "pods", "status"),
    (SCHEDULER, "create", "podschedulingcontexts", ""),
    (SCHEDULER, "patch", "pods", "status"),
    (f"driver/{GPU}", "update", "resourceclaims", ""),
    (f"driver/{GPU}", "update", "resourceclaims", "status"),
    (f"driver/{GPU}", "update", "podschedulingcontexts", "status"),
    (SCHEDULER, "create", "pods", "binding"),
    (SCHEDULER, "delete", "podschedulingcontexts", ""),
]


def template_flow(version: str, hints: bool, *, nodes: int = 3) -> Simulation:
    sim = cluster([pool("n", nodes, devices={GPU: 4})], version=version, hints=hints)
    create_as_user(sim, 0.0, pod_with_claims("p", {"gpu": template()}, run_s=5.0))
    return sim


def writes_until_context_delete(sim: Simulation) -> list[tuple[str, str, str, str]]:
    log = writes(sim)
    end = log.index((SCHEDULER, "delete", "podschedulingcontexts", ""))
    return log[: end + 1]


@pytest.mark.parametrize(
    ("version", "hints", "expected_attempts", "expected_writes"),
    [
        ("1.29", True, 2, B1_WRITES_1_29),
        ("1.28", True, 2, B1_WRITES_1_29),
        ("1.28", False, 2, B1_WRITES_1_29),
        ("1.27", False, 3, B1_WRITES_1_27),
    ],
    ids=["1.29-hints", "1.28-hints", "1.28-no-hints", "1.27"],
)
def test_template_claim_flow(
    version: str, hints: bool, expected_attempts: int, expected_writes: list[Any]
) -> None:
    sim = template_flow(version, hints)
    run_until(sim, 3.0 if version != "1.27" else 6.0)

    results = [result for _, result, _ in attempts(sim, "p")]
    assert len(results) == expected_attempts
    assert results[-1] == "Scheduled"
    assert writes_until_context_delete(sim) == expected_writes
    driver = f"driver/{GPU}"
    requests = sim.world.recorder.api_requests
    answered = next(r[0] for r in requests if r[1] == driver and r[3] == "podschedulingcontexts")
    # One live pod GET per sync; the sync that its own status write triggers comes after.
    reads = [(r[2], r[3]) for r in requests if r[1] == driver and not r[9] and r[0] < answered]
    assert reads == [("get", "pods")]
    assert sim.world.api.list("PodSchedulingContext").items == ()
    (claim,) = claims_of(sim, "p")
    assert [ref.name for ref in claim.status.reserved_for] == ["p"]
    assert claim.metadata.finalizers == (f"{GPU}/deletion-protection",)


def test_template_claim_flow_without_backoff_in_1_29() -> None:
    sim = template_flow("1.29", True)
    run_until(sim, 3.0)

    (first, _, _), (_, result, _) = attempts(sim, "p")
    # PreEnqueue released the pod when its claim name was recorded: no backoff wait, and
    # the second attempt follows the allocation at once.
    assert first < 0.05
    assert result == "Scheduled"
    assert bind_time(sim, "p") < 0.1


def test_template_claim_flow_backs_off_in_1_27() -> None:
    sim = template_flow("1.27", False)
    run_until(sim, 8.0)

    starts = [start for start, _, _ in attempts(sim, "p")]
    messages = [message for _, _, message in attempts(sim, "p")]
    assert messages[0].startswith(
        "0/3 nodes are available: waiting for dynamic resource controller"
    )
    # Two backoff waits of at least 1 s and 2 s.
    assert starts[1] - starts[0] >= 1.0
    assert starts[2] - starts[1] >= 2.0
    assert bind_time(sim, "p") >= 3.0


@pytest.mark.xfail(
    strict=True,
    reason="1.28 hints return QueueImmediately for the claim allocation, which skips "
    "backoff; the queue only knows Queue (after backoff unless the plugin returned Pending)",
)
def test_1_28_hints_skip_backoff() -> None:
    sim = template_flow("1.28", True)
    run_until(sim, 3.0)

    assert bind_time(sim, "p") < 0.1


def test_template_claim_flow_without_hints_in_1_29() -> None:
    # One node, so a repeated cycle picks the node already selected and writes nothing.
    sim = template_flow("1.29", False, nodes=1)
    run_until(sim, 10.0)

    results = [result for _, result, _ in attempts(sim, "p")]
    # Besides the allocation, the scheduler's own context create and the driver's
    # finalizer update wake the Pending pod: every registered event counts without hints.
    assert 2 <= len(results) <= 4
    assert set(results[:-1]) == {"Pending"}
    assert results[-1] == "Scheduled"
    scheduler_context_writes = [
        w for w in writes(sim) if w[0] == SCHEDULER and w[2] == "podschedulingcontexts"
    ]
    assert scheduler_context_writes == [
        (SCHEDULER, "create", "podschedulingcontexts", ""),
        (SCHEDULER, "delete", "podschedulingcontexts", ""),
    ]


def test_no_hints_flow_skips_backoff() -> None:
    sim = template_flow("1.29", False, nodes=1)
    run_until(sim, 10.0)

    # Pending plugins skip backoff on the expected event, even with hints off.
    assert bind_time(sim, "p") < 0.1


@pytest.mark.parametrize("version", ["1.28", "1.29"])
def test_finished_pod_releases_claim_and_device(version: str) -> None:
    sim = template_flow(version, True)
    run_until(sim, 3.0)
    (claim,) = claims_of(sim, "p")
    node = get_pod(sim, "p").spec.node_name
    assert devices_in_use(sim)[node] == 1

    run_until(sim, 15.0)

    assert get_pod(sim, "p").status.phase == "Succeeded"
    assert sim.world.api.list("ResourceClaim").items == ()
    assert set(devices_in_use(sim).values()) == {0}
    assert sim.drivers[GPU].model_calls["deallocate"] >= 1
    deletes = [w for w in writes(sim) if w[:3] == (CONTROLLER, "delete", "resourceclaims")]
    assert deletes, "the resourceclaim controller did not delete the generated claim"
    assert claim.metadata.uid not in {
        c.metadata.uid for c in sim.world.api.list("ResourceClaim").items
    }


def test_finished_pod_keeps_generated_claim_in_1_27() -> None:
    sim = template_flow("1.27", False)
    run_until(sim, 20.0)

    assert get_pod(sim, "p").status.phase == "Succeeded"
    (claim,) = claims_of(sim, "p")
    # 1.27 drops reservations of deleted pods only; the claim goes with the pod object.
    assert [ref.name for ref in claim.status.reserved_for] == ["p"]
    assert claim.status.allocation is not None
    assert sim.drivers[GPU].model_calls["deallocate"] == 0


# --------------------------------------------------------------------------------------
# 2. The first selected node is full
# --------------------------------------------------------------------------------------


def test_full_selected_node_is_reported_unsuitable() -> None:
    # One claim per node. The tainted node scores lower, so both pods try "a-0" first.
    sim = cluster(
        [
            pool("a", devices={GPU: 1}),
            pool("b", devices={GPU: 1}, taints=[{"key": "spare", "effect": "PreferNoSchedule"}]),
        ],
        hints=True,
    )
    contexts = WriteLog(sim, "PodSchedulingContext")
    at(sim, 0.0, lambda: sim.world.api.create(pod_with_claims("filler", {"gpu": template()})))
    at(sim, 5.0, lambda: sim.world.api.create(pod_with_claims("p", {"gpu": template()})))
    run_until(sim, 10.0)

    assert get_pod(sim, "filler").spec.node_name == "a-0"
    assert get_pod(sim, "p").spec.node_name == "b-0"
    results = [result for _, result, _ in attempts(sim, "p")]
    assert results[-1] == "Scheduled"
    assert len(results) >= 3
    history = [
        (
            actor,
            verb,
            obj.spec.selected_node,
            tuple(e.unsuitable_nodes for e in obj.status.resource_claims),
        )
        for _, actor, verb, obj in contexts.objects("p")
        if obj is not None
    ]
    assert history[0] == (SCHEDULER, "create/", "a-0", ())
    assert (f"driver/{GPU}", "update/status", "a-0", (("a-0",),)) in history
    assert (SCHEDULER, "update/", "b-0", (("a-0",),)) in history
    assert sim.drivers[GPU].model_calls["allocate"] == 2


def test_full_selected_node_costs_three_attempts() -> None:
    sim = cluster(
        [
            pool("a", devices={GPU: 1}),
            pool("b", devices={GPU: 1}, taints=[{"key": "spare", "effect": "PreferNoSchedule"}]),
        ],
        hints=True,
    )
    at(sim, 0.0, lambda: sim.world.api.create(pod_with_claims("filler", {"gpu": template()})))
    at(sim, 5.0, lambda: sim.world.api.create(pod_with_claims("p", {"gpu": template()})))
    run_until(sim, 10.0)

    assert [result for _, result, _ in attempts(sim, "p")] == ["Pending", "Pending", "Scheduled"]
    assert (SCHEDULER, "update", "podschedulingcontexts", "") in writes(sim)
    assert not [row for row in sim.world.recorder.api_requests if row[7] == 409]


# --------------------------------------------------------------------------------------
# 3. Several claims from two drivers
# --------------------------------------------------------------------------------------


def two_driver_pod(
    claims_per_driver: int, *, version: str = "1.29", hints: bool = True
) -> Simulation:
    sim = cluster(
        [pool("n", 3, devices={GPU: 8, NIC: 8})], version=version, hints=hints, drivers=(GPU, NIC)
    )
    claims = {}
    for index in range(claims_per_driver):
        claims[f"gpu-{index}"] = template(GPU)
        claims[f"nic-{index}"] = template(NIC)
    create_as_user(sim, 0.0, pod_with_claims("p", claims))
    return sim


@pytest.mark.parametrize("claims_per_driver", [1, 2])
def test_multi_driver_pod_waits_for_both_drivers(claims_per_driver: int) -> None:
    sim = two_driver_pod(claims_per_driver)
    contexts = WriteLog(sim, "PodSchedulingContext")
    run_until(sim, 5.0)

    history = [(actor, verb, obj) for _, actor, verb, obj in contexts.objects("p")]
    first_actor, first_verb, first = history[0]
    assert (first_actor, first_verb) == (SCHEDULER, "create/")
    assert first.spec.selected_node == ""
    assert first.spec.potential_nodes == ("n-0", "n-1", "n-2")
    selecting = next(
        index
        for index, (actor, _, obj) in enumerate(history)
        if actor == SCHEDULER and obj and obj.spec.selected_node
    )
    answered_by = {actor for actor, verb, _ in history[:selecting] if verb == "update/status"}
    assert answered_by == {f"driver/{GPU}", f"driver/{NIC}"}
    assert len(history[selecting][2].status.resource_claims) == 2 * claims_per_driver
    results = [result for _, result, _ in attempts(sim, "p")]
    assert results[-1] == "Scheduled"
    assert len(results) >= 3
    assert get_pod(sim, "p").spec.node_name == history[selecting][2].spec.selected_node


@pytest.mark.parametrize("claims_per_driver", [1, 2])
def test_multi_driver_pod_needs_one_attempt_per_allocation(claims_per_driver: int) -> None:
    sim = two_driver_pod(claims_per_driver)
    run_until(sim, 5.0)

    # Info round, node selection, then at most one attempt per driver's allocation.
    assert len(attempts(sim, "p")) <= 4


# --------------------------------------------------------------------------------------
# 4. and 5. An Immediate claim shared by five pods
# --------------------------------------------------------------------------------------


def shared_immediate(shareable: bool, run_s: float) -> Simulation:
    return cluster(
        [pool("n", 2, devices={GPU: 1})],
        hints=True,
        driver_settings={GPU: {"model_settings": {"shareable": shareable}}},
        shared_claims=[{"name": "shared", "resource_class": GPU, "allocation_mode": "Immediate"}],
        workloads=[
            {
                "name": "user",
                "arrival": {"type": "bursts", "at_s": [1.0], "size": 5},
                "claims": [{"name": "gpu", "claim": "shared"}],
                "run_duration_s": run_s,
            }
        ],
    )


def test_exclusive_claim_serves_one_pod() -> None:
    sim = shared_immediate(shareable=False, run_s=2.0)
    claims = WriteLog(sim, "ResourceClaim")
    run_until(sim, 120.0)

    pods = [f"user-{index}" for index in range(5)]
    assert {get_pod(sim, pod).status.phase for pod in pods} == {"Succeeded"}
    changes = phase_changes(sim, pods)
    intervals = sorted((c["Running"], c["Succeeded"]) for c in changes.values())
    for (_, end), (start, _) in itertools.pairwise(intervals):
        assert start >= end, f"two pods ran at once: {intervals}"
    reservations = [
        len(obj.status.reserved_for) for _, _, _, obj in claims.objects("shared") if obj
    ]
    assert max(reservations) == 1
    assert sim.drivers[GPU].model_calls["deallocate"] == 0
    assert claims.deallocation_requests() == []
    claim: ResourceClaim = sim.world.api.get("ResourceClaim", "shared", NS)
    assert claim.status.allocation is not None
    assert claim.status.reserved_for == ()


def test_shareable_claim_serves_all_pods() -> None:
    # Concurrent reservations race: a loser gets 409, an Error and backoff, then joins.
    sim = shared_immediate(shareable=True, run_s=30.0)
    claims = WriteLog(sim, "ResourceClaim")
    run_until(sim, 60.0)

    pods = [f"user-{index}" for index in range(5)]
    changes = phase_changes(sim, pods)
    latest_start = max(c["Running"] for c in changes.values())
    earliest_end = min(c["Succeeded"] for c in changes.values())
    assert latest_start < earliest_end, "the five pods never ran together"
    reservations = [
        len(obj.status.reserved_for) for _, _, _, obj in claims.objects("shared") if obj
    ]
    assert max(reservations) == 5
    nodes = {get_pod(sim, pod).spec.node_name for pod in pods}
    assert len(nodes) == 1
    assert sim.drivers[GPU].model_calls["deallocate"] == 0


# --------------------------------------------------------------------------------------
# 6. A user WaitForFirstConsumer claim whose consumer finishes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "deallocated"), [("1.27", False), ("1.28", True), ("1.29", True)]
)
def test_user_claim_is_deallocated_after_last_consumer(version: str, deallocated: bool) -> None:
    sim = cluster(
        [pool("n", 2, devices={GPU: 2})],
        version=version,
        hints=version != "1.27",
        shared_claims=[{"name": "mine", "resource_class": GPU}],
    )
    claims = WriteLog(sim, "ResourceClaim")
    at(
        sim,
        0.0,
        lambda: sim.world.api.create(pod_with_claims("first", {"gpu": named("mine")}, run_s=2.0)),
    )
    at(sim, 10.0, lambda: sim.world.api.create(pod_with_claims("second", {"gpu": named("mine")})))
    # 1.27 releases the claim only when the finished pod object is deleted.
    at(sim, 30.0, lambda: sim.world.api.delete("Pod", "first", NS))
    run_until(sim, 25.0)

    assert get_pod(sim, "first").status.phase == "Succeeded"
    assert (get_pod(sim, "second").status.phase == "Running") is deallocated
    first_node = get_pod(sim, "first").spec.node_name

    run_until(sim, 80.0)
    requests = [(time, actor) for time, actor, _ in claims.deallocation_requests()]
    assert get_pod(sim, "second").status.phase == "Running"
    claim: ResourceClaim = sim.world.api.get("ResourceClaim", "mine", NS)
    assert [ref.name for ref in claim.status.reserved_for] == ["second"]
    if deallocated:
        assert requests and {actor for _, actor in requests} == {CONTROLLER}
        assert requests[0][0] < 10.0
        assert sim.drivers[GPU].model_calls["deallocate"] == 1
        assert sim.drivers[GPU].model_calls["allocate"] == 2
    else:
        assert requests == []
        assert sim.drivers[GPU].model_calls["deallocate"] == 0
        assert sim.drivers[GPU].model_calls["allocate"] == 1
        assert get_pod(sim, "second").spec.node_name == first_node


# --------------------------------------------------------------------------------------
# 7. The ResourceClass appears after the pod
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.27", "1.28", "1.29"])
def test_class_created_after_pod(version: str) -> None:
    sim = cluster([pool("n", 2, devices={GPU: 2})], version=version, hints=version == "1.28")
    resource_class = sim.world.api.get("ResourceClass", GPU)
    sim.world.api.delete("ResourceClass", GPU)
    at(sim, 1.0, lambda: sim.world.api.create(pod_with_claims("p", {"gpu": template()})))
    at(
        sim,
        10.0,
        lambda: sim.world.api.create(resource_class.with_meta(uid="", resource_version="")),
    )
    run_until(sim, 400.0)

    before = [(result, message) for start, result, message in attempts(sim, "p") if start < 10.0]
    after = [start for start, _, _ in attempts(sim, "p") if start >= 10.0]
    assert before, "the pod was not tried while its class was missing"
    if version == "1.29":
        assert {result for result, _ in before} == {"Unschedulable"}
        assert all("resource class gpu.example.com does not exist" in m for _, m in before)
        # The ResourceClass add event wakes the pod at once.
        assert after[0] < 10.1
    else:
        errors = [message for result, message in before if result == "Error"]
        assert errors and all("resource class gpu.example.com does not exist" in m for m in errors)
        others = [message for result, message in before if result != "Error"]
        # 1.27 has no PreEnqueue: its first attempt fails until the claim exists.
        assert all("waiting for dynamic resource controller" in m for m in others)
    assert get_pod(sim, "p").spec.node_name != ""


# --------------------------------------------------------------------------------------
# 8. Class suitableNodes from "no node" to nil
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.27", "1.29"])
def test_class_suitable_nodes_opened_up(version: str) -> None:
    sim = cluster(
        [pool("n", 2, devices={GPU: 2})],
        version=version,
        classes=[
            {"name": GPU, "driver_name": GPU, "suitable_nodes": node_selector("pool", "none")}
        ],
    )

    def open_class() -> None:
        current: ResourceClass = sim.world.api.get("ResourceClass", GPU)
        sim.world.api.update(current.model_copy(update={"suitable_nodes": None}))

    at(sim, 1.0, lambda: sim.world.api.create(pod_with_claims("p", {"gpu": template()})))
    at(sim, 10.0, open_class)
    run_until(sim, 400.0)

    excluded = [a for a in attempts(sim, "p") if "2 excluded by resource class node filter" in a[2]]
    assert excluded and excluded[0][0] < 10.0
    assert excluded[0][1] == "Unschedulable"
    after = [start for start, _, _ in attempts(sim, "p") if start >= 10.0]
    if version == "1.29":
        assert after[0] < 10.1
    else:
        # 1.27 registers no ResourceClass events: only the 5-minute sweep retries the pod.
        assert after[0] >= 300.0
    assert get_pod(sim, "p").spec.node_name != ""


# --------------------------------------------------------------------------------------
# 9. A pod created with spec.nodeName
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.27", "1.28", "1.29"])
def test_pod_with_node_name_gets_context_from_controller(version: str) -> None:
    sim = cluster([pool("n", 2, devices={GPU: 2})], version=version)
    contexts = WriteLog(sim, "PodSchedulingContext")
    at(
        sim,
        0.0,
        lambda: sim.world.api.create(pod_with_claims("p", {"gpu": template()}, node_name="n-1")),
    )
    run_until(sim, 200.0)

    assert attempts(sim, "p") == []
    failures = kubelet_events(sim, "p", "FailedPrepareDynamicResources")
    assert failures, "the kubelet started the pod before its claim was reserved"
    created = [
        (actor, obj.spec) for _, actor, verb, obj in contexts.objects("p") if verb == "create/"
    ]
    if version == "1.27":
        assert created == []
        assert get_pod(sim, "p").status.phase != "Running"
        return
    assert len(created) == 1
    actor, spec = created[0]
    assert actor == CONTROLLER
    assert (spec.selected_node, spec.potential_nodes) == ("n-1", ())
    (claim,) = claims_of(sim, "p")
    assert [ref.name for ref in claim.status.reserved_for] == ["p"]
    started = kubelet_events(sim, "p", "Started")
    assert len(started) == 1
    assert 60.0 <= started[0] - failures[-1] <= 90.0
    assert get_pod(sim, "p").status.phase == "Running"


# --------------------------------------------------------------------------------------
# 10. NodePrepareResources fails for a while
# --------------------------------------------------------------------------------------


def test_prepare_failures_delay_start_by_resync_period() -> None:
    sim = cluster([pool("n", 1, devices={GPU: 2})], hints=True)
    faulty = NodePlugin(
        sim.world, "n-0", GPU, NodePluginFaults(fail_prepare_windows_s=((0.0, 100.0),))
    )
    sim.kubelets["n-0"].register_plugin(faulty)
    at(sim, 0.0, lambda: sim.world.api.create(pod_with_claims("p", {"gpu": template()})))
    run_until(sim, 300.0)

    failures = kubelet_events(sim, "p", "FailedPrepareDynamicResources")
    started = kubelet_events(sim, "p", "Started")
    assert len(failures) >= 1
    assert all(time < 100.0 for time in failures)
    assert len(started) == 1
    assert started[0] >= 100.0
    for earlier, later in itertools.pairwise([*failures, started[0]]):
        assert 60.0 <= later - earlier <= 90.0
    assert [result for _, result, _ in attempts(sim, "p")].count("Scheduled") == 1


# --------------------------------------------------------------------------------------
# 11. Reallocation: the second driver fails on the selected node
# --------------------------------------------------------------------------------------


def reallocation(version: str, hints: bool) -> Simulation:
    # Two pods with one claim per driver race for the only NIC slot of "n-0", which both
    # prefer because the other node is tainted PreferNoSchedule. The NIC driver reports
    # n-0 free to both and allocates it for one. The other pod's GPU claim is allocated on
    # n-0 but its NIC claim cannot be, so no node fits that pod any more.
    return cluster(
        [
            pool("n", devices={GPU: 4, NIC: 1}),
            pool(
                "m",
                devices={GPU: 4, NIC: 1},
                taints=[{"key": "spare", "effect": "PreferNoSchedule"}],
            ),
        ],
        version=version,
        hints=hints,
        drivers=(GPU, NIC),
        workloads=[
            {
                "name": "w",
                "arrival": {"type": "bursts", "at_s": [0.0], "size": 2},
                "claims": [
                    {"name": "gpu", "template": {"resource_class": GPU}},
                    {"name": "nic", "template": {"resource_class": NIC}},
                ],
            }
        ],
    )


@pytest.mark.parametrize(
    ("version", "hints"),
    [("1.27", False), ("1.28", True), ("1.29", True)],
    ids=["1.27", "1.28", "1.29"],
)
def test_reallocation_after_second_driver_fails(version: str, hints: bool) -> None:
    sim = reallocation(version, hints)
    claims = WriteLog(sim, "ResourceClaim")
    contexts = WriteLog(sim, "PodSchedulingContext")
    run_until(sim, 100.0)

    nodes = {get_pod(sim, pod).spec.node_name for pod in ("w-0", "w-1")}
    assert nodes == {"n-0", "m-0"}
    requests = claims.deallocation_requests()
    assert requests, "PostFilter never asked for deallocation"
    assert {actor for _, actor, _ in requests} == {SCHEDULER}
    # Only the GPU claim, allocated on the node the NIC claim cannot use, is given back.
    classes = {
        obj.spec.resource_class_name
        for _, _, _, obj in claims.objects()
        if obj is not None and obj.metadata.name in {name for _, _, name in requests}
    }
    assert classes == {GPU}
    deallocations = sim.drivers[GPU].model_calls["deallocate"]
    if version == "1.29":
        assert deallocations == 1
        # PostFilter clears selectedNode before it requests deallocation.
        first_request = requests[0][0]
        cleared = [
            time
            for time, actor, _, obj in contexts.objects()
            if actor == SCHEDULER
            and obj is not None
            and obj.spec.selected_node == ""
            and time <= first_request
        ]
        assert cleared
    else:
        assert deallocations >= 1
    assert sim.drivers[NIC].model_calls["deallocate"] == 0


# --------------------------------------------------------------------------------------
# 12. and 13. Reduced scheduler_perf workloads
# --------------------------------------------------------------------------------------


def perf_workload(
    nodes: int,
    per_node: int,
    pods: int,
    *,
    claims_per_driver: int,
    drivers: Sequence[str],
    hints: bool = True,
    scheduler: dict[str, Any] | None = None,
) -> Simulation:
    claims = [
        {"name": f"{driver.split('.')[0]}-{index}", "template": {"resource_class": driver}}
        for driver in drivers
        for index in range(claims_per_driver)
    ]
    return cluster(
        [pool("n", nodes, devices={driver: per_node for driver in drivers})],
        hints=hints,
        drivers=drivers,
        scheduler=scheduler,
        workloads=[
            {
                "name": "w",
                "arrival": {"type": "bursts", "at_s": [1.0], "size": pods},
                "claims": claims,
            }
        ],
    )


def bound_pods(sim: Simulation) -> list[str]:
    return [row[3] for row in sim.world.recorder.events if row[6] == "Bound"]


def test_claim_template_workload_fills_cluster_exactly() -> None:
    # scheduler_perf SchedulingWithResourceClaimTemplate at 1/10 size: 10 nodes, 5 claims each.
    sim = perf_workload(10, 5, 50, claims_per_driver=1, drivers=(GPU,))
    run_until(sim, 60.0)

    assert len(bound_pods(sim)) == 50
    assert set(devices_in_use(sim).values()) == {5}
    per_node = Counter(get_pod(sim, f"w-{index}").spec.node_name for index in range(50))
    assert set(per_node.values()) == {5}
    tries = Counter(row[2] for row in sim.world.recorder.cycles)
    assert min(tries.values()) == 2


def test_multiple_claims_workload_fills_cluster_exactly() -> None:
    # scheduler_perf SchedulingWithMultipleResourceClaims at reduced size: two drivers, four
    # claims per pod, 10 claims per node and driver, so 5 pods fill a node.
    sim = perf_workload(5, 10, 25, claims_per_driver=2, drivers=(GPU, NIC))
    run_until(sim, 120.0)

    assert len(bound_pods(sim)) == 25
    assert set(devices_in_use(sim, GPU).values()) == {10}
    assert set(devices_in_use(sim, NIC).values()) == {10}
    tries = Counter(row[2] for row in sim.world.recorder.cycles)
    assert min(tries.values()) >= 3


@pytest.mark.slow
def test_large_cluster_truncates_node_lists_to_128() -> None:
    # With the default percentageOfNodesToScore a 130-node cluster stops Filter after 100
    # feasible nodes, fewer than 128; scoring every node lets PreScore see all of them.
    sim = perf_workload(
        130,
        1,
        130,
        claims_per_driver=1,
        drivers=(GPU,),
        scheduler={"percentage_of_nodes_to_score": 100},
    )
    contexts = WriteLog(sim, "PodSchedulingContext")
    run_until(sim, 200.0)

    assert len(bound_pods(sim)) == 130
    assert set(devices_in_use(sim).values()) == {1}
    written = [(actor, obj) for _, actor, _, obj in contexts.objects() if obj is not None]
    potential = [obj.spec.potential_nodes for actor, obj in written if actor == SCHEDULER]
    assert max(len(nodes) for nodes in potential) == 128
    assert all(list(nodes) == sorted(nodes) for nodes in potential)
    unsuitable = [
        entry.unsuitable_nodes
        for actor, obj in written
        if actor != SCHEDULER
        for entry in obj.status.resource_claims
    ]
    assert max(len(nodes) for nodes in unsuitable) <= 128
    # Nearly full: pods cycle through guesses without backoff, far beyond the 2 of the common case.
    tries = Counter(row[2] for row in sim.world.recorder.cycles)
    assert max(tries.values()) > 10


# --------------------------------------------------------------------------------------
# 14. A running pod is force-deleted
# --------------------------------------------------------------------------------------


def test_force_deleted_pod_is_still_unprepared() -> None:
    sim = cluster([pool("n", 1, devices={GPU: 1})], hints=True)
    at(sim, 0.0, lambda: sim.world.api.create(pod_with_claims("p", {"gpu": template()})))
    run_until(sim, 5.0)
    (claim,) = claims_of(sim, "p")
    uid = claim.metadata.uid
    plugin = sim.kubelets["n-0"].plugins[GPU]
    assert uid in plugin.prepared_claims()

    at(sim, 5.0, lambda: sim.world.api.delete("Pod", "p", NS))
    run_until(sim, 30.0)

    unprepares = [
        c for c in plugin.calls if c.method.startswith("NodeUnprepare") and uid in c.claim_uids
    ]
    assert len(unprepares) == 1
    assert unprepares[0].start_s >= 5.0
    assert plugin.prepared_claims() == {}
    assert sim.world.api.list("Pod").items == ()
    assert sim.world.api.list("ResourceClaim").items == ()
    assert set(devices_in_use(sim).values()) == {0}


# --------------------------------------------------------------------------------------
# 15. Queueing hints on and off in 1.29
# --------------------------------------------------------------------------------------


def test_queueing_hints_raise_throughput() -> None:
    results = {}
    for hints in (True, False):
        sim = perf_workload(10, 5, 50, claims_per_driver=1, drivers=(GPU,), hints=hints)
        run_until(sim, 120.0)
        bound = [row[0] for row in sim.world.recorder.events if row[6] == "Bound"]
        assert len(bound) == 50
        tries = Counter(row[2] for row in sim.world.recorder.cycles)
        results[hints] = (50 / (max(bound) - 1.0), sum(tries.values()) / 50)

    (with_hints, tries_on), (without_hints, tries_off) = results[True], results[False]
    assert with_hints > 3 * without_hints, results
    assert tries_off > tries_on
