"""Kubernetes objects that classic Dynamic Resource Allocation reads and writes.

A ResourceClaim asks a resource driver for a device (or any other resource); a
ResourceClass names the driver that serves claims of its class; a
ResourceClaimTemplate stamps out one claim per pod; a PodSchedulingContext is the
message board on which kube-scheduler and the drivers negotiate a node. These are
the `resource.k8s.io/v1alpha2` types of Kubernetes 1.27-1.29, plus the subsets of
the core `v1` Pod and Node that the simulator needs.

Every class here is an immutable pydantic model whose field names are the
snake_case forms of the Kubernetes JSON names (`reservedFor` is `reserved_for`).
Components never mutate an object: they build a changed copy with
`model_copy(update=...)` (or the helpers in this module) and send it to the API
server. Lists are tuples for the same reason. Maps (labels, annotations, resource
requests) are plain dicts that nobody mutates by convention.

Optional fields follow Go's `omitempty`: the zero value ("" / 0 / False / () /
{}) means "not set" and is left out when an object is written as JSON or YAML.
Pointer fields whose zero value has a meaning of its own (`priority`,
`parametersRef`, `allocation`) default to None instead.

Opaque objects of any other kind (ConfigMaps, driver CRDs such as
`GpuClaimParameters`) are kept as `GenericObject`, whose body stays a dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

RESOURCE_API_VERSION = "resource.k8s.io/v1alpha2"
CORE_API_VERSION = "v1"


_FIELDS_SETS: dict[frozenset[str], set[str]] = {}
"""One set object per distinct set of given fields, shared by all copies that have it."""


def _shared_fields_set(fields: set[str]) -> set[str]:
    # Copies made by `K8sModel.model_copy` never change the set, so they can share it.
    return _FIELDS_SETS.setdefault(frozenset(fields), fields)


class K8sModel(BaseModel):
    """Base of every API type: immutable, strict about unknown keys, camelCase on the wire."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        validate_default=False,
    )

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """Return a copy with the fields in `update` replaced (not validated), as pydantic does.

        The simulator copies objects on every write, so the shallow case skips
        pydantic's generic `copy.copy` calls: the models are frozen, declare no
        private attributes and forbid extra fields, so only the field
        dictionary needs copying.
        """
        if deep:
            return super().model_copy(update=update, deep=True)
        cls = type(self)
        copied = cls.__new__(cls)
        fields = self.__dict__.copy()
        fields_set = self.__pydantic_fields_set__
        if update:
            fields.update(update)
            if not fields_set.issuperset(update):
                fields_set = _shared_fields_set(fields_set | update.keys())
        object.__setattr__(copied, "__dict__", fields)
        object.__setattr__(copied, "__pydantic_extra__", None)
        object.__setattr__(copied, "__pydantic_fields_set__", fields_set)
        object.__setattr__(copied, "__pydantic_private__", None)
        return copied


# --------------------------------------------------------------------------------------
# Enumerations (the API stores plain strings; these name the allowed values)
# --------------------------------------------------------------------------------------


class AllocationMode(StrEnum):
    """Values of `ResourceClaimSpec.allocationMode`; the API server defaults "" to WFFC."""

    IMMEDIATE = "Immediate"
    WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"


class PodPhase(StrEnum):
    """`PodStatus.phase` values."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


class NodeSelectorOperator(StrEnum):
    """Operators of a `NodeSelectorRequirement`."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"
    GT = "Gt"
    LT = "Lt"


class TaintEffect(StrEnum):
    """Effects of a node taint."""

    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


# --------------------------------------------------------------------------------------
# Object metadata
# --------------------------------------------------------------------------------------


class OwnerReference(K8sModel):
    """Link from a dependent object to its owner, used by garbage collection."""

    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(K8sModel):
    """Standard object metadata (`metadata:`) of every Kubernetes object.

    Timestamps are RFC 3339 strings with second precision, as the API server
    writes them; the simulated clock maps onto them from a fixed epoch
    (see `sim.api.server.APIServer`).
    """

    name: str = ""
    generate_name: str = ""
    namespace: str = ""
    uid: str = ""
    resource_version: str = ""
    generation: int = 0
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    finalizers: tuple[str, ...] = ()
    owner_references: tuple[OwnerReference, ...] = ()


class ListMeta(K8sModel):
    """Metadata of a list response: the collection's resourceVersion and the continue token."""

    resource_version: str = ""
    continue_: str = Field(default="", alias="continue")
    remaining_item_count: int | None = None


class TopLevelObject(K8sModel):
    """An object stored by the API server under its own name.

    Subclasses fix `API_VERSION` and `KIND`; the `api_version` and `kind`
    fields still exist so that a manifest carrying them parses, and the codec
    always writes them.
    """

    API_VERSION: ClassVar[str] = ""
    KIND: ClassVar[str] = ""
    NAMESPACED: ClassVar[bool] = True
    HAS_STATUS: ClassVar[bool] = False

    api_version: str = ""
    kind: str = ""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    @property
    def name(self) -> str:
        """The object's `metadata.name`."""
        return self.metadata.name

    @property
    def namespace(self) -> str:
        """The object's `metadata.namespace` ("" for cluster-scoped kinds)."""
        return self.metadata.namespace

    @property
    def uid(self) -> str:
        """The object's `metadata.uid`."""
        return self.metadata.uid

    @property
    def resource_version(self) -> str:
        """The object's `metadata.resourceVersion`."""
        return self.metadata.resource_version

    @property
    def deleting(self) -> bool:
        """Whether a DELETE was accepted and finalizers still hold the object."""
        return self.metadata.deletion_timestamp is not None

    @property
    def key(self) -> str:
        """The informer key: `namespace/name`, or just `name` when cluster-scoped."""
        ns = self.metadata.namespace
        return f"{ns}/{self.metadata.name}" if ns else self.metadata.name

    def with_meta(self, **changes: Any) -> Any:
        """Return a copy whose metadata has the given fields replaced."""
        return self.model_copy(update={"metadata": self.metadata.model_copy(update=changes)})


# --------------------------------------------------------------------------------------
# Node selectors (core/v1), used by ResourceClass.suitableNodes and availableOnNodes
# --------------------------------------------------------------------------------------


class NodeSelectorRequirement(K8sModel):
    """One `key operator values` condition on a node label or field."""

    key: str
    operator: str
    values: tuple[str, ...] = ()


class NodeSelectorTerm(K8sModel):
    """Requirements that must all hold (AND); a term with none matches no node."""

    match_expressions: tuple[NodeSelectorRequirement, ...] = ()
    match_fields: tuple[NodeSelectorRequirement, ...] = ()


class NodeSelector(K8sModel):
    """Terms of which at least one must match (OR)."""

    node_selector_terms: tuple[NodeSelectorTerm, ...] = ()


class PreferredSchedulingTerm(K8sModel):
    """A weighted node-affinity preference."""

    weight: int
    preference: NodeSelectorTerm


# --------------------------------------------------------------------------------------
# resource.k8s.io/v1alpha2
# --------------------------------------------------------------------------------------


class ResourceClassParametersReference(K8sModel):
    """Reference from a ResourceClass to its driver-specific parameters object."""

    api_group: str = ""
    kind: str = ""
    name: str = ""
    namespace: str = ""


class ResourceClaimParametersReference(K8sModel):
    """Reference from a claim to its parameters object in the claim's namespace."""

    api_group: str = ""
    kind: str = ""
    name: str = ""


class ResourceClass(TopLevelObject):
    """A kind of resource, served by the driver named in `driver_name` (cluster-scoped)."""

    API_VERSION: ClassVar[str] = RESOURCE_API_VERSION
    KIND: ClassVar[str] = "ResourceClass"
    NAMESPACED: ClassVar[bool] = False

    driver_name: str = ""
    parameters_ref: ResourceClassParametersReference | None = None
    suitable_nodes: NodeSelector | None = None


class ResourceClaimSpec(K8sModel):
    """What a claim asks for; immutable after creation."""

    resource_class_name: str = ""
    parameters_ref: ResourceClaimParametersReference | None = None
    allocation_mode: str = ""


class ResourceHandle(K8sModel):
    """Opaque data the driver hands to its kubelet plugin for one allocated resource."""

    driver_name: str = ""
    data: str = ""


class AllocationResult(K8sModel):
    """Where and how a claim is allocated; written only by the driver."""

    resource_handles: tuple[ResourceHandle, ...] = ()
    available_on_nodes: NodeSelector | None = None
    shareable: bool = False


class ResourceClaimConsumerReference(K8sModel):
    """A consumer (normally a pod) that may use an allocated claim."""

    api_group: str = ""
    resource: str = ""
    name: str = ""
    uid: str = ""


class ResourceClaimStatus(K8sModel):
    """Allocation state of a claim, written through the status subresource."""

    allocation: AllocationResult | None = None
    reserved_for: tuple[ResourceClaimConsumerReference, ...] = ()
    deallocation_requested: bool = False
    driver_name: str = ""


class ResourceClaim(TopLevelObject):
    """A request for a resource, allocated by the driver of its class (namespaced)."""

    API_VERSION: ClassVar[str] = RESOURCE_API_VERSION
    KIND: ClassVar[str] = "ResourceClaim"
    HAS_STATUS: ClassVar[bool] = True

    spec: ResourceClaimSpec = Field(default_factory=ResourceClaimSpec)
    status: ResourceClaimStatus = Field(default_factory=ResourceClaimStatus)

    @property
    def allocated(self) -> bool:
        """Whether `status.allocation` is set."""
        return self.status.allocation is not None

    @property
    def mode(self) -> str:
        """The allocation mode, with the API default applied to an empty value."""
        return self.spec.allocation_mode or AllocationMode.WAIT_FOR_FIRST_CONSUMER

    def reserved_for_uid(self, uid: str) -> bool:
        """Whether a consumer with this UID is in `status.reservedFor`."""
        return any(ref.uid == uid for ref in self.status.reserved_for)

    def can_be_reserved(self) -> bool:
        """Whether one more consumer may be added: allocated and shareable or unused."""
        allocation = self.status.allocation
        if allocation is None:
            return False
        return allocation.shareable or not self.status.reserved_for

    def with_status(self, **changes: Any) -> ResourceClaim:
        """Return a copy whose status has the given fields replaced."""
        return self.model_copy(update={"status": self.status.model_copy(update=changes)})


class ResourceClaimList(K8sModel):
    """A list of ResourceClaims, as returned by a list request."""

    API_VERSION: ClassVar[str] = RESOURCE_API_VERSION
    KIND: ClassVar[str] = "ResourceClaimList"

    api_version: str = ""
    kind: str = ""
    metadata: ListMeta = Field(default_factory=ListMeta)
    items: tuple[ResourceClaim, ...] = ()


class ResourceClaimTemplateSpec(K8sModel):
    """The claim a template stamps out: labels/annotations and a full claim spec."""

    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ResourceClaimSpec = Field(default_factory=ResourceClaimSpec)


class ResourceClaimTemplate(TopLevelObject):
    """Template from which the resourceclaim controller creates one claim per pod (namespaced)."""

    API_VERSION: ClassVar[str] = RESOURCE_API_VERSION
    KIND: ClassVar[str] = "ResourceClaimTemplate"

    spec: ResourceClaimTemplateSpec = Field(default_factory=ResourceClaimTemplateSpec)


class PodSchedulingContextSpec(K8sModel):
    """What the scheduler publishes: the node it picked and the nodes that would fit."""

    selected_node: str = ""
    potential_nodes: tuple[str, ...] = ()


class ResourceClaimSchedulingStatus(K8sModel):
    """A driver's answer for one pod claim: the nodes where it cannot be allocated."""

    name: str = ""
    unsuitable_nodes: tuple[str, ...] = ()


class PodSchedulingContextStatus(K8sModel):
    """Answers of the drivers, one entry per pod claim."""

    resource_claims: tuple[ResourceClaimSchedulingStatus, ...] = ()


class PodSchedulingContext(TopLevelObject):
    """Negotiation between the scheduler and drivers for one pod (namespaced, named as the pod)."""

    API_VERSION: ClassVar[str] = RESOURCE_API_VERSION
    KIND: ClassVar[str] = "PodSchedulingContext"
    HAS_STATUS: ClassVar[bool] = True

    spec: PodSchedulingContextSpec = Field(default_factory=PodSchedulingContextSpec)
    status: PodSchedulingContextStatus = Field(default_factory=PodSchedulingContextStatus)

    def claim_status(self, pod_claim_name: str) -> ResourceClaimSchedulingStatus | None:
        """Return the status entry for a pod claim, or None when no driver answered yet."""
        for entry in self.status.resource_claims:
            if entry.name == pod_claim_name:
                return entry
        return None


# --------------------------------------------------------------------------------------
# core/v1: the Pod and Node subsets
# --------------------------------------------------------------------------------------


class ResourceClaimRef(K8sModel):
    """A container's reference to one of the pod's `spec.resourceClaims` entries."""

    name: str


class ResourceRequirements(K8sModel):
    """Container resource requests and limits (quantities as written: "500m", 2, "4Gi")."""

    requests: dict[str, str | int | float] = Field(default_factory=dict)
    limits: dict[str, str | int | float] = Field(default_factory=dict)
    claims: tuple[ResourceClaimRef, ...] = ()


class Container(K8sModel):
    """The part of a container the scheduler and kubelet DRA manager look at."""

    name: str = ""
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)


class ClaimSource(K8sModel):
    """Where a pod claim comes from: an existing claim or a template (exactly one is set)."""

    resource_claim_name: str | None = None
    resource_claim_template_name: str | None = None


class PodResourceClaim(K8sModel):
    """An entry of `pod.spec.resourceClaims`: a local name and its source."""

    name: str
    source: ClaimSource = Field(default_factory=ClaimSource)


class Toleration(K8sModel):
    """Permission for a pod to land on nodes with a matching taint."""

    key: str = ""
    operator: str = ""
    value: str = ""
    effect: str = ""
    toleration_seconds: int | None = None


class NodeAffinity(K8sModel):
    """Node affinity: a hard node selector and weighted preferences."""

    required_during_scheduling_ignored_during_execution: NodeSelector | None = None
    preferred_during_scheduling_ignored_during_execution: tuple[PreferredSchedulingTerm, ...] = ()


class Affinity(K8sModel):
    """Scheduling constraints; only node affinity is modelled."""

    node_affinity: NodeAffinity | None = None


class PodSpec(K8sModel):
    """The part of a pod spec that scheduling and DRA depend on."""

    node_name: str = ""
    node_selector: dict[str, str] = Field(default_factory=dict)
    affinity: Affinity | None = None
    tolerations: tuple[Toleration, ...] = ()
    priority: int | None = None
    priority_class_name: str = ""
    scheduler_name: str = ""
    restart_policy: str = ""
    init_containers: tuple[Container, ...] = ()
    containers: tuple[Container, ...] = ()
    resource_claims: tuple[PodResourceClaim, ...] = ()


class PodCondition(K8sModel):
    """One pod condition, such as PodScheduled=False with reason Unschedulable."""

    type: str
    status: str
    reason: str = ""
    message: str = ""
    last_probe_time: str | None = None
    last_transition_time: str | None = None


class PodResourceClaimStatus(K8sModel):
    """Name of the claim generated for a pod claim; None means "no claim needed"."""

    name: str
    resource_claim_name: str | None = None


class PodStatus(K8sModel):
    """The part of a pod status that the simulator writes and reads."""

    phase: str = ""
    conditions: tuple[PodCondition, ...] = ()
    resource_claim_statuses: tuple[PodResourceClaimStatus, ...] = ()
    nominated_node_name: str = ""
    start_time: str | None = None


class Pod(TopLevelObject):
    """A pod (namespaced); only the fields scheduling, DRA and the kubelet use."""

    API_VERSION: ClassVar[str] = CORE_API_VERSION
    KIND: ClassVar[str] = "Pod"
    HAS_STATUS: ClassVar[bool] = True

    spec: PodSpec = Field(default_factory=PodSpec)
    status: PodStatus = Field(default_factory=PodStatus)

    def with_status(self, **changes: Any) -> Pod:
        """Return a copy whose status has the given fields replaced."""
        return self.model_copy(update={"status": self.status.model_copy(update=changes)})

    @property
    def done(self) -> bool:
        """Whether the pod reached a terminal phase (Succeeded or Failed)."""
        return self.status.phase in (PodPhase.SUCCEEDED, PodPhase.FAILED)


class Taint(K8sModel):
    """A node taint that repels pods without a matching toleration."""

    key: str
    value: str = ""
    effect: str = ""
    time_added: str | None = None


class NodeSpec(K8sModel):
    """Node spec: cordoning and taints."""

    unschedulable: bool = False
    taints: tuple[Taint, ...] = ()


class NodeCondition(K8sModel):
    """One node condition, such as Ready=True."""

    type: str
    status: str
    reason: str = ""
    message: str = ""


class NodeStatus(K8sModel):
    """Node capacity and what the scheduler may hand out (`allocatable`)."""

    capacity: dict[str, str | int | float] = Field(default_factory=dict)
    allocatable: dict[str, str | int | float] = Field(default_factory=dict)
    conditions: tuple[NodeCondition, ...] = ()
    phase: str = ""


class Node(TopLevelObject):
    """A node (cluster-scoped): labels, taints and allocatable CPU, memory and pods."""

    API_VERSION: ClassVar[str] = CORE_API_VERSION
    KIND: ClassVar[str] = "Node"
    NAMESPACED: ClassVar[bool] = False
    HAS_STATUS: ClassVar[bool] = True

    spec: NodeSpec = Field(default_factory=NodeSpec)
    status: NodeStatus = Field(default_factory=NodeStatus)


class Namespace(TopLevelObject):
    """A namespace (cluster-scoped); only its metadata is modelled."""

    API_VERSION: ClassVar[str] = CORE_API_VERSION
    KIND: ClassVar[str] = "Namespace"
    NAMESPACED: ClassVar[bool] = False


class GenericObject(TopLevelObject):
    """An object of any other kind (ConfigMap, driver parameter CRDs, CRD definitions).

    Everything except apiVersion, kind and metadata stays in `body` as parsed
    from JSON/YAML. Whether the kind is namespaced is decided by the API server
    from the CustomResourceDefinitions it knows (see `sim.api.server`).
    """

    body: dict[str, Any] = Field(default_factory=dict)


TYPED_KINDS: dict[str, type[TopLevelObject]] = {
    cls.KIND: cls
    for cls in (
        ResourceClass,
        ResourceClaim,
        ResourceClaimTemplate,
        PodSchedulingContext,
        Pod,
        Node,
        Namespace,
    )
}
"""Kinds with a typed model, by `kind`; any other kind is a `GenericObject`."""


def api_version_of(obj: TopLevelObject) -> str:
    """Return the apiVersion to write for an object (typed kinds have a fixed one)."""
    return obj.API_VERSION or obj.api_version


def kind_of(obj: TopLevelObject) -> str:
    """Return the kind to write for an object (typed kinds have a fixed one)."""
    return obj.KIND or obj.kind


def pod_consumer_reference(pod: Pod) -> ResourceClaimConsumerReference:
    """Return the `reservedFor` entry that stands for a pod (apiGroup "", resource "pods")."""
    return ResourceClaimConsumerReference(
        api_group="", resource="pods", name=pod.metadata.name, uid=pod.metadata.uid
    )


def controller_owner(obj: TopLevelObject) -> OwnerReference | None:
    """Return the ownerReference marked `controller: true`, if any."""
    for ref in obj.metadata.owner_references:
        if ref.controller:
            return ref
    return None


def is_controlled_by(obj: TopLevelObject, owner_uid: str) -> bool:
    """Whether the object's controlling ownerReference points at the given UID."""
    ref = controller_owner(obj)
    return ref is not None and ref.uid == owner_uid
