"""Tests of kube-scheduler's scheduling queue on its own, in simulated time.

No scheduler runs here. Each test builds a `SchedulingQueue` on a bare SimPy
environment with plain fake plugins: a PreEnqueue gate that the test opens and
closes, and event registrations with or without queueing hints. The test plays
the scheduling loop by hand. `pop()` hands out the head of activeQ at once when
it is not empty. A "failed cycle" sets the rejecting plugins on the popped
`QueuedPodInfo` and calls `add_unschedulable_if_not_present`. The periodic
sweeps are direct calls of `flush_backoff_completed` and
`flush_unschedulable_leftover` at chosen times.

The expected behaviour is kube-scheduler 1.29: backoff 1 s * 2^(attempts-1)
capped at 10 s from the last failure, a backoffQ sweep every second, pods that
wait more than 5 minutes in unschedulablePods moved by the 30 s sweep, and
`Queue` from a plugin that returned Pending moving a pod to activeQ without
backoff.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
import simpy

from sim.api.types import (
    ObjectMeta,
    Pod,
    PodCondition,
    PodResourceClaimStatus,
    PodSpec,
)
from sim.cluster.scheduler.framework import (
    SUCCESS,
    ActionType,
    ClusterEvent,
    Code,
    EventRegistration,
    HintFn,
    HintIndex,
    QueueingHint,
    Resource,
    Status,
)
from sim.cluster.scheduler.queue import QueuedPodInfo, SchedulingQueue

CLAIM_CHANGE = ClusterEvent(
    Resource.RESOURCE_CLAIM, ActionType.ADD | ActionType.UPDATE, "ResourceClaimChange"
)
NODE_ADD = ClusterEvent(Resource.NODE, ActionType.ADD, "NodeAdd")
CLAIM_UPDATE = ClusterEvent(Resource.RESOURCE_CLAIM, ActionType.UPDATE, "ResourceClaimUpdate")
CONTEXT_ADD = ClusterEvent(Resource.POD_SCHEDULING_CONTEXT, ActionType.ADD, "PSCAdd")
NODE_TAINT = ClusterEvent(Resource.NODE, ActionType.UPDATE_NODE_TAINT, "NodeTaintChange")


# --------------------------------------------------------------------------------------
# Fake plugins and helpers
# --------------------------------------------------------------------------------------


class Gate:
    """A PreEnqueue plugin that lets pods in only while `open` is True."""

    def __init__(self, *, open_: bool = True, name: str = "Gate") -> None:
        self.name = name
        self.open = open_
        self.calls: list[str] = []

    def pre_enqueue(self, pod: Pod) -> Status:
        self.calls.append(pod.metadata.name)
        if self.open:
            return SUCCESS
        return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, "claims not created yet", self.name)


class Hint:
    """A queueing hint that returns a fixed result and records its arguments."""

    def __init__(self, result: QueueingHint) -> None:
        self.result = result
        self.calls: list[tuple[str, Any, Any]] = []

    def __call__(self, pod: Pod, old: Any, new: Any) -> QueueingHint:
        self.calls.append((pod.metadata.name, old, new))
        return self.result


def make_pod(name: str, *, priority: int | None = None, uid: str | None = None) -> Pod:
    return Pod(
        metadata=ObjectMeta(name=name, namespace="default", uid=uid or f"uid-{name}"),
        spec=PodSpec(priority=priority),
    )


def make_queue(
    *,
    hints: bool = False,
    dra_hint: Hint | None = None,
    gates: list[Gate] | None = None,
    rejected: list[tuple[QueuedPodInfo, Status]] | None = None,
) -> SchedulingQueue:
    """Return a queue with two fake plugins: "Fit" (NodeAdd) and "DRA" (claim changes)."""
    env = simpy.Environment()
    registrations = {
        "Fit": [EventRegistration(NODE_ADD)],
        "DRA": [EventRegistration(CLAIM_CHANGE, dra_hint)],
    }

    def on_rejected(info: QueuedPodInfo, status: Status) -> None:
        if rejected is not None:
            rejected.append((info, status))

    queue = SchedulingQueue(
        env,
        registrations=registrations,
        pre_enqueue_plugins=list(gates or []),
        hints_enabled=hints,
        on_pre_enqueue_rejected=on_rejected,
    )
    return queue


def advance(queue: SchedulingQueue, to_s: float) -> None:
    """Move the queue's clock forward to `to_s` (no-op when it is there already)."""
    if to_s > queue.env.now:
        queue.env.run(until=to_s)


def pop_now(queue: SchedulingQueue) -> QueuedPodInfo:
    """Pop the head of activeQ, which must be there already."""
    event = queue.pop()
    assert event.triggered, "activeQ was empty"
    info: QueuedPodInfo = event.value
    return info


def fail(
    queue: SchedulingQueue,
    info: QueuedPodInfo,
    *,
    unschedulable: Iterable[str] = (),
    pending: Iterable[str] = (),
) -> str:
    """End the pod's cycle as failed with the given rejecting plugins; return where it went."""
    info.unschedulable_plugins |= set(unschedulable)
    info.pending_plugins |= set(pending)
    return queue.add_unschedulable_if_not_present(info, queue.scheduling_cycle)


def park(queue: SchedulingQueue, name: str, plugin: str = "DRA") -> QueuedPodInfo:
    """Add a pod, pop it and fail it with `plugin`, so that it waits in unschedulablePods."""
    queue.add(make_pod(name))
    info = pop_now(queue)
    assert fail(queue, info, unschedulable={plugin}) == "unschedulable"
    return info


# --------------------------------------------------------------------------------------
# activeQ order
# --------------------------------------------------------------------------------------


def test_active_queue_pops_by_priority_then_arrival() -> None:
    queue = make_queue()
    arrivals = [("low-1", 0), ("high-1", 10), ("low-2", 0), ("high-2", 10), ("mid", 5)]
    for index, (name, priority) in enumerate(arrivals):
        advance(queue, float(index))
        queue.add(make_pod(name, priority=priority))

    order = [pop_now(queue).pod.metadata.name for _ in arrivals]

    assert order == ["high-1", "high-2", "mid", "low-1", "low-2"]


def test_requeued_pod_keeps_order_of_its_failure_time() -> None:
    queue = make_queue()
    queue.add(make_pod("early"))
    first = pop_now(queue)
    advance(queue, 5.0)
    queue.add(make_pod("late"))
    # "early" failed at t=6, after "late" was queued at t=5: FIFO by timestamp puts it second.
    advance(queue, 6.0)
    assert fail(queue, first) == "backoff"
    advance(queue, 7.0)
    queue.flush_backoff_completed()

    assert [pop_now(queue).pod.metadata.name for _ in range(2)] == ["late", "early"]


def test_pop_waits_for_a_pod_and_counts_attempts() -> None:
    queue = make_queue()
    event = queue.pop()
    assert not event.triggered

    queue.add(make_pod("p"))

    assert event.triggered
    info: QueuedPodInfo = event.value
    assert info.pod.metadata.name == "p"
    assert info.attempts == 1
    assert queue.scheduling_cycle == 1
    assert queue.location(info.uid) == "in-flight"


def test_pop_clears_rejectors_of_previous_attempt() -> None:
    queue = make_queue()
    info = park(queue, "p", plugin="Fit")
    queue.move_all(NODE_ADD)
    advance(queue, 2.0)
    queue.flush_backoff_completed()

    again = pop_now(queue)

    assert again is info
    assert again.attempts == 2
    assert again.unschedulable_plugins == set()
    assert again.pending_plugins == set()


# --------------------------------------------------------------------------------------
# Backoff
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempts", "backoff_s"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (6, 10.0), (9, 10.0)],
    ids=lambda value: str(value),
)
def test_backoff_doubles_per_attempt_up_to_ten_seconds(attempts: int, backoff_s: float) -> None:
    queue = make_queue()
    queue.add(make_pod("p"))
    for _ in range(attempts - 1):
        info = pop_now(queue)
        assert fail(queue, info) == "backoff"
        advance(queue, float(queue.env.now) + 10.0)
        queue.flush_backoff_completed()

    info = pop_now(queue)
    assert info.attempts == attempts
    failed_at = float(queue.env.now)
    # No rejecting plugin (an Error): kube-scheduler 1.29 sends the pod to backoffQ.
    assert fail(queue, info) == "backoff"
    advance(queue, failed_at + backoff_s - 0.001)
    queue.flush_backoff_completed()
    assert queue.location(info.uid) == "backoff"
    advance(queue, failed_at + backoff_s)
    queue.flush_backoff_completed()
    assert queue.location(info.uid) == "active"


def test_backoff_counts_from_the_failure_not_the_pop() -> None:
    queue = make_queue()
    queue.add(make_pod("p"))
    info = pop_now(queue)
    # The cycle takes 0.5 s of API calls before it fails.
    advance(queue, 0.5)
    assert fail(queue, info) == "backoff"

    advance(queue, 1.4)
    queue.flush_backoff_completed()
    assert queue.location(info.uid) == "backoff"
    advance(queue, 1.5)
    queue.flush_backoff_completed()
    assert queue.location(info.uid) == "active"


def test_backoff_flush_moves_expired_pods() -> None:
    queue = make_queue()
    for name in ("a", "b"):
        queue.add(make_pod(name))
    a = pop_now(queue)
    b = pop_now(queue)
    assert fail(queue, b) == "backoff"  # expires at 1.0
    advance(queue, 0.6)
    assert fail(queue, a) == "backoff"  # expires at 1.6

    advance(queue, 1.0)
    queue.flush_backoff_completed()
    assert queue.counts() == {"active": 1, "backoff": 1, "unschedulable": 0, "in_flight": 0}
    assert pop_now(queue) is b
    advance(queue, 2.0)
    queue.flush_backoff_completed()
    assert pop_now(queue) is a


def test_backoff_flush_runs_pre_enqueue_again() -> None:
    gate = Gate(open_=True)
    queue = make_queue(gates=[gate])
    queue.add(make_pod("p"))
    info = pop_now(queue)
    assert fail(queue, info) == "backoff"
    gate.open = False

    advance(queue, 1.0)
    queue.flush_backoff_completed()

    assert gate.calls == ["p", "p"]
    assert queue.location(info.uid) == "unschedulable"
    assert info.gated


# --------------------------------------------------------------------------------------
# The 5-minute unschedulable sweep
# --------------------------------------------------------------------------------------


def test_unschedulable_sweep_moves_pods_waiting_over_five_minutes() -> None:
    queue = make_queue()
    old = park(queue, "old")
    advance(queue, 100.0)
    young = park(queue, "young")

    advance(queue, 300.0)
    queue.flush_unschedulable_leftover()
    assert queue.location(old.uid) == "unschedulable", "exactly 300 s is not longer than 5 min"

    advance(queue, 330.0)
    queue.flush_unschedulable_leftover()
    assert queue.location(old.uid) == "active"
    assert queue.location(young.uid) == "unschedulable"


def test_sweep_moves_pods_without_events() -> None:
    queue = make_queue()
    # Rejected by a plugin that registered no event at all.
    info = park(queue, "p", plugin="VolumeBinding")
    queue.move_all(NODE_ADD)
    queue.move_all(CLAIM_CHANGE)
    assert queue.location(info.uid) == "unschedulable"

    advance(queue, 301.0)
    queue.flush_unschedulable_leftover()

    assert queue.location(info.uid) == "active"


def test_unschedulable_sweep_rechecks_gated_pods() -> None:
    gate = Gate(open_=False)
    queue = make_queue(gates=[gate])
    queue.add(make_pod("p"))
    advance(queue, 301.0)
    queue.flush_unschedulable_leftover()
    assert gate.calls == ["p", "p"]
    assert queue.location("uid-p") == "unschedulable"

    gate.open = True
    advance(queue, 331.0)
    queue.flush_unschedulable_leftover()

    assert queue.location("uid-p") == "active"


# --------------------------------------------------------------------------------------
# PreEnqueue gating and pod updates
# --------------------------------------------------------------------------------------


def test_pre_enqueue_rejection_parks_pod_without_attempt() -> None:
    rejected: list[tuple[QueuedPodInfo, Status]] = []
    gate = Gate(open_=False)
    queue = make_queue(gates=[gate], rejected=rejected)

    queue.add(make_pod("p"))

    assert queue.location("uid-p") == "unschedulable"
    assert not queue.pop().triggered
    assert len(rejected) == 1
    info, status = rejected[0]
    assert info.gated
    assert info.gate_message == "claims not created yet"
    assert info.attempts == 0
    assert info.unschedulable_plugins == {"Gate"}
    assert status.plugin == "Gate"
    assert queue.scheduling_cycle == 0


def with_claim_statuses(pod: Pod) -> Pod:
    statuses = (PodResourceClaimStatus(name="gpu", resource_claim_name="p-gpu-abcde"),)
    return pod.with_status(resource_claim_statuses=statuses)


@pytest.mark.parametrize(
    ("change", "counts"),
    [
        (with_claim_statuses, True),
        (lambda pod: pod.with_meta(labels={"app": "x"}), True),
        (lambda pod: pod.with_meta(annotations={"note": "x"}), True),
        (
            lambda pod: pod.model_copy(
                update={"spec": pod.spec.model_copy(update={"node_selector": {"zone": "a"}})}
            ),
            True,
        ),
        (lambda pod: pod.with_meta(resource_version="42"), False),
        (lambda pod: pod.with_meta(generation=3), False),
        (lambda pod: pod.with_meta(finalizers=("example.com/keep",)), False),
        (lambda pod: pod.with_status(phase="Pending"), False),
        (
            lambda pod: pod.with_status(
                conditions=(
                    PodCondition(type="PodScheduled", status="False", reason="Unschedulable"),
                )
            ),
            False,
        ),
        (lambda pod: pod.with_status(nominated_node_name="n1"), False),
    ],
    ids=[
        "claim-statuses",
        "labels",
        "annotations",
        "spec",
        "resource-version",
        "generation",
        "finalizers",
        "phase",
        "condition",
        "nominated-node",
    ],
)
def test_pod_update_releases_gated_pod(change: Any, counts: bool) -> None:
    gate = Gate(open_=False)
    queue = make_queue(gates=[gate])
    old = make_pod("p")
    queue.add(old)
    gate.open = True

    queue.update(old, change(old))

    assert (queue.location("uid-p") != "unschedulable") is counts


def test_released_gated_pod_skips_backoff() -> None:
    gate = Gate(open_=False)
    queue = make_queue(gates=[gate])
    old = make_pod("p")
    queue.add(old)
    advance(queue, 0.01)
    gate.open = True

    queue.update(old, with_claim_statuses(old))

    assert queue.location("uid-p") == "active"
    assert gate.calls == ["p", "p"]


def test_gated_pod_moved_by_event_skips_backoff() -> None:
    # The gate plays DRA's PreEnqueue, so claim events are registered for it.
    gate = Gate(open_=False, name="DRA")
    queue = make_queue(gates=[gate])
    queue.add(make_pod("p"))
    advance(queue, 0.01)
    gate.open = True

    queue.move_all(CLAIM_CHANGE)

    assert queue.location("uid-p") == "active"


def test_update_keeps_active_pod_queued() -> None:
    queue = make_queue()
    old = make_pod("p")
    queue.add(old)
    new = old.with_meta(labels={"app": "x"})

    queue.update(old, new)

    info = pop_now(queue)
    assert info.pod is new
    assert info.attempts == 1


def test_update_of_unknown_pod_adds_it() -> None:
    queue = make_queue()
    pod = make_pod("p")

    queue.update(pod, pod)

    assert queue.location("uid-p") == "active"


def test_update_backs_off_recent_failure() -> None:
    queue = make_queue()
    info = park(queue, "p")
    old = info.pod

    queue.update(old, old.with_meta(labels={"app": "x"}))

    assert queue.location(info.uid) == "backoff"


def test_delete_removes_pod_from_every_queue() -> None:
    queue = make_queue()
    parked = park(queue, "parked")
    queue.add(make_pod("waiting"))

    queue.delete(parked.pod)
    queue.delete(make_pod("waiting"))

    assert "uid-parked" not in queue
    assert "uid-waiting" not in queue
    assert not queue.pop().triggered
    assert queue.counts() == {"active": 0, "backoff": 0, "unschedulable": 0, "in_flight": 0}


# --------------------------------------------------------------------------------------
# Requeueing after a failed cycle (hints off)
# --------------------------------------------------------------------------------------


def test_rejected_pod_without_events_waits_in_unschedulable() -> None:
    queue = make_queue()
    queue.add(make_pod("p"))
    info = pop_now(queue)

    assert fail(queue, info, unschedulable={"DRA"}) == "unschedulable"
    advance(queue, 20.0)
    queue.flush_backoff_completed()
    assert queue.location(info.uid) == "unschedulable"


def test_move_request_during_cycle_sends_pod_to_backoff() -> None:
    queue = make_queue()
    queue.add(make_pod("p"))
    info = pop_now(queue)

    queue.move_all(NODE_ADD)

    assert fail(queue, info, unschedulable={"DRA"}) == "backoff"


def test_move_request_backs_off_pending_pod() -> None:
    queue = make_queue()
    queue.add(make_pod("p"))
    info = pop_now(queue)

    queue.move_all(CLAIM_CHANGE)

    assert fail(queue, info, pending={"DRA"}) == "backoff"


def test_move_request_before_the_pop_does_not_count() -> None:
    queue = make_queue()
    queue.move_all(NODE_ADD)
    queue.add(make_pod("p"))
    info = pop_now(queue)

    assert fail(queue, info, unschedulable={"DRA"}) == "unschedulable"


def test_waking_event_is_no_move_request() -> None:
    queue = make_queue()
    info = park(queue, "p")
    advance(queue, 5.0)
    # The scheduling loop already waits in Pop when the waking event arrives.
    waiting = queue.pop()
    queue.move_all(CLAIM_CHANGE)
    assert waiting.triggered

    assert fail(queue, info, unschedulable={"DRA"}) == "unschedulable"


def test_uninteresting_event_is_no_move_request() -> None:
    queue = make_queue()
    queue.add(make_pod("p"))
    info = pop_now(queue)
    before = queue.move_request_cycle

    # No plugin registered PodSchedulingContext events, so the queue ignores this one.
    queue.move_all(CONTEXT_ADD)

    assert queue.move_request_cycle == before
    assert fail(queue, info, unschedulable={"DRA"}) == "unschedulable"


def test_assigned_pod_event_counts_as_move_request() -> None:
    queue = make_queue()
    queue.add(make_pod("p"))
    info = pop_now(queue)

    queue.note_event(ClusterEvent(Resource.ASSIGNED_POD, ActionType.ADD, "AssignedPodAdd"))

    assert fail(queue, info, unschedulable={"DRA"}) == "backoff"


def test_error_without_rejecting_plugin_goes_to_backoff() -> None:
    queue = make_queue()
    queue.add(make_pod("p"))
    info = pop_now(queue)

    assert fail(queue, info) == "backoff"


# --------------------------------------------------------------------------------------
# Which events move which waiting pods
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rejector", "event", "moved"),
    [
        ("DRA", CLAIM_CHANGE, True),
        ("DRA", CLAIM_UPDATE, True),
        ("DRA", NODE_ADD, False),
        ("Fit", NODE_ADD, True),
        ("Fit", CLAIM_CHANGE, False),
        ("Fit", NODE_TAINT, False),
        ("DRA", CONTEXT_ADD, False),
    ],
    ids=[
        "registered-event",
        "registered-action-subset",
        "event-of-another-plugin",
        "fit-node-add",
        "fit-claim-change",
        "unregistered-action",
        "unregistered-resource",
    ],
)
def test_events_move_only_pods_their_plugins_rejected(
    rejector: str, event: ClusterEvent, moved: bool
) -> None:
    queue = make_queue()
    info = park(queue, "p", plugin=rejector)
    advance(queue, 5.0)

    queue.move_all(event)

    assert queue.location(info.uid) == ("active" if moved else "unschedulable")


def test_event_moves_backing_off_pod_to_backoff() -> None:
    queue = make_queue()
    info = park(queue, "p")
    advance(queue, 0.5)

    queue.move_all(CLAIM_CHANGE)

    assert queue.location(info.uid) == "backoff"
    advance(queue, 1.0)
    queue.flush_backoff_completed()
    assert queue.location(info.uid) == "active"


def test_event_pre_check_filters_candidates() -> None:
    queue = make_queue()
    first = park(queue, "first", plugin="Fit")
    second = park(queue, "second", plugin="Fit")
    advance(queue, 5.0)

    queue.move_all(NODE_ADD, pre_check=lambda pod: pod.metadata.name == "second")

    assert queue.location(first.uid) == "unschedulable"
    assert queue.location(second.uid) == "active"


def test_pending_plugin_event_skips_backoff() -> None:
    queue = make_queue()
    queue.add(make_pod("pending"))
    queue.add(make_pod("rejected"))
    pending = pop_now(queue)
    rejected = pop_now(queue)
    assert fail(queue, pending, pending={"DRA"}) == "unschedulable"
    assert fail(queue, rejected, unschedulable={"DRA"}) == "unschedulable"
    advance(queue, 0.1)

    queue.move_all(CLAIM_CHANGE)

    assert queue.location(pending.uid) == "active"
    assert queue.location(rejected.uid) == "backoff"


# --------------------------------------------------------------------------------------
# Queueing hints
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hints", "hint_result", "moved"),
    [
        (False, QueueingHint.SKIP, True),
        (False, QueueingHint.QUEUE, True),
        (True, QueueingHint.SKIP, False),
        (True, QueueingHint.QUEUE, True),
    ],
    ids=["off-skip-ignored", "off-queue", "on-skip", "on-queue"],
)
def test_hints_decide_only_when_enabled(
    hints: bool, hint_result: QueueingHint, moved: bool
) -> None:
    hint = Hint(hint_result)
    queue = make_queue(hints=hints, dra_hint=hint)
    info = park(queue, "p")
    advance(queue, 5.0)

    queue.move_all(CLAIM_CHANGE, "old-claim", "new-claim")

    assert queue.location(info.uid) == ("active" if moved else "unschedulable")
    assert hint.calls == ([("p", "old-claim", "new-claim")] if hints else [])


def test_hint_skipped_for_other_rejectors() -> None:
    hint = Hint(QueueingHint.QUEUE)
    queue = make_queue(hints=True, dra_hint=hint)
    info = park(queue, "p", plugin="Fit")

    queue.move_all(CLAIM_CHANGE, None, "claim")

    assert hint.calls == []
    assert queue.location(info.uid) == "unschedulable"


def test_hints_on_pending_plugin_queue_skips_backoff() -> None:
    queue = make_queue(hints=True, dra_hint=Hint(QueueingHint.QUEUE))
    queue.add(make_pod("p"))
    info = pop_now(queue)
    assert fail(queue, info, pending={"DRA"}) == "unschedulable"

    queue.move_all(CLAIM_CHANGE, None, "claim")

    assert queue.location(info.uid) == "active"


def test_wildcard_event_ignores_hints() -> None:
    queue = make_queue(hints=True, dra_hint=Hint(QueueingHint.SKIP))
    info = park(queue, "p")
    advance(queue, 301.0)

    queue.flush_unschedulable_leftover()

    assert queue.location(info.uid) == "active"


# --------------------------------------------------------------------------------------
# In-flight events (hints on)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hint_result", "unschedulable", "pending", "expected"),
    [
        (QueueingHint.QUEUE, {"DRA"}, set(), "backoff"),
        (QueueingHint.QUEUE, set(), {"DRA"}, "active"),
        (QueueingHint.SKIP, {"DRA"}, set(), "unschedulable"),
        (QueueingHint.SKIP, set(), {"DRA"}, "unschedulable"),
    ],
    ids=["queue-rejected", "queue-pending", "skip-rejected", "skip-pending"],
)
def test_event_during_cycle_is_replayed_through_hints(
    hint_result: QueueingHint, unschedulable: set[str], pending: set[str], expected: str
) -> None:
    hint = Hint(hint_result)
    queue = make_queue(hints=True, dra_hint=hint)
    queue.add(make_pod("p"))
    info = pop_now(queue)

    queue.move_all(CLAIM_CHANGE, "old", "new")

    assert fail(queue, info, unschedulable=unschedulable, pending=pending) == expected
    assert hint.calls == [("p", "old", "new")]


def test_hints_on_ignore_move_request_cycle() -> None:
    queue = make_queue(hints=True, dra_hint=Hint(QueueingHint.SKIP))
    queue.add(make_pod("p"))
    info = pop_now(queue)

    # With hints off this would send the pod to backoffQ; with hints the event is judged.
    queue.move_all(CLAIM_CHANGE, None, "claim")

    assert fail(queue, info, unschedulable={"DRA"}) == "unschedulable"


def test_in_flight_events_replayed_per_pod() -> None:
    hint = Hint(QueueingHint.QUEUE)
    queue = make_queue(hints=True, dra_hint=hint)
    queue.add(make_pod("first"))
    queue.add(make_pod("second"))
    first = pop_now(queue)
    queue.move_all(CLAIM_CHANGE, None, "claim")
    second = pop_now(queue)

    assert fail(queue, second, unschedulable={"DRA"}) == "unschedulable"
    assert fail(queue, first, unschedulable={"DRA"}) == "backoff"
    assert [call[0] for call in hint.calls] == ["first"]


def test_idle_queue_keeps_no_events() -> None:
    queue = make_queue(hints=True, dra_hint=Hint(QueueingHint.QUEUE))
    queue.move_all(CLAIM_CHANGE, None, "claim")
    queue.add(make_pod("p"))
    info = pop_now(queue)

    assert fail(queue, info, unschedulable={"DRA"}) == "unschedulable"


def test_hints_on_error_without_rejectors_goes_to_backoff() -> None:
    queue = make_queue(hints=True, dra_hint=Hint(QueueingHint.SKIP))
    queue.add(make_pod("p"))
    info = pop_now(queue)

    assert fail(queue, info) == "backoff"


def test_waking_event_is_not_replayed() -> None:
    hint = Hint(QueueingHint.QUEUE)
    queue = make_queue(hints=True, dra_hint=hint)
    queue.add(make_pod("p"))
    info = pop_now(queue)
    assert fail(queue, info, pending={"DRA"}) == "unschedulable"
    # The scheduling loop already waits in Pop when the waking event arrives.
    waiting = queue.pop()
    queue.move_all(CLAIM_CHANGE, "old", "new")
    assert waiting.triggered

    # The cycle fails again; only events after the Pop may count for it.
    assert fail(queue, info, pending={"DRA"}) == "unschedulable"


# --------------------------------------------------------------------------------------
# Hint indexes (hints on)
# --------------------------------------------------------------------------------------


def claim_names_of(pod: Pod) -> list[str]:
    """The claim names a test pod refers to: the names in its resourceClaimStatuses."""
    return [status.resource_claim_name or "" for status in pod.status.resource_claim_statuses]


def make_indexed_queue(hint: HintFn, *, use_index: bool = True) -> SchedulingQueue:
    """A queue whose "DRA" claim hint is indexed by claim name, as DynamicResources' is."""
    registrations = {
        "Fit": [EventRegistration(NODE_ADD)],
        "DRA": [
            EventRegistration(
                CLAIM_CHANGE,
                hint,
                HintIndex(lambda claim: None if claim is None else str(claim), claim_names_of),
            )
        ],
    }
    queue = SchedulingQueue(
        simpy.Environment(), registrations=registrations, pre_enqueue_plugins=[], hints_enabled=True
    )
    queue.use_hint_indexes = use_index
    return queue


def with_claims(pod: Pod, *names: str) -> Pod:
    statuses = tuple(
        PodResourceClaimStatus(name=f"c{i}", resource_claim_name=name)
        for i, name in enumerate(names)
    )
    return pod.model_copy(
        update={"status": pod.status.model_copy(update={"resource_claim_statuses": statuses})}
    )


def park_with_claims(
    queue: SchedulingQueue, name: str, *claims: str, plugin: str | None = "DRA"
) -> QueuedPodInfo:
    queue.add(with_claims(make_pod(name), *claims))
    info = pop_now(queue)
    rejectors = {plugin} if plugin else set()
    assert queue.location(info.uid) is not None
    info.unschedulable_plugins |= rejectors
    queue._park(info)  # a failed cycle without rejectors would go to backoffQ instead
    return info


@pytest.mark.parametrize("use_index", [True, False], ids=["indexed", "full-scan"])
def test_indexed_event_reaches_claim_users(use_index: bool) -> None:
    hint = Hint(QueueingHint.SKIP)
    queue = make_indexed_queue(hint, use_index=use_index)
    park_with_claims(queue, "a", "claim-a")
    park_with_claims(queue, "b", "claim-b", "shared")
    park_with_claims(queue, "c", "claim-c", "shared")
    park_with_claims(queue, "fit", "shared", plugin="Fit")

    queue.move_all(CLAIM_CHANGE, None, "shared")

    called = [call[0] for call in hint.calls]
    assert called == (["b", "c"] if use_index else ["a", "b", "c"])


def test_indexed_move_matches_full_scan() -> None:
    def names_claim(pod: Pod, old: Any, new: Any) -> QueueingHint:
        # Keeps the index's promise: Skip unless the pod names the claim.
        return QueueingHint.QUEUE if new in claim_names_of(pod) else QueueingHint.SKIP

    moved: dict[bool, list[str | None]] = {}
    for use_index in (True, False):
        queue = make_indexed_queue(names_claim, use_index=use_index)
        infos = [
            park_with_claims(queue, "a", "x"),
            park_with_claims(queue, "b", "y"),
            park_with_claims(queue, "none", "z", plugin=None),
            park_with_claims(queue, "c", "x"),
            park_with_claims(queue, "fit", "x", plugin="Fit"),
        ]
        advance(queue, 5.0)
        queue.move_all(CLAIM_CHANGE, None, "x")
        moved[use_index] = [queue.location(info.uid) for info in infos]
    assert (
        moved[True]
        == moved[False]
        == [
            "active",
            "unschedulable",
            "active",
            "active",
            "unschedulable",
        ]
    )


def test_indexed_pod_survives_status_update() -> None:
    hint = Hint(QueueingHint.QUEUE)
    queue = make_indexed_queue(hint)
    info = park_with_claims(queue, "p", "x")
    # The scheduler's own PodScheduled condition does not release a waiting pod.
    condition = PodCondition(type="PodScheduled", status="False", reason="Unschedulable")
    newer = info.pod.model_copy(
        update={"status": info.pod.status.model_copy(update={"conditions": (condition,)})}
    )
    queue.update(info.pod, newer)
    assert queue.location(info.uid) == "unschedulable"

    queue.move_all(CLAIM_CHANGE, None, "x")

    assert [call[0] for call in hint.calls] == ["p"]


def test_indexed_queue_forgets_deleted_pods() -> None:
    hint = Hint(QueueingHint.QUEUE)
    queue = make_indexed_queue(hint)
    info = park_with_claims(queue, "p", "x")

    queue.delete(info.pod)
    queue.move_all(CLAIM_CHANGE, None, "x")

    assert hint.calls == []
    assert queue.counts()["unschedulable"] == 0


def test_hints_off_files_no_pods() -> None:
    # Without hints the index is never read, so filing would only cost time and memory.
    looked_up: list[str] = []

    def pod_keys(pod: Pod) -> list[str]:
        looked_up.append(pod.metadata.name)
        return claim_names_of(pod)

    index = HintIndex(lambda claim: None if claim is None else str(claim), pod_keys)
    registrations = {"DRA": [EventRegistration(CLAIM_CHANGE, Hint(QueueingHint.QUEUE), index)]}
    queue = SchedulingQueue(
        simpy.Environment(), registrations=registrations, pre_enqueue_plugins=[]
    )
    info = park_with_claims(queue, "p", "x")
    advance(queue, 5.0)

    queue.move_all(CLAIM_CHANGE, None, "x")

    assert looked_up == []
    assert queue.location(info.uid) == "active"
