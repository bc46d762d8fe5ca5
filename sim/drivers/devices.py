"""A driver of named devices with attributes on each node, such as GPUs.

This is the model behind the public classic-DRA demo drivers (the
dra-example-driver, Intel's GPU driver and NVIDIA's GPU driver): every node
has a list of devices, each with a name and attributes (`memory: 16384`,
`productName: a100`), and a claim takes `count` whole devices of one node that
match its selector. A device belongs to at most one claim at a time. A
shareable claim lets all the pods that reserve it use its devices, but two
claims never share a device.

Requests come from the class and claim parameters (see `PARAMETER_PARSERS`
for the supported kinds, one parse function per kind). The simulator's own
kinds, in API group `dra-sim.example.com`, give the full form:

    apiVersion: dra-sim.example.com/v1
    kind: DeviceClaimParameters          # or DeviceClassParameters (no count)
    spec:
      count: 2                           # devices, default 1
      shareable: true                    # optional, overrides the default
      selector:                          # all entries must hold (AND)
        productName: a100                # equality on an attribute
        min_memory: 16384                # numeric attribute >= bound
        max_index: 3                     # numeric attribute <= bound

Any other key in `spec` is rejected, so that a misspelt key is not silently
ignored.

A device without the attribute does not match an entry. The class selector
and the claim selector must both hold; the count comes from the claim (else
the class, else 1); `shareable` from the claim, else the class, else the
model setting, else true for user-created claims and false for claims
generated from a template. Some vendor kinds ask for 0 devices (NVIDIA
compute instances, and MIG devices carved from the GPU of another claim):
such a claim is allocated on any node in the model's inventory and holds
none of its devices.

Allocation:

* UnsuitableNodes: a node is unsuitable for all of the pod's claims when it
  has no devices of the driver, or when the claims do not fit on it jointly
  (an exact bipartite matching of requested devices to free matching
  devices), or when one of the claims is already allocated on another node.
* Allocate for a selected node: all claims together if they fit jointly,
  otherwise claim by claim as far as they fit ("resources exhausted on
  node"). Immediate claims go to a node chosen by the placement policy
  (`sim.drivers.placement`) among the existing nodes where they fit.
* The allocation selects the node with `kubernetes.io/hostname In [node]`;
  the resource handle lists the node and the device names as JSON.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import BaseModel, BeforeValidator, Field, field_validator, model_validator
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching

from sim.api.types import AllocationResult, GenericObject, ObjectMeta, Pod, ResourceClaim
from sim.cluster.config import StrictModel
from sim.cluster.driver import (
    ClaimAllocation,
    DeviceUse,
    DriverError,
    ModelContext,
    is_generated_claim,
    nodes_selector,
    resource_handle,
)
from sim.drivers.placement import NodeCandidate, available_placement_policies, get_placement_policy
from sim.drivers.registry import register_driver_model

logger = logging.getLogger(__name__)

SIM_PARAMETERS_GROUP = "dra-sim.example.com"
"""API group of the simulator's own kinds `DeviceClaimParameters` and `DeviceClassParameters`."""

AttributeValue = str | bool | int | float


# --------------------------------------------------------------------------------------
# Requests: what one claim needs
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttributeConstraint:
    """One condition on a device attribute: equality, or inclusive numeric bounds."""

    attribute: str
    equals: AttributeValue | None = None
    minimum: float | None = None
    maximum: float | None = None
    missing_matches: bool = False
    """Whether a device without the attribute satisfies the condition."""

    def matches(self, attributes: Mapping[str, AttributeValue]) -> bool:
        """Whether a device with these attributes satisfies the condition."""
        if self.attribute not in attributes:
            return self.missing_matches
        value = attributes[self.attribute]
        if self.equals is not None:
            # True == 1 in Python, but a boolean attribute only equals a boolean value.
            if isinstance(value, bool) != isinstance(self.equals, bool):
                return False
            return value == self.equals
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.minimum is not None and value < self.minimum:
            return False
        return self.maximum is None or value <= self.maximum

    def __str__(self) -> str:
        if self.equals is not None:
            return f"{self.attribute}={self.equals!r}"
        bounds = []
        if self.minimum is not None:
            bounds.append(f"{self.attribute}>={self.minimum:g}")
        if self.maximum is not None:
            bounds.append(f"{self.attribute}<={self.maximum:g}")
        return ",".join(bounds)


@dataclass(frozen=True)
class ParsedParameters:
    """Contribution of one parameters object to a request; None means "not set"."""

    count: int | None = None
    constraints: tuple[AttributeConstraint, ...] = ()
    shareable: bool | None = None
    notes: tuple[str, ...] = ()
    """Settings of the object that the model reads but does not simulate."""


@dataclass(frozen=True)
class DeviceRequest:
    """Devices a claim requests: `count` devices of one node, each matching every constraint.

    A count of 0 requests no device, only the driver on the node.
    """

    count: int = 1
    constraints: tuple[AttributeConstraint, ...] = ()
    shareable: bool | None = None

    def matches(self, attributes: Mapping[str, AttributeValue]) -> bool:
        """Whether a device with these attributes may serve this request."""
        return all(c.matches(attributes) for c in self.constraints)

    def __str__(self) -> str:
        text = f"{self.count} device(s)"
        if self.constraints:
            text += " matching " + ",".join(str(c) for c in self.constraints)
        return text


# --------------------------------------------------------------------------------------
# Parameter kinds: one parse function each
# --------------------------------------------------------------------------------------


def _describe(obj: GenericObject) -> str:
    return f"{obj.kind} {obj.key}"


class ParameterError(DriverError):
    """An invalid field of a parameters object, with the field's path, the rule and the value.

    The message reads `<kind> <namespace/name>: <field> <rule>, got <value>`;
    scenario validation uses the parts to name the scenario field instead.
    """

    def __init__(
        self, obj: GenericObject, field: str, rule: str, value: Any, *, shows_value: bool = True
    ) -> None:
        message = f"{_describe(obj)}: {field} {rule}"
        if shows_value:
            message += f", got {value!r}"
        super().__init__(message)
        self.field = field
        """Path inside the object, e.g. `spec.count`."""
        self.rule = rule
        """What the field allows, e.g. `must be a positive integer`."""
        self.value = value
        self.shows_value = shows_value
        """False when `value` is no part of the problem (an unknown field)."""


def _spec(obj: GenericObject) -> Mapping[str, Any]:
    spec = obj.body.get("spec", {})
    if not isinstance(spec, Mapping):
        raise ParameterError(obj, "spec", "must be a mapping", spec)
    return spec


def reject_unknown_fields(
    obj: GenericObject, spec: Mapping[str, Any], allowed: tuple[str, ...]
) -> None:
    """Reject keys of a parameters object's `spec` that its kind does not define.

    A misspelt key such as `cnt` would otherwise be ignored, and the claim
    would get the default count.

    Raises:
        ParameterError: a key is not in `allowed`; the message lists the allowed keys.
    """
    unknown = sorted(set(spec) - set(allowed))
    if not unknown:
        return
    if len(unknown) == 1:
        field = f"spec.{unknown[0]}"
        rule = "is an unknown field"
        close = difflib.get_close_matches(unknown[0], allowed, n=1)
        if close:
            rule += f"; did you mean {close[0]!r}?"
    else:
        field = "spec"
        rule = f"has unknown fields {unknown}"
    raise ParameterError(
        obj, field, f"{rule} (allowed: {', '.join(allowed)})", None, shows_value=False
    )


def _count(obj: GenericObject, value: Any, path: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParameterError(obj, path, "must be a positive integer", value)
    return value


def _optional_bool(obj: GenericObject, value: Any, path: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ParameterError(obj, path, "must be true or false", value)


def _selector(obj: GenericObject, selector: Any) -> tuple[AttributeConstraint, ...]:
    """Parse the simulator's selector form: `attr: value`, `min_attr: n`, `max_attr: n`."""
    if selector is None:
        return ()
    if not isinstance(selector, Mapping):
        raise ParameterError(obj, "spec.selector", "must be a mapping", selector)
    constraints = []
    for key, value in selector.items():
        path = f"spec.selector.{key}"
        if key.startswith(("min_", "max_")):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ParameterError(obj, path, "must be a number", value)
            if key.startswith("min_"):
                constraints.append(AttributeConstraint(key[4:], minimum=float(value)))
            else:
                constraints.append(AttributeConstraint(key[4:], maximum=float(value)))
        elif isinstance(value, str | bool | int | float):
            constraints.append(AttributeConstraint(key, equals=value))
        else:
            raise ParameterError(obj, path, "must be a string, number or boolean", value)
    return tuple(constraints)


def parse_config_map(obj: GenericObject) -> ParsedParameters:
    """Core ConfigMap (the Kubernetes test driver's parameters): `data.count` if present."""
    data = obj.body.get("data", {})
    if isinstance(data, Mapping) and "count" in data:
        return ParsedParameters(count=_count(obj, data["count"], "data.count"))
    return ParsedParameters()


def parse_device_claim_parameters(obj: GenericObject) -> ParsedParameters:
    """The simulator's `DeviceClaimParameters`: count, selector, shareable."""
    spec = _spec(obj)
    reject_unknown_fields(obj, spec, ("count", "selector", "shareable"))
    count = _count(obj, spec["count"], "spec.count") if "count" in spec else None
    return ParsedParameters(
        count=count,
        constraints=_selector(obj, spec.get("selector")),
        shareable=_optional_bool(obj, spec.get("shareable"), "spec.shareable"),
    )


def parse_device_class_parameters(obj: GenericObject) -> ParsedParameters:
    """The simulator's `DeviceClassParameters`: selector, shareable."""
    spec = _spec(obj)
    reject_unknown_fields(obj, spec, ("selector", "shareable"))
    return ParsedParameters(
        constraints=_selector(obj, spec.get("selector")),
        shareable=_optional_bool(obj, spec.get("shareable"), "spec.shareable"),
    )


def parse_example_gpu_claim_parameters(obj: GenericObject) -> ParsedParameters:
    """dra-example-driver `GpuClaimParameters` (gpu.resource.example.com): `spec.count`."""
    spec = _spec(obj)
    count = _count(obj, spec["count"], "spec.count") if "count" in spec else None
    return ParsedParameters(count=count)


def parse_intel_gpu_claim_parameters(obj: GenericObject) -> ParsedParameters:
    """Intel `GpuClaimParameters`: count, memory per GPU in MiB, and `shareable`.

    Memory is checked against the device attribute `memory`. In Intel's
    driver (v0.3.0) `spec.shareable` is a plain bool, so leaving it out means
    that only one pod at a time may use the claim.
    """
    spec = _spec(obj)
    count = _count(obj, spec["count"], "spec.count") if "count" in spec else None
    constraints: list[AttributeConstraint] = []
    notes: list[str] = []
    if "memory" in spec:
        memory = spec["memory"]
        if isinstance(memory, bool) or not isinstance(memory, int | float) or memory < 0:
            raise ParameterError(obj, "spec.memory", "must be a number of MiB", memory)
        if memory > 0:
            # Devices that do not state their memory are assumed to be large enough.
            constraints.append(
                AttributeConstraint("memory", minimum=float(memory), missing_matches=True)
            )
    kind = spec.get("type", "gpu")
    if kind != "gpu":
        notes.append(f"spec.type {kind!r} is treated as a whole GPU")
    if spec.get("millicores"):
        notes.append("spec.millicores is not simulated: the claim takes whole GPUs")
    shareable = _optional_bool(obj, spec.get("shareable"), "spec.shareable")
    return ParsedParameters(
        count=count,
        constraints=tuple(constraints),
        shareable=bool(shareable),
        notes=tuple(notes),
    )


def parse_intel_gpu_class_parameters(obj: GenericObject) -> ParsedParameters:
    """Intel `GpuClassParameters`: `spec.shared` and `spec.monitor`, neither simulated.

    In Intel's driver (v0.3.0) `shared: true` lets several claims use one GPU.
    That is not the claim's `shareable` (which pods may use one claim), and
    this model never puts two claims on one device, so it only records a note.
    """
    spec = _spec(obj)
    notes: list[str] = []
    if _optional_bool(obj, spec.get("shared"), "spec.shared"):
        notes.append("spec.shared is not simulated: each claim takes GPUs of its own")
    if spec.get("monitor"):
        notes.append("spec.monitor is not simulated")
    return ParsedParameters(notes=tuple(notes))


def parse_nvidia_gpu_claim_parameters(obj: GenericObject) -> ParsedParameters:
    """NVIDIA `GpuClaimParameters`: `spec.count`; selector and sharing are not simulated."""
    spec = _spec(obj)
    count = _count(obj, spec["count"], "spec.count") if "count" in spec else None
    notes = tuple(
        f"spec.{name} is not simulated" for name in ("selector", "sharing") if name in spec
    )
    return ParsedParameters(count=count, notes=notes)


def _optional_name(obj: GenericObject, spec: Mapping[str, Any], field: str) -> str | None:
    value = spec.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ParameterError(obj, f"spec.{field}", "must be a string", value)
    return value


def _sharing_notes(spec: Mapping[str, Any]) -> list[str]:
    sharing = spec.get("sharing")
    if sharing is None:
        return []
    strategy = sharing.get("strategy") if isinstance(sharing, Mapping) else None
    if strategy is None:
        return ["spec.sharing is not simulated"]
    return [f"spec.sharing strategy {strategy!r} is not simulated"]


def parse_nvidia_mig_device_claim_parameters(obj: GenericObject) -> ParsedParameters:
    """NVIDIA `MigDeviceClaimParameters`: one MIG device, or none when carved from a GPU claim.

    A MIG device is a slice of a MIG-enabled GPU, and this model has no
    slices, so the claim takes one whole device. `spec.profile` (`1g.5gb`)
    must equal the device attribute `profile`, but a device without that
    attribute matches every profile. With `spec.gpuClaimName` (the name of
    the GpuClaimParameters of another claim of the same pod) the NVIDIA
    driver creates the MIG device on that claim's GPU, so the claim takes no
    device of its own (count 0). Profiles, sharing and `spec.uninitialized`
    are recorded as notes.
    """
    spec = _spec(obj)
    profile = _optional_name(obj, spec, "profile")
    parent = _optional_name(obj, spec, "gpuClaimName")
    notes = _sharing_notes(spec)
    if spec.get("uninitialized"):
        notes.append("spec.uninitialized is not simulated")
    if parent is not None:
        notes.append(
            f"spec.gpuClaimName {parent!r}: the MIG device is a slice of the GPU of the claim "
            "with those GpuClaimParameters and takes no device of its own; its profile is not "
            "checked"
        )
        return ParsedParameters(count=0, notes=tuple(notes))
    constraints: tuple[AttributeConstraint, ...] = ()
    if profile is not None:
        # NOTE: several MIG devices may share one real GPU; here each takes a whole device.
        constraints = (AttributeConstraint("profile", equals=profile, missing_matches=True),)
        notes.append(
            f"spec.profile {profile!r} is checked only on devices with a 'profile' attribute; "
            "the claim takes one whole device"
        )
    return ParsedParameters(count=1, constraints=constraints, notes=tuple(notes))


def parse_nvidia_compute_instance_claim_parameters(obj: GenericObject) -> ParsedParameters:
    """NVIDIA `ComputeInstanceClaimParameters`: no device of its own (count 0).

    A compute instance is a part of the MIG device that `spec.migDeviceClaimName`
    names (the MigDeviceClaimParameters of another claim of the same pod), so
    the claim only needs the driver on the node. The parent link and
    `spec.profile` are recorded as notes.
    """
    spec = _spec(obj)
    profile = _optional_name(obj, spec, "profile")
    parent = _optional_name(obj, spec, "migDeviceClaimName")
    notes = []
    if parent is None:
        notes.append("no spec.migDeviceClaimName: the compute instance has no parent MIG device")
    else:
        notes.append(
            f"spec.migDeviceClaimName {parent!r}: the compute instance is a part of the MIG "
            "device of the claim with those MigDeviceClaimParameters and takes no device of "
            "its own"
        )
    if profile is not None:
        notes.append(f"spec.profile {profile!r} is not simulated")
    return ParsedParameters(count=0, notes=tuple(notes))


ParameterParser = Callable[[GenericObject], ParsedParameters]

PARAMETER_PARSERS: dict[tuple[str, str], ParameterParser] = {
    ("", "ConfigMap"): parse_config_map,
    (SIM_PARAMETERS_GROUP, "DeviceClaimParameters"): parse_device_claim_parameters,
    (SIM_PARAMETERS_GROUP, "DeviceClassParameters"): parse_device_class_parameters,
    ("gpu.resource.example.com", "GpuClaimParameters"): parse_example_gpu_claim_parameters,
    ("gpu.resource.intel.com", "GpuClaimParameters"): parse_intel_gpu_claim_parameters,
    ("gpu.resource.intel.com", "GpuClassParameters"): parse_intel_gpu_class_parameters,
    ("gpu.resource.nvidia.com", "GpuClaimParameters"): parse_nvidia_gpu_claim_parameters,
    ("gpu.resource.nvidia.com", "MigDeviceClaimParameters"): (
        parse_nvidia_mig_device_claim_parameters
    ),
    ("gpu.resource.nvidia.com", "ComputeInstanceClaimParameters"): (
        parse_nvidia_compute_instance_claim_parameters
    ),
}
"""Parse function per (API group, kind) of a parameters object."""


def parameters_group(obj: GenericObject, ref_group: str) -> str:
    """Return the API group of a parameters object.

    The group comes from the object's apiVersion. When that is empty, it
    comes from the reference's apiGroup, cut at "/" because some manifests
    write a group with its version there (`gpu.resource.intel.com/v1alpha2`).
    """
    if obj.api_version:
        group, _, _version = obj.api_version.rpartition("/")
        return group
    return ref_group.partition("/")[0]


def parse_parameters(obj: GenericObject, ref_group: str = "") -> ParsedParameters:
    """Parse one parameters object with the parse function of its kind.

    Raises:
        DriverError: the kind is not supported or a value is invalid.
    """
    group = parameters_group(obj, ref_group)
    parser = PARAMETER_PARSERS.get((group, obj.kind))
    if parser is None:
        supported = ", ".join(f"{k} ({g or 'core'})" for g, k in sorted(PARAMETER_PARSERS))
        raise DriverError(
            f"parameters of kind {obj.kind!r} in API group {group!r} are not supported; "
            f"supported kinds: {supported}"
        )
    return parser(obj)


def scenario_parameters_object(spec: Mapping[str, Any], *, of_class: bool) -> GenericObject:
    """Return the parameters object a scenario's `parameters` become at run time.

    Class parameters become a `DeviceClassParameters` object and claim
    parameters a `DeviceClaimParameters` object, each with `spec` set to `spec`.
    """
    kind = "DeviceClassParameters" if of_class else "DeviceClaimParameters"
    return GenericObject(
        api_version=f"{SIM_PARAMETERS_GROUP}/v1",
        kind=kind,
        metadata=ObjectMeta(name="scenario-parameters"),
        body={"spec": dict(spec)},
    )


def check_scenario_parameters(spec: Mapping[str, Any], *, of_class: bool) -> None:
    """Parse a scenario's `parameters` as the driver will parse them at run time.

    A value the driver would reject is reported before the run.

    Raises:
        ParameterError: a value is invalid; its `field` starts with `spec.`.
    """
    parse_parameters(scenario_parameters_object(spec, of_class=of_class), SIM_PARAMETERS_GROUP)


def claim_request(claim: ClaimAllocation) -> tuple[DeviceRequest, list[str]]:
    """Combine the class and claim parameters of a claim into its request.

    Returns:
        The request and the notes about settings that are not simulated.

    Raises:
        DriverError: a parameters object is of an unsupported kind or invalid.
    """
    class_ref = claim.resource_class.parameters_ref
    claim_ref = claim.claim.spec.parameters_ref
    of_class = ParsedParameters()
    of_claim = ParsedParameters()
    if claim.class_parameters is not None:
        of_class = parse_parameters(
            claim.class_parameters, class_ref.api_group if class_ref else ""
        )
    if claim.claim_parameters is not None:
        of_claim = parse_parameters(
            claim.claim_parameters, claim_ref.api_group if claim_ref else ""
        )
    # A count of 0 is a real request (a claim that only needs the driver on the node).
    count = next((c for c in (of_claim.count, of_class.count) if c is not None), 1)
    shareable = of_claim.shareable if of_claim.shareable is not None else of_class.shareable
    request = DeviceRequest(count, of_class.constraints + of_claim.constraints, shareable)
    notes = [
        f"{_describe(obj)}: {note}"
        for obj, parsed in ((claim.class_parameters, of_class), (claim.claim_parameters, of_claim))
        if obj is not None
        for note in parsed.notes
    ]
    return request, notes


# --------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------


class Device(StrictModel):
    """One device on a node: a name unique on that node and its attributes."""

    name: str = Field(min_length=1)
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)


def _coerce_device_list(value: Any) -> Any:
    """Accept a device count (`4` -> devices `dev-0` ... `dev-3` without attributes)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [{"name": f"dev-{i}"} for i in range(value)]
    return value


DeviceList = Annotated[tuple[Device, ...], BeforeValidator(_coerce_device_list)]


class DevicesSettings(StrictModel):
    """Settings of the `devices` model."""

    nodes: dict[str, DeviceList] = Field(
        description="devices per node name: a list of {name, attributes} or a device count"
    )
    placement: str = Field(
        "first-fit", description="placement policy, by name (sim.drivers.placement)"
    )
    shareable: bool | None = Field(
        None,
        description="allocation.shareable unless parameters set it; None = true for user-created "
        "claims, false for claims generated from a template",
    )

    @field_validator("placement")
    @classmethod
    def _check_placement(cls, value: str) -> str:
        if value not in available_placement_policies():
            raise ValueError(
                f"unknown placement policy {value!r}; available: "
                f"{', '.join(available_placement_policies())}"
            )
        return value

    @model_validator(mode="after")
    def _check_unique_names(self) -> DevicesSettings:
        for node, devices in self.nodes.items():
            names = [device.name for device in devices]
            duplicates = sorted({name for name in names if names.count(name) > 1})
            if duplicates:
                raise ValueError(f"node {node!r} lists devices more than once: {duplicates}")
        return self


# --------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Allocation:
    node: str
    devices: tuple[str, ...]
    result: AllocationResult


@register_driver_model("devices")
class DevicesModel:
    """Named devices with attributes per node, placed by a placement policy."""

    Settings: ClassVar[type[BaseModel]] = DevicesSettings

    def __init__(self, settings: DevicesSettings, context: ModelContext) -> None:
        self.settings = settings
        self.context = context
        self._placement = get_placement_policy(settings.placement)
        self._devices: dict[str, dict[str, Device]] = {
            node: {device.name: device for device in devices}
            for node, devices in settings.nodes.items()
        }
        self._owner: dict[str, dict[str, str]] = {node: {} for node in settings.nodes}
        """Per node: device name -> UID of the claim holding it."""
        self._allocations: dict[str, _Allocation] = {}
        self.notes: list[str] = []
        """Parameter settings that were read but not simulated, each recorded once."""

    # ----------------------------------------------------------------------------------
    # Requests and device matching
    # ----------------------------------------------------------------------------------

    def _request(self, claim: ClaimAllocation) -> DeviceRequest:
        try:
            request, notes = claim_request(claim)
        except DriverError as error:
            raise DriverError(
                f"driver {self.context.driver_name} (devices model): {error}"
            ) from None
        for note in notes:
            if note not in self.notes:
                self.notes.append(note)
                logger.info("driver %s: %s", self.context.driver_name, note)
        return request

    def _free(self, node: str) -> list[str]:
        owner = self._owner[node]
        return [name for name in self._devices[node] if name not in owner]

    def _assign(
        self, node: str, requests: Sequence[DeviceRequest], *, pick: bool
    ) -> list[list[str]] | None:
        """Return devices of `node` for every request jointly, or None when they do not fit.

        With `pick`, the placement policy chooses devices claim by claim, and
        the exact matching is the fallback. Without it (a feasibility check)
        only the matching runs, so the random stream is left alone.
        """
        if pick:
            taken: set[str] = set()
            chosen: list[list[str]] = []
            devices = self._devices[node]
            for request in requests:
                free = [
                    d
                    for d in self._free(node)
                    if d not in taken and request.matches(devices[d].attributes)
                ]
                if len(free) < request.count:
                    break
                picked = []
                if request.count > 0:
                    picked = self._placement.pick_devices(
                        node, free, request.count, self.context.rng
                    )
                taken.update(picked)
                chosen.append(picked)
            else:
                return chosen
        return self._match(node, requests)

    def _match(self, node: str, requests: Sequence[DeviceRequest]) -> list[list[str]] | None:
        """Assign devices to requests by maximum bipartite matching (exact, order-independent)."""
        free = self._free(node)
        slots = [index for index, request in enumerate(requests) for _ in range(request.count)]
        if len(slots) > len(free):
            return None
        result: list[list[str]] = [[] for _ in requests]
        if not slots:
            return result
        devices = self._devices[node]
        rows: list[int] = []
        columns: list[int] = []
        for slot, index in enumerate(slots):
            for column, name in enumerate(free):
                if requests[index].matches(devices[name].attributes):
                    rows.append(slot)
                    columns.append(column)
        graph = csr_matrix(
            (np.ones(len(rows), dtype=np.int8), (rows, columns)), shape=(len(slots), len(free))
        )
        matching = maximum_bipartite_matching(graph, perm_type="column")
        if (matching < 0).any():
            return None
        for slot, column in enumerate(matching):
            result[slots[slot]].append(free[int(column)])
        return result

    # ----------------------------------------------------------------------------------
    # DriverModel callbacks
    # ----------------------------------------------------------------------------------

    def validate_parameters(self, claim: ClaimAllocation) -> None:
        """Parse the class and claim parameters; raise DriverError if unsupported or invalid."""
        self._request(claim)

    def unsuitable_nodes(self, pod: Pod, claims: list[ClaimAllocation], nodes: list[str]) -> None:
        """Mark nodes where the pod's claims cannot all be allocated together."""
        pending: list[DeviceRequest] = []
        pinned_nodes: set[str] = set()
        for claim in claims:
            allocation = self._allocations.get(claim.claim.metadata.uid)
            if allocation is not None:
                pinned_nodes.add(allocation.node)
            else:
                pending.append(self._request(claim))
        unsuitable = [
            node
            for node in nodes
            if node not in self._devices
            or any(pinned != node for pinned in pinned_nodes)
            or self._assign(node, pending, pick=False) is None
        ]
        for claim in claims:
            claim.unsuitable_nodes = list(unsuitable)

    def allocate(self, claims: list[ClaimAllocation], selected_node: str) -> None:
        """Allocate devices on the selected node, or on the node the placement policy picks."""
        todo: list[tuple[ClaimAllocation, DeviceRequest]] = []
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
        if selected_node:
            self._allocate_on_node(todo, selected_node)
        else:
            for claim, request in todo:
                self._allocate_anywhere(claim, request)

    def _allocate_on_node(
        self, todo: list[tuple[ClaimAllocation, DeviceRequest]], node: str
    ) -> None:
        if node not in self._devices:
            for claim, _ in todo:
                claim.error = f"driver {self.context.driver_name} has no devices on node {node!r}"
            return
        joint = self._assign(node, [request for _, request in todo], pick=True)
        if joint is not None:
            for (claim, request), devices in zip(todo, joint, strict=True):
                self._record(claim, request, node, devices)
            return
        # Not all claims fit together: allocate claim by claim as far as the devices go.
        for claim, request in todo:
            single = self._assign(node, [request], pick=True)
            if single is None:
                claim.error = (
                    f"resources exhausted on node {node!r}: the claim needs {request}, "
                    f"{len(self._free(node))} device(s) free"
                )
            else:
                self._record(claim, request, node, single[0])

    def _allocate_anywhere(self, claim: ClaimAllocation, request: DeviceRequest) -> None:
        candidates = [
            NodeCandidate(node, len(self._free(node)), request.count)
            for node in self._devices
            if self.context.nodes.labels(node) is not None
            and self._assign(node, [request], pick=False) is not None
        ]
        if not candidates:
            claim.error = f"resources exhausted on all nodes: the claim needs {request}"
            return
        node = self._placement.pick_node(candidates, self.context.rng)
        chosen = self._assign(node, [request], pick=True)
        if chosen is None:
            raise AssertionError(f"node {node} was a candidate but the claim does not fit on it")
        self._record(claim, request, node, chosen[0])

    def _record(
        self, claim: ClaimAllocation, request: DeviceRequest, node: str, devices: list[str]
    ) -> None:
        uid = claim.claim.metadata.uid
        owner = self._owner[node]
        for device in devices:
            owner[device] = uid
        shareable = request.shareable
        if shareable is None:
            shareable = self.settings.shareable
        if shareable is None:
            shareable = not is_generated_claim(claim.claim)
        handle = resource_handle(self.context.driver_name, {"node": node, "devices": devices})
        result = AllocationResult(
            resource_handles=(handle,),
            available_on_nodes=nodes_selector([node]),
            shareable=shareable,
        )
        self._allocations[uid] = _Allocation(node, tuple(devices), result)
        claim.allocation = result

    def deallocate(self, claim: ResourceClaim) -> None:
        """Return the claim's devices; an unknown claim is fine."""
        allocation = self._allocations.pop(claim.metadata.uid, None)
        if allocation is None:
            return
        owner = self._owner[allocation.node]
        for device in allocation.devices:
            del owner[device]

    def inventory(self) -> dict[str, DeviceUse]:
        """Return the device count and the devices in use per node."""
        return {
            node: DeviceUse(len(devices), len(self._owner[node]))
            for node, devices in self._devices.items()
        }

    def devices_of(self, claim_uid: str) -> tuple[str, list[str]] | None:
        """Return the node and device names of an allocated claim, or None."""
        allocation = self._allocations.get(claim_uid)
        if allocation is None:
            return None
        return allocation.node, list(allocation.devices)
