"""The pod garbage collector of kube-controller-manager: it deletes terminated pods beyond a limit.

Pods that finish (phase Succeeded or Failed) stay in the API server until
something deletes them. kube-controller-manager's pod GC controller
(`pkg/controller/podgc`) keeps their number bounded: every 20 s it counts the
terminated pods and, when there are more than `--terminated-pod-gc-threshold`
(12,500 by default), deletes the oldest ones by creation time until the limit
is met again. Each deletion is a request by name with grace period 0. All
of them are issued at once through the controller's rate-limited client.
The first check runs when the controller starts, and each later one 20 s
after the previous one ended.

The deleted pods take their generated ResourceClaims and PodSchedulingContexts
with them through the owner-reference garbage collector, so long runs with
pods that finish keep a bounded number of objects, as a real cluster does.

Not modelled: deletion of pods bound to nodes that no longer exist, of
unscheduled pods that are terminating, and of terminating pods on nodes with
the `node.kubernetes.io/out-of-service` taint.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

import simpy

from sim.api.errors import APIError, NotFound
from sim.api.types import Pod, PodPhase
from sim.cluster.client import KUBE_CONTROLLER_MANAGER, APIClient, shared_informer
from sim.cluster.config import PodGCConfig
from sim.cluster.world import World

logger = logging.getLogger(__name__)

COMPONENT = "pod-garbage-collector"
"""Component name in the `api_requests` table and in the random stream names."""

DEFAULT_QPS = 20.0
"""Client request rate: kube-controller-manager's `--kube-api-qps` default, requests/s."""

DEFAULT_BURST = 30
"""Client burst: kube-controller-manager's `--kube-api-burst` default, requests."""

TERMINATED_PHASES = frozenset({PodPhase.SUCCEEDED, PodPhase.FAILED})
"""Phases of a terminated pod: every phase but Pending, Running and Unknown."""


def _creation_order(pod: Pod) -> tuple[str, str]:
    # Oldest first. Pods created in the same second go by name, as the controller sorts them.
    return pod.metadata.creation_timestamp or "", pod.metadata.name


class PodGarbageCollector:
    """kube-controller-manager's pod GC controller, for terminated pods only."""

    def __init__(
        self,
        world: World,
        config: PodGCConfig | None = None,
        *,
        qps: float = DEFAULT_QPS,
        burst: int = DEFAULT_BURST,
    ) -> None:
        self.world = world
        self.config = config or world.config.pod_gc
        self.client = APIClient(world, COMPONENT, qps=qps, burst=burst)
        self.pods = shared_informer(world, KUBE_CONTROLLER_MANAGER, "Pod")
        self.deleted = 0
        """Pods this controller deleted so far."""
        self._terminated: dict[str, Pod] = {}
        """Informer key -> terminated pod, kept by the event handlers."""
        self._started = False
        self.pods.add_handler(
            self._on_upsert, lambda _old, pod: self._on_upsert(pod), self._on_delete
        )

    def start(self) -> None:
        """Start the pod informer and the periodic check, unless the threshold is 0 (off)."""
        if self._started or self.config.terminated_pod_threshold <= 0:
            return
        self._started = True
        self.pods.start()
        self.world.env.process(self._run())
        logger.info(
            "pod garbage collector started: threshold %d terminated pods, every %g s",
            self.config.terminated_pod_threshold,
            self.config.check_period_s,
        )

    @property
    def terminated_pods(self) -> int:
        """Terminated pods in the informer now."""
        return len(self._terminated)

    def _on_upsert(self, pod: Pod) -> None:
        if pod.status.phase in TERMINATED_PHASES:
            self._terminated[pod.key] = pod
        else:
            self._terminated.pop(pod.key, None)

    def _on_delete(self, pod: Pod) -> None:
        self._terminated.pop(pod.key, None)

    def _run(self) -> Generator[simpy.Event, Any, None]:
        # The first check runs at start, and each later one a period after the previous one ended.
        while True:
            excess = len(self._terminated) - self.config.terminated_pod_threshold
            if excess > 0:
                oldest = sorted(self._terminated.values(), key=_creation_order)[:excess]
                logger.info("t=%.6f pod GC deletes %d terminated pods", self.world.now, excess)
                deletions = [self.world.env.process(self._delete(pod)) for pod in oldest]
                yield self.world.env.all_of(deletions)
            yield self.world.env.timeout(self.config.check_period_s)

    def _delete(self, pod: Pod) -> Generator[simpy.Event, Any, None]:
        meta = pod.metadata
        try:
            # By name with grace period 0 and no UID precondition, as the controller deletes.
            yield from self.client.delete(
                "Pod",
                meta.name,
                meta.namespace,
                reason="delete terminated pod beyond the threshold",
            )
            self.deleted += 1
        except NotFound:
            pass
        except APIError as error:
            logger.info("t=%.6f pod GC failed to delete %s: %s", self.world.now, pod.key, error)
