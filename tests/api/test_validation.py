"""Tests for sim.api.validation: one bad write per rule, valid objects, claim status transitions.

The bad-write table has one row per validation rule. Each row builds an object
that is valid except for that rule and asserts the single error it produces:
its path, its Kubernetes error type and a fragment of its 422 text. The
property tests drive a ResourceClaim status through random writes and compare
the validator with an independent transcription of the ten claim status rules
over plain Python values.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from sim.api.errors import FieldError, Invalid
from sim.api.types import (
    Affinity,
    AllocationResult,
    ClaimSource,
    Container,
    GenericObject,
    Namespace,
    Node,
    NodeAffinity,
    NodeSelector,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    NodeSpec,
    ObjectMeta,
    OwnerReference,
    Pod,
    PodResourceClaim,
    PodResourceClaimStatus,
    PodSchedulingContext,
    PodSchedulingContextSpec,
    PodSchedulingContextStatus,
    PodSpec,
    PodStatus,
    PreferredSchedulingTerm,
    ResourceClaim,
    ResourceClaimConsumerReference,
    ResourceClaimParametersReference,
    ResourceClaimRef,
    ResourceClaimSchedulingStatus,
    ResourceClaimSpec,
    ResourceClaimStatus,
    ResourceClaimTemplate,
    ResourceClaimTemplateSpec,
    ResourceClass,
    ResourceClassParametersReference,
    ResourceHandle,
    ResourceRequirements,
    Taint,
    Toleration,
    TopLevelObject,
)
from sim.api.validation import (
    ALLOCATION_RESULT_RESOURCE_HANDLES_MAX_SIZE,
    POD_SCHEDULING_NODE_LIST_MAX_SIZE,
    RESOURCE_CLAIM_RESERVED_FOR_MAX_SIZE,
    RESOURCE_HANDLE_DATA_MAX_SIZE,
    TOTAL_ANNOTATION_SIZE_LIMIT_BYTES,
    apply_defaults,
    prepare_for_create,
    validate_create,
    validate_node_selector,
    validate_status_update,
    validate_update,
)

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "manifests"

DRIVER = "gpu.example.com"
DELETED_AT = "2024-01-01T00:00:10Z"

# --------------------------------------------------------------------------------------
# Builders of valid objects; each test changes one thing
# --------------------------------------------------------------------------------------


def meta(name: str = "obj", namespace: str = "default", **changes: object) -> ObjectMeta:
    return ObjectMeta(name=name, namespace=namespace, uid=f"uid-{name}").model_copy(update=changes)


def with_meta(obj: TopLevelObject, **changes: object) -> TopLevelObject:
    return obj.with_meta(**changes)


def resource_class(**changes: object) -> ResourceClass:
    return ResourceClass(metadata=meta("gpu", namespace=""), driver_name=DRIVER).model_copy(
        update=changes
    )


def claim_spec(**changes: object) -> ResourceClaimSpec:
    return ResourceClaimSpec(
        resource_class_name="gpu", allocation_mode="WaitForFirstConsumer"
    ).model_copy(update=changes)


def claim(**spec_changes: object) -> ResourceClaim:
    return ResourceClaim(metadata=meta("claim"), spec=claim_spec(**spec_changes))


def template(**spec_changes: object) -> ResourceClaimTemplate:
    return ResourceClaimTemplate(
        metadata=meta("template"),
        spec=ResourceClaimTemplateSpec(
            metadata=ObjectMeta(labels={"app": "inference"}), spec=claim_spec()
        ),
    ).model_copy(update=spec_changes)


def selector(*requirements: NodeSelectorRequirement) -> NodeSelector:
    term = NodeSelectorTerm(match_expressions=requirements)
    return NodeSelector(node_selector_terms=(term,))


def field_selector(*requirements: NodeSelectorRequirement) -> NodeSelector:
    return NodeSelector(node_selector_terms=(NodeSelectorTerm(match_fields=requirements),))


def req(key: str, operator: str, *values: str) -> NodeSelectorRequirement:
    return NodeSelectorRequirement(key=key, operator=operator, values=values)


ZONE_A = req("zone", "In", "a")


def allocation(
    *,
    shareable: bool = False,
    handles: int = 1,
    data: str = "device-0",
    driver_name: str = DRIVER,
    available_on_nodes: NodeSelector | None = None,
) -> AllocationResult:
    return AllocationResult(
        resource_handles=tuple(
            ResourceHandle(driver_name=driver_name, data=data) for _ in range(handles)
        ),
        available_on_nodes=available_on_nodes,
        shareable=shareable,
    )


def consumer(uid: str, *, resource: str = "pods", name: str = "") -> ResourceClaimConsumerReference:
    return ResourceClaimConsumerReference(resource=resource, name=name or f"pod-{uid}", uid=uid)


def consumers(count: int) -> tuple[ResourceClaimConsumerReference, ...]:
    return tuple(consumer(f"u{i}") for i in range(count))


def allocated_claim(**status_changes: object) -> ResourceClaim:
    status = ResourceClaimStatus(allocation=allocation(), driver_name=DRIVER)
    return claim().model_copy(update={"status": status.model_copy(update=status_changes)})


def node_names(count: int) -> tuple[str, ...]:
    return tuple(f"node-{i}" for i in range(count))


def scheduling_context(
    potential_nodes: tuple[str, ...] = ("node-0", "node-1"),
    claims: tuple[ResourceClaimSchedulingStatus, ...] = (),
) -> PodSchedulingContext:
    return PodSchedulingContext(
        metadata=meta("pod"),
        spec=PodSchedulingContextSpec(selected_node="node-0", potential_nodes=potential_nodes),
        status=PodSchedulingContextStatus(resource_claims=claims),
    )


def unsuitable(name: str, nodes: tuple[str, ...]) -> ResourceClaimSchedulingStatus:
    return ResourceClaimSchedulingStatus(name=name, unsuitable_nodes=nodes)


def template_source(name: str = "template") -> ClaimSource:
    return ClaimSource(resource_claim_template_name=name)


def container(*claim_names: str, name: str = "main") -> Container:
    refs = tuple(ResourceClaimRef(name=n) for n in claim_names)
    return Container(name=name, resources=ResourceRequirements(claims=refs))


def pod(**spec_changes: object) -> Pod:
    spec = PodSpec(
        containers=(container("gpu"),),
        resource_claims=(PodResourceClaim(name="gpu", source=template_source()),),
    )
    return Pod(metadata=meta("pod"), spec=spec.model_copy(update=spec_changes))


def pod_with_statuses(*statuses: PodResourceClaimStatus) -> Pod:
    return pod().model_copy(update={"status": PodStatus(resource_claim_statuses=statuses)})


def node(*taints: Taint, name: str = "node-0") -> Node:
    return Node(metadata=meta(name, namespace=""), spec=NodeSpec(taints=taints))


def pod_with_toleration(**fields: object) -> Pod:
    return pod(tolerations=(Toleration.model_validate(fields),))


def pod_with_affinity(affinity: NodeAffinity) -> Pod:
    return pod(affinity=Affinity(node_affinity=affinity))


def claim_with_available_on(nodes: NodeSelector) -> tuple[ResourceClaim, ResourceClaim]:
    """Return (new, old) for a status write that allocates with `nodes`."""
    new = allocated_claim(allocation=allocation(available_on_nodes=nodes))
    return new, claim()


def owner(kind: str = "Pod", name: str = "pod", **changes: object) -> OwnerReference:
    return OwnerReference(api_version="v1", kind=kind, name=name, uid=f"uid-{name}").model_copy(
        update=changes
    )


# --------------------------------------------------------------------------------------
# One bad write per rule
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadWrite:
    """A write that breaks exactly one rule, and the error it must produce."""

    verb: str  # "create", "update" or "status"
    new: TopLevelObject
    path: str
    kind: str
    text: str  # a fragment of str(FieldError)
    old: TopLevelObject | None = None


def run(write: BadWrite) -> list[FieldError]:
    if write.verb == "create":
        return validate_create(write.new)
    assert write.old is not None, "update and status rows need an old object"
    if write.verb == "update":
        return validate_update(write.new, write.old)
    return validate_status_update(write.new, write.old)


def create(new: TopLevelObject, path: str, kind: str, text: str) -> BadWrite:
    return BadWrite("create", new, path, kind, text)


def update(new: TopLevelObject, old: TopLevelObject, path: str, kind: str, text: str) -> BadWrite:
    return BadWrite("update", new, path, kind, text, old)


def status(new: TopLevelObject, old: TopLevelObject, path: str, kind: str, text: str) -> BadWrite:
    return BadWrite("status", new, path, kind, text, old)


AVAILABLE_ON = "status.allocation.availableOnNodes.nodeSelectorTerms[0]"

BAD_WRITES = {
    # Object metadata.
    "name-missing": create(
        with_meta(claim(), name=""), "metadata.name", "Required", "name or generateName"
    ),
    "name-not-subdomain": create(
        with_meta(claim(), name="My_Claim"), "metadata.name", "Invalid", "RFC 1123 subdomain"
    ),
    "name-longer-than-253": create(
        with_meta(claim(), name="a" * 254), "metadata.name", "Invalid", "no more than 253"
    ),
    "generate-name-invalid": create(
        with_meta(claim(), name="", generate_name="Claim-"),
        "metadata.generateName",
        "Invalid",
        "RFC 1123 subdomain",
    ),
    "namespace-missing": create(
        with_meta(claim(), namespace=""), "metadata.namespace", "Required", "Required value"
    ),
    "namespace-not-label": create(
        with_meta(claim(), namespace="team.a"), "metadata.namespace", "Invalid", "RFC 1123 label"
    ),
    "namespace-on-cluster-scoped": create(
        with_meta(resource_class(), namespace="default"),
        "metadata.namespace",
        "Forbidden",
        "not allowed",
    ),
    "namespace-name-not-label": create(
        Namespace(metadata=meta("team.a", namespace="")),
        "metadata.name",
        "Invalid",
        "RFC 1123 label",
    ),
    "node-name-not-subdomain": create(
        node(name="Node_0"), "metadata.name", "Invalid", "RFC 1123 subdomain"
    ),
    "scheduling-context-name-not-pod-name": create(
        with_meta(scheduling_context(), name="Pod_0"), "metadata.name", "Invalid", "subdomain"
    ),
    "generic-object-name-not-subdomain": create(
        GenericObject(api_version="v1", kind="ConfigMap", metadata=meta("Params")),
        "metadata.name",
        "Invalid",
        "subdomain",
    ),
    "generation-negative": create(
        with_meta(claim(), generation=-1), "metadata.generation", "Invalid", "greater than"
    ),
    "label-key-invalid": create(
        with_meta(claim(), labels={"-app": "x"}), "metadata.labels", "Invalid", "name part"
    ),
    "label-key-prefix-invalid": create(
        with_meta(claim(), labels={"Example.com/app": "x"}),
        "metadata.labels",
        "Invalid",
        "prefix part",
    ),
    "label-value-longer-than-63": create(
        with_meta(claim(), labels={"app": "x" * 64}),
        "metadata.labels",
        "Invalid",
        "no more than 63",
    ),
    "label-value-invalid": create(
        with_meta(claim(), labels={"app": "-x"}), "metadata.labels", "Invalid", "'-x'"
    ),
    "annotation-key-invalid": create(
        with_meta(claim(), annotations={"a/b/c": ""}),
        "metadata.annotations",
        "Invalid",
        "one '/'",
    ),
    "annotations-larger-than-256KiB": create(
        with_meta(claim(), annotations={"a": "x" * TOTAL_ANNOTATION_SIZE_LIMIT_BYTES}),
        "metadata.annotations",
        "TooLong",
        "more than 262144 bytes, got 262145",
    ),
    "finalizer-not-qualified-name": create(
        with_meta(claim(), finalizers=(f"{DRIVER}/deletion/protection",)),
        "metadata.finalizers[0]",
        "Invalid",
        "qualified",
    ),
    "owner-api-version-missing": create(
        with_meta(claim(), owner_references=(owner(api_version="apps/"),)),
        "metadata.ownerReferences[0].apiVersion",
        "Invalid",
        "version must not be empty",
    ),
    "owner-kind-missing": create(
        with_meta(claim(), owner_references=(owner(kind=""),)),
        "metadata.ownerReferences[0].kind",
        "Invalid",
        "kind must not be empty",
    ),
    "owner-name-missing": create(
        with_meta(claim(), owner_references=(owner(name=""),)),
        "metadata.ownerReferences[0].name",
        "Invalid",
        "name must not be empty",
    ),
    "owner-uid-missing": create(
        with_meta(claim(), owner_references=(owner(uid=""),)),
        "metadata.ownerReferences[0].uid",
        "Invalid",
        "uid must not be empty",
    ),
    "owner-two-controllers": create(
        with_meta(
            claim(),
            owner_references=(owner(name="a", controller=True), owner(name="b", controller=True)),
        ),
        "metadata.ownerReferences[1]",
        "Invalid",
        "only one reference may have controller",
    ),
    # Metadata on update.
    "update-changes-name": update(
        with_meta(claim(), name="other"), claim(), "metadata.name", "Invalid", "field is immutable"
    ),
    "update-changes-namespace": update(
        with_meta(claim(), namespace="other"),
        claim(),
        "metadata.namespace",
        "Invalid",
        "field is immutable",
    ),
    "update-changes-uid": update(
        with_meta(claim(), uid="other"), claim(), "metadata.uid", "Invalid", "field is immutable"
    ),
    "update-changes-creation-timestamp": update(
        with_meta(claim(), creation_timestamp="2024-01-01T00:00:01Z"),
        with_meta(claim(), creation_timestamp="2024-01-01T00:00:00Z"),
        "metadata.creationTimestamp",
        "Invalid",
        "field is immutable",
    ),
    "update-sets-deletion-timestamp": update(
        with_meta(claim(), deletion_timestamp=DELETED_AT),
        claim(),
        "metadata.deletionTimestamp",
        "Invalid",
        "field is immutable",
    ),
    "update-adds-finalizer-while-deleting": update(
        with_meta(claim(), deletion_timestamp=DELETED_AT, finalizers=(f"{DRIVER}/protect",)),
        with_meta(claim(), deletion_timestamp=DELETED_AT),
        "metadata.finalizers",
        "Forbidden",
        "no new finalizers",
    ),
    # ResourceClass.
    "class-driver-name-missing": create(
        resource_class(driver_name=""), "driverName", "Required", "driverName: Required value"
    ),
    "class-driver-name-not-subdomain": create(
        resource_class(driver_name="gpu_example"), "driverName", "Invalid", "RFC 1123 subdomain"
    ),
    "class-driver-name-longer-than-63": create(
        resource_class(driver_name="a" * 64), "driverName", "TooLong", "more than 63 bytes"
    ),
    "class-parameters-kind-missing": create(
        resource_class(parameters_ref=ResourceClassParametersReference(name="params")),
        "parametersRef.kind",
        "Required",
        "Required value",
    ),
    "class-parameters-name-missing": create(
        resource_class(parameters_ref=ResourceClassParametersReference(kind="ConfigMap")),
        "parametersRef.name",
        "Required",
        "Required value",
    ),
    "class-parameters-namespace-not-label": create(
        resource_class(
            parameters_ref=ResourceClassParametersReference(
                kind="ConfigMap", name="params", namespace="Team"
            )
        ),
        "parametersRef.namespace",
        "Invalid",
        "RFC 1123 label",
    ),
    "class-suitable-nodes-without-terms": create(
        resource_class(suitable_nodes=NodeSelector()),
        "suitableNodes.nodeSelectorTerms",
        "Required",
        "at least one node selector term",
    ),
    # ResourceClaim spec.
    "claim-class-name-missing": create(
        claim(resource_class_name=""), "spec.resourceClassName", "Required", "Required value"
    ),
    "claim-class-name-not-subdomain": create(
        claim(resource_class_name="GPU"), "spec.resourceClassName", "Invalid", "subdomain"
    ),
    "claim-allocation-mode-unsupported": create(
        claim(allocation_mode="Later"),
        "spec.allocationMode",
        "NotSupported",
        '"Immediate", "WaitForFirstConsumer"',
    ),
    "claim-parameters-kind-missing": create(
        claim(parameters_ref=ResourceClaimParametersReference(name="params")),
        "spec.parametersRef.kind",
        "Required",
        "Required value",
    ),
    "claim-parameters-name-missing": create(
        claim(parameters_ref=ResourceClaimParametersReference(kind="ConfigMap")),
        "spec.parametersRef.name",
        "Required",
        "Required value",
    ),
    "claim-spec-immutable": update(
        claim(allocation_mode="Immediate"), claim(), "spec", "Invalid", "field is immutable"
    ),
    "claim-created-with-impossible-status": create(
        claim().model_copy(update={"status": ResourceClaimStatus(reserved_for=consumers(1))}),
        "status.reservedFor",
        "Forbidden",
        "`allocation` is not set",
    ),
    # ResourceClaimTemplate.
    "template-metadata-name-forbidden": create(
        template(
            spec=ResourceClaimTemplateSpec(metadata=ObjectMeta(name="fixed"), spec=claim_spec())
        ),
        "spec.metadata.name",
        "Forbidden",
        "cannot be set for a template",
    ),
    "template-metadata-label-invalid": create(
        template(
            spec=ResourceClaimTemplateSpec(
                metadata=ObjectMeta(labels={"app": "-x"}), spec=claim_spec()
            )
        ),
        "spec.metadata.labels",
        "Invalid",
        "'-x'",
    ),
    "template-claim-spec-invalid": create(
        template(spec=ResourceClaimTemplateSpec(spec=claim_spec(resource_class_name=""))),
        "spec.spec.resourceClassName",
        "Required",
        "Required value",
    ),
    "template-spec-immutable": update(
        template(spec=ResourceClaimTemplateSpec(spec=claim_spec())),
        template(),
        "spec",
        "Invalid",
        "field is immutable",
    ),
    # ResourceClaim status, rule 1: driverName.
    "status-1-driver-name-missing-when-allocated": status(
        allocated_claim(driver_name=""),
        claim(),
        "status.driverName",
        "Required",
        "must be set when `allocation` is set",
    ),
    "status-1-driver-name-invalid": status(
        claim().with_status(driver_name="gpu_example"),
        claim(),
        "status.driverName",
        "Invalid",
        "subdomain",
    ),
    # Rule 2: allocation.
    "status-2-more-than-32-handles": status(
        allocated_claim(allocation=allocation(handles=33)),
        claim(),
        "status.allocation.resourceHandles",
        "TooMany",
        "Too many: 33: must have at most 32 items",
    ),
    "status-2-handle-driver-name-invalid": status(
        allocated_claim(allocation=allocation(driver_name="gpu_example")),
        claim(),
        "status.allocation.resourceHandles[0].driverName",
        "Invalid",
        "subdomain",
    ),
    "status-2-handle-data-larger-than-16KiB": status(
        allocated_claim(allocation=allocation(data="x" * 16385)),
        claim(),
        "status.allocation.resourceHandles[0].data",
        "TooLong",
        "more than 16384 bytes",
    ),
    "status-2-available-on-nodes-without-terms": status(
        allocated_claim(allocation=allocation(available_on_nodes=NodeSelector())),
        claim(),
        "status.allocation.availableOnNodes.nodeSelectorTerms",
        "Required",
        "at least one node selector term",
    ),
    # Rule 3: reservedFor entries.
    "status-3-more-than-32-consumers": status(
        allocated_claim(allocation=allocation(shareable=True), reserved_for=consumers(33)),
        allocated_claim(allocation=allocation(shareable=True)),
        "status.reservedFor",
        "TooMany",
        "Too many: 33: must have at most 32 items",
    ),
    "status-3-duplicate-consumer-uid": status(
        allocated_claim(
            allocation=allocation(shareable=True),
            reserved_for=(consumer("u1"), consumer("u1", name="other")),
        ),
        allocated_claim(allocation=allocation(shareable=True)),
        "status.reservedFor[1].uid",
        "Duplicate",
        "Duplicate value: 'u1'",
    ),
    "status-3-consumer-resource-missing": status(
        allocated_claim(reserved_for=(consumer("u1", resource=""),)),
        allocated_claim(),
        "status.reservedFor[0].resource",
        "Required",
        "Required value",
    ),
    "status-3-consumer-uid-missing": status(
        allocated_claim(reserved_for=(consumer("", name="pod"),)),
        allocated_claim(),
        "status.reservedFor[0].uid",
        "Required",
        "Required value",
    ),
    # Rule 4.
    "status-4-reserved-without-allocation": status(
        claim().with_status(reserved_for=consumers(1)),
        claim(),
        "status.reservedFor",
        "Forbidden",
        "`allocation` is not set",
    ),
    # Rule 5.
    "status-5-two-consumers-not-shareable": status(
        allocated_claim(reserved_for=consumers(2)),
        allocated_claim(),
        "status.reservedFor",
        "Forbidden",
        "more than one consumer",
    ),
    # Rule 6.
    "status-6-reserve-after-deallocation-requested": status(
        allocated_claim(deallocation_requested=True, reserved_for=consumers(1)),
        allocated_claim(deallocation_requested=True),
        "status.reservedFor",
        "Forbidden",
        "new entries may not be added",
    ),
    "status-6-reserve-while-deleting": status(
        with_meta(allocated_claim(reserved_for=consumers(1)), deletion_timestamp=DELETED_AT),
        with_meta(allocated_claim(), deletion_timestamp=DELETED_AT),
        "status.reservedFor",
        "Forbidden",
        "new entries may not be added",
    ),
    # Rule 7.
    "status-7-allocation-changed": status(
        allocated_claim(allocation=allocation(data="device-1")),
        allocated_claim(),
        "status.allocation",
        "Invalid",
        "field is immutable",
    ),
    # Rule 8.
    "status-8-deallocation-requested-while-reserved": status(
        allocated_claim(deallocation_requested=True, reserved_for=consumers(1)),
        allocated_claim(reserved_for=consumers(1)),
        "status.deallocationRequested",
        "Forbidden",
        "while `reservedFor` is set",
    ),
    # Rule 9.
    "status-9-deallocation-requested-without-allocation": status(
        claim().with_status(deallocation_requested=True),
        claim(),
        "status",
        "Forbidden",
        "`allocation` must be set when `deallocationRequested` is set",
    ),
    # Rule 10.
    "status-10-deallocation-request-withdrawn": status(
        allocated_claim(),
        allocated_claim(deallocation_requested=True),
        "status.deallocationRequested",
        "Forbidden",
        "may not be cleared while `allocation` is set",
    ),
    # PodSchedulingContext.
    "potential-nodes-more-than-128": create(
        scheduling_context(potential_nodes=node_names(129)),
        "spec.potentialNodes",
        "TooMany",
        "at most 128 items",
    ),
    "potential-nodes-duplicate": create(
        scheduling_context(potential_nodes=(*node_names(5), "node-2")),
        "spec.potentialNodes[5]",
        "Duplicate",
        "'node-2'",
    ),
    "potential-node-name-invalid": create(
        scheduling_context(potential_nodes=("Node_0",)),
        "spec.potentialNodes[0]",
        "Invalid",
        "subdomain",
    ),
    "unsuitable-nodes-more-than-128": status(
        scheduling_context(claims=(unsuitable("gpu", node_names(129)),)),
        scheduling_context(),
        "status.resourceClaims[0].unsuitableNodes",
        "TooMany",
        "at most 128 items",
    ),
    "unsuitable-nodes-duplicate": status(
        scheduling_context(claims=(unsuitable("gpu", ("node-0", "node-0")),)),
        scheduling_context(),
        "status.resourceClaims[0].unsuitableNodes[1]",
        "Duplicate",
        "'node-0'",
    ),
    "unsuitable-node-name-invalid": status(
        scheduling_context(claims=(unsuitable("gpu", ("Node_0",)),)),
        scheduling_context(),
        "status.resourceClaims[0].unsuitableNodes[0]",
        "Invalid",
        "subdomain",
    ),
    "scheduling-status-claim-name-duplicate": status(
        scheduling_context(claims=(unsuitable("gpu", ()), unsuitable("gpu", ("node-1",)))),
        scheduling_context(),
        "status.resourceClaims[1].name",
        "Duplicate",
        "'gpu'",
    ),
    # Pod claims.
    "pod-claim-name-missing": create(
        pod(containers=(), resource_claims=(PodResourceClaim(name="", source=template_source()),)),
        "spec.resourceClaims[0].name",
        "Required",
        "Required value",
    ),
    "pod-claim-name-not-label": create(
        pod(
            containers=(),
            resource_claims=(PodResourceClaim(name="gpu.0", source=template_source()),),
        ),
        "spec.resourceClaims[0].name",
        "Invalid",
        "RFC 1123 label",
    ),
    "pod-claim-name-duplicate": create(
        pod(
            resource_claims=(
                PodResourceClaim(name="gpu", source=template_source()),
                PodResourceClaim(name="gpu", source=template_source("other")),
            )
        ),
        "spec.resourceClaims[1].name",
        "Duplicate",
        "'gpu'",
    ),
    "pod-claim-source-empty": create(
        pod(resource_claims=(PodResourceClaim(name="gpu"),)),
        "spec.resourceClaims[0].source",
        "Invalid",
        "one of `resourceClaimName` or `resourceClaimTemplateName` must be set",
    ),
    "pod-claim-source-both": create(
        pod(
            resource_claims=(
                PodResourceClaim(
                    name="gpu",
                    source=ClaimSource(
                        resource_claim_name="claim", resource_claim_template_name="template"
                    ),
                ),
            )
        ),
        "spec.resourceClaims[0].source",
        "Invalid",
        "at most one of",
    ),
    "pod-claim-source-claim-name-invalid": create(
        pod(
            resource_claims=(
                PodResourceClaim(name="gpu", source=ClaimSource(resource_claim_name="Claim")),
            )
        ),
        "spec.resourceClaims[0].source.resourceClaimName",
        "Invalid",
        "subdomain",
    ),
    "pod-claim-source-template-name-invalid": create(
        pod(resource_claims=(PodResourceClaim(name="gpu", source=template_source("Tmpl")),)),
        "spec.resourceClaims[0].source.resourceClaimTemplateName",
        "Invalid",
        "subdomain",
    ),
    "container-claim-not-in-pod": create(
        pod(containers=(container("gpu", "fpga"),)),
        "spec.containers[0].resources.claims[1]",
        "NotFound",
        "must be one of the names in `spec.resourceClaims`: gpu",
    ),
    "container-claim-used-twice": create(
        pod(containers=(container("gpu", "gpu"),)),
        "spec.containers[0].resources.claims[1]",
        "Duplicate",
        "'gpu'",
    ),
    "container-claim-name-missing": create(
        pod(containers=(container(""),)),
        "spec.containers[0].resources.claims[0]",
        "Required",
        "Required value",
    ),
    "init-container-claim-not-in-pod": create(
        pod(init_containers=(container("fpga", name="init"),)),
        "spec.initContainers[0].resources.claims[0]",
        "NotFound",
        "fpga",
    ),
    "pod-resource-claims-immutable": update(
        pod(resource_claims=(PodResourceClaim(name="gpu", source=template_source("other")),)),
        pod(),
        "spec.resourceClaims",
        "Forbidden",
        "field is immutable",
    ),
    "pod-status-claim-name-unknown": status(
        pod_with_statuses(PodResourceClaimStatus(name="fpga", resource_claim_name="pod-fpga")),
        pod(),
        "status.resourceClaimStatuses[0].name",
        "Invalid",
        "must match the name of an entry in `spec.resourceClaims`",
    ),
    "pod-status-claim-name-duplicate": status(
        pod_with_statuses(
            PodResourceClaimStatus(name="gpu", resource_claim_name="pod-gpu-1"),
            PodResourceClaimStatus(name="gpu", resource_claim_name="pod-gpu-2"),
        ),
        pod(),
        "status.resourceClaimStatuses[1].name",
        "Duplicate",
        "'gpu'",
    ),
    "pod-status-generated-claim-name-invalid": status(
        pod_with_statuses(PodResourceClaimStatus(name="gpu", resource_claim_name="Pod-GPU")),
        pod(),
        "status.resourceClaimStatuses[0].resourceClaimName",
        "Invalid",
        "subdomain",
    ),
    # Pod node selection.
    "pod-node-selector-key-invalid": create(
        pod(node_selector={"-zone": "a"}), "spec.nodeSelector", "Invalid", "name part"
    ),
    "toleration-operator-unsupported": create(
        pod_with_toleration(key="gpu", operator="Matches"),
        "spec.tolerations[0].operator",
        "NotSupported",
        '"Equal", "Exists"',
    ),
    "toleration-empty-key-needs-exists": create(
        pod_with_toleration(operator="Equal"),
        "spec.tolerations[0].operator",
        "Invalid",
        "must be 'Exists' when `key` is empty",
    ),
    "toleration-exists-with-value": create(
        pod_with_toleration(key="gpu", operator="Exists", value="true"),
        "spec.tolerations[0].value",
        "Invalid",
        "must be empty when `operator` is 'Exists'",
    ),
    "toleration-value-invalid": create(
        pod_with_toleration(key="gpu", operator="Equal", value="-x"),
        "spec.tolerations[0].value",
        "Invalid",
        "'-x'",
    ),
    "toleration-key-invalid": create(
        pod_with_toleration(key="-gpu", operator="Exists"),
        "spec.tolerations[0].key",
        "Invalid",
        "name part",
    ),
    "toleration-seconds-need-no-execute": create(
        pod_with_toleration(
            key="gpu", operator="Exists", effect="NoSchedule", toleration_seconds=30
        ),
        "spec.tolerations[0].effect",
        "Invalid",
        "must be 'NoExecute'",
    ),
    "toleration-effect-unsupported": create(
        pod_with_toleration(key="gpu", operator="Exists", effect="NoRun"),
        "spec.tolerations[0].effect",
        "NotSupported",
        '"NoSchedule", "PreferNoSchedule", "NoExecute"',
    ),
    "node-affinity-required-without-terms": create(
        pod_with_affinity(
            NodeAffinity(required_during_scheduling_ignored_during_execution=NodeSelector())
        ),
        "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
        ".nodeSelectorTerms",
        "Required",
        "at least one node selector term",
    ),
    "node-affinity-preference-weight-zero": create(
        pod_with_affinity(
            NodeAffinity(
                preferred_during_scheduling_ignored_during_execution=(
                    PreferredSchedulingTerm(
                        weight=0, preference=NodeSelectorTerm(match_expressions=(ZONE_A,))
                    ),
                )
            )
        ),
        "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight",
        "Invalid",
        "range 1-100",
    ),
    "node-affinity-preference-term-invalid": create(
        pod_with_affinity(
            NodeAffinity(
                preferred_during_scheduling_ignored_during_execution=(
                    PreferredSchedulingTerm(
                        weight=10,
                        preference=NodeSelectorTerm(match_expressions=(req("zone", "In"),)),
                    ),
                )
            )
        ),
        "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]"
        ".preference.matchExpressions[0].values",
        "Required",
        "'In' or 'NotIn'",
    ),
    # Node taints.
    "taint-effect-missing": create(
        node(Taint(key="gpu")), "spec.taints[0].effect", "Required", "Required value"
    ),
    "taint-effect-unsupported": create(
        node(Taint(key="gpu", effect="NoRun")),
        "spec.taints[0].effect",
        "NotSupported",
        '"NoSchedule", "PreferNoSchedule", "NoExecute"',
    ),
    "taint-key-invalid": create(
        node(Taint(key="-gpu", effect="NoSchedule")), "spec.taints[0].key", "Invalid", "name part"
    ),
    "taint-value-invalid": create(
        node(Taint(key="gpu", value="-x", effect="NoSchedule")),
        "spec.taints[0].value",
        "Invalid",
        "'-x'",
    ),
    "taint-duplicate-key-and-effect": create(
        node(
            Taint(key="gpu", value="a", effect="NoSchedule"),
            Taint(key="gpu", value="b", effect="NoSchedule"),
        ),
        "spec.taints[1]",
        "Duplicate",
        "'gpu:NoSchedule'",
    ),
    # Node selectors, shown on availableOnNodes; the second requirement is the bad one.
    "selector-in-without-values": status(
        *claim_with_available_on(selector(ZONE_A, req("gpu", "In"))),
        f"{AVAILABLE_ON}.matchExpressions[1].values",
        "Required",
        "'In' or 'NotIn'",
    ),
    "selector-not-in-without-values": status(
        *claim_with_available_on(selector(ZONE_A, req("gpu", "NotIn"))),
        f"{AVAILABLE_ON}.matchExpressions[1].values",
        "Required",
        "'In' or 'NotIn'",
    ),
    "selector-exists-with-values": status(
        *claim_with_available_on(selector(ZONE_A, req("gpu", "Exists", "true"))),
        f"{AVAILABLE_ON}.matchExpressions[1].values",
        "Forbidden",
        "'Exists' or 'DoesNotExist'",
    ),
    "selector-does-not-exist-with-values": status(
        *claim_with_available_on(selector(ZONE_A, req("gpu", "DoesNotExist", "true"))),
        f"{AVAILABLE_ON}.matchExpressions[1].values",
        "Forbidden",
        "'Exists' or 'DoesNotExist'",
    ),
    "selector-gt-with-two-values": status(
        *claim_with_available_on(selector(ZONE_A, req("gpus", "Gt", "1", "2"))),
        f"{AVAILABLE_ON}.matchExpressions[1].values",
        "Required",
        "exactly one value",
    ),
    "selector-lt-without-value": status(
        *claim_with_available_on(selector(ZONE_A, req("gpus", "Lt"))),
        f"{AVAILABLE_ON}.matchExpressions[1].values",
        "Required",
        "exactly one value",
    ),
    "selector-operator-unsupported": status(
        *claim_with_available_on(selector(ZONE_A, req("gpu", "Matches", "a"))),
        f"{AVAILABLE_ON}.matchExpressions[1].operator",
        "NotSupported",
        '"In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"',
    ),
    "selector-key-invalid": status(
        *claim_with_available_on(selector(ZONE_A, req("-gpu", "Exists"))),
        f"{AVAILABLE_ON}.matchExpressions[1].key",
        "Invalid",
        "name part",
    ),
    "field-selector-key-not-name": status(
        *claim_with_available_on(field_selector(req("metadata.namespace", "In", "default"))),
        f"{AVAILABLE_ON}.matchFields[0].key",
        "Invalid",
        "'metadata.name'",
    ),
    "field-selector-operator-exists": status(
        *claim_with_available_on(field_selector(req("metadata.name", "Exists"))),
        f"{AVAILABLE_ON}.matchFields[0].operator",
        "NotSupported",
        '"In", "NotIn"',
    ),
    "field-selector-two-values": status(
        *claim_with_available_on(field_selector(req("metadata.name", "In", "node-0", "node-1"))),
        f"{AVAILABLE_ON}.matchFields[0].values",
        "Required",
        "exactly one value",
    ),
    "field-selector-value-not-node-name": status(
        *claim_with_available_on(field_selector(req("metadata.name", "NotIn", "Node_0"))),
        f"{AVAILABLE_ON}.matchFields[0].values[0]",
        "Invalid",
        "subdomain",
    ),
}


@pytest.mark.parametrize("write", list(BAD_WRITES.values()), ids=list(BAD_WRITES))
def test_bad_write_breaks_one_rule(write: BadWrite) -> None:
    errors = run(write)

    assert [(e.path, e.kind) for e in errors] == [(write.path, write.kind)], errors
    message = str(errors[0])
    assert message.startswith(f"{write.path}: "), message
    assert write.text in message


def test_422_message_lists_every_error() -> None:
    bad = claim(resource_class_name="", allocation_mode="Later")

    error = Invalid("ResourceClaim", bad.name, validate_create(bad))

    assert error.code == 422
    assert error.message.startswith('ResourceClaim "claim" is invalid: [')
    assert "spec.resourceClassName: Required value" in error.message
    assert "spec.allocationMode: Unsupported value: 'Later'" in error.message


# --------------------------------------------------------------------------------------
# Valid objects and writes
# --------------------------------------------------------------------------------------

ALL_OPERATORS = selector(
    req("zone", "In", "a", "b"),
    req("gpu.example.com/model", "NotIn", "t4"),
    req("gpu", "Exists"),
    req("cordoned", "DoesNotExist"),
    req("gpus", "Gt", "1"),
    # Integer-ness of a Gt/Lt value is checked when the scheduler compiles the selector.
    req("gpus", "Lt", "many"),
)

GOOD_CREATES: dict[str, TopLevelObject] = {
    "class-minimal": resource_class(),
    "class-full": resource_class(
        driver_name="GPU.Example.com",  # checked as a DNS subdomain after lowercasing
        parameters_ref=ResourceClassParametersReference(
            api_group="gpu.example.com", kind="GpuClassParameters", name="p", namespace="drivers"
        ),
        suitable_nodes=ALL_OPERATORS,
    ),
    "class-suitable-nodes-by-name": resource_class(
        suitable_nodes=field_selector(req("metadata.name", "In", "node-0"))
    ),
    "claim-with-parameters": claim(
        parameters_ref=ResourceClaimParametersReference(kind="ConfigMap", name="params"),
        allocation_mode="Immediate",
    ),
    "claim-generate-name-only": with_meta(claim(), name="", generate_name="pod-gpu-"),
    "claim-labels-annotations-finalizer-owner": with_meta(
        claim(),
        labels={"app.kubernetes.io/name": "inference", "tier": ""},
        annotations={"resource.kubernetes.io/pod-claim-name": "gpu", "Note": "free text ✓"},
        finalizers=(f"{DRIVER}/deletion-protection",),
        owner_references=(
            owner(controller=True, block_owner_deletion=True),
            owner("ReplicaSet", "rs", api_version="apps/v1"),
        ),
    ),
    "claim-annotations-at-256KiB": with_meta(
        claim(), annotations={"a": "x" * (TOTAL_ANNOTATION_SIZE_LIMIT_BYTES - 1)}
    ),
    "template": template(),
    "template-with-annotations": template(
        spec=ResourceClaimTemplateSpec(
            metadata=ObjectMeta(annotations={"example.com/purpose": "test"}), spec=claim_spec()
        )
    ),
    "scheduling-context-with-answers": scheduling_context(
        claims=(unsuitable("gpu", ("node-1",)), unsuitable("fpga", ()))
    ),
    "scheduling-context-selected-node-unchecked": scheduling_context().model_copy(
        update={"spec": PodSchedulingContextSpec(selected_node="Not A Node Name")}
    ),
    "pod-with-claims": pod(
        resource_claims=(
            PodResourceClaim(name="gpu", source=template_source()),
            PodResourceClaim(name="shared", source=ClaimSource(resource_claim_name="shared-gpu")),
        ),
        init_containers=(container("shared", name="init"),),
        containers=(container("gpu", "shared"), container(name="sidecar")),
        node_selector={"kubernetes.io/arch": "amd64"},
        tolerations=(
            Toleration(operator="Exists"),
            Toleration(key="gpu", value="true", effect="NoSchedule"),
            Toleration(key="gone", operator="Exists", effect="NoExecute", toleration_seconds=30),
        ),
        affinity=Affinity(
            node_affinity=NodeAffinity(
                required_during_scheduling_ignored_during_execution=ALL_OPERATORS,
                preferred_during_scheduling_ignored_during_execution=(
                    PreferredSchedulingTerm(
                        weight=100, preference=NodeSelectorTerm(match_expressions=(ZONE_A,))
                    ),
                ),
            )
        ),
    ),
    "pod-without-claims": pod(containers=(Container(name="main"),), resource_claims=()),
    "pod-with-claim-statuses": pod_with_statuses(
        PodResourceClaimStatus(name="gpu", resource_claim_name="pod-gpu-x7k2p"),
    ),
    "node-with-taints": node(
        Taint(key="gpu", value="true", effect="NoSchedule"),
        Taint(key="gpu", value="true", effect="NoExecute"),
    ),
    "namespace": Namespace(metadata=meta("team-a", namespace="")),
    "config-map": GenericObject(api_version="v1", kind="ConfigMap", metadata=meta("params")),
    "cluster-scoped-custom-resource": GenericObject(
        api_version="example.com/v1", kind="Widget", metadata=meta("w", namespace="")
    ),
}


@pytest.mark.parametrize("obj", list(GOOD_CREATES.values()), ids=list(GOOD_CREATES))
def test_valid_object_creates(obj: TopLevelObject) -> None:
    assert validate_create(obj) == []


GOOD_STATUS_WRITES: dict[str, tuple[TopLevelObject, TopLevelObject]] = {
    "driver-allocates-and-reserves": (allocated_claim(reserved_for=consumers(1)), claim()),
    "scheduler-reserves-shared-claim": (
        allocated_claim(allocation=allocation(shareable=True), reserved_for=consumers(2)),
        allocated_claim(allocation=allocation(shareable=True), reserved_for=consumers(1)),
    ),
    "allocation-everywhere": (
        allocated_claim(allocation=allocation(available_on_nodes=None)),
        claim(),
    ),
    "request-deallocation-and-clear-reserved": (
        allocated_claim(deallocation_requested=True),
        allocated_claim(reserved_for=consumers(1)),
    ),
    "driver-deallocates": (claim(), allocated_claim(deallocation_requested=True)),
    "consumer-removed-while-deleting": (
        with_meta(
            allocated_claim(allocation=allocation(shareable=True), reserved_for=consumers(1)),
            deletion_timestamp=DELETED_AT,
        ),
        with_meta(
            allocated_claim(allocation=allocation(shareable=True), reserved_for=consumers(2)),
            deletion_timestamp=DELETED_AT,
        ),
    ),
    "reallocate-after-deallocation": (
        allocated_claim(allocation=allocation(data="device-1")),
        claim(),
    ),
    "driver-reports-unsuitable-nodes": (
        scheduling_context(claims=(unsuitable("gpu", node_names(3)),)),
        scheduling_context(),
    ),
    "controller-records-generated-claim": (
        pod_with_statuses(PodResourceClaimStatus(name="gpu", resource_claim_name="pod-gpu-abcde")),
        pod(),
    ),
    "controller-records-no-claim-needed": (
        pod_with_statuses(PodResourceClaimStatus(name="gpu")),
        pod(),
    ),
}


@pytest.mark.parametrize(
    ("new", "old"), list(GOOD_STATUS_WRITES.values()), ids=list(GOOD_STATUS_WRITES)
)
def test_valid_status_write(new: TopLevelObject, old: TopLevelObject) -> None:
    assert validate_status_update(new, old) == []


GOOD_UPDATES: dict[str, tuple[TopLevelObject, TopLevelObject]] = {
    "class-changes-driver-and-nodes": (
        resource_class(driver_name="fpga.example.com", suitable_nodes=selector(ZONE_A)),
        resource_class(),
    ),
    "claim-gets-finalizer": (
        with_meta(claim(), finalizers=(f"{DRIVER}/deletion-protection",)),
        claim(),
    ),
    "claim-finalizer-removed-while-deleting": (
        with_meta(claim(), deletion_timestamp=DELETED_AT),
        with_meta(
            claim(), deletion_timestamp=DELETED_AT, finalizers=(f"{DRIVER}/deletion-protection",)
        ),
    ),
    "claim-labels-change": (with_meta(claim(), labels={"app": "x"}), claim()),
    "server-managed-fields-left-empty": (
        with_meta(claim(), uid="", creation_timestamp=None),
        with_meta(claim(), creation_timestamp="2024-01-01T00:00:00Z"),
    ),
    "scheduler-publishes-potential-nodes": (
        scheduling_context(potential_nodes=node_names(POD_SCHEDULING_NODE_LIST_MAX_SIZE)),
        scheduling_context(),
    ),
    "pod-labels-change": (with_meta(pod(), labels={"app": "x"}), pod()),
    "node-cordoned-and-tainted": (
        node(Taint(key="node.kubernetes.io/unschedulable", effect="NoSchedule")),
        node(),
    ),
}


@pytest.mark.parametrize(("new", "old"), list(GOOD_UPDATES.values()), ids=list(GOOD_UPDATES))
def test_valid_update(new: TopLevelObject, old: TopLevelObject) -> None:
    assert validate_update(new, old) == []


def test_update_rejects_different_kinds() -> None:
    with pytest.raises(TypeError, match="ResourceClaim to Pod"):
        validate_update(pod(), claim())


def test_validate_node_selector_uses_given_path() -> None:
    errors = validate_node_selector(selector(req("zone", "In")), "spec.nodes")

    assert [(e.path, e.kind) for e in errors] == [
        ("spec.nodes.nodeSelectorTerms[0].matchExpressions[0].values", "Required")
    ]


def test_corpus_manifests_validate() -> None:
    codec = pytest.importorskip("sim.api.codec")
    checked = 0
    for path in sorted(CORPUS.rglob("*")):
        # Only v1alpha2 manifests are in scope. later-api/ contains newer API versions.
        if not path.is_file() or "later-api" in path.parts or path.suffix not in (".yaml", ".md"):
            continue
        try:
            loaded = codec.load_path(path, lenient=True)
        except codec.ManifestError:
            continue  # rejected by the codec, which its own tests cover
        for obj in loaded.objects:
            obj = as_server_stores(obj)
            errors = validate_create(prepare_for_create(apply_defaults(obj)))
            assert errors == [], f"{path.name}: {obj.kind} {obj.name}: {errors}"
            checked += 1
    assert checked >= 50, f"only {checked} corpus objects were loaded"


def as_server_stores(obj: TopLevelObject) -> TopLevelObject:
    """Fill the namespace, generated name and uid that the API server sets before validating."""
    if obj.NAMESPACED and not isinstance(obj, GenericObject) and not obj.namespace:
        obj = with_meta(obj, namespace="default")
    if not obj.name and obj.metadata.generate_name:
        obj = with_meta(obj, name=obj.metadata.generate_name + "x7k2p")
    if not obj.metadata.uid:
        obj = with_meta(obj, uid="0b6e5f3c-2d4a-4c1e-9f7b-8a1d2c3e4f50")
    return obj


# --------------------------------------------------------------------------------------
# Defaulting
# --------------------------------------------------------------------------------------


def test_defaults_claim_allocation_mode() -> None:
    defaulted = apply_defaults(claim(allocation_mode=""))

    assert defaulted.spec.allocation_mode == "WaitForFirstConsumer"
    assert validate_create(defaulted) == []


def test_defaults_template_allocation_mode() -> None:
    raw = template(spec=ResourceClaimTemplateSpec(spec=claim_spec(allocation_mode="")))

    defaulted = apply_defaults(raw)

    assert defaulted.spec.spec.allocation_mode == "WaitForFirstConsumer"


def test_defaults_keep_explicit_mode() -> None:
    immediate = claim(allocation_mode="Immediate")

    assert apply_defaults(immediate) is immediate


def test_defaults_leave_other_kinds_alone() -> None:
    obj = pod()

    assert apply_defaults(obj) is obj


def test_undefaulted_claim_is_rejected() -> None:
    errors = validate_create(claim(allocation_mode=""))

    assert [(e.path, e.kind) for e in errors] == [("spec.allocationMode", "NotSupported")]


# --------------------------------------------------------------------------------------
# Limits at and beyond their boundary
# --------------------------------------------------------------------------------------


def only_errors_at(errors: list[FieldError], path: str) -> list[str]:
    return [e.kind for e in errors if e.path == path]


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (RESOURCE_CLAIM_RESERVED_FOR_MAX_SIZE, []),
        (RESOURCE_CLAIM_RESERVED_FOR_MAX_SIZE + 1, ["TooMany"]),
    ],
    ids=["32-consumers", "33-consumers"],
)
def test_reserved_for_limit(count: int, expected: list[str]) -> None:
    shared = allocation(shareable=True)
    new = allocated_claim(allocation=shared, reserved_for=consumers(count))

    errors = validate_status_update(new, allocated_claim(allocation=shared))

    assert only_errors_at(errors, "status.reservedFor") == expected
    assert len(errors) == len(expected)


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (ALLOCATION_RESULT_RESOURCE_HANDLES_MAX_SIZE, []),
        (ALLOCATION_RESULT_RESOURCE_HANDLES_MAX_SIZE + 1, ["TooMany"]),
    ],
    ids=["32-handles", "33-handles"],
)
def test_resource_handles_limit(count: int, expected: list[str]) -> None:
    new = allocated_claim(allocation=allocation(handles=count))

    errors = validate_status_update(new, claim())

    assert only_errors_at(errors, "status.allocation.resourceHandles") == expected
    assert len(errors) == len(expected)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("x" * RESOURCE_HANDLE_DATA_MAX_SIZE, []),
        ("x" * (RESOURCE_HANDLE_DATA_MAX_SIZE + 1), ["TooLong"]),
        # The limit counts UTF-8 bytes: 8192 two-byte characters fit, 8193 do not.
        ("é" * (RESOURCE_HANDLE_DATA_MAX_SIZE // 2), []),
        ("é" * (RESOURCE_HANDLE_DATA_MAX_SIZE // 2 + 1), ["TooLong"]),
    ],
    ids=["16384-bytes", "16385-bytes", "16384-bytes-utf8", "16386-bytes-utf8"],
)
def test_handle_data_limit(data: str, expected: list[str]) -> None:
    new = allocated_claim(allocation=allocation(data=data))

    errors = validate_status_update(new, claim())

    assert only_errors_at(errors, "status.allocation.resourceHandles[0].data") == expected
    assert len(errors) == len(expected)


@pytest.mark.parametrize(
    ("count", "expected"),
    [(POD_SCHEDULING_NODE_LIST_MAX_SIZE, []), (POD_SCHEDULING_NODE_LIST_MAX_SIZE + 1, ["TooMany"])],
    ids=["128-nodes", "129-nodes"],
)
def test_node_list_limits(count: int, expected: list[str]) -> None:
    nodes = node_names(count)
    context = scheduling_context(potential_nodes=nodes, claims=(unsuitable("gpu", nodes),))

    create_errors = validate_create(context)
    status_errors = validate_status_update(context, scheduling_context())

    assert only_errors_at(create_errors, "spec.potentialNodes") == expected
    assert only_errors_at(status_errors, "status.resourceClaims[0].unsuitableNodes") == expected
    assert len(create_errors) == 2 * len(expected)  # the spec list and the status list
    assert len(status_errors) == len(expected)


def test_one_consumer_without_shareable() -> None:
    errors = validate_status_update(allocated_claim(reserved_for=consumers(1)), allocated_claim())

    assert errors == []


# --------------------------------------------------------------------------------------
# Claim status transitions against an independent model of the ten rules
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlainAllocation:
    """An allocation described by the numbers that the rules look at."""

    shareable: bool
    handles: int
    data_bytes: int
    selector_terms: int | None  # None: no availableOnNodes (usable on every node)


PLAIN_ALLOCATIONS = {
    "exclusive": PlainAllocation(shareable=False, handles=1, data_bytes=12, selector_terms=1),
    "shared": PlainAllocation(shareable=True, handles=2, data_bytes=12, selector_terms=1),
    "anywhere": PlainAllocation(shareable=True, handles=1, data_bytes=12, selector_terms=None),
    "too-many-handles": PlainAllocation(
        shareable=False, handles=33, data_bytes=12, selector_terms=1
    ),
    "too-much-data": PlainAllocation(shareable=True, handles=1, data_bytes=16385, selector_terms=1),
    "no-selector-terms": PlainAllocation(
        shareable=False, handles=1, data_bytes=12, selector_terms=0
    ),
}
DRIVER_NAMES = {"": True, DRIVER: True, "gpu_example": False}  # name -> valid
UIDS = ("uid-1", "uid-2", "uid-3", "")  # "" is a consumer without uid


@dataclass(frozen=True)
class PlainStatus:
    """A claim status as plain values: allocation by name, consumers by uid."""

    allocation: str | None = None
    driver_name: str = ""
    reserved_for: tuple[str, ...] = ()
    deallocation_requested: bool = False


def violated_rules(old: PlainStatus, new: PlainStatus, deleting: bool) -> set[int]:
    """Return the numbers of the claim status rules that the write breaks.

    A direct transcription of the ten rules, over plain values.
    """
    broken: set[int] = set()
    alloc = PLAIN_ALLOCATIONS[new.allocation] if new.allocation else None

    # 1. A set driverName is valid, and an allocated claim needs one.
    if new.driver_name and not DRIVER_NAMES[new.driver_name]:
        broken.add(1)
    if alloc is not None and not new.driver_name:
        broken.add(1)
    # 2. At most 32 handles of at most 16384 bytes each, and a valid availableOnNodes.
    if alloc is not None and (
        alloc.handles > 32 or alloc.data_bytes > 16384 or alloc.selector_terms == 0
    ):
        broken.add(2)
    # 3. At most 32 consumers, distinct uids, each uid set.
    if len(new.reserved_for) > 32 or len(set(new.reserved_for)) < len(new.reserved_for):
        broken.add(3)
    if "" in new.reserved_for:
        broken.add(3)
    # 4. Consumers only on an allocated claim.
    if new.reserved_for and alloc is None:
        broken.add(4)
    # 5. At most one consumer unless shareable.
    if alloc is not None and not alloc.shareable and len(new.reserved_for) > 1:
        broken.add(5)
    # 6. No new consumer while deleting or deallocating.
    if (deleting or new.deallocation_requested) and set(new.reserved_for) - set(old.reserved_for):
        broken.add(6)
    # 7. A set allocation never changes.
    if old.allocation and new.allocation and old.allocation != new.allocation:
        broken.add(7)
    # 8. Deallocation is requested only with an empty reservedFor.
    if not old.deallocation_requested and new.deallocation_requested and new.reserved_for:
        broken.add(8)
    # 9. A deallocation request needs an allocation.
    if new.deallocation_requested and alloc is None:
        broken.add(9)
    # 10. The request is withdrawn only together with the allocation.
    if old.deallocation_requested and not new.deallocation_requested and alloc is not None:
        broken.add(10)
    return broken


RULE_FIELD = {
    1: "status.driverName",
    2: "status.allocation",
    3: "status.reservedFor",
    4: "status.reservedFor",
    5: "status.reservedFor",
    6: "status.reservedFor",
    7: "status.allocation",
    8: "status.deallocationRequested",
    9: "status",
    10: "status.deallocationRequested",
}
"""The status field that an error for each rule is reported on (or below)."""


def reported_field(path: str) -> str:
    """Reduce an error path to the status field it belongs to."""
    return ".".join(re.sub(r"\[\d+\]", "", path).split(".")[:2])


def build_allocation(name: str) -> AllocationResult:
    plain = PLAIN_ALLOCATIONS[name]
    data = (name + "-" + "x" * plain.data_bytes)[: plain.data_bytes]
    nodes = None
    if plain.selector_terms is not None:
        term = NodeSelectorTerm(match_fields=(req("metadata.name", "In", f"node-{name}"),))
        nodes = NodeSelector(node_selector_terms=(term,) * plain.selector_terms)
    handles = (ResourceHandle(driver_name=DRIVER, data=data),) * plain.handles
    return AllocationResult(
        resource_handles=handles, available_on_nodes=nodes, shareable=plain.shareable
    )


def build_claim(plain: PlainStatus, deleting: bool) -> ResourceClaim:
    status = ResourceClaimStatus(
        allocation=build_allocation(plain.allocation) if plain.allocation else None,
        driver_name=plain.driver_name,
        reserved_for=tuple(consumer(uid, name=f"pod-{uid or 'x'}") for uid in plain.reserved_for),
        deallocation_requested=plain.deallocation_requested,
    )
    built = claim().model_copy(update={"status": status})
    return built.with_meta(deletion_timestamp=DELETED_AT) if deleting else built


def check_write(old: PlainStatus, new: PlainStatus, deleting: bool) -> bool:
    """Assert the validator agrees with the model on one write; return whether it was accepted."""
    broken = violated_rules(old, new, deleting)
    errors = validate_status_update(build_claim(new, deleting), build_claim(old, deleting))

    assert (errors == []) == (not broken), f"rules {sorted(broken)} vs errors {errors}"
    assert {reported_field(e.path) for e in errors} == {RULE_FIELD[r] for r in broken}, errors
    return not errors


plain_statuses = st.builds(
    PlainStatus,
    allocation=st.sampled_from([None, *PLAIN_ALLOCATIONS]),
    driver_name=st.sampled_from(list(DRIVER_NAMES)),
    reserved_for=st.lists(st.sampled_from(UIDS), max_size=4).map(tuple),
    deallocation_requested=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(old=plain_statuses, new=plain_statuses, deleting=st.booleans())
def test_any_status_write_matches_rules(old: PlainStatus, new: PlainStatus, deleting: bool) -> None:
    check_write(old, new, deleting)


class ClaimLifecycle(RuleBasedStateMachine):
    """Random writes by scheduler, driver and controller, starting from a new claim.

    Each step proposes a new status; the validator must accept it exactly when
    the model does, and only accepted writes change the stored claim.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stored = PlainStatus()
        self.deleting = False

    def write(self, change: Callable[[PlainStatus], PlainStatus]) -> None:
        new = change(self.stored)
        if check_write(self.stored, new, self.deleting):
            self.stored = new

    @rule(
        name=st.sampled_from(list(PLAIN_ALLOCATIONS)),
        driver_name=st.sampled_from(list(DRIVER_NAMES)),
    )
    def allocate(self, name: str, driver_name: str) -> None:
        self.write(lambda s: replace(s, allocation=name, driver_name=driver_name))

    @rule(uid=st.sampled_from(UIDS))
    def reserve(self, uid: str) -> None:
        self.write(lambda s: replace(s, reserved_for=(*s.reserved_for, uid)))

    @rule(position=st.integers(min_value=0, max_value=3))
    def unreserve(self, position: int) -> None:
        self.write(
            lambda s: replace(
                s, reserved_for=s.reserved_for[:position] + s.reserved_for[position + 1 :]
            )
        )

    @rule(clear_reserved=st.booleans())
    def request_deallocation(self, clear_reserved: bool) -> None:
        self.write(
            lambda s: replace(
                s,
                deallocation_requested=True,
                reserved_for=() if clear_reserved else s.reserved_for,
            )
        )

    @rule()
    def withdraw_deallocation_request(self) -> None:
        self.write(lambda s: replace(s, deallocation_requested=False))

    @rule()
    def deallocate(self) -> None:
        self.write(lambda s: PlainStatus(reserved_for=s.reserved_for))

    @rule(new=plain_statuses)
    def overwrite(self, new: PlainStatus) -> None:
        self.write(lambda _: new)

    @rule()
    def delete(self) -> None:
        # DELETE with a finalizer sets deletionTimestamp, which is not a status write.
        self.deleting = True

    @invariant()
    def stored_status_is_consistent(self) -> None:
        # Rules that do not depend on the previous status hold for every stored status.
        assert violated_rules(self.stored, self.stored, self.deleting) == set()


TestClaimLifecycle = ClaimLifecycle.TestCase
TestClaimLifecycle.settings = settings(max_examples=100, stateful_step_count=20, deadline=None)


@pytest.mark.parametrize(
    ("requests", "limits", "path", "detail"),
    [
        (
            {"cpu": "-1"},
            {},
            "spec.containers[0].resources.requests[cpu]",
            "greater than or equal to 0",
        ),
        (
            {},
            {"memory": "-1Gi"},
            "spec.containers[0].resources.limits[memory]",
            "greater than or equal to 0",
        ),
        ({"cpu": "lots"}, {}, "spec.containers[0].resources.requests[cpu]", "invalid quantity"),
        (
            {"cpu": "2"},
            {"cpu": "1"},
            "spec.containers[0].resources.requests[cpu]",
            "less than or equal to cpu limit",
        ),
    ],
)
def test_pod_resources_rejected(
    requests: dict[str, str], limits: dict[str, str], path: str, detail: str
) -> None:
    pod = Pod(
        metadata=ObjectMeta(name="pod", namespace="default"),
        spec=PodSpec(
            containers=(
                Container(
                    name="c", resources=ResourceRequirements(requests=requests, limits=limits)
                ),
            )
        ),
    )
    errors = validate_create(pod)

    assert [error.path for error in errors] == [path]
    assert detail in errors[0].detail


def test_pod_resources_accepted() -> None:
    pod = Pod(
        metadata=ObjectMeta(name="pod", namespace="default"),
        spec=PodSpec(
            containers=(
                Container(
                    name="c",
                    resources=ResourceRequirements(
                        requests={"cpu": "500m", "memory": 0}, limits={"cpu": 1}
                    ),
                ),
            )
        ),
    )

    assert validate_create(pod) == []
