"""The recorder: what happened during a run, kept as compact tuples.

Components append one tuple per API request, state transition and scheduling
attempt. Nothing is converted to pandas during the run; `tables()` builds the
DataFrames once at the end. Column order is fixed by the `*_COLUMNS` constants,
and every column is defined in `docs/metrics.md`.
"""

from __future__ import annotations

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


class Recorder:
    """Collects records during a run; one instance per simulation."""

    def __init__(self) -> None:
        self.api_requests: list[tuple[Any, ...]] = []
        self.events: list[tuple[Any, ...]] = []
        self.cycles: list[tuple[Any, ...]] = []

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
        """Record a state transition of a pod or claim (the source of timelines)."""
        self.events.append(
            (time_s, kind, namespace, name, uid, from_state, to_state, actor, reason)
        )

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
        }
