"""The scheduling queue's hint indexes move exactly the pods that a full scan moves.

With queueing hints on, `SchedulingQueue.move_all` offers a claim or
PodSchedulingContext event only to the waiting pods filed under the object's
key (and to pods that no plugin rejected). Each example here plays one random
sequence of queue operations twice, with `use_hint_indexes` on and off. The
two runs must agree on everything the scheduler can observe: where each pod
is, the pods that pops hand out, the PreEnqueue calls and every hint call
that returned Queue.
"""

from __future__ import annotations

from typing import Any

import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.api.types import (
    ObjectMeta,
    Pod,
    PodCondition,
    PodResourceClaimStatus,
    PodSchedulingContext,
    PodSpec,
    ResourceClaim,
)
from sim.cluster.scheduler.framework import (
    SUCCESS,
    ActionType,
    ClusterEvent,
    Code,
    EventRegistration,
    HintIndex,
    QueueingHint,
    Resource,
    Status,
)
from sim.cluster.scheduler.plugins.dynamicresources import _object_key, _object_name, _pod_key
from sim.cluster.scheduler.queue import QueuedPodInfo, SchedulingQueue

POD_NAMES = ("p0", "p1", "p2", "p3")
CLAIM_NAMES = ("x", "y", "z")

CLAIM_CHANGE = ClusterEvent(
    Resource.RESOURCE_CLAIM, ActionType.ADD | ActionType.UPDATE, "ResourceClaimChange"
)
CLAIM_UPDATE = ClusterEvent(Resource.RESOURCE_CLAIM, ActionType.UPDATE, "ResourceClaimUpdate")
CONTEXT_CHANGE = ClusterEvent(
    Resource.POD_SCHEDULING_CONTEXT,
    ActionType.ADD | ActionType.UPDATE,
    "PodSchedulingContextChange",
)
NODE_ADD = ClusterEvent(Resource.NODE, ActionType.ADD, "NodeAdd")
POD_DELETE = ClusterEvent(Resource.ASSIGNED_POD, ActionType.DELETE, "AssignedPodDelete")
EVENTS = (CLAIM_CHANGE, CLAIM_UPDATE, CONTEXT_CHANGE, NODE_ADD, POD_DELETE)


def _claim_names(pod: Pod) -> list[str]:
    return [status.resource_claim_name or "" for status in pod.status.resource_claim_statuses]


def _make_pod(name: str, claims: tuple[str, ...], generation: int = 0) -> Pod:
    statuses = tuple(
        PodResourceClaimStatus(name=f"c{i}", resource_claim_name=claim)
        for i, claim in enumerate(claims)
    )
    pod = Pod(
        metadata=ObjectMeta(
            name=name, namespace="default", uid=f"uid-{name}", labels={"gen": str(generation)}
        ),
        spec=PodSpec(),
    )
    return pod.model_copy(
        update={"status": pod.status.model_copy(update={"resource_claim_statuses": statuses})}
    )


class Recorder:
    """Shared state of one run: the step number that hints vary with, and what was seen."""

    def __init__(self) -> None:
        self.step = 0
        self.queued: list[tuple[Any, ...]] = []
        self.gate_calls: list[str] = []
        self.gate_open = True

    def claim_hint(self, pod: Pod, old: Any, new: Any) -> QueueingHint:
        # Keeps the index's promise: Skip unless the pod names the claim.
        if new is None or new.metadata.name not in _claim_names(pod):
            return QueueingHint.SKIP
        if (self.step + POD_NAMES.index(pod.metadata.name)) % 3 == 0:
            return QueueingHint.SKIP
        self.queued.append(("claim", self.step, pod.metadata.name, new.metadata.name))
        return QueueingHint.QUEUE

    def context_hint(self, pod: Pod, old: Any, new: Any) -> QueueingHint:
        # Keeps the index's promise: Skip unless the context has the pod's namespace and name.
        if new is None or (new.metadata.namespace, new.metadata.name) != (
            pod.metadata.namespace,
            pod.metadata.name,
        ):
            return QueueingHint.SKIP
        if self.step % 2:
            return QueueingHint.SKIP
        self.queued.append(("context", self.step, pod.metadata.name))
        return QueueingHint.QUEUE

    def pre_enqueue(self, pod: Pod) -> Status:
        self.gate_calls.append(pod.metadata.name)
        if self.gate_open:
            return SUCCESS
        return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, "claims not created yet", "DRA")


class _Gate:
    """The "DRA" PreEnqueue plugin, open while `Recorder.gate_open` is True."""

    name = "DRA"

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def pre_enqueue(self, pod: Pod) -> Status:
        return self.recorder.pre_enqueue(pod)


def _make_queue(recorder: Recorder, *, unindexed_plugin: bool) -> SchedulingQueue:
    registrations = {
        "Fit": [EventRegistration(NODE_ADD), EventRegistration(POD_DELETE)],
        "DRA": [
            EventRegistration(
                CLAIM_CHANGE, recorder.claim_hint, HintIndex(_object_name, _claim_names)
            ),
            EventRegistration(
                CONTEXT_CHANGE, recorder.context_hint, HintIndex(_object_key, _pod_key)
            ),
            EventRegistration(NODE_ADD),
        ],
    }
    if unindexed_plugin:
        # Like the device-aware plugin: a claim registration without a hint or an index.
        registrations["Devices"] = [EventRegistration(CLAIM_UPDATE)]
    return SchedulingQueue(
        simpy.Environment(),
        registrations=registrations,
        pre_enqueue_plugins=[_Gate(recorder)],
        hints_enabled=True,
        on_pre_enqueue_rejected=lambda info, status: recorder.queued.append(
            ("gated", recorder.step, info.pod.metadata.name, status.message)
        ),
    )


ARGUMENTS: dict[str, st.SearchStrategy[tuple[Any, ...]]] = {
    "add": st.tuples(
        st.sampled_from(POD_NAMES), st.lists(st.sampled_from(CLAIM_NAMES), max_size=2)
    ),
    "update": st.tuples(
        st.sampled_from(POD_NAMES),
        st.sampled_from(["condition", "claims", "labels"]),
        st.lists(st.sampled_from(CLAIM_NAMES), max_size=2),
    ),
    "pop": st.just(()),
    # Pop the head of activeQ and fail it at once, as a scheduling cycle does.
    "cycle": st.tuples(
        st.sets(st.sampled_from(["Fit", "DRA", "Devices"]), min_size=1), st.booleans()
    ),
    "fail": st.tuples(
        st.integers(0, 3),
        st.sets(st.sampled_from(["Fit", "DRA", "Devices"]), min_size=1),
        st.booleans(),
    ),
    "done": st.tuples(st.integers(0, 3)),
    "delete": st.tuples(st.sampled_from(POD_NAMES)),
    "move": st.tuples(
        st.sampled_from(EVENTS), st.sampled_from(CLAIM_NAMES + POD_NAMES), st.booleans()
    ),
    "gate": st.tuples(st.booleans()),
    "wait": st.tuples(st.sampled_from([0.5, 2.0, 11.0, 301.0])),
}

# Adds, cycles and moves come up more often than the rest, so that pods wait in
# unschedulablePods for most of a run.
KINDS = (
    ["add"] * 3
    + ["cycle"] * 3
    + ["move"] * 4
    + [k for k in ARGUMENTS if k not in ("add", "cycle", "move")]
)

OPERATIONS = st.sampled_from(KINDS).flatmap(
    lambda kind: ARGUMENTS[kind].map(lambda arguments: (kind, *arguments))
)


def _fail(
    queue: SchedulingQueue, info: QueuedPodInfo, cycle: int, rejectors: set[str], pending: bool
) -> str:
    """End a pod's cycle as failed by `rejectors` (with "DRA" Pending when `pending`)."""
    if pending:
        info.pending_plugins.add("DRA")
        rejectors = rejectors - {"DRA"}
    info.unschedulable_plugins |= rejectors
    return queue.add_unschedulable_if_not_present(info, cycle)


def _play(operations: list[tuple[Any, ...]], *, use_index: bool, unindexed_plugin: bool) -> Any:
    """Play the operations on a fresh queue; return everything observable after each."""
    recorder = Recorder()
    queue = _make_queue(recorder, unindexed_plugin=unindexed_plugin)
    queue.use_hint_indexes = use_index
    env = queue.env
    pods: dict[str, Pod] = {}
    getters: list[simpy.Event] = []
    in_flight: list[tuple[QueuedPodInfo, int]] = []
    trace: list[Any] = []
    for step, operation in enumerate(operations):
        recorder.step = step
        kind = operation[0]
        result: Any = None
        if kind == "add":
            _, name, claims = operation
            pods[name] = _make_pod(name, tuple(claims))
            queue.add(pods[name])
        elif kind == "update":
            _, name, change, claims = operation
            old = pods.get(name) or _make_pod(name, ())
            if change == "condition":
                condition = PodCondition(
                    type="PodScheduled", status="False", reason="Unschedulable", message=str(step)
                )
                new = old.model_copy(
                    update={"status": old.status.model_copy(update={"conditions": (condition,)})}
                )
            elif change == "claims":
                new = _make_pod(name, tuple(claims), int(old.metadata.labels["gen"]))
            else:
                new = _make_pod(name, tuple(_claim_names(old)), step)
            pods[name] = new
            queue.update(old, new)
        elif kind == "pop":
            getters.append(queue.pop())
        elif kind == "cycle" and queue.counts()["active"]:
            popped = queue.pop()
            if popped.triggered:
                _, rejectors, pending = operation
                result = _fail(queue, popped.value, queue.scheduling_cycle, rejectors, pending)
            else:
                getters.append(popped)  # an earlier waiting pop took the pod
        elif kind == "fail" and in_flight:
            _, index, rejectors, pending = operation
            info, cycle = in_flight.pop(index % len(in_flight))
            result = _fail(queue, info, cycle, rejectors, pending)
        elif kind == "done" and in_flight:
            info, _ = in_flight.pop(operation[1] % len(in_flight))
            queue.done(info)
        elif kind == "delete" and operation[1] in pods:
            queue.delete(pods.pop(operation[1]))
        elif kind == "move":
            _, event, name, with_old = operation
            changed: Any
            if event.resource == Resource.POD_SCHEDULING_CONTEXT:
                changed = PodSchedulingContext(metadata=ObjectMeta(name=name, namespace="default"))
            elif event.resource == Resource.RESOURCE_CLAIM:
                changed = ResourceClaim(metadata=ObjectMeta(name=name, namespace="default"))
            else:
                changed = _make_pod(name, ())
            if event == POD_DELETE:
                queue.move_all(event, changed, None)
            else:
                queue.move_all(event, changed if with_old else None, changed)
        elif kind == "gate":
            recorder.gate_open = operation[1]
        elif kind == "wait":
            env.run(until=env.now + operation[1])
            queue.flush_backoff_completed()
            queue.flush_unschedulable_leftover()
        for getter in [g for g in getters if g.triggered]:
            getters.remove(getter)
            info = getter.value
            in_flight.append((info, queue.scheduling_cycle))
            result = ("popped", info.pod.metadata.name, info.attempts)
        locations = {name: queue.location(f"uid-{name}") for name in POD_NAMES}
        waiting = [info.pod.metadata.name for info in queue._unschedulable.values()]
        trace.append((step, result, locations, waiting, queue.counts(), queue.move_request_cycle))
    return trace, recorder.queued, recorder.gate_calls


@settings(max_examples=200, deadline=None)
@given(operations=st.lists(OPERATIONS, min_size=20, max_size=60), unindexed_plugin=st.booleans())
def test_indexed_moves_match_full_scan(
    operations: list[tuple[Any, ...]], unindexed_plugin: bool
) -> None:
    indexed = _play(operations, use_index=True, unindexed_plugin=unindexed_plugin)
    full_scan = _play(operations, use_index=False, unindexed_plugin=unindexed_plugin)
    assert indexed[0] == full_scan[0]
    assert indexed[1] == full_scan[1]
    assert indexed[2] == full_scan[2]


def test_pod_naming_a_claim_twice_is_forgotten_once() -> None:
    recorder = Recorder()
    recorder.gate_open = False
    queue = _make_queue(recorder, unindexed_plugin=False)
    pod = _make_pod("p0", ("x", "x"))
    queue.add(pod)
    assert queue.location("uid-p0") == "unschedulable"

    queue.delete(pod)
    queue.move_all(CLAIM_CHANGE, None, ResourceClaim(metadata=ObjectMeta(name="x")))

    assert queue.location("uid-p0") is None
    assert [entry for entry in recorder.queued if entry[0] == "claim"] == []
