"""The default kube-scheduler plugins that do not deal with DRA, vectorised over nodes.

* NodeUnschedulable: rejects cordoned nodes unless the pod tolerates the
  `node.kubernetes.io/unschedulable:NoSchedule` taint.
* NodeName: a pod with `spec.nodeName` only fits that node (such pods normally
  bypass the scheduler; kept for completeness).
* TaintToleration: rejects nodes with NoSchedule/NoExecute taints the pod does
  not tolerate; scores PreferNoSchedule taints.
* NodeAffinity: `spec.nodeSelector` and required node affinity; scores
  preferred node affinity.
* NodeResourcesFit: CPU, memory and pod count; scores LeastAllocated or
  MostAllocated over CPU and memory with equal weights.
* NodeResourcesBalancedAllocation: prefers nodes whose CPU and memory use stay
  balanced.

Not modelled: extended resources, pod overhead, host ports, volumes, pod
(anti-)affinity, topology spread and image locality.
"""

from __future__ import annotations

import numpy as np

from sim.api.selectors import SelectorError, compile_node_selector
from sim.api.types import (
    NodeSelector,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    Pod,
    PreferredSchedulingTerm,
    Toleration,
)
from sim.cluster.scheduler.framework import (
    SUCCESS,
    ActionType,
    BoolArray,
    ClusterEvent,
    Code,
    CycleState,
    EventRegistration,
    FilterResult,
    Resource,
    Status,
)
from sim.cluster.scheduler.nodetable import NodeTable, pod_requests, pod_scoring_requests

MAX_NODE_SCORE = 100

NODE_ADD_OR_UPDATE = ClusterEvent(
    Resource.NODE,
    ActionType.ADD
    | ActionType.UPDATE_NODE_LABEL
    | ActionType.UPDATE_NODE_TAINT
    | ActionType.UPDATE_NODE_ALLOCATABLE
    | ActionType.UPDATE,
    "NodeAddOrUpdate",
)

UNSCHEDULABLE_TAINT_KEY = "node.kubernetes.io/unschedulable"


def tolerates(tolerations: tuple[Toleration, ...], key: str, value: str, effect: str) -> bool:
    """Whether any toleration matches a taint (core/v1 `ToleratesTaint` rules)."""
    for toleration in tolerations:
        if toleration.effect and toleration.effect != effect:
            continue
        if toleration.key and toleration.key != key:
            continue
        # An empty key with operator Exists matches every taint.
        operator = toleration.operator or "Equal"
        if operator == "Exists":
            return True
        if operator == "Equal" and toleration.value == value:
            return True
    return False


class NodeUnschedulable:
    """Rejects nodes with `spec.unschedulable` unless the pod tolerates it."""

    name = "NodeUnschedulable"

    def __init__(self, table: NodeTable) -> None:
        self.table = table

    def events(self) -> list[EventRegistration]:
        """Return the events that may make a rejected pod schedulable."""
        return [EventRegistration(NODE_ADD_OR_UPDATE)]

    def filter(self, state: CycleState, pod: Pod, alive: BoolArray) -> FilterResult:
        """Reject cordoned nodes."""
        result = FilterResult()
        if tolerates(pod.spec.tolerations, UNSCHEDULABLE_TAINT_KEY, "", "NoSchedule"):
            return result
        result.reject(
            alive & self.table.unschedulable,
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
            "node(s) were unschedulable",
        )
        return result


class TaintToleration:
    """Rejects nodes with untolerated NoSchedule/NoExecute taints; scores PreferNoSchedule."""

    name = "TaintToleration"
    weight = 3

    def __init__(self, table: NodeTable) -> None:
        self.table = table

    def events(self) -> list[EventRegistration]:
        """Return the events that may make a rejected pod schedulable."""
        return [EventRegistration(NODE_ADD_OR_UPDATE)]

    def filter(self, state: CycleState, pod: Pod, alive: BoolArray) -> FilterResult:
        """Reject nodes whose hard taints the pod does not tolerate."""
        result = FilterResult()
        rejected = np.zeros(len(self.table), dtype=bool)
        for (key, value, effect), column in self.table.taints.items():
            if effect not in ("NoSchedule", "NoExecute"):
                continue
            if not tolerates(pod.spec.tolerations, key, value, effect):
                rejected |= column
        result.reject(
            alive & rejected,
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
            "node(s) had untolerated taint",
        )
        return result

    def score(self, state: CycleState, pod: Pod, rows: np.ndarray) -> np.ndarray:
        """Score nodes by how few untolerated PreferNoSchedule taints they carry (0-100)."""
        counts = np.zeros(len(rows), dtype=np.int64)
        for (key, value, effect), column in self.table.taints.items():
            if effect == "PreferNoSchedule" and not tolerates(
                pod.spec.tolerations, key, value, effect
            ):
                counts += column[rows]
        highest = counts.max() if len(counts) else 0
        if highest == 0:
            return np.full(len(rows), MAX_NODE_SCORE, dtype=np.float64)
        # kube-scheduler's reversed DefaultNormalizeScore, in integer arithmetic.
        return (MAX_NODE_SCORE - (MAX_NODE_SCORE * counts) // highest).astype(np.float64)


class NodeAffinity:
    """Applies `spec.nodeSelector` and required node affinity; scores preferred affinity."""

    name = "NodeAffinity"
    weight = 2

    def __init__(self, table: NodeTable) -> None:
        self.table = table

    def events(self) -> list[EventRegistration]:
        """Return the events that may make a rejected pod schedulable."""
        return [EventRegistration(NODE_ADD_OR_UPDATE)]

    def pre_filter(self, state: CycleState, pod: Pod) -> Status:
        """Compile the pod's node selector and required affinity once per cycle."""
        selectors = []
        if pod.spec.node_selector:
            requirements = tuple(
                NodeSelectorRequirement(key=key, operator="In", values=(value,))
                for key, value in sorted(pod.spec.node_selector.items())
            )
            selectors.append(
                NodeSelector(
                    node_selector_terms=(NodeSelectorTerm(match_expressions=requirements),)
                )
            )
        affinity = pod.spec.affinity
        required = None
        if affinity is not None and affinity.node_affinity is not None:
            required = affinity.node_affinity.required_during_scheduling_ignored_during_execution
        if required is not None:
            selectors.append(required)
        if not selectors:
            state.skip_filter_plugins.add(self.name)
            return Status(Code.SKIP)
        try:
            # Required affinity is compiled leniently, as kube-scheduler does: an
            # invalid term matches no node while the other terms still apply.
            state.data[self.name] = [compile_node_selector(s, lazy=True) for s in selectors]
        except SelectorError as error:
            return Status(Code.ERROR, f"invalid node affinity: {error}", self.name)
        return SUCCESS

    def filter(self, state: CycleState, pod: Pod, alive: BoolArray) -> FilterResult:
        """Reject nodes that do not match the node selector or required affinity."""
        result = FilterResult()
        matches = np.ones(len(self.table), dtype=bool)
        for compiled in state.data.get(self.name, ()):
            matches &= compiled.mask(self.table.labels)
        result.reject(
            alive & ~matches,
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
            "node(s) didn't match Pod's node affinity/selector",
        )
        return result

    def score(self, state: CycleState, pod: Pod, rows: np.ndarray) -> np.ndarray:
        """Score nodes by the summed weights of matching preferred terms, normalised to 0-100."""
        affinity = pod.spec.affinity
        preferred: tuple[PreferredSchedulingTerm, ...] = ()
        if affinity is not None and affinity.node_affinity is not None:
            preferred = affinity.node_affinity.preferred_during_scheduling_ignored_during_execution
        if not preferred:
            return np.zeros(len(rows), dtype=np.float64)
        totals = np.zeros(len(rows), dtype=np.float64)
        for term in preferred:
            selector = NodeSelector(node_selector_terms=(term.preference,))
            try:
                mask = compile_node_selector(selector).mask(self.table.labels)
            except SelectorError:
                continue
            totals += term.weight * mask[rows]
        highest = totals.max()
        if highest <= 0:
            return totals
        scores: np.ndarray = MAX_NODE_SCORE * totals / highest
        return scores


class NodeResourcesFit:
    """Checks CPU, memory and pod-count fit; scores by allocation strategy."""

    name = "NodeResourcesFit"
    weight = 1

    def __init__(self, table: NodeTable, strategy: str = "LeastAllocated") -> None:
        self.table = table
        self.strategy = strategy

    def events(self) -> list[EventRegistration]:
        """Return the events that may make a rejected pod schedulable."""
        return [
            EventRegistration(
                ClusterEvent(Resource.ASSIGNED_POD, ActionType.DELETE, "AssignedPodDelete")
            ),
            EventRegistration(NODE_ADD_OR_UPDATE),
        ]

    def filter(self, state: CycleState, pod: Pod, alive: BoolArray) -> FilterResult:
        """Reject nodes without room for the pod's requests."""
        table = self.table
        cpu, memory = pod_requests(pod)
        result = FilterResult()
        too_many_pods = alive & (table.requested_pods + 1 > table.allocatable_pods)
        result.reject(too_many_pods, Code.UNSCHEDULABLE, "Too many pods")
        remaining = alive & ~too_many_pods
        if cpu:
            no_cpu = remaining & (table.requested_cpu + cpu > table.allocatable_cpu)
            result.reject(no_cpu, Code.UNSCHEDULABLE, "Insufficient cpu")
            remaining &= ~no_cpu
        if memory:
            no_memory = remaining & (table.requested_memory + memory > table.allocatable_memory)
            result.reject(no_memory, Code.UNSCHEDULABLE, "Insufficient memory")
        return result

    def score(self, state: CycleState, pod: Pod, rows: np.ndarray) -> np.ndarray:
        """Score nodes by free (LeastAllocated) or used (MostAllocated) CPU and memory."""
        table = self.table
        cpu, memory = pod_scoring_requests(pod)
        total = np.zeros(len(rows), dtype=np.int64)
        # Each resource is scored in integers and rounded down first, then the
        # scores are averaged with equal weights (kube-scheduler's resource scorer).
        for requested, allocatable, extra in (
            (table.scoring_cpu, table.allocatable_cpu, cpu),
            (table.scoring_memory, table.allocatable_memory, memory),
        ):
            capacity = allocatable[rows]
            used = requested[rows] + extra
            safe = np.maximum(capacity, 1)
            if self.strategy == "MostAllocated":
                score = (np.minimum(used, capacity) * MAX_NODE_SCORE) // safe
            else:
                score = np.where(used > capacity, 0, ((capacity - used) * MAX_NODE_SCORE) // safe)
            total += np.where(capacity == 0, 0, score)
        return (total // 2).astype(np.float64)


class NodeResourcesBalancedAllocation:
    """Prefers nodes where CPU and memory fractions stay close to each other."""

    name = "NodeResourcesBalancedAllocation"
    weight = 1

    def __init__(self, table: NodeTable) -> None:
        self.table = table

    def events(self) -> list[EventRegistration]:
        """Scoring plugins register no events."""
        return []

    def score(self, state: CycleState, pod: Pod, rows: np.ndarray) -> np.ndarray:
        """Score 100 * (1 - standard deviation of the CPU and memory fractions)."""
        table = self.table
        cpu, memory = pod_scoring_requests(pod)
        with np.errstate(divide="ignore", invalid="ignore"):
            cpu_capacity = table.allocatable_cpu[rows].astype(np.float64)
            memory_capacity = table.allocatable_memory[rows].astype(np.float64)
            cpu_fraction = np.where(
                cpu_capacity > 0, np.minimum((table.scoring_cpu[rows] + cpu) / cpu_capacity, 1), 1
            )
            memory_fraction = np.where(
                memory_capacity > 0,
                np.minimum((table.scoring_memory[rows] + memory) / memory_capacity, 1),
                1,
            )
        std = np.abs(cpu_fraction - memory_fraction) / 2
        scores: np.ndarray = MAX_NODE_SCORE * (1.0 - std)
        return scores
