"""A driver of one network-attached pool: N interchangeable units reachable from some nodes.

Think of a storage or accelerator pool behind the network: a claim takes
units from the pool and can be used on any node that reaches the pool. Rules:

* Reachable nodes match `node_selector` (None = every node).
* UnsuitableNodes: a node is unsuitable for all of the pod's claims when it
  cannot reach the pool, or every node is when the pool has fewer free units
  than the pod's pending claims need together.
* Allocate takes the claim's units (the count of its parameters, as in the
  `devices` model, default 1) and fails when a selected node cannot reach the
  pool or the pool is exhausted. `availableOnNodes` is the pool's node
  selector (nil when every node reaches it).
* Units are named `unit-<n>`; a claim gets the lowest free numbers.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field, field_validator

from sim.api.selectors import CompiledNodeSelector, compile_node_selector
from sim.api.types import AllocationResult, NodeSelector, Pod, ResourceClaim
from sim.cluster.config import StrictModel
from sim.cluster.driver import (
    ClaimAllocation,
    DeviceUse,
    DriverError,
    ModelContext,
    is_generated_claim,
    resource_handle,
)
from sim.drivers.devices import DeviceRequest, claim_request
from sim.drivers.registry import register_driver_model


class NetworkAttachedSettings(StrictModel):
    """Settings of the `network-attached` model."""

    units: int = Field(ge=0, description="size of the pool, units")
    node_selector: NodeSelector | None = Field(
        None, description="nodes that reach the pool (a core/v1 NodeSelector); None = every node"
    )
    shareable: bool | None = Field(
        None,
        description="allocation.shareable unless parameters set it; None = true for user-created "
        "claims, false for claims generated from a template",
    )

    @field_validator("node_selector")
    @classmethod
    def _check_selector(cls, value: NodeSelector | None) -> NodeSelector | None:
        compile_node_selector(value)
        return value


@register_driver_model("network-attached")
class NetworkAttachedModel:
    """One pool of units shared by all nodes that reach it."""

    Settings: ClassVar[type[BaseModel]] = NetworkAttachedSettings

    def __init__(self, settings: NetworkAttachedSettings, context: ModelContext) -> None:
        self.settings = settings
        self.context = context
        self._selector: CompiledNodeSelector = compile_node_selector(settings.node_selector)
        self._units: dict[str, tuple[int, ...]] = {}  # claim UID -> unit numbers
        self._results: dict[str, AllocationResult] = {}
        self._used: set[int] = set()
        self.notes: list[str] = []
        """Parameter settings that were read but not simulated, each recorded once."""

    def reaches(self, node: str) -> bool:
        """Whether `node` exists and reaches the pool."""
        labels = self.context.nodes.labels(node)
        return labels is not None and self._selector.matches(labels, node)

    @property
    def free_units(self) -> int:
        """Units not held by any claim."""
        return self.settings.units - len(self._used)

    def _request(self, claim: ClaimAllocation) -> DeviceRequest:
        try:
            request, notes = claim_request(claim)
        except DriverError as error:
            raise DriverError(
                f"driver {self.context.driver_name} (network-attached model): {error}"
            ) from None
        if request.constraints:
            notes.append(
                f"claim {claim.claim.key}: device selectors do not apply to a pool and are ignored"
            )
        for note in notes:
            if note not in self.notes:
                self.notes.append(note)
        return request

    def validate_parameters(self, claim: ClaimAllocation) -> None:
        """Parse the class and claim parameters; raise DriverError if unsupported or invalid."""
        self._request(claim)

    def unsuitable_nodes(self, pod: Pod, claims: list[ClaimAllocation], nodes: list[str]) -> None:
        """Mark nodes that do not reach the pool; all nodes if the pool cannot serve the claims."""
        needed = sum(
            self._request(claim).count
            for claim in claims
            if claim.claim.metadata.uid not in self._units
        )
        exhausted = needed > self.free_units
        unsuitable = [node for node in nodes if exhausted or not self.reaches(node)]
        for claim in claims:
            claim.unsuitable_nodes = list(unsuitable)

    def allocate(self, claims: list[ClaimAllocation], selected_node: str) -> None:
        """Take units from the pool for each claim, setting `allocation` or `error`."""
        for claim in claims:
            uid = claim.claim.metadata.uid
            if uid in self._results:
                claim.allocation = self._results[uid]
                continue
            try:
                claim.allocation = self._allocate_one(claim, selected_node)
            except DriverError as error:
                claim.error = str(error)

    def _allocate_one(self, claim: ClaimAllocation, selected_node: str) -> AllocationResult:
        request = self._request(claim)
        if selected_node and not self.reaches(selected_node):
            raise DriverError(
                f"node {selected_node!r} does not reach the pool of {self.context.driver_name}"
            )
        if request.count > self.free_units:
            raise DriverError(
                f"pool exhausted: the claim needs {request.count} unit(s), {self.free_units} of "
                f"{self.settings.units} free"
            )

        units: list[int] = []
        candidate = 0
        while len(units) < request.count:
            if candidate not in self._used:
                units.append(candidate)
            candidate += 1
        self._used.update(units)

        shareable = request.shareable
        if shareable is None:
            shareable = self.settings.shareable
        if shareable is None:
            shareable = not is_generated_claim(claim.claim)
        handle = resource_handle(self.context.driver_name, {"units": [f"unit-{u}" for u in units]})
        result = AllocationResult(
            resource_handles=(handle,),
            available_on_nodes=self.settings.node_selector,
            shareable=shareable,
        )
        uid = claim.claim.metadata.uid
        self._units[uid] = tuple(units)
        self._results[uid] = result
        return result

    def deallocate(self, claim: ResourceClaim) -> None:
        """Return the claim's units to the pool; an unknown claim is fine."""
        uid = claim.metadata.uid
        self._results.pop(uid, None)
        self._used.difference_update(self._units.pop(uid, ()))

    def inventory(self) -> dict[str, DeviceUse]:
        """Return the pool's size and use under the key "" (not bound to one node)."""
        return {"": DeviceUse(self.settings.units, len(self._used))}

    def devices_of(self, claim_uid: str) -> tuple[str, list[str]] | None:
        """Return "" and the unit names of an allocated claim, or None."""
        units = self._units.get(claim_uid)
        if units is None:
            return None
        return "", [f"unit-{u}" for u in units]
