"""A GPU-sharing driver: whole GPUs or thousandths of one GPU, placed by a GPU policy.

This models a classic-DRA driver for shared GPUs (as the NVIDIA time-slicing
and MPS demos or Alibaba's gpushare scheduler do it): every node has GPUs of
one model, each with 1000 thousandths ("milli"). A claim takes either `count`
whole GPUs (1000 milli each) or `gpu_milli` thousandths of one GPU, and may
restrict the GPU model. Claim parameters are the simulator's kinds in API
group `dra-sim.example.com`:

    kind: DeviceClaimParameters
    spec:
      count: 1            # whole GPUs (default 1)
      gpu_milli: 250      # a share of one GPU, 1-999 (needs count 1); omit for whole GPUs
      models: [T4, P100]  # accepted GPU models, or "T4|P100"; omit for any

`DeviceClassParameters` may set `models` for every claim of the class; a claim
must then match both lists.

Placement under classic DRA (the driver cannot pick the node, only veto it):

* UnsuitableNodes lists the potential nodes where the pod's claims do not fit
  together. With `steering: best`, it also lists every suitable node whose
  policy score is below the best one, so that the scheduler retries on the
  policy's choice. The driver sees only the potential nodes the scheduler
  published (at most 128, a random sample in larger clusters) and does not
  know the CPU use of nodes, so its scores use GPU state alone. After
  `steering_rounds` calls for the same pod it stops vetoing fitting nodes,
  which bounds the extra scheduling cycles.
* Allocate takes the GPUs on the selected node that the policy picks.

The resource handle lists the node, GPU names and milli per GPU. A share is
reported by `devices_of` as `<gpu>/share-<n>` (n unique per GPU), so several
claims on one GPU never report the same device name. For the metrics,
`device_amount` counts a share by its fraction of the GPU (250 milli: 0.25
devices), so that the GPUs in use never exceed the GPUs of a node.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, Field, field_validator, model_validator

from sim.api.types import (
    AllocationResult,
    GenericObject,
    Pod,
    ResourceClaim,
    controller_owner,
)
from sim.cluster.config import StrictModel
from sim.cluster.driver import (
    ClaimAllocation,
    DeviceUse,
    DriverError,
    ModelContext,
    nodes_selector,
    resource_handle,
)
from sim.drivers.devices import (
    SIM_PARAMETERS_GROUP,
    DeviceList,
    ParameterError,
    parameters_group,
    reject_unknown_fields,
    scenario_parameters_object,
)
from sim.drivers.gpu_policies import (
    MILLI_PER_GPU,
    POLICY_NAMES,
    GpuCluster,
    GpuPolicy,
    GpuRequest,
    MixEntry,
    WorkloadMix,
    make_policy,
)
from sim.drivers.registry import register_driver_model

logger = logging.getLogger(__name__)

MODEL_ATTRIBUTE = "model"
"""Device attribute with the GPU model; all GPUs of a node must share one model."""


class MixEntrySettings(StrictModel):
    """One kind of pod in FGD's expected workload, with its share."""

    weight: float = Field(gt=0, description="relative frequency of this kind of pod")
    gpu_count: int = Field(0, ge=0)
    gpu_milli: int = Field(0, ge=0, le=MILLI_PER_GPU, description="thousandths per GPU")
    cpu_milli: int = Field(0, ge=0, description="CPU request, millicores (unused by the driver)")
    models: tuple[str, ...] = ()


class GpuShareSettings(StrictModel):
    """Settings of the `gpushare` model."""

    nodes: dict[str, DeviceList] = Field(
        description="GPUs per node name, each with the attribute `model` (filled from node pools)"
    )
    policy: str = Field("best-fit", description=f"GPU policy: {', '.join(POLICY_NAMES)}")
    steering: Literal["none", "best"] = Field(
        "best",
        description="none: veto only nodes where the claims do not fit; best: also veto "
        "fitting nodes that score below the best potential node",
    )
    steering_rounds: int = Field(
        3, ge=1, description="UnsuitableNodes calls per pod after which fitting nodes are kept"
    )
    workload_mix: tuple[MixEntrySettings, ...] = Field(
        (), description="expected pod kinds for FGD; required by policy fgd"
    )

    @field_validator("policy")
    @classmethod
    def _check_policy(cls, value: str) -> str:
        if value not in POLICY_NAMES:
            raise ValueError(f"unknown GPU policy {value!r}; available: {', '.join(POLICY_NAMES)}")
        return value

    @model_validator(mode="after")
    def _check_nodes(self) -> GpuShareSettings:
        for node, devices in self.nodes.items():
            models = {str(device.attributes.get(MODEL_ATTRIBUTE, "")) for device in devices}
            if len(models) > 1:
                raise ValueError(f"node {node!r} mixes GPU models {sorted(models)}")
            names = [device.name for device in devices]
            if len(set(names)) != len(names):
                raise ValueError(f"node {node!r} lists a GPU name twice")
        if self.policy == "fgd" and not self.workload_mix:
            raise ValueError("policy 'fgd' needs workload_mix (the expected pod requests)")
        return self

    def mix(self) -> WorkloadMix | None:
        """Return the workload mix, or None when none is set."""
        if not self.workload_mix:
            return None
        return WorkloadMix(
            tuple(
                MixEntry(e.weight, e.gpu_count, e.gpu_milli, e.cpu_milli, frozenset(e.models))
                for e in self.workload_mix
            )
        )


# --------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------


def _models(obj: GenericObject, value: Any) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(part.strip() for part in value.split("|") if part.strip())
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return frozenset(value)
    raise ParameterError(obj, "spec.models", "must be a list of GPU model names or 'A|B'", value)


def _spec(obj: GenericObject, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    group = parameters_group(obj, SIM_PARAMETERS_GROUP)
    if group != SIM_PARAMETERS_GROUP:
        raise DriverError(
            f"parameters of kind {obj.kind!r} in API group {group!r} are not supported by "
            f"the gpushare model; use {SIM_PARAMETERS_GROUP} DeviceClaimParameters"
        )
    spec = obj.body.get("spec", {})
    if not isinstance(spec, Mapping):
        raise ParameterError(obj, "spec", "must be a mapping", spec)
    reject_unknown_fields(obj, spec, allowed)
    return spec


def _positive(obj: GenericObject, spec: Mapping[str, Any], key: str, default: int) -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParameterError(obj, f"spec.{key}", "must be a positive integer", value)
    return value


def _class_models(obj: GenericObject) -> frozenset[str]:
    """Return the GPU models that class parameters allow (empty: any model)."""
    return _models(obj, _spec(obj, ("models", "shareable")).get("models"))


def _claim_gpus(obj: GenericObject) -> tuple[int, int, frozenset[str]]:
    """Return the GPU count, the milli per GPU and the GPU models of claim parameters."""
    spec = _spec(obj, ("count", "gpu_milli", "models", "shareable"))
    count = _positive(obj, spec, "count", 1)
    milli = MILLI_PER_GPU
    if "gpu_milli" in spec:
        milli = _positive(obj, spec, "gpu_milli", MILLI_PER_GPU)
        if milli > MILLI_PER_GPU:
            raise ParameterError(obj, "spec.gpu_milli", "must be at most 1000", milli)
        if milli < MILLI_PER_GPU and count != 1:
            raise ParameterError(
                obj,
                "spec.gpu_milli",
                f"is {milli}, a share of a GPU, which needs count 1 (count is {count})",
                milli,
                shows_value=False,
            )
    return count, milli, _models(obj, spec.get("models"))


def check_scenario_parameters(spec: Mapping[str, Any], *, of_class: bool) -> None:
    """Parse a scenario's `parameters` as the gpushare model will parse them at run time.

    Raises:
        ParameterError: a value is invalid; its `field` starts with `spec.`.
    """
    obj = scenario_parameters_object(spec, of_class=of_class)
    if of_class:
        _class_models(obj)
    else:
        _claim_gpus(obj)


def scenario_claim_devices(spec: Mapping[str, Any]) -> float:
    """Return the GPUs that a claim with these scenario `parameters` takes (a share as a fraction).

    Raises:
        ParameterError: a value is invalid; its `field` starts with `spec.`.
    """
    count, milli, _ = _claim_gpus(scenario_parameters_object(spec, of_class=False))
    return GpuRequest(count, milli).gpu_devices


def claim_gpu_request(claim: ClaimAllocation, pod: Pod | None = None) -> GpuRequest:
    """Return the GPU request of a claim from its class and claim parameters.

    CPU and memory come from the pod when given (the scheduler plugin needs
    them); the driver itself leaves them 0.

    Raises:
        DriverError: a parameters object is of another kind or invalid.
    """
    count = 1
    milli = MILLI_PER_GPU
    models: frozenset[str] = frozenset()
    class_models: frozenset[str] = frozenset()
    if claim.class_parameters is not None:
        class_models = _class_models(claim.class_parameters)
    if claim.claim_parameters is not None:
        count, milli, models = _claim_gpus(claim.claim_parameters)
    if class_models and models:
        models = class_models & models
        if not models:
            raise DriverError("the claim's models and the class's models have nothing in common")
    else:
        models = class_models or models
    cpu = memory = 0
    if pod is not None:
        from sim.cluster.scheduler.nodetable import pod_requests

        cpu, memory_bytes = pod_requests(pod)
        memory = memory_bytes // (1024 * 1024)
    return GpuRequest(count, milli, cpu, memory, models)


# --------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Allocation:
    node: str
    row: int
    gpus: tuple[int, ...]
    request: GpuRequest
    devices: tuple[str, ...]
    result: AllocationResult


@register_driver_model("gpushare")
class GpuShareModel:
    """Shared GPUs per node, accounted in milli, placed by a GPU policy."""

    Settings: ClassVar[type[BaseModel]] = GpuShareSettings

    def __init__(self, settings: GpuShareSettings, context: ModelContext) -> None:
        self.settings = settings
        self.context = context
        names = list(settings.nodes)
        self.gpu_names = {node: [d.name for d in settings.nodes[node]] for node in names}
        models = [
            str(devices[0].attributes.get(MODEL_ATTRIBUTE, "")) if devices else ""
            for devices in settings.nodes.values()
        ]
        self.cluster = GpuCluster(names, [len(settings.nodes[n]) for n in names], models)
        self.mix = settings.mix()
        self.policy: GpuPolicy = make_policy(settings.policy, self.mix)
        self._allocations: dict[str, _Allocation] = {}
        self._shares: dict[tuple[int, int], set[int]] = {}
        """(row, GPU) -> share numbers in use, so share device names stay unique per GPU."""
        self._rounds: dict[str, int] = {}
        """Pod UID -> UnsuitableNodes calls so far (for `steering_rounds`)."""
        self._steer_choice: dict[str, str] = {}
        """Pod UID -> the node a non-deterministic policy chose, kept across calls."""
        self.allocations = 0
        self.deallocations = 0

    # ----------------------------------------------------------------------------------
    # Requests
    # ----------------------------------------------------------------------------------

    def _request(self, claim: ClaimAllocation) -> GpuRequest:
        try:
            return claim_gpu_request(claim)
        except DriverError as error:
            raise DriverError(
                f"driver {self.context.driver_name} (gpushare model): {error}"
            ) from None
        except ValueError as error:
            raise DriverError(
                f"driver {self.context.driver_name} (gpushare model): {error}"
            ) from None

    def validate_parameters(self, claim: ClaimAllocation) -> None:
        """Parse the class and claim parameters; raise DriverError if unsupported or invalid."""
        self._request(claim)

    # ----------------------------------------------------------------------------------
    # Fit and placement on one node
    # ----------------------------------------------------------------------------------

    def _place(self, row: int, requests: list[GpuRequest], *, pick: bool) -> list[list[int]] | None:
        """Return GPUs for every request on a node, or None when they do not fit together.

        Requests are placed one after another on a scratch copy of the node's
        GPUs; with `pick` the policy chooses the GPUs, otherwise the best fit.
        """
        left = self.cluster.gpu_left[row].copy()
        model = self.cluster.model_names[int(self.cluster.model[row])]
        chosen: list[list[int]] = []
        for request in requests:
            if request.models and model not in request.models:
                return None
            if (left >= request.gpu_milli).sum() < request.gpu_count:
                return None
            if pick:
                view = self.cluster.view(np.array([row]))
                view = type(view)(
                    left[None, :].copy(),
                    view.gpu_count,
                    view.model,
                    view.model_names,
                    view.affinity,
                    None,
                )
                gpus = self.policy.select_gpus(view, request, self.context.rng)
            elif request.shared:
                fitting = np.flatnonzero(left >= request.gpu_milli)
                gpus = [int(fitting[np.argmin(left[fitting])])]
            else:
                gpus = [int(g) for g in np.flatnonzero(left == MILLI_PER_GPU)[: request.gpu_count]]
            for gpu in gpus:
                left[gpu] -= request.gpu_milli
            chosen.append(gpus)
        return chosen

    # ----------------------------------------------------------------------------------
    # DriverModel callbacks
    # ----------------------------------------------------------------------------------

    def unsuitable_nodes(self, pod: Pod, claims: list[ClaimAllocation], nodes: list[str]) -> None:
        """Veto nodes where the claims do not fit, and with steering the lower-scoring ones."""
        pending: list[GpuRequest] = []
        pinned: set[str] = set()
        for claim in claims:
            existing = self._allocations.get(claim.claim.metadata.uid)
            if existing is not None:
                pinned.add(existing.node)
            else:
                pending.append(self._request(claim))
        unsuitable: list[str] = []
        fitting: list[str] = []
        for node in nodes:
            row = self.cluster.row_of.get(node)
            if (
                row is None
                or any(other != node for other in pinned)
                or self._place(row, pending, pick=False) is None
            ):
                unsuitable.append(node)
            else:
                fitting.append(node)

        uid = pod.metadata.uid
        rounds = self._rounds.get(uid, 0) + 1
        self._rounds[uid] = rounds
        steer = self.settings.steering == "best" and rounds <= self.settings.steering_rounds
        if steer and pending and len(fitting) > 1:
            keep = self._best_nodes(uid, fitting, pending[0])
            unsuitable.extend(node for node in fitting if node not in keep)
        for claim in claims:
            claim.unsuitable_nodes = list(unsuitable)

    def _best_nodes(self, pod_uid: str, fitting: list[str], request: GpuRequest) -> set[str]:
        """Return the fitting nodes with the best policy score for the pod's first claim."""
        if not self.policy.node_local:
            # A random choice is made once per pod, so that repeated calls agree.
            choice = self._steer_choice.get(pod_uid)
            if choice not in fitting:
                choice = fitting[int(self.context.rng.integers(len(fitting)))]
                self._steer_choice[pod_uid] = choice
            return {choice}
        rows = np.array([self.cluster.row_of[node] for node in fitting], dtype=np.int64)
        scores = self.policy.score(self.cluster.view(rows), request, self.context.rng)
        best = scores.max()
        return {node for node, score in zip(fitting, scores, strict=True) if score == best}

    def allocate(self, claims: list[ClaimAllocation], selected_node: str) -> None:
        """Allocate the claims on the selected node (or, for Immediate claims, the best node)."""
        todo: list[tuple[ClaimAllocation, GpuRequest]] = []
        for claim in claims:
            existing = self._allocations.get(claim.claim.metadata.uid)
            if existing is not None:
                claim.allocation = existing.result
                continue
            try:
                todo.append((claim, self._request(claim)))
            except DriverError as error:
                claim.error = str(error)
        if not todo:
            return
        node = selected_node or self._node_for_immediate(todo[0][1])
        row = self.cluster.row_of.get(node) if node else None
        if row is None:
            for claim, request in todo:
                claim.error = (
                    f"driver {self.context.driver_name} has no GPUs on node {node!r}"
                    if node
                    else f"no node has {request.gpu_count} GPU(s) of {request.gpu_milli} milli free"
                )
            return
        placement = self._place(row, [request for _, request in todo], pick=True)
        if placement is None:
            for claim, request in todo:
                single = self._place(row, [request], pick=True)
                if single is None:
                    claim.error = (
                        f"resources exhausted on node {node!r}: the claim needs "
                        f"{request.gpu_count} GPU(s) of {request.gpu_milli} milli"
                    )
                else:
                    self._record(claim, request, node, row, single[0])
            return
        for (claim, request), gpus in zip(todo, placement, strict=True):
            self._record(claim, request, node, row, gpus)

    def _node_for_immediate(self, request: GpuRequest) -> str:
        mask = self.cluster.feasible(request)
        for row, name in enumerate(self.cluster.names):
            if self.context.nodes.labels(name) is None:
                mask[row] = False
        rows = np.flatnonzero(mask)
        if len(rows) == 0:
            return ""
        scores = self.policy.score(self.cluster.view(rows), request, self.context.rng)
        best = rows[scores == scores.max()]
        return self.cluster.names[int(best[int(self.context.rng.integers(len(best)))])]

    def _record(
        self, claim: ClaimAllocation, request: GpuRequest, node: str, row: int, gpus: list[int]
    ) -> None:
        # GpuCluster.allocate raises when a GPU would go below 0 milli free.
        self.cluster.allocate(row, request, gpus)
        names = self.gpu_names[node]
        devices: list[str] = []
        for gpu in gpus:
            if request.shared:
                used = self._shares.setdefault((row, gpu), set())
                share = next(n for n in range(len(used) + 1) if n not in used)
                used.add(share)
                devices.append(f"{names[gpu]}/share-{share}")
            else:
                devices.append(names[gpu])
        handle = resource_handle(
            self.context.driver_name,
            {"node": node, "gpus": [names[g] for g in gpus], "milli": request.gpu_milli},
        )
        result = AllocationResult(
            resource_handles=(handle,), available_on_nodes=nodes_selector([node]), shareable=False
        )
        uid = claim.claim.metadata.uid
        self._allocations[uid] = _Allocation(
            node, row, tuple(gpus), request, tuple(devices), result
        )
        claim.allocation = result
        self.allocations += 1
        owner = controller_owner(claim.claim)
        if owner is not None:
            self._rounds.pop(owner.uid, None)
            self._steer_choice.pop(owner.uid, None)

    def deallocate(self, claim: ResourceClaim) -> None:
        """Give the claim's GPU milli back; an unknown claim is fine."""
        allocation = self._allocations.pop(claim.metadata.uid, None)
        if allocation is None:
            return
        self.cluster.release(allocation.row, allocation.request, list(allocation.gpus))
        if allocation.request.shared:
            for gpu, device in zip(allocation.gpus, allocation.devices, strict=True):
                share = int(device.rsplit("-", 1)[1])
                self._shares[(allocation.row, gpu)].discard(share)
        self.deallocations += 1

    def inventory(self) -> dict[str, DeviceUse]:
        """Return GPUs per node and how many of them hold any allocation."""
        result: dict[str, DeviceUse] = {}
        for row, node in enumerate(self.cluster.names):
            count = int(self.cluster.gpu_count[row])
            used = int((self.cluster.gpu_left[row, :count] < MILLI_PER_GPU).sum())
            result[node] = DeviceUse(count, used)
        return result

    def devices_of(self, claim_uid: str) -> tuple[str, list[str]] | None:
        """Return the node and GPU (or `<gpu>/share-<n>`) names of an allocated claim, or None."""
        allocation = self._allocations.get(claim_uid)
        if allocation is None:
            return None
        return allocation.node, list(allocation.devices)

    def device_amount(self, claim_uid: str) -> float | None:
        """Return the GPUs allocated to a claim (a share as its fraction), or None."""
        allocation = self._allocations.get(claim_uid)
        if allocation is None:
            return None
        return allocation.request.gpu_devices

    def allocated_milli(self) -> int:
        """Return the GPU milli allocated on all nodes."""
        return self.cluster.gpu_allocated_milli

    def capacity_milli(self) -> int:
        """Return the GPU milli of all nodes."""
        return self.cluster.gpu_capacity_milli
