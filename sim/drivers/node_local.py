"""The Kubernetes DRA test driver (`test/e2e/dra/test-driver`) of the e2e tests and scheduler_perf.

The test driver has no devices, only a count of claims per node. It is the
reference model of the simulator because the published scheduler_perf numbers
for classic DRA were measured with it. Its rules (1.28/1.29 form):

* A fixed set of nodes has the "hardware"; `max_claims_per_node` claims fit on
  each (0 = unlimited).
* UnsuitableNodes: with no limit, no node is unsuitable (not even one without
  the hardware). Otherwise a node is unsuitable for all of the pod's claims if
  it lacks the hardware or `claims on node + number of claims > limit`: the
  claims handed over are counted together, including, with library 0.27/0.28,
  claims that are already allocated.
* Allocate: a claim allocated before gets the same result and is not counted
  again. With a selected node the claim fails ("resources exhausted on node")
  when the node lacks the hardware or is full. Immediate claims go to a random
  node with the hardware and capacity left. The result has one resource handle
  (JSON with the parameters as environment variables and the node name),
  `shareable` as configured and `availableOnNodes = kubernetes.io/hostname In
  [node]`.
* Network-attached mode: the limit counts claims in the whole cluster, there
  is no node check in Allocate, and `availableOnNodes` lists the nodes with the
  hardware (nil when every node has it).
* Deallocate drops the claim's record; an unknown claim is fine.
* Parameters: only core ConfigMaps, for the class and for the claim.

Differences from the real driver: the nodes with hardware may be given by
name, by name prefix or by a label selector, and no setting means every node
(the real driver takes a list of names, and an empty list there means no
node). Each claim also gets the lowest free slot number on its node, which
`devices_of` reports as a device name so that the node side can detect two
claims holding the same slot.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, Field, field_validator, model_validator

from sim.api.selectors import LabelSelector, parse_label_selector
from sim.api.types import AllocationResult, GenericObject, ObjectMeta, Pod, ResourceClaim
from sim.cluster.config import StrictModel
from sim.cluster.driver import (
    ClaimAllocation,
    DeviceUse,
    DriverError,
    ModelContext,
    nodes_selector,
    resource_handle,
)
from sim.drivers.devices import ParameterError
from sim.drivers.registry import register_driver_model


class NodeLocalSettings(StrictModel):
    """Settings of the `node-local` model (the Kubernetes test driver)."""

    nodes: tuple[str, ...] = Field((), description="names of the nodes that have the hardware")
    node_name_prefix: str = Field(
        "", description="nodes whose name starts with this have the hardware"
    )
    node_selector: str = Field(
        "", description="label selector (kubectl syntax) of the nodes that have the hardware"
    )
    max_claims_per_node: int = Field(
        0,
        ge=0,
        description="claims per node (in the whole cluster when network_attached); 0 = unlimited",
    )
    shareable: bool = Field(False, description="value of allocation.shareable")
    network_attached: bool = Field(
        False,
        description="count claims cluster-wide instead of per node (test driver without NodeLocal)",
    )

    @field_validator("node_selector")
    @classmethod
    def _check_selector(cls, value: str) -> str:
        if value:
            parse_label_selector(value)
        return value

    @model_validator(mode="after")
    def _check_one_node_source(self) -> NodeLocalSettings:
        sources = [
            name for name in ("nodes", "node_name_prefix", "node_selector") if getattr(self, name)
        ]
        if len(sources) > 1:
            raise ValueError(
                f"set at most one of nodes, node_name_prefix and node_selector (got {sources})"
            )
        return self


@register_driver_model("node-local")
class NodeLocalModel:
    """The Kubernetes DRA test driver: a number of claims per node (or per cluster)."""

    Settings: ClassVar[type[BaseModel]] = NodeLocalSettings

    def __init__(self, settings: NodeLocalSettings, context: ModelContext) -> None:
        self.settings = settings
        self.context = context
        self._selector: LabelSelector | None = (
            parse_label_selector(settings.node_selector) if settings.node_selector else None
        )
        # A set, so that membership does not scan a list of thousands of node names.
        self._named_nodes = frozenset(settings.nodes)
        # Node name -> whether it starts with `node_name_prefix` (names never change).
        self._prefix_matches: dict[str, bool] = {}
        # Claim UID -> node ("" in network-attached mode) and slot number on that node.
        self._allocated: dict[str, tuple[str, int]] = {}
        self._slots: dict[str, set[int]] = {}  # node -> slots in use
        self.allocations = 0
        """Claims allocated so far (idempotent repeats are not counted)."""
        self.deallocations = 0
        """Claims freed so far (calls for unknown claims are not counted)."""

    # ----------------------------------------------------------------------------------
    # Hardware and counts
    # ----------------------------------------------------------------------------------

    @property
    def _restricted(self) -> bool:
        s = self.settings
        return bool(s.nodes or s.node_name_prefix or s.node_selector)

    def has_hardware(self, node: str) -> bool:
        """Whether the driver has resources on `node`."""
        s = self.settings
        if self._named_nodes:
            return node in self._named_nodes
        if s.node_name_prefix:
            known = self._prefix_matches.get(node)
            if known is None:
                known = self._prefix_matches[node] = node.startswith(s.node_name_prefix)
            return known
        if self._selector is not None:
            labels = self.context.nodes.labels(node)
            return labels is not None and self._selector.matches(labels)
        return True

    def hardware_nodes(self) -> list[str]:
        """Return the nodes with the hardware (in configured order for a name list, else sorted)."""
        if self.settings.nodes:
            return list(self.settings.nodes)
        return [node for node in self.context.nodes.node_names() if self.has_hardware(node)]

    def claims_on(self, node: str) -> int:
        """Return the number of claims allocated on `node` ("" counts network-attached claims)."""
        return len(self._slots.get(node, ()))

    # ----------------------------------------------------------------------------------
    # DriverModel callbacks
    # ----------------------------------------------------------------------------------

    def validate_parameters(self, claim: ClaimAllocation) -> None:
        """Accept only core ConfigMaps as class and claim parameters, as the test driver does."""
        for what, ref_kind, parameters in (
            ("class", _ref_kind(claim.resource_class.parameters_ref), claim.class_parameters),
            ("claim", _ref_kind(claim.claim.spec.parameters_ref), claim.claim_parameters),
        ):
            if parameters is None:
                continue
            group, kind = ref_kind
            if group or kind != "ConfigMap":
                raise DriverError(
                    f"driver {self.context.driver_name} (node-local model): {what} parameters "
                    f"are only supported in apiVersion v1, kind ConfigMap, got kind {kind!r} "
                    f"in API group {group!r}"
                )

    def unsuitable_nodes(self, pod: Pod, claims: list[ClaimAllocation], nodes: list[str]) -> None:
        """Mark nodes without the hardware or without room for all the claims together."""
        limit = self.settings.max_claims_per_node
        for claim in claims:
            claim.unsuitable_nodes = []
        if limit == 0:
            return
        if self.settings.network_attached:
            cluster_full = len(self._allocated) + len(claims) > limit
            unsuitable = [node for node in nodes if not self.has_hardware(node) or cluster_full]
        else:
            # Runs for up to 128 nodes per PodSchedulingContext update, so it reads the slots
            # directly instead of calling `claims_on` per node.
            room = limit - len(claims)
            slots = self._slots
            unsuitable = [
                node
                for node in nodes
                if not self.has_hardware(node) or len(slots.get(node, ())) > room
            ]
        for claim in claims:
            claim.unsuitable_nodes = list(unsuitable)

    def allocate(self, claims: list[ClaimAllocation], selected_node: str) -> None:
        """Allocate each claim on its own, setting `allocation` or `error`."""
        for claim in claims:
            try:
                claim.allocation = self._allocate_one(claim, selected_node)
            except DriverError as error:
                claim.error = f"failed allocating claim {claim.claim.metadata.uid}: {error}"

    def _allocate_one(self, claim: ClaimAllocation, selected_node: str) -> AllocationResult:
        uid = claim.claim.metadata.uid
        record = self._allocated.get(uid)
        if record is None:
            node = self._choose_node(selected_node)
            used = self._slots.setdefault(node, set())
            slot = next(i for i in range(len(used) + 1) if i not in used)
            used.add(slot)
            record = (node, slot)
            self._allocated[uid] = record
            self.allocations += 1
        return self._result(claim, record[0])

    def _choose_node(self, selected_node: str) -> str:
        limit = self.settings.max_claims_per_node
        if self.settings.network_attached:
            if limit > 0 and len(self._allocated) >= limit:
                raise DriverError("resources exhausted in the cluster")
            return ""
        if selected_node:
            if not self.has_hardware(selected_node) or (
                limit > 0 and self.claims_on(selected_node) >= limit
            ):
                raise DriverError(f"resources exhausted on node {selected_node!r}")
            return selected_node
        viable = [n for n in self.hardware_nodes() if limit == 0 or self.claims_on(n) < limit]
        if not viable:
            raise DriverError("resources exhausted on all nodes")
        return viable[int(self.context.rng.integers(len(viable)))]

    def _result(self, claim: ClaimAllocation, node: str) -> AllocationResult:
        env: dict[str, str] = {}
        _add_env("user", claim.claim_parameters, env)
        _add_env("admin", claim.class_parameters, env)
        handle = resource_handle(self.context.driver_name, {"EnvVars": env, "NodeName": node})
        if node:
            available = nodes_selector([node])
        elif self._restricted:
            available = nodes_selector(self.hardware_nodes())
        else:
            available = None
        return AllocationResult(
            resource_handles=(handle,),
            available_on_nodes=available,
            shareable=self.settings.shareable,
        )

    def deallocate(self, claim: ResourceClaim) -> None:
        """Drop the claim's record and free its slot; an unknown claim is fine."""
        record = self._allocated.pop(claim.metadata.uid, None)
        if record is not None:
            self._slots[record[0]].discard(record[1])
            self.deallocations += 1

    def inventory(self) -> dict[str, DeviceUse]:
        """Return the claim count per node with the hardware ("" in network-attached mode)."""
        limit = self.settings.max_claims_per_node or None
        if self.settings.network_attached:
            return {"": DeviceUse(limit, len(self._allocated))}
        return {node: DeviceUse(limit, self.claims_on(node)) for node in self.hardware_nodes()}

    def devices_of(self, claim_uid: str) -> tuple[str, list[str]] | None:
        """Return the node and slot (`slot-<n>`) of an allocated claim, or None."""
        record = self._allocated.get(claim_uid)
        if record is None:
            return None
        return record[0], [f"slot-{record[1]}"]


def check_scenario_parameters(spec: Mapping[str, Any], *, of_class: bool) -> None:
    """Check a scenario's `parameters`, which become the data of a core ConfigMap.

    The test driver copies ConfigMap data into environment variables without
    interpreting them, so any key is allowed, `count` too. Each value must
    still be a string, number or boolean, because the simulator writes it with
    `str()` and ConfigMap data in Kubernetes is a map of strings. Class and
    claim parameters follow the same rule.

    Raises:
        ParameterError: a value is a mapping, a list or null; its `field`
            starts with `data.`.
    """
    obj = GenericObject(
        api_version="v1",
        kind="ConfigMap",
        metadata=ObjectMeta(name="scenario-parameters", namespace="default"),
        body={"data": dict(spec)},
    )
    for key, value in spec.items():
        if not isinstance(value, str | int | float):
            raise ParameterError(obj, f"data.{key}", "must be a string, number or boolean", value)


def _ref_kind(ref: Any) -> tuple[str, str]:
    if ref is None:
        return "", ""
    return ref.api_group, ref.kind


def _add_env(prefix: str, parameters: GenericObject | None, env: dict[str, str]) -> None:
    """Copy ConfigMap data into environment variables `<prefix>_<lower-case key>`."""
    if parameters is None:
        return
    data = parameters.body.get("data")
    if isinstance(data, Mapping):
        for key, value in data.items():
            env[f"{prefix}_{str(key).lower()}"] = str(value)
