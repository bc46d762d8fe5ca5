"""Validation of the core/v1 kinds the simulator models: Pod, Node and Namespace.

Only the fields that scheduling and DRA use are modelled, so only their rules
are checked here: the pod's claims and how containers refer to them, node
selection (nodeSelector, node affinity, tolerations) and node taints.
"""

from __future__ import annotations

from decimal import Decimal

from sim.api.errors import FieldError
from sim.api.quantity import QuantityError, parse_quantity
from sim.api.types import Container, Namespace, Node, Pod, PodResourceClaim, PodResourceClaimStatus
from sim.api.validation.field import (
    child,
    duplicate,
    forbidden,
    index,
    invalid,
    invalid_each,
    not_found,
    required,
)
from sim.api.validation.metadata import validate_labels, validate_object_meta
from sim.api.validation.names import dns1123_label_errors, object_name_errors
from sim.api.validation.node_selector import (
    validate_node_selector,
    validate_preferred_terms,
    validate_taints,
    validate_tolerations,
)

# --------------------------------------------------------------------------------------
# Pod
# --------------------------------------------------------------------------------------


def _validate_claim_source(claim: PodResourceClaim, path: str) -> list[FieldError]:
    source = claim.source
    claim_name = source.resource_claim_name
    template_name = source.resource_claim_template_name
    errors: list[FieldError] = []
    if claim_name is not None and template_name is not None:
        errors.append(
            invalid(
                path,
                source.model_dump(by_alias=True, exclude_none=True),
                "at most one of `resourceClaimName` or `resourceClaimTemplateName` may be set",
            )
        )
    if claim_name is None and template_name is None:
        errors.append(
            invalid(
                path, {}, "one of `resourceClaimName` or `resourceClaimTemplateName` must be set"
            )
        )
    if claim_name is not None:
        errors += invalid_each(
            child(path, "resourceClaimName"), claim_name, object_name_errors(claim_name)
        )
    if template_name is not None:
        errors += invalid_each(
            child(path, "resourceClaimTemplateName"),
            template_name,
            object_name_errors(template_name),
        )
    return errors


def _validate_pod_claims(claims: tuple[PodResourceClaim, ...], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    names: set[str] = set()
    for i, claim in enumerate(claims):
        claim_path = index(path, i)
        name_path = child(claim_path, "name")
        if not claim.name:
            errors.append(required(name_path))
        elif claim.name in names:
            errors.append(duplicate(name_path, claim.name))
        else:
            errors += invalid_each(name_path, claim.name, dns1123_label_errors(claim.name))
        names.add(claim.name)
        errors += _validate_claim_source(claim, child(claim_path, "source"))
    return errors


def _validate_container_claims(
    containers: tuple[Container, ...], pod_claim_names: set[str], path: str
) -> list[FieldError]:
    # A container may use each pod claim once, and only claims listed in spec.resourceClaims.
    if pod_claim_names:
        known = "must be one of the names in `spec.resourceClaims`: " + ", ".join(
            sorted(pod_claim_names)
        )
    else:
        known = "must be one of the names in `spec.resourceClaims`, which is empty"
    errors: list[FieldError] = []
    for i, container in enumerate(containers):
        claims_path = child(index(path, i), "resources.claims")
        used: set[str] = set()
        for j, ref in enumerate(container.resources.claims):
            ref_path = index(claims_path, j)
            if not ref.name:
                errors.append(required(ref_path))
                continue
            if ref.name in used:
                errors.append(duplicate(ref_path, ref.name))
            used.add(ref.name)
            if ref.name not in pod_claim_names:
                errors.append(not_found(ref_path, ref.name, known))
    return errors


def _validate_container_resources(containers: tuple[Container, ...], path: str) -> list[FieldError]:
    # Requests and limits are quantities of at least 0, and a request is at most its limit,
    # as the core/v1 ResourceRequirements validation demands.
    errors: list[FieldError] = []
    for i, container in enumerate(containers):
        resources_path = child(index(path, i), "resources")
        parsed: dict[str, dict[str, Decimal]] = {"requests": {}, "limits": {}}
        for field_name, values in (
            ("requests", container.resources.requests),
            ("limits", container.resources.limits),
        ):
            for resource, value in values.items():
                value_path = child(resources_path, f"{field_name}[{resource}]")
                try:
                    quantity = parse_quantity(value)
                except QuantityError as error:
                    errors.append(invalid(value_path, value, str(error)))
                    continue
                if quantity < 0:
                    errors.append(invalid(value_path, value, "must be greater than or equal to 0"))
                    continue
                parsed[field_name][resource] = quantity
        for resource, request in parsed["requests"].items():
            limit = parsed["limits"].get(resource)
            if limit is not None and request > limit:
                errors.append(
                    invalid(
                        child(resources_path, f"requests[{resource}]"),
                        container.resources.requests[resource],
                        f"must be less than or equal to {resource} limit of "
                        f"{container.resources.limits[resource]}",
                    )
                )
    return errors


def validate_pod(pod: Pod) -> list[FieldError]:
    """Check a pod's metadata and the scheduling and DRA fields of its spec."""
    spec = pod.spec
    errors = validate_object_meta(pod.metadata, namespaced=True)

    errors += _validate_pod_claims(spec.resource_claims, "spec.resourceClaims")
    pod_claim_names = {claim.name for claim in spec.resource_claims}
    errors += _validate_container_claims(
        spec.init_containers, pod_claim_names, "spec.initContainers"
    )
    errors += _validate_container_claims(spec.containers, pod_claim_names, "spec.containers")
    errors += _validate_container_resources(spec.init_containers, "spec.initContainers")
    errors += _validate_container_resources(spec.containers, "spec.containers")

    errors += validate_labels(spec.node_selector, "spec.nodeSelector")
    errors += validate_tolerations(spec.tolerations, "spec.tolerations")
    node_affinity = spec.affinity.node_affinity if spec.affinity is not None else None
    if node_affinity is not None:
        affinity_path = "spec.affinity.nodeAffinity"
        required_selector = node_affinity.required_during_scheduling_ignored_during_execution
        if required_selector is not None:
            errors += validate_node_selector(
                required_selector,
                child(affinity_path, "requiredDuringSchedulingIgnoredDuringExecution"),
            )
        errors += validate_preferred_terms(
            node_affinity.preferred_during_scheduling_ignored_during_execution,
            child(affinity_path, "preferredDuringSchedulingIgnoredDuringExecution"),
        )
    return errors


def validate_pod_update(new: Pod, old: Pod) -> list[FieldError]:
    """Check a main-resource write of a pod: `spec.resourceClaims` is immutable."""
    errors: list[FieldError] = []
    if new.spec.resource_claims != old.spec.resource_claims:
        errors.append(
            forbidden("spec.resourceClaims", "field is immutable after the pod is created")
        )
    errors += validate_pod(new)
    return errors


def validate_pod_status(pod: Pod) -> list[FieldError]:
    """Check `status.resourceClaimStatuses` against the pod's `spec.resourceClaims`.

    Each entry names a distinct pod claim, and a set `resourceClaimName` must be
    a valid claim name.
    """
    statuses: tuple[PodResourceClaimStatus, ...] = pod.status.resource_claim_statuses
    pod_claim_names = {claim.name for claim in pod.spec.resource_claims}
    errors: list[FieldError] = []
    seen: set[str] = set()
    for i, entry in enumerate(statuses):
        entry_path = index("status.resourceClaimStatuses", i)
        name_path = child(entry_path, "name")
        if entry.name not in pod_claim_names:
            errors.append(
                invalid(
                    name_path,
                    entry.name,
                    "must match the name of an entry in `spec.resourceClaims`",
                )
            )
        if entry.name in seen:
            errors.append(duplicate(name_path, entry.name))
        seen.add(entry.name)
        if entry.resource_claim_name is not None:
            errors += invalid_each(
                child(entry_path, "resourceClaimName"),
                entry.resource_claim_name,
                object_name_errors(entry.resource_claim_name),
            )
    return errors


# --------------------------------------------------------------------------------------
# Node and Namespace
# --------------------------------------------------------------------------------------


def validate_node(node: Node) -> list[FieldError]:
    """Check a node: DNS-subdomain name and valid taints (the status is not checked)."""
    errors = validate_object_meta(node.metadata, namespaced=False)
    errors += validate_taints(node.spec.taints, "spec.taints")
    return errors


def validate_namespace(namespace: Namespace) -> list[FieldError]:
    """Check a namespace: its name is a DNS label."""
    return validate_object_meta(namespace.metadata, namespaced=False, name_is_label=True)
