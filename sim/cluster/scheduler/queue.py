"""kube-scheduler's scheduling queue: activeQ, backoffQ and unschedulable pods.

Pods wait in one of three places:

* activeQ: ready to be scheduled, ordered by priority, then by the time they
  were queued;
* backoffQ: failed recently and wait out 1 s * 2^(attempts-1), capped at 10 s,
  counted from the last failure; a sweep every second moves expired pods to
  activeQ;
* unschedulablePods: wait for a cluster event that one of the plugins that
  rejected them registered; a sweep every 30 s moves pods that waited longer
  than 5 minutes.

Which event moves which pod, and whether it goes to activeQ or through backoff,
follows Kubernetes 1.29 (`isPodWorthRequeuing`, `requeuePodViaQueueingHint`,
`AddUnschedulableIfNotPresent`): with queueing hints off every registered event
counts, and an event for a plugin that returned Pending moves the pod to
activeQ without backoff. PreEnqueue plugins run whenever a pod would enter
activeQ; a pod they reject is "gated" in unschedulablePods.

Not modelled: nominated pods and preemption, scheduling gates other than DRA's
PreEnqueue, multiple profiles, and the 1.28.0 queue bug that kept stale
rejector plugins (F4).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

import simpy

from sim.api.types import Pod
from sim.cluster.scheduler.framework import (
    ClusterEvent,
    EventRegistration,
    HintIndex,
    QueueingHint,
    Resource,
    Status,
)


class PreEnqueuePlugin(Protocol):
    """A plugin that can keep a pod out of activeQ."""

    name: str

    def pre_enqueue(self, pod: Pod) -> Status:
        """Return Success to let the pod into activeQ."""
        ...


class Strategy(Enum):
    """Where a requeued pod goes (kube-scheduler's queueingStrategy)."""

    SKIP = 0
    AFTER_BACKOFF = 1
    IMMEDIATELY = 2


@dataclass
class QueuedPodInfo:
    """A pod in the scheduling queue and its scheduling history."""

    pod: Pod
    timestamp: float
    initial_attempt_timestamp: float | None = None
    attempts: int = 0
    unschedulable_plugins: set[str] = field(default_factory=set)
    pending_plugins: set[str] = field(default_factory=set)
    gated: bool = False
    gate_message: str = ""
    in_flight_since: int = -1

    @property
    def uid(self) -> str:
        """The pod's UID."""
        return self.pod.metadata.uid

    @property
    def priority(self) -> int:
        """The pod's priority (0 when unset)."""
        return self.pod.spec.priority or 0


@dataclass(frozen=True)
class _RecordedEvent:
    event: ClusterEvent
    old: Any
    new: Any


class SchedulingQueue:
    """The priority queue that feeds the scheduling loop."""

    def __init__(
        self,
        env: simpy.Environment,
        *,
        registrations: dict[str, list[EventRegistration]],
        pre_enqueue_plugins: list[PreEnqueuePlugin],
        initial_backoff_s: float = 1.0,
        max_backoff_s: float = 10.0,
        max_in_unschedulable_s: float = 300.0,
        hints_enabled: bool = False,
        minor_version: int = 29,
        on_pre_enqueue_rejected: Callable[[QueuedPodInfo, Status], None] | None = None,
    ) -> None:
        self.env = env
        self._registrations = registrations
        self._pre_enqueue_plugins = pre_enqueue_plugins
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_in_unschedulable_s = max_in_unschedulable_s
        self.hints_enabled = hints_enabled
        self.minor_version = minor_version
        self._on_pre_enqueue_rejected = on_pre_enqueue_rejected

        self._sequence = itertools.count()
        self._active: list[tuple[int, float, int, str]] = []
        self._backoff: list[tuple[float, int, str]] = []
        self._unschedulable: dict[str, QueuedPodInfo] = {}
        self._infos: dict[str, QueuedPodInfo] = {}
        self._where: dict[str, str] = {}
        self._getters: list[simpy.Event] = []
        self.scheduling_cycle = 0
        self.move_request_cycle = -1
        self._in_flight: dict[str, QueuedPodInfo] = {}
        self._in_flight_events: list[_RecordedEvent] = []
        self._in_flight_base = 0
        self._holding = False
        self._matches_cache: dict[ClusterEvent, list[tuple[str, EventRegistration]]] = {}
        # Waiting pods filed by the keys of each hint index, so that an event whose hints
        # promise Skip for every other pod is offered to few pods (see `HintIndex`).
        self.use_hint_indexes = True
        """Whether `move_all` may use the hint indexes (off: offer each event to every pod)."""
        # With hints off no hint runs, so pods are not filed. Filing would resolve the claim
        # names of every waiting pod and fill the plugin's claim-name cache for nothing.
        self._hint_indexes: list[HintIndex] = []
        if hints_enabled:
            self._hint_indexes = list(
                dict.fromkeys(
                    registration.index
                    for plugin_registrations in registrations.values()
                    for registration in plugin_registrations
                    if registration.index is not None
                )
            )
        self._filed: dict[HintIndex, dict[str, set[str]]] = {
            index: {} for index in self._hint_indexes
        }
        self._filed_keys: dict[str, list[tuple[HintIndex, tuple[str, ...]]]] = {}
        self._no_rejector: set[str] = set()
        self._park_order: dict[str, int] = {}
        self._park_sequence = itertools.count()

    # ----------------------------------------------------------------------------------
    # Adding, updating and removing pods (informer handlers)
    # ----------------------------------------------------------------------------------

    def add(self, pod: Pod) -> None:
        """Queue a new unscheduled pod (runs PreEnqueue)."""
        info = QueuedPodInfo(pod=pod, timestamp=self._now())
        self._infos[info.uid] = info
        self._add_to_active(info)

    def update(self, old: Pod, new: Pod) -> None:
        """Refresh a queued pod; a meaningful change releases it from unschedulablePods."""
        uid = new.metadata.uid
        info = self._infos.get(uid)
        if info is None:
            self.add(new)
            return
        info.pod = new
        if self._where.get(uid) != "unschedulable":
            return
        if not _is_pod_updated(old, new):
            self._file(info)
            return
        self._unpark(uid)
        del self._where[uid]
        if self._is_backing_off(info):
            self._push_backoff(info)
        else:
            self._add_to_active(info)

    def delete(self, pod: Pod) -> None:
        """Forget a pod (deleted, or bound by someone)."""
        uid = pod.metadata.uid
        self._infos.pop(uid, None)
        self._unpark(uid)
        self._where.pop(uid, None)
        self._in_flight.pop(uid, None)

    def __contains__(self, uid: str) -> bool:
        return uid in self._infos

    def location(self, uid: str) -> str | None:
        """Return "active", "backoff", "unschedulable", "in-flight" or None."""
        return self._where.get(uid) or ("in-flight" if uid in self._in_flight else None)

    # ----------------------------------------------------------------------------------
    # The scheduling loop's side
    # ----------------------------------------------------------------------------------

    def pop(self) -> simpy.Event:
        """Return an event that fires with the next QueuedPodInfo from activeQ."""
        event = self.env.event()
        self._getters.append(event)
        self._hand_out()
        return event

    def add_unschedulable_if_not_present(self, info: QueuedPodInfo, pod_cycle: int) -> str:
        """Requeue a pod after a failed cycle; return the queue it went to."""
        uid = info.uid
        if uid not in self._infos or self._where.get(uid):
            return "dropped"
        events = self._take_in_flight(info)
        info.timestamp = self._now()
        rejectors = info.unschedulable_plugins | info.pending_plugins
        if self.hints_enabled:
            strategy = self._strategy_for_in_flight(info, events)
            return self._requeue(info, strategy)
        moved_during_cycle = self.move_request_cycle >= pod_cycle
        # 1.29 sends a pod that no plugin rejected (an Error) through backoff; 1.27 and
        # 1.28 park it until any event arrives, unless one arrived during its cycle.
        if moved_during_cycle or (not rejectors and self.minor_version >= 29):
            self._push_backoff(info)
            return "backoff"
        self._park(info)
        return "unschedulable"

    def done(self, info: QueuedPodInfo) -> None:
        """Mark a pod's cycle as finished without requeueing it (it was bound or deleted)."""
        self._take_in_flight(info)
        self._infos.pop(info.uid, None)

    # ----------------------------------------------------------------------------------
    # Cluster events
    # ----------------------------------------------------------------------------------

    def move_all(
        self,
        event: ClusterEvent,
        old: Any = None,
        new: Any = None,
        pre_check: Callable[[Pod], bool] | None = None,
    ) -> None:
        """Offer an event to every unschedulable pod (MoveAllToActiveOrBackoffQueue)."""
        if not self._is_event_of_interest(event):
            return
        candidates: Iterable[QueuedPodInfo] | None = self._indexed_candidates(event, new)
        if candidates is None:
            candidates = self._unschedulable.values()
        if pre_check is not None:
            candidates = [info for info in candidates if pre_check(info.pod)]
        self._move(candidates, event, old, new)

    def _indexed_candidates(self, event: ClusterEvent, new: Any) -> list[QueuedPodInfo] | None:
        """Return the waiting pods an event can move, in waiting order, or None for all of them.

        The index applies only when hints are on and every plugin registered for
        the event indexes its hint. A pod filed under none of the event's keys
        then gets Skip from every hint. Pods that no plugin rejected move on any
        event, so they are always candidates.
        """
        if not (self.hints_enabled and self.use_hint_indexes and self._hint_indexes):
            return None
        if event.resource == Resource.WILDCARD:
            return None
        uids = set(self._no_rejector)
        for _plugin, registration in self._matching_registrations(event):
            index = registration.index
            if index is None:
                return None
            key = index.object_key(new)
            if key is not None:
                uids.update(self._filed[index].get(key, ()))
        order = self._park_order
        return [self._unschedulable[uid] for uid in sorted(uids, key=order.__getitem__)]

    def note_event(self, event: ClusterEvent, old: Any = None, new: Any = None) -> None:
        """Record an event that moves no pod but counts as a move request (assigned pods)."""
        self._move([], event, old, new)

    def flush_backoff_completed(self) -> None:
        """Move pods whose backoff expired to activeQ (run every second)."""
        now = self._now()
        while self._backoff and self._backoff[0][0] <= now:
            _, _, uid = heapq.heappop(self._backoff)
            info = self._infos.get(uid)
            if info is None or self._where.get(uid) != "backoff":
                continue
            del self._where[uid]
            self._add_to_active(info)

    def flush_unschedulable_leftover(self) -> None:
        """Move pods that waited too long in unschedulablePods (run every 30 s)."""
        now = self._now()
        stale = [
            info
            for info in self._unschedulable.values()
            if now - info.timestamp > self.max_in_unschedulable_s
        ]
        if stale:
            from sim.cluster.scheduler.framework import UNSCHEDULABLE_TIMEOUT

            self._move(stale, UNSCHEDULABLE_TIMEOUT, None, None)

    def counts(self) -> dict[str, int]:
        """Return how many pods are in each queue."""
        active = sum(1 for where in self._where.values() if where == "active")
        backoff = sum(1 for where in self._where.values() if where == "backoff")
        return {
            "active": active,
            "backoff": backoff,
            "unschedulable": len(self._unschedulable),
            "in_flight": len(self._in_flight),
        }

    # ----------------------------------------------------------------------------------
    # Internals
    # ----------------------------------------------------------------------------------

    def _now(self) -> float:
        return float(self.env.now)

    def _backoff_duration(self, info: QueuedPodInfo) -> float:
        duration = self.initial_backoff_s
        for _ in range(1, info.attempts):
            duration *= 2
            if duration > self.max_backoff_s:
                return self.max_backoff_s
        return min(duration, self.max_backoff_s)

    def _backoff_expiry(self, info: QueuedPodInfo) -> float:
        return info.timestamp + self._backoff_duration(info)

    def _is_backing_off(self, info: QueuedPodInfo) -> bool:
        # 1.26-1.30 never back off a pod that PreEnqueue gated (1.31 changed this).
        return not info.gated and self._backoff_expiry(info) > self._now()

    def _add_to_active(self, info: QueuedPodInfo) -> bool:
        for plugin in self._pre_enqueue_plugins:
            status = plugin.pre_enqueue(info.pod)
            if not status.is_success:
                info.gated = True
                info.gate_message = status.message
                info.unschedulable_plugins.add(plugin.name)
                self._park(info)
                if self._on_pre_enqueue_rejected is not None:
                    self._on_pre_enqueue_rejected(info, status)
                return False
        info.gated = False
        info.gate_message = ""
        self._where[info.uid] = "active"
        heapq.heappush(
            self._active, (-info.priority, info.timestamp, next(self._sequence), info.uid)
        )
        self._hand_out()
        return True

    def _park(self, info: QueuedPodInfo) -> None:
        uid = info.uid
        if uid not in self._unschedulable:
            self._park_order[uid] = next(self._park_sequence)
        self._unschedulable[uid] = info
        self._where[uid] = "unschedulable"
        self._file(info)

    def _unpark(self, uid: str) -> None:
        if self._unschedulable.pop(uid, None) is None:
            return
        del self._park_order[uid]
        self._unfile(uid)

    def _file(self, info: QueuedPodInfo) -> None:
        """File a waiting pod under its current keys of every hint index."""
        uid = info.uid
        self._unfile(uid)
        if not (info.unschedulable_plugins or info.pending_plugins):
            self._no_rejector.add(uid)
        if not self._hint_indexes:
            return
        filed: list[tuple[HintIndex, tuple[str, ...]]] = []
        for index in self._hint_indexes:
            # A pod may name a key twice, and `_unfile` must remove it only once.
            keys = tuple(dict.fromkeys(index.pod_keys(info.pod)))
            by_key = self._filed[index]
            for key in keys:
                by_key.setdefault(key, set()).add(uid)
            filed.append((index, keys))
        self._filed_keys[uid] = filed

    def _unfile(self, uid: str) -> None:
        self._no_rejector.discard(uid)
        for index, keys in self._filed_keys.pop(uid, ()):
            by_key = self._filed[index]
            for key in keys:
                uids = by_key[key]
                uids.discard(uid)
                if not uids:
                    del by_key[key]

    def _push_backoff(self, info: QueuedPodInfo) -> None:
        self._where[info.uid] = "backoff"
        heapq.heappush(self._backoff, (self._backoff_expiry(info), next(self._sequence), info.uid))

    def _hand_out(self) -> None:
        if self._holding:
            return
        while self._getters and self._active:
            _, _, _, uid = heapq.heappop(self._active)
            info = self._infos.get(uid)
            if info is None or self._where.get(uid) != "active":
                continue
            del self._where[uid]
            info.attempts += 1
            if info.initial_attempt_timestamp is None:
                info.initial_attempt_timestamp = self._now()
            # 1.29 clears the rejector plugins of the previous attempt at Pop.
            info.unschedulable_plugins.clear()
            info.pending_plugins.clear()
            self.scheduling_cycle += 1
            info.in_flight_since = self._in_flight_base + len(self._in_flight_events)
            self._in_flight[uid] = info
            self._getters.pop(0).succeed(info)

    def _take_in_flight(self, info: QueuedPodInfo) -> list[_RecordedEvent]:
        if self._in_flight.pop(info.uid, None) is None:
            return []
        start = info.in_flight_since - self._in_flight_base
        events = self._in_flight_events[max(start, 0) :]
        if not self._in_flight:
            self._in_flight_base += len(self._in_flight_events)
            self._in_flight_events = []
        return events

    def _is_event_of_interest(self, event: ClusterEvent) -> bool:
        return event.resource == Resource.WILDCARD or bool(self._matching_registrations(event))

    def _move(
        self, infos: Iterable[QueuedPodInfo], event: ClusterEvent, old: Any, new: Any
    ) -> None:
        # The real queue holds its lock for the whole move, so a waiting Pop only takes a
        # woken pod after the move request and the in-flight event are recorded.
        self._holding = True
        registrations = self._matching_registrations(event)
        try:
            for info in list(infos):
                strategy = self._worth_requeuing(info, event, old, new, registrations)
                if strategy == Strategy.SKIP:
                    continue
                self._unpark(info.uid)
                self._where.pop(info.uid, None)
                self._requeue(info, strategy)
            self.move_request_cycle = self.scheduling_cycle
            if self.hints_enabled and self._in_flight:
                self._in_flight_events.append(_RecordedEvent(event, old, new))
        finally:
            self._holding = False
        self._hand_out()

    def _worth_requeuing(
        self,
        info: QueuedPodInfo,
        event: ClusterEvent,
        old: Any,
        new: Any,
        registrations: list[tuple[str, EventRegistration]] | None = None,
    ) -> Strategy:
        """Return how to requeue the pod for the event (`registrations`: those matching it)."""
        if event.resource == Resource.WILDCARD or not (
            info.unschedulable_plugins or info.pending_plugins
        ):
            return Strategy.AFTER_BACKOFF
        strategy = Strategy.SKIP
        if registrations is None:
            registrations = self._matching_registrations(event)
        for plugin, registration in registrations:
            if plugin not in info.unschedulable_plugins and plugin not in info.pending_plugins:
                continue
            hint = QueueingHint.QUEUE
            if self.hints_enabled and registration.hint is not None:
                hint = registration.hint(info.pod, old, new)
            if hint == QueueingHint.SKIP:
                continue
            if plugin in info.pending_plugins:
                return Strategy.IMMEDIATELY
            strategy = Strategy.AFTER_BACKOFF
        return strategy

    def _matching_registrations(self, event: ClusterEvent) -> list[tuple[str, EventRegistration]]:
        """Return (plugin, registration) pairs interested in an event, cached per event."""
        found = self._matches_cache.get(event)
        if found is None:
            found = [
                (plugin, registration)
                for plugin, registrations in self._registrations.items()
                for registration in registrations
                if event.matches(registration.event)
            ]
            self._matches_cache[event] = found
        return found

    def _strategy_for_in_flight(
        self, info: QueuedPodInfo, events: list[_RecordedEvent]
    ) -> Strategy:
        if not info.unschedulable_plugins and not info.pending_plugins:
            return Strategy.AFTER_BACKOFF
        strategy = Strategy.SKIP
        for recorded in events:
            result = self._worth_requeuing(info, recorded.event, recorded.old, recorded.new)
            if result == Strategy.IMMEDIATELY:
                return result
            if result == Strategy.AFTER_BACKOFF:
                strategy = result
                if not info.pending_plugins:
                    return strategy
        return strategy

    def _requeue(self, info: QueuedPodInfo, strategy: Strategy) -> str:
        if strategy == Strategy.SKIP:
            self._park(info)
            return "unschedulable"
        if strategy == Strategy.AFTER_BACKOFF and self._is_backing_off(info):
            self._push_backoff(info)
            return "backoff"
        if self._add_to_active(info):
            return "active"
        return "unschedulable"


def _is_pod_updated(old: Pod, new: Pod) -> bool:
    """Whether a pod changed apart from resourceVersion, generation and status.

    `status.resourceClaimStatuses` still counts, because the resourceclaim
    controller writes there when it created the pod's claims.
    """

    def strip(pod: Pod) -> tuple[Any, ...]:
        meta = pod.metadata
        return (
            meta.model_copy(update={"resource_version": "", "generation": 0, "finalizers": ()}),
            pod.spec,
            pod.status.resource_claim_statuses,
        )

    return strip(old) != strip(new)
