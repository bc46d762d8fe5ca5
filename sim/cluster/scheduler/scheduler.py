"""kube-scheduler: one scheduling cycle at a time, asynchronous binding.

The scheduler pops a pod from the scheduling queue and runs the plugins:
PreFilter, Filter over the nodes (stopping once enough feasible nodes are
found, from a rotating start index), PostFilter when no node fits, PreScore and
Score when two or more nodes fit, a random choice among the best scores, then
assume and Reserve. Binding (the `pods/binding` write and PostBind) runs in a
process of its own, as in the real scheduler's binding goroutine. Everything
from Pop to the end of Reserve (or of the failure handling) is one cycle: its
CPU cost and every API call made in it delay the next pod.

Modelled: the default plugins that matter for DRA clusters (see
`plugins/basic.py` and `plugins/dynamicresources.py`), the queue of
`queue.py`, the PodScheduled=False condition patch when its text changes,
the assume cache, and the scheduler's informers (terminal pods are dropped,
as the real pod informer filters them out).

Simplified: Filter and Score run on all nodes at once with numpy (the cost
model charges only the nodes a real scheduler would have examined); a cycle's
CPU time is `cycle_cost_per_pod_s + cycle_cost_per_node_s * examined nodes`.

Not modelled: preemption (DefaultPreemption), Permit/WaitOnPermit, extenders,
multiple profiles, nominated nodes, FailedScheduling Event objects.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Generator
from typing import Any

import numpy as np
import simpy

from sim.api.errors import APIError
from sim.api.types import Node, Pod, PodPhase
from sim.cluster.client import APIClient, Informer
from sim.cluster.scheduler.framework import (
    ActionType,
    ClusterEvent,
    Code,
    CycleState,
    EventRegistration,
    Resource,
    Status,
)
from sim.cluster.scheduler.nodetable import NodeTable
from sim.cluster.scheduler.plugins.basic import (
    NodeAffinity,
    NodeResourcesBalancedAllocation,
    NodeResourcesFit,
    NodeUnschedulable,
    TaintToleration,
)
from sim.cluster.scheduler.plugins.dynamicresources import DynamicResources
from sim.cluster.scheduler.queue import QueuedPodInfo, SchedulingQueue
from sim.cluster.world import World

logger = logging.getLogger(__name__)

COMPONENT = "kube-scheduler"
MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5
DEFAULT_SCHEDULER_NAME = "default-scheduler"


def num_feasible_nodes_to_find(num_all_nodes: int, percentage_of_nodes_to_score: int = 0) -> int:
    """Return how many feasible nodes Filter looks for before it stops (kube-scheduler formula)."""
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND:
        return num_all_nodes
    percentage = percentage_of_nodes_to_score
    if percentage == 0:
        percentage = max(50 - num_all_nodes // 125, MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
    count = num_all_nodes * percentage // 100
    return max(count, MIN_FEASIBLE_NODES_TO_FIND)


class KubeScheduler:
    """kube-scheduler with the DynamicResources plugin enabled."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.env = world.env
        config = world.config.scheduler
        self.config = config
        self.minor_version = world.config.version_tuple[1]
        self.client = APIClient(world, COMPONENT, qps=config.qps, burst=config.burst)
        self.rng = world.streams.stream("scheduler/tie-break")
        self._cost_rng = world.streams.stream("scheduler/cycle-cost")
        self.table = NodeTable()

        self.pods = Informer(world, "Pod", COMPONENT)
        self.nodes = Informer(world, "Node", COMPONENT)
        self.claims = Informer(world, "ResourceClaim", COMPONENT)
        self.scheduling_contexts = Informer(world, "PodSchedulingContext", COMPONENT)
        self.classes = Informer(world, "ResourceClass", COMPONENT)

        self.dynamic_resources = DynamicResources(
            table=self.table,
            client=self.client,
            claims=self.claims,
            scheduling_contexts=self.scheduling_contexts,
            classes=self.classes,
            rng=world.streams.stream("scheduler/dynamicresources"),
            minor_version=self.minor_version,
            postfilter_candidates=config.postfilter_candidates,
        )
        fit = NodeResourcesFit(self.table, config.scoring_strategy)
        self.filter_plugins: list[Any] = [
            NodeUnschedulable(self.table),
            TaintToleration(self.table),
            NodeAffinity(self.table),
            fit,
            self.dynamic_resources,
        ]
        self.score_plugins: list[Any] = [
            fit,
            NodeResourcesBalancedAllocation(self.table),
            TaintToleration(self.table),
            NodeAffinity(self.table),
        ]
        self.device_aware: Any = None
        """DeviceAware plugin when `device_aware_policy` is set (drivers attached at build)."""
        if config.device_aware_policy is not None:
            from sim.cluster.scheduler.plugins.deviceaware import DeviceAware

            self.device_aware = DeviceAware(
                world, self.table, self.claims, self.classes, config.device_aware_policy
            )
            self.filter_plugins.append(self.device_aware)
            self.score_plugins.append(self.device_aware)
        registrations: dict[str, list[EventRegistration]] = {}
        for plugin in self.filter_plugins:
            registrations[plugin.name] = plugin.events()
        hints = world.config.queueing_hints and self.minor_version >= 28
        self.queue = SchedulingQueue(
            self.env,
            registrations=registrations,
            pre_enqueue_plugins=[self.dynamic_resources] if self.minor_version >= 28 else [],
            initial_backoff_s=config.pod_initial_backoff_s,
            max_backoff_s=config.pod_max_backoff_s,
            max_in_unschedulable_s=config.pod_max_in_unschedulable_pods_s,
            hints_enabled=hints,
            minor_version=self.minor_version,
        )
        self._next_start_node_index = 0
        self._assumed: dict[str, str] = {}

    # ----------------------------------------------------------------------------------
    # Start-up and informer handlers
    # ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the informers, the queue sweeps and the scheduling loop."""
        self.nodes.add_handler(self._on_node_add, self._on_node_update, self._on_node_delete)
        self.pods.add_handler(self._on_pod_add, self._on_pod_update, self._on_pod_delete)
        for informer, resource, label in (
            (self.claims, Resource.RESOURCE_CLAIM, "ResourceClaim"),
            (self.scheduling_contexts, Resource.POD_SCHEDULING_CONTEXT, "PodSchedulingContext"),
            (self.classes, Resource.RESOURCE_CLASS, "ResourceClass"),
        ):
            informer.add_handler(
                self._dra_handler(resource, ActionType.ADD, f"{label}Add"),
                self._dra_update_handler(resource, f"{label}Update"),
            )
        for informer in (
            self.nodes,
            self.claims,
            self.scheduling_contexts,
            self.classes,
            self.pods,
        ):
            informer.start()
        self.env.process(
            self._sweep(self.config.backoff_flush_interval_s, self.queue.flush_backoff_completed)
        )
        self.env.process(
            self._sweep(
                self.config.unschedulable_flush_interval_s, self.queue.flush_unschedulable_leftover
            )
        )
        self.env.process(self._schedule_loop())

    def _dra_handler(self, resource: Resource, action: ActionType, label: str) -> Any:
        event = ClusterEvent(resource, action, label)
        return lambda obj: self.queue.move_all(event, None, obj)

    def _dra_update_handler(self, resource: Resource, label: str) -> Any:
        event = ClusterEvent(resource, ActionType.UPDATE, label)
        return lambda old, new: self.queue.move_all(event, old, new)

    def _on_node_add(self, node: Node) -> None:
        self.table.upsert_node(node)
        self.queue.move_all(ClusterEvent(Resource.NODE, ActionType.ADD, "NodeAdd"), None, node)

    def _on_node_update(self, old: Node, new: Node) -> None:
        self.table.upsert_node(new)
        action = ActionType(0)
        if old.metadata.labels != new.metadata.labels:
            action |= ActionType.UPDATE_NODE_LABEL
        if old.spec.taints != new.spec.taints or old.spec.unschedulable != new.spec.unschedulable:
            action |= ActionType.UPDATE_NODE_TAINT
        if old.status.allocatable != new.status.allocatable:
            action |= ActionType.UPDATE_NODE_ALLOCATABLE
        if old.status.conditions != new.status.conditions:
            action |= ActionType.UPDATE_NODE_CONDITION
        if action:
            self.queue.move_all(ClusterEvent(Resource.NODE, action, "NodeUpdate"), old, new)

    def _on_node_delete(self, node: Node) -> None:
        self.table.remove_node(node.metadata.name)

    def _responsible_for(self, pod: Pod) -> bool:
        return pod.spec.scheduler_name in ("", DEFAULT_SCHEDULER_NAME)

    def _on_pod_add(self, pod: Pod) -> None:
        if pod.done:
            return
        if pod.spec.node_name:
            self._assigned_pod_added(pod)
        elif self._responsible_for(pod) and not pod.deleting:
            self.queue.add(pod)

    def _on_pod_update(self, old: Pod, new: Pod) -> None:
        if new.done:
            # The real scheduler's pod informer filters out terminal pods, so a pod
            # that finished looks like a deletion.
            if not old.done:
                self._on_pod_delete(old)
            return
        if new.spec.node_name:
            if not old.spec.node_name:
                self.queue.delete(new)
                self._assigned_pod_added(new)
            else:
                self.queue.note_event(
                    ClusterEvent(Resource.ASSIGNED_POD, ActionType.UPDATE, "AssignedPodUpdate"),
                    old,
                    new,
                )
            return
        if new.metadata.uid in self._assumed:
            # The binding is committed or in flight; kube-scheduler skips updates of
            # assumed pods instead of queueing them again.
            return
        if self._responsible_for(new):
            self.queue.update(old, new)

    def _on_pod_delete(self, pod: Pod) -> None:
        self.dynamic_resources.forget_pod(pod.metadata.uid)
        if pod.spec.node_name or self.table.has_pod(pod.metadata.uid):
            self.table.remove_pod(pod.metadata.uid)
            self._assumed.pop(pod.metadata.uid, None)
            self.queue.move_all(
                ClusterEvent(Resource.ASSIGNED_POD, ActionType.DELETE, "AssignedPodDelete"),
                pod,
                None,
            )
        else:
            self.queue.delete(pod)

    def _assigned_pod_added(self, pod: Pod) -> None:
        self._assumed.pop(pod.metadata.uid, None)
        self.table.add_pod(pod, pod.spec.node_name)
        self.queue.note_event(
            ClusterEvent(Resource.ASSIGNED_POD, ActionType.ADD, "AssignedPodAdd"), None, pod
        )

    def _sweep(self, interval_s: float, action: Any) -> Generator[simpy.Event, Any, None]:
        while True:
            yield self.env.timeout(interval_s)
            action()

    # ----------------------------------------------------------------------------------
    # The scheduling cycle
    # ----------------------------------------------------------------------------------

    def _schedule_loop(self) -> Generator[simpy.Event, Any, None]:
        while True:
            info = yield self.queue.pop()
            yield from self._schedule_one(info)

    def _schedule_one(self, info: QueuedPodInfo) -> Generator[simpy.Event, Any, None]:
        start = float(self.env.now)
        pod = self.pods.get(info.pod.metadata.name, info.pod.metadata.namespace)
        if pod is None or pod.metadata.uid != info.uid or pod.deleting or pod.spec.node_name:
            self.queue.done(info)
            return
        info.pod = pod
        pod_cycle = self.queue.scheduling_cycle
        state = CycleState()

        # PreFilter: plugins snapshot what they need; a rejection fails every node.
        pre_filter_status: Status | None = None
        for plugin in self.filter_plugins:
            method = getattr(plugin, "pre_filter", None)
            if method is None:
                continue
            status = method(state, pod)
            if status.code == Code.SKIP:
                state.skip_filter_plugins.add(plugin.name)
                continue
            if not status.is_success:
                pre_filter_status = status.with_plugin(plugin.name)
                break

        examined = 0
        feasible_rows = np.zeros(0, dtype=np.int64)
        reasons: Counter[str] = Counter()
        rejecting_plugins: set[str] = set()
        num_nodes = int(self.table.present.sum())
        if pre_filter_status is not None:
            if pre_filter_status.code == Code.ERROR:
                yield from self._charge_cycle_cost(0)
                yield from self._fail(info, pod_cycle, pre_filter_status, start, 0, "")
                return
            rejecting_plugins.add(pre_filter_status.plugin)
        else:
            filter_outcome = self._run_filters(state, pod)
            if isinstance(filter_outcome, Status):
                yield from self._charge_cycle_cost(len(self.table))
                yield from self._fail(info, pod_cycle, filter_outcome, start, 0, "")
                return
            feasible_rows, examined, reasons, rejecting_plugins = filter_outcome
        yield from self._charge_cycle_cost(examined)

        if len(feasible_rows) == 0:
            yield from self._handle_fit_error(
                info,
                pod,
                state,
                pod_cycle,
                start,
                num_nodes,
                pre_filter_status,
                reasons,
                rejecting_plugins,
            )
            return

        node_name = self._select_host(state, pod, feasible_rows)
        # Assume: count the pod on the node before binding, as the scheduler cache does.
        self.table.add_pod(pod, node_name)
        self._assumed[pod.metadata.uid] = node_name

        status = yield from self.dynamic_resources.reserve(state, pod, node_name)
        if not status.is_success:
            yield from self.dynamic_resources.unreserve(state, pod, node_name)
            self._forget(pod)
            if status.is_rejected:
                if status.code == Code.PENDING:
                    info.pending_plugins.add(status.plugin)
                elif self.minor_version >= 28:
                    # 1.27 did not wrap a Reserve rejection in a FitError, so no plugin was
                    # recorded and any event moved the pod.
                    info.unschedulable_plugins.add(status.plugin)
                message = f"0/1 nodes are available: 1 {status.message}."
                yield from self._fail(
                    info,
                    pod_cycle,
                    Status(Code.UNSCHEDULABLE, message, status.plugin),
                    start,
                    len(feasible_rows),
                    node_name,
                )
            else:
                yield from self._fail(info, pod_cycle, status, start, len(feasible_rows), node_name)
            return

        self.world.recorder.cycle(
            start,
            pod.metadata.namespace,
            pod.metadata.name,
            pod.metadata.uid,
            info.attempts,
            "Scheduled",
            "",
            f"assumed on {node_name}",
            len(feasible_rows),
            node_name,
            float(self.env.now) - start,
        )
        self.env.process(self._binding_cycle(info, pod, state, node_name))

    def _run_filters(
        self, state: CycleState, pod: Pod
    ) -> Status | tuple[np.ndarray, int, Counter[str], set[str]]:
        """Run every Filter plugin over all nodes and return the feasible rows in search order."""
        table = self.table
        alive = table.present.copy()
        node_reason = np.full(len(table), -1, dtype=np.int64)
        reason_texts: list[str] = []
        reason_plugins: list[str] = []
        for plugin in self.filter_plugins:
            if plugin.name in state.skip_filter_plugins or not hasattr(plugin, "filter"):
                continue
            result = plugin.filter(state, pod, alive)
            for mask, code, reason in result.rejections:
                if code == Code.ERROR:
                    return Status(Code.ERROR, reason, plugin.name)
                node_reason[mask] = len(reason_texts)
                reason_texts.append(reason)
                reason_plugins.append(plugin.name)
                alive &= ~mask

        present_rows = np.flatnonzero(table.present)
        count = len(present_rows)
        if count == 0:
            return np.zeros(0, dtype=np.int64), 0, Counter(), set()
        to_find = num_feasible_nodes_to_find(count, self.config.percentage_of_nodes_to_score)
        start_index = self._next_start_node_index % count
        order = np.concatenate((present_rows[start_index:], present_rows[:start_index]))
        feasible_in_order = alive[order]
        positions = np.flatnonzero(feasible_in_order)
        if len(positions) >= to_find:
            positions = positions[:to_find]
            examined = int(positions[-1]) + 1
        else:
            examined = count
        self._next_start_node_index = (start_index + examined) % count
        feasible_rows = order[positions]

        examined_rows = order[:examined]
        reasons: Counter[str] = Counter()
        plugins: set[str] = set()
        if reason_texts:
            codes = node_reason[examined_rows]
            counts = np.bincount(codes[codes >= 0], minlength=len(reason_texts))
            for code_index in np.flatnonzero(counts).tolist():
                reasons[reason_texts[code_index]] += int(counts[code_index])
                plugins.add(reason_plugins[code_index])
        return feasible_rows, examined, reasons, plugins

    def _select_host(self, state: CycleState, pod: Pod, rows: np.ndarray) -> str:
        """Score feasible nodes and pick one of the best at random."""
        if len(rows) == 1:
            return self.table.names[int(rows[0])]
        self.dynamic_resources.pre_score(state, pod, rows)
        totals = np.zeros(len(rows), dtype=np.float64)
        for plugin in self.score_plugins:
            totals += plugin.weight * np.floor(plugin.score(state, pod, rows))
        best = np.flatnonzero(totals == totals.max())
        choice = best[int(self.rng.integers(len(best)))] if len(best) > 1 else best[0]
        return self.table.names[int(rows[int(choice)])]

    def _charge_cycle_cost(self, examined_nodes: int) -> Generator[simpy.Event, Any, None]:
        cost = self.config.cycle_cost_per_pod_s.sample(self._cost_rng)
        cost += self.config.cycle_cost_per_node_s * examined_nodes
        if cost > 0:
            yield self.env.timeout(cost)

    def _handle_fit_error(
        self,
        info: QueuedPodInfo,
        pod: Pod,
        state: CycleState,
        pod_cycle: int,
        start: float,
        num_nodes: int,
        pre_filter_status: Status | None,
        reasons: Counter[str],
        rejecting_plugins: set[str],
    ) -> Generator[simpy.Event, Any, None]:
        """Build the FitError message, run PostFilter and requeue the pod."""
        message = f"0/{num_nodes} nodes are available:"
        if pre_filter_status is not None:
            message += f" {pre_filter_status.message}."
        elif reasons:
            histogram = sorted(f"{count} {reason}" for reason, count in reasons.items())
            message += " " + ", ".join(histogram) + "."
        info.unschedulable_plugins |= rejecting_plugins

        post_filter = yield from self.dynamic_resources.post_filter(state, pod)
        if post_filter.code == Code.ERROR:
            yield from self._fail(info, pod_cycle, post_filter, start, 0, "")
            return
        if not post_filter.is_success and post_filter.message:
            message += f" {post_filter.message}."
        plugin = (
            pre_filter_status.plugin if pre_filter_status else ",".join(sorted(rejecting_plugins))
        )
        yield from self._fail(
            info, pod_cycle, Status(Code.UNSCHEDULABLE, message, plugin), start, 0, ""
        )

    def _fail(
        self,
        info: QueuedPodInfo,
        pod_cycle: int,
        status: Status,
        start: float,
        feasible: int,
        node: str,
    ) -> Generator[simpy.Event, Any, None]:
        """Requeue a pod after a failed cycle and patch its PodScheduled condition if it changed."""
        pod = self.pods.get(info.pod.metadata.name, info.pod.metadata.namespace)
        queue_name = "dropped"
        if pod is not None and pod.metadata.uid == info.uid and not pod.spec.node_name:
            info.pod = pod
            queue_name = self.queue.add_unschedulable_if_not_present(info, pod_cycle)
        else:
            self.queue.done(info)
        result = "Error" if status.code == Code.ERROR else "Unschedulable"
        if info.pending_plugins:
            result = "Pending"
        self.world.recorder.cycle(
            start,
            info.pod.metadata.namespace,
            info.pod.metadata.name,
            info.uid,
            info.attempts,
            result,
            status.plugin,
            status.message,
            feasible,
            node,
            float(self.env.now) - start,
        )
        logger.debug(
            "pod %s: %s (%s), requeued to %s",
            info.pod.metadata.name,
            result,
            status.message,
            queue_name,
        )
        if pod is None:
            return
        reason = "SchedulerError" if status.code == Code.ERROR else "Unschedulable"
        yield from self._update_condition(info.pod, reason, status.message)

    def _update_condition(
        self, pod: Pod, reason: str, message: str
    ) -> Generator[simpy.Event, Any, None]:
        wanted = ("PodScheduled", "False", reason, message)
        for condition in pod.status.conditions:
            if (condition.type, condition.status, condition.reason, condition.message) == wanted:
                return
        conditions = [
            c.model_dump(mode="json", by_alias=True, exclude_defaults=True)
            for c in pod.status.conditions
            if c.type != "PodScheduled"
        ]
        conditions.append(
            {"type": "PodScheduled", "status": "False", "reason": reason, "message": message}
        )
        try:
            yield from self.client.patch(
                "Pod",
                pod.metadata.name,
                pod.metadata.namespace,
                {"status": {"conditions": conditions}},
                subresource="status",
                reason="record scheduling failure",
            )
        except APIError as error:
            logger.debug("condition patch of %s failed: %s", pod.metadata.name, error)

    def _forget(self, pod: Pod) -> None:
        if self._assumed.pop(pod.metadata.uid, None) is not None:
            self.table.remove_pod(pod.metadata.uid)

    # ----------------------------------------------------------------------------------
    # Binding
    # ----------------------------------------------------------------------------------

    def _binding_cycle(
        self, info: QueuedPodInfo, pod: Pod, state: CycleState, node_name: str
    ) -> Generator[simpy.Event, Any, None]:
        try:
            yield from self.client.bind(pod, node_name, reason="bind to selected node")
        except APIError as error:
            yield from self.dynamic_resources.unreserve(state, pod, node_name)
            self._forget(pod)
            yield from self._fail(
                info,
                self.queue.scheduling_cycle,
                Status(Code.ERROR, str(error), "DefaultBinder"),
                float(self.env.now),
                1,
                node_name,
            )
            return
        self.queue.done(info)
        self.world.recorder.event(
            float(self.env.now),
            "Pod",
            pod.metadata.namespace,
            pod.metadata.name,
            pod.metadata.uid,
            PodPhase.PENDING,
            "Bound",
            COMPONENT,
            f"bound to node {node_name}",
        )
        yield from self.dynamic_resources.post_bind(state, pod, node_name)
