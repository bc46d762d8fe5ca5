"""DeviceAware: a scheduler plugin that filters and scores nodes with a GPU driver's inventory.

Under classic DRA (`resource.k8s.io/v1alpha2`) kube-scheduler does not know
what devices a node has: claim parameters are opaque to it, and it learns
which nodes cannot serve a claim only from the driver's `unsuitableNodes`,
after a round trip through the PodSchedulingContext. This plugin models what
a scheduler-side allocator could do instead (the direction that structured
parameters later took in Kubernetes 1.30): it reads the `gpushare` driver's
per-GPU state and the claims' parameters, rejects nodes whose GPUs cannot
hold the pod's pending claims, and scores nodes with a GPU policy
(`sim.drivers.gpu_policies`), using the scheduler's own CPU accounting.

Enable it with `control_plane.scheduler.device_aware_policy: <policy>`; the
simulation attaches every `gpushare` driver to it. Its score has weight 1000,
so the policy decides and the default scores only break its ties. The driver
still allocates, on the selected node, with its own GPU selection; set the
driver's `steering: none` so it does not second-guess the scheduler.

Simplified: parameter objects are read from the API server without latency
(as if from an up-to-date informer); the driver's state is read directly, so
a claim the driver has not allocated yet is not counted on its node (a pod
scheduled right behind another may then be rejected by the driver and retried).

Not modelled: joint fit of several claims of one pod (each claim is checked
on its own), and claims of other drivers (left to DynamicResources).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.api.errors import APIError
from sim.api.types import GenericObject, Pod, ResourceClaim, ResourceClass
from sim.cluster.claims import ClaimNameError, resolve_claim_name
from sim.cluster.client import Informer
from sim.cluster.driver import ClaimAllocation, DriverError
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
from sim.cluster.scheduler.nodetable import NodeTable
from sim.cluster.world import World
from sim.drivers.gpu_policies import GpuPolicy, GpuRequest, gpu_fits, make_policy
from sim.drivers.gpushare import GpuShareModel, claim_gpu_request

logger = logging.getLogger(__name__)

NAME = "DeviceAware"
SCORE_WEIGHT = 1000
"""Weight of the policy score; the default score plugins have weights 1 to 3."""


@dataclass
class _PodRequests:
    """PreFilter result: the gpushare model and the GPU requests of the pod's pending claims."""

    model: GpuShareModel
    requests: list[GpuRequest]


class DeviceAware:
    """Filter and Score plugin that sees a `gpushare` driver's GPUs (beyond classic DRA)."""

    name = NAME
    weight = SCORE_WEIGHT

    def __init__(
        self,
        world: World,
        table: NodeTable,
        claims: Informer,
        classes: Informer,
        policy: str,
    ) -> None:
        self.world = world
        self.table = table
        self.claims = claims
        self.classes = classes
        self.policy_name = policy
        self.policy: GpuPolicy | None = None
        self.models: dict[str, GpuShareModel] = {}
        self._rng = world.streams.stream("scheduler/deviceaware")
        self._legacy_names = not world.version_at_least(28)
        self._row_map: dict[str, np.ndarray] = {}
        self._row_map_size = -1

    def attach(self, drivers: Mapping[str, Any]) -> None:
        """Use every driver whose model is `gpushare` (driver name -> DriverController).

        Raises:
            ValueError: no driver uses the gpushare model, or the policy cannot be built.
        """
        self.models = {
            name: controller.model
            for name, controller in drivers.items()
            if isinstance(controller.model, GpuShareModel)
        }
        if not self.models:
            raise ValueError(
                "control_plane.scheduler.device_aware_policy needs a driver with model gpushare"
            )
        first = next(iter(self.models.values()))
        self.policy = make_policy(self.policy_name, first.mix)

    def events(self) -> list[EventRegistration]:
        """Return the events that may free GPUs or add nodes."""
        return [
            EventRegistration(
                ClusterEvent(Resource.RESOURCE_CLAIM, ActionType.UPDATE, "ClaimUpdate")
            ),
            EventRegistration(
                ClusterEvent(Resource.ASSIGNED_POD, ActionType.DELETE, "AssignedPodDelete")
            ),
            EventRegistration(ClusterEvent(Resource.NODE, ActionType.ADD, "NodeAdd")),
        ]

    # ----------------------------------------------------------------------------------
    # PreFilter: what the pod's pending claims ask for
    # ----------------------------------------------------------------------------------

    def pre_filter(self, state: CycleState, pod: Pod) -> Status:
        """Collect the GPU requests of the pod's unallocated gpushare claims; Skip without any."""
        found: _PodRequests | None = None
        for pod_claim in pod.spec.resource_claims:
            try:
                resolved = resolve_claim_name(pod, pod_claim, legacy_names=self._legacy_names)
            except ClaimNameError:
                continue
            if resolved is None:
                continue
            claim: ResourceClaim | None = self.claims.get(
                resolved.claim_name, pod.metadata.namespace
            )
            if claim is None or claim.allocated:
                continue
            resource_class: ResourceClass | None = self.classes.get(
                claim.spec.resource_class_name, ""
            )
            if resource_class is None or resource_class.driver_name not in self.models:
                continue
            request = self._request(pod, pod_claim.name, claim, resource_class)
            if request is None:
                continue
            model = self.models[resource_class.driver_name]
            if found is None:
                found = _PodRequests(model, [])
            if found.model is model:
                found.requests.append(request)
        if found is None or self.policy is None:
            state.skip_filter_plugins.add(NAME)
            return Status(Code.SKIP)
        state.data[NAME] = found
        return SUCCESS

    def _request(
        self, pod: Pod, entry: str, claim: ResourceClaim, resource_class: ResourceClass
    ) -> GpuRequest | None:
        allocation = ClaimAllocation(entry, claim, resource_class)
        try:
            if claim.spec.parameters_ref is not None:
                ref = claim.spec.parameters_ref
                allocation.claim_parameters = self._parameters(
                    ref.kind, ref.name, claim.metadata.namespace
                )
            if resource_class.parameters_ref is not None:
                ref_class = resource_class.parameters_ref
                allocation.class_parameters = self._parameters(
                    ref_class.kind, ref_class.name, ref_class.namespace
                )
            return claim_gpu_request(allocation, pod)
        except (APIError, DriverError, ValueError) as error:
            logger.debug("%s: claim %s is left to the driver: %s", NAME, claim.key, error)
            return None

    def _parameters(self, kind: str, name: str, namespace: str) -> GenericObject | None:
        obj = self.world.api.get(kind, name, namespace)
        return obj if isinstance(obj, GenericObject) else None

    # ----------------------------------------------------------------------------------
    # Filter and Score
    # ----------------------------------------------------------------------------------

    def _model_rows(self, model_name: str, model: GpuShareModel) -> np.ndarray:
        """Return, per node-table row, the model's row for that node (-1 without GPUs)."""
        if self._row_map_size != len(self.table):
            self._row_map = {}
            self._row_map_size = len(self.table)
        rows = self._row_map.get(model_name)
        if rows is None:
            rows = np.array(
                [model.cluster.row_of.get(name, -1) for name in self.table.names], dtype=np.int64
            )
            self._row_map[model_name] = rows
        return rows

    def _name_of(self, model: GpuShareModel) -> str:
        return next(name for name, candidate in self.models.items() if candidate is model)

    def filter(self, state: CycleState, pod: Pod, alive: BoolArray) -> FilterResult:
        """Reject nodes whose free GPUs cannot hold one of the pod's pending claims."""
        result = FilterResult()
        data: _PodRequests | None = state.data.get(NAME)
        if data is None:
            return result
        model_rows = self._model_rows(self._name_of(data.model), data.model)
        fits = np.ones(len(self.table), dtype=bool)
        known = model_rows >= 0
        view = data.model.cluster.view()
        for request in data.requests:
            model_fit = gpu_fits(view, request)
            fits &= known & np.where(known, model_fit[np.maximum(model_rows, 0)], False)
        result.reject(
            alive & ~fits, Code.UNSCHEDULABLE, "node(s) did not have enough free GPU capacity"
        )
        return result

    def score(self, state: CycleState, pod: Pod, rows: np.ndarray) -> np.ndarray:
        """Score nodes with the GPU policy for the pod's first pending claim (0 without one)."""
        data: _PodRequests | None = state.data.get(NAME)
        scores = np.zeros(len(rows), dtype=np.float64)
        if data is None or self.policy is None or len(rows) == 0:
            return scores
        model_rows = self._model_rows(self._name_of(data.model), data.model)[rows]
        known = model_rows >= 0
        if not known.any():
            return scores
        cpu_left = (self.table.allocatable_cpu[rows] - self.table.requested_cpu[rows])[known]
        view = data.model.cluster.view(model_rows[known], cpu_left=cpu_left.astype(np.int64))
        scores[known] = self.policy.score(view, data.requests[0], self._rng)
        return scores
