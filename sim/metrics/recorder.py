"""The recorder: what happened during a run, kept as compact tuples.

Components append one tuple per API request, state transition and scheduling
attempt; the write tracker (`sim.metrics.tracker`) adds the transitions it reads
from API writes and every change of device use and of the CPU and memory that
bound pods request. Nothing is converted to pandas during the run; `tables()`
builds the raw DataFrames and `sim.metrics.tables.build_tables` the output
tables once at the end. Column order is fixed by the `*_COLUMNS` constants,
and every column is defined in `docs/metrics.md`.

A transition that a component records itself and that the tracker also derives
from the component's API write is kept once: two records of the same object
entering the same state at the same simulated time, one from each source, are
the same transition, and the component's record (whose `from_state` and
`reason` are more specific) is the one kept.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

API_REQUEST_COLUMNS = (
    "time_s",
    "component",
    "verb",
    "resource",
    "namespace",
    "name",
    "subresource",
    "code",
    "latency_s",
    "write",
)
EVENT_COLUMNS = (
    "time_s",
    "kind",
    "namespace",
    "name",
    "uid",
    "from_state",
    "to_state",
    "actor",
    "reason",
)
CYCLE_COLUMNS = (
    "time_s",
    "namespace",
    "pod",
    "pod_uid",
    "attempt",
    "result",
    "plugin",
    "message",
    "feasible_nodes",
    "node",
    "duration_s",
)
DEVICE_USAGE_COLUMNS = (
    "time_s",
    "driver",
    "node",
    "delta",
    "claim_uid",
)
"""A change of the devices in use: `delta` devices of `driver` on `node` ("" = not node-bound).

`delta` is an int for whole devices and a float for a share of a device, counted
by its fraction (a claim on 250 thousandths of a GPU counts as 0.25 devices).
"""
POD_REQUEST_COLUMNS = (
    "time_s",
    "node",
    "cpu_milli_delta",
    "memory_bytes_delta",
    "pod_uid",
)
"""A change of the CPU (millicores) and memory (bytes) that bound, unfinished pods request."""

_TransitionKey = tuple[str, str, str]  # (kind, uid, to_state)


class Recorder:
    """Collects records during a run; one instance per simulation."""

    def __init__(self) -> None:
        self.api_requests: list[tuple[Any, ...]] = []
        self.events: list[tuple[Any, ...]] = []
        self.cycles: list[tuple[Any, ...]] = []
        self.device_usage: list[tuple[Any, ...]] = []
        self.pod_requests: list[tuple[Any, ...]] = []
        # Deduplication of transitions between components and the write tracker:
        # the time of the last transition a component recorded per key, and the
        # time and row of the last one the tracker recorded per key. Only
        # transitions at the same time match, so both keep the latest time only.
        self._component_transitions: dict[_TransitionKey, float] = {}
        self._write_transitions: dict[_TransitionKey, tuple[float, int]] = {}
        self._transitions_time = -math.inf
        self._last_state: dict[tuple[str, str], str] = {}

    def api_request(
        self,
        time_s: float,
        component: str,
        verb: str,
        resource: str,
        namespace: str,
        name: str,
        subresource: str,
        code: int,
        latency_s: float,
        write: bool,
    ) -> None:
        """Record one API request and its HTTP result code."""
        self.api_requests.append(
            (
                time_s,
                component,
                verb,
                resource,
                namespace,
                name,
                subresource,
                code,
                latency_s,
                write,
            )
        )

    def event(
        self,
        time_s: float,
        kind: str,
        namespace: str,
        name: str,
        uid: str,
        from_state: str,
        to_state: str,
        actor: str,
        reason: str,
    ) -> None:
        """Record a state transition of a pod or claim (the source of timelines).

        When the write tracker recorded the same transition (same kind, uid and
        `to_state`) at the same `time_s`, this record replaces the tracker's.
        """
        record = (time_s, kind, namespace, name, uid, from_state, to_state, actor, reason)
        key = (kind, uid, to_state)
        self._forget_older_transitions(time_s)
        self._component_transitions[key] = time_s
        written = self._write_transitions.pop(key, None)
        if written is not None and written[0] == time_s:
            # The replaced row entered the same state, so the object's last state is unchanged.
            self.events[written[1]] = record
            return
        self._last_state[(kind, uid)] = to_state
        self.events.append(record)

    def _forget_older_transitions(self, time_s: float) -> None:
        # Records arrive in simulated-time order, so earlier entries can never match again.
        if time_s > self._transitions_time:
            self._component_transitions.clear()
            self._write_transitions.clear()
            self._transitions_time = time_s

    def write_transition(
        self,
        time_s: float,
        kind: str,
        namespace: str,
        name: str,
        uid: str,
        to_state: str,
        actor: str,
        reason: str,
    ) -> bool:
        """Record a transition the write tracker derived from an API write.

        `from_state` is the last state recorded for the object by anyone ("" for
        the first). Returns False, recording nothing, when a component already
        recorded the same transition at the same time.
        """
        key = (kind, uid, to_state)
        self._forget_older_transitions(time_s)
        if self._component_transitions.get(key) == time_s:
            return False
        from_state = self._last_state.get((kind, uid), "")
        self._last_state[(kind, uid)] = to_state
        self._write_transitions[key] = (time_s, len(self.events))
        self.events.append(
            (time_s, kind, namespace, name, uid, from_state, to_state, actor, reason)
        )
        return True

    def last_state(self, kind: str, uid: str) -> str:
        """Return the state of the object's last recorded transition, "" when none."""
        return self._last_state.get((kind, uid), "")

    def device_use(
        self, time_s: float, driver: str, node: str, delta: float, claim_uid: str
    ) -> None:
        """Record that `delta` devices of `driver` on `node` became used (+) or free (-)."""
        self.device_usage.append((time_s, driver, node, delta, claim_uid))

    def pod_request(
        self, time_s: float, node: str, cpu_milli_delta: int, memory_bytes_delta: int, pod_uid: str
    ) -> None:
        """Record a change of the CPU (millicores) and memory (bytes) requested on `node`."""
        self.pod_requests.append((time_s, node, cpu_milli_delta, memory_bytes_delta, pod_uid))

    def cycle(
        self,
        time_s: float,
        namespace: str,
        pod: str,
        pod_uid: str,
        attempt: int,
        result: str,
        plugin: str,
        message: str,
        feasible_nodes: int,
        node: str,
        duration_s: float,
    ) -> None:
        """Record one scheduling attempt and how it ended."""
        self.cycles.append(
            (
                time_s,
                namespace,
                pod,
                pod_uid,
                attempt,
                result,
                plugin,
                message,
                feasible_nodes,
                node,
                duration_s,
            )
        )

    def tables(self) -> dict[str, pd.DataFrame]:
        """Build the DataFrames of the raw record lists."""
        import pandas as pd

        return {
            "api_requests": pd.DataFrame(self.api_requests, columns=list(API_REQUEST_COLUMNS)),
            "events": pd.DataFrame(self.events, columns=list(EVENT_COLUMNS)),
            "cycles": pd.DataFrame(self.cycles, columns=list(CYCLE_COLUMNS)),
            "device_usage": pd.DataFrame(self.device_usage, columns=list(DEVICE_USAGE_COLUMNS)),
            "pod_requests": pd.DataFrame(self.pod_requests, columns=list(POD_REQUEST_COLUMNS)),
        }
