"""Synthetic pod sources: arrival processes that create pods through the API server.

Each workload of a scenario becomes one `WorkloadSource`, a SimPy process that
creates pods `<workload>-<index>` at its arrival times. Arrival times and run
durations come from the workload's own named random streams, so adding a
workload or changing one does not shift the numbers of the others, and
replication r of two scenarios sees the same arrivals.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator
from typing import Any

import numpy as np
import simpy

from sim.api.types import (
    ClaimSource,
    Container,
    ObjectMeta,
    Pod,
    PodResourceClaim,
    PodSpec,
    ResourceClaimRef,
    ResourceRequirements,
    Toleration,
)
from sim.cluster.kubelet import RUN_DURATION_ANNOTATION
from sim.cluster.world import World
from sim.scenario import WorkloadSpec

logger = logging.getLogger(__name__)

WORKLOAD_LABEL = "sim.dra/workload"
"""Label that names the workload a pod came from."""
COMPONENT = "workload"


def arrival_times(spec: WorkloadSpec, rng: np.random.Generator) -> Iterator[float]:
    """Yield the workload's arrival times in order, without its count or until_s limits."""
    arrival = spec.arrival
    if arrival.type == "constant":
        time = spec.start_s
        while True:
            yield time
            time += arrival.interval_s
    elif arrival.type == "poisson":
        time = spec.start_s
        while True:
            time += float(rng.exponential(1.0 / arrival.rate_per_s))
            yield time
    elif arrival.type == "bursts":
        for at in sorted(arrival.at_s):
            for _ in range(arrival.size):
                yield spec.start_s + at
    else:
        for at in sorted(arrival.at_s):
            yield spec.start_s + at


class WorkloadSource:
    """Creates the pods of one workload at their arrival times."""

    def __init__(self, world: World, spec: WorkloadSpec, template_names: dict[str, str]) -> None:
        """Prepare a source.

        Args:
            world: the simulation.
            spec: the workload.
            template_names: ResourceClaimTemplate name per pod claim entry that
                uses an inline template.
        """
        self.world = world
        self.spec = spec
        self.template_names = template_names
        self.created = 0
        self.finished = False
        self._arrivals = world.streams.stream(f"workload/{spec.name}/arrivals")
        self._durations = world.streams.stream(f"workload/{spec.name}/durations")

    def start(self) -> None:
        """Start creating pods."""
        self.world.env.process(self._run())

    def _run(self) -> Generator[simpy.Event, Any, None]:
        env = self.world.env
        spec = self.spec
        for time in arrival_times(spec, self._arrivals):
            if spec.count is not None and self.created >= spec.count:
                break
            if spec.until_s is not None and time > spec.until_s:
                break
            if time > env.now:
                yield env.timeout(time - float(env.now))
            self._create_pod(self.created)
            self.created += 1
        self.finished = True

    def build_pod(self, index: int) -> Pod:
        """Return the pod object for the index-th arrival."""
        spec = self.spec
        template = spec.pod
        claim_refs = tuple(ResourceClaimRef(name=claim.name) for claim in spec.claims)
        requests: dict[str, str | int | float] = {"cpu": template.cpu, "memory": template.memory}
        containers = tuple(
            Container(
                name=f"c{number}",
                resources=ResourceRequirements(requests=requests, claims=claim_refs),
            )
            for number in range(template.containers)
        )
        pod_claims = []
        for claim in spec.claims:
            if claim.template is not None:
                source = ClaimSource(resource_claim_template_name=self.template_names[claim.name])
            else:
                source = ClaimSource(resource_claim_name=claim.claim)
            pod_claims.append(PodResourceClaim(name=claim.name, source=source))
        annotations = {}
        if spec.run_duration_s is not None:
            duration = spec.run_duration_s.sample(self._durations)
            annotations[RUN_DURATION_ANNOTATION] = repr(float(duration))
        tolerations = tuple(Toleration.model_validate(t) for t in template.tolerations)
        return Pod(
            metadata=ObjectMeta(
                name=f"{spec.name}-{index}",
                namespace=spec.namespace,
                labels={**template.labels, WORKLOAD_LABEL: spec.name},
                annotations=annotations,
            ),
            spec=PodSpec(
                node_selector=dict(template.node_selector),
                tolerations=tolerations,
                priority=template.priority,
                restart_policy=template.restart_policy,
                containers=containers,
                resource_claims=tuple(pod_claims),
            ),
        )

    def _create_pod(self, index: int) -> None:
        pod = self.build_pod(index)
        self.world.current_actor = COMPONENT
        self.world.current_reason = f"arrival of workload {self.spec.name}"
        self.world.api.create(pod)
        logger.debug("t=%.3f created pod %s", float(self.world.env.now), pod.metadata.name)
