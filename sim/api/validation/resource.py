"""Validation of the resource.k8s.io/v1alpha2 kinds.

ResourceClass, ResourceClaim, ResourceClaimTemplate and PodSchedulingContext,
with the limits of the v1alpha2 API. The ResourceClaim status rules are the
invariants that keep the scheduler, the drivers and the resourceclaim
controller consistent (see `validate_claim_status_update`).
"""

from __future__ import annotations

from sim.api.errors import FieldError
from sim.api.types import (
    AllocationMode,
    AllocationResult,
    PodSchedulingContext,
    ResourceClaim,
    ResourceClaimConsumerReference,
    ResourceClaimParametersReference,
    ResourceClaimSchedulingStatus,
    ResourceClaimSpec,
    ResourceClaimTemplate,
    ResourceClass,
    ResourceClassParametersReference,
)
from sim.api.validation.field import (
    child,
    duplicate,
    forbidden,
    index,
    invalid,
    invalid_each,
    not_supported,
    required,
    too_long,
    too_many,
)
from sim.api.validation.metadata import (
    IMMUTABLE,
    validate_object_meta,
    validate_template_object_meta,
)
from sim.api.validation.names import (
    DRIVER_NAME_MAX_LENGTH,
    dns1123_subdomain_errors,
    object_name_errors,
    utf8_length,
)
from sim.api.validation.node_selector import validate_node_selector

RESOURCE_CLAIM_RESERVED_FOR_MAX_SIZE = 32
"""Maximum number of consumers in `ResourceClaim.status.reservedFor`."""

ALLOCATION_RESULT_RESOURCE_HANDLES_MAX_SIZE = 32
"""Maximum number of entries in `status.allocation.resourceHandles`."""

RESOURCE_HANDLE_DATA_MAX_SIZE = 16 * 1024
"""Maximum size of one `resourceHandles[].data`, in UTF-8 bytes."""

POD_SCHEDULING_NODE_LIST_MAX_SIZE = 128
"""Maximum length of `potentialNodes` and of each `unsuitableNodes` list."""

ALLOCATION_MODES = (AllocationMode.IMMEDIATE.value, AllocationMode.WAIT_FOR_FIRST_CONSUMER.value)


# --------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------


def validate_driver_name(name: str, path: str) -> list[FieldError]:
    """Check a resource driver name, which follows the rules for CSI driver names.

    The name is required, at most 63 bytes, and a DNS subdomain once lowercased
    (so `GPU.example.com` is accepted).
    """
    if not name:
        return [required(path)]
    errors: list[FieldError] = []
    length = utf8_length(name)
    if length > DRIVER_NAME_MAX_LENGTH:
        errors.append(too_long(path, length, DRIVER_NAME_MAX_LENGTH))
    errors += invalid_each(path, name, dns1123_subdomain_errors(name.lower()))
    return errors


_VALID_NODE_NAMES: set[str] = set()
"""Node names that passed the name check: PodSchedulingContext lists repeat them on every write."""

_VALID_NODE_NAMES_LIMIT = 1_000_000
"""Entries kept before the set starts over, so that memory stays bounded."""


def _validate_node_name_set(nodes: tuple[str, ...], path: str) -> list[FieldError]:
    # A set of node names: a later copy of a name is a Duplicate and is not checked again.
    if (
        len(nodes) <= POD_SCHEDULING_NODE_LIST_MAX_SIZE
        and _VALID_NODE_NAMES.issuperset(nodes)
        and len(set(nodes)) == len(nodes)
    ):
        return []
    if len(_VALID_NODE_NAMES) > _VALID_NODE_NAMES_LIMIT:
        _VALID_NODE_NAMES.clear()
    errors: list[FieldError] = []
    seen: set[str] = set()
    for i, node in enumerate(nodes):
        if node in seen:
            errors.append(duplicate(index(path, i), node))
            continue
        seen.add(node)
        problems = object_name_errors(node)
        if problems:
            errors += invalid_each(index(path, i), node, problems)
        else:
            _VALID_NODE_NAMES.add(node)
    if len(nodes) > POD_SCHEDULING_NODE_LIST_MAX_SIZE:
        errors.append(too_many(path, len(nodes), POD_SCHEDULING_NODE_LIST_MAX_SIZE))
    return errors


# --------------------------------------------------------------------------------------
# ResourceClass
# --------------------------------------------------------------------------------------


def _validate_class_parameters(
    ref: ResourceClassParametersReference | None, path: str
) -> list[FieldError]:
    if ref is None:
        return []
    errors: list[FieldError] = []
    if not ref.kind:
        errors.append(required(child(path, "kind")))
    if not ref.name:
        errors.append(required(child(path, "name")))
    if ref.namespace:
        errors += invalid_each(
            child(path, "namespace"), ref.namespace, object_name_errors(ref.namespace, label=True)
        )
    return errors


def validate_resource_class(resource_class: ResourceClass) -> list[FieldError]:
    """Check a ResourceClass. Every field may change, so updates use this check too."""
    errors = validate_object_meta(resource_class.metadata, namespaced=False)
    errors += validate_driver_name(resource_class.driver_name, "driverName")
    errors += _validate_class_parameters(resource_class.parameters_ref, "parametersRef")
    if resource_class.suitable_nodes is not None:
        errors += validate_node_selector(resource_class.suitable_nodes, "suitableNodes")
    return errors


# --------------------------------------------------------------------------------------
# ResourceClaim and ResourceClaimTemplate
# --------------------------------------------------------------------------------------


def _validate_claim_parameters(
    ref: ResourceClaimParametersReference | None, path: str
) -> list[FieldError]:
    if ref is None:
        return []
    errors: list[FieldError] = []
    if not ref.kind:
        errors.append(required(child(path, "kind")))
    if not ref.name:
        errors.append(required(child(path, "name")))
    return errors


def validate_claim_spec(spec: ResourceClaimSpec, path: str) -> list[FieldError]:
    """Check a claim spec after defaulting (an empty allocationMode is NotSupported)."""
    errors: list[FieldError] = []
    class_path = child(path, "resourceClassName")
    if not spec.resource_class_name:
        errors.append(required(class_path))
    else:
        errors += invalid_each(
            class_path, spec.resource_class_name, object_name_errors(spec.resource_class_name)
        )
    errors += _validate_claim_parameters(spec.parameters_ref, child(path, "parametersRef"))
    if spec.allocation_mode not in ALLOCATION_MODES:
        errors.append(
            not_supported(child(path, "allocationMode"), spec.allocation_mode, ALLOCATION_MODES)
        )
    return errors


def validate_resource_claim(claim: ResourceClaim) -> list[FieldError]:
    """Check a claim's metadata and spec (status is checked by the status rules)."""
    errors = validate_object_meta(claim.metadata, namespaced=True)
    errors += validate_claim_spec(claim.spec, "spec")
    return errors


def validate_resource_claim_update(new: ResourceClaim, old: ResourceClaim) -> list[FieldError]:
    """Check a main-resource write of a claim: the spec is immutable."""
    errors: list[FieldError] = []
    if new.spec != old.spec:
        errors.append(invalid("spec", new.spec.model_dump(by_alias=True), IMMUTABLE))
    errors += validate_resource_claim(new)
    return errors


def validate_resource_claim_template(template: ResourceClaimTemplate) -> list[FieldError]:
    """Check a template: only labels and annotations in `spec.metadata`, a valid claim spec."""
    errors = validate_object_meta(template.metadata, namespaced=True)
    errors += validate_template_object_meta(template.spec.metadata, "spec.metadata")
    errors += validate_claim_spec(template.spec.spec, "spec.spec")
    return errors


def validate_resource_claim_template_update(
    new: ResourceClaimTemplate, old: ResourceClaimTemplate
) -> list[FieldError]:
    """Check an update of a template: the whole spec is immutable."""
    errors: list[FieldError] = []
    if new.spec != old.spec:
        errors.append(invalid("spec", new.spec.model_dump(by_alias=True), IMMUTABLE))
    errors += validate_resource_claim_template(new)
    return errors


# --------------------------------------------------------------------------------------
# ResourceClaim status
# --------------------------------------------------------------------------------------


def _validate_allocation(allocation: AllocationResult, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    handles_path = child(path, "resourceHandles")
    for i, handle in enumerate(allocation.resource_handles):
        handle_path = index(handles_path, i)
        errors += validate_driver_name(handle.driver_name, child(handle_path, "driverName"))
        data_bytes = utf8_length(handle.data)
        if data_bytes > RESOURCE_HANDLE_DATA_MAX_SIZE:
            errors.append(
                too_long(child(handle_path, "data"), data_bytes, RESOURCE_HANDLE_DATA_MAX_SIZE)
            )
    if len(allocation.resource_handles) > ALLOCATION_RESULT_RESOURCE_HANDLES_MAX_SIZE:
        errors.append(
            too_many(
                handles_path,
                len(allocation.resource_handles),
                ALLOCATION_RESULT_RESOURCE_HANDLES_MAX_SIZE,
            )
        )
    if allocation.available_on_nodes is not None:
        errors += validate_node_selector(
            allocation.available_on_nodes, child(path, "availableOnNodes")
        )
    return errors


def _validate_consumers(
    consumers: tuple[ResourceClaimConsumerReference, ...], path: str
) -> list[FieldError]:
    # Consumers are keyed by UID: a repeated UID is a Duplicate and is not checked again.
    errors: list[FieldError] = []
    seen_uids: set[str] = set()
    for i, consumer in enumerate(consumers):
        consumer_path = index(path, i)
        if consumer.uid in seen_uids:
            errors.append(duplicate(child(consumer_path, "uid"), consumer.uid))
            continue
        seen_uids.add(consumer.uid)
        for field_name in ("resource", "name", "uid"):
            if not getattr(consumer, field_name):
                errors.append(required(child(consumer_path, field_name)))
    if len(consumers) > RESOURCE_CLAIM_RESERVED_FOR_MAX_SIZE:
        errors.append(too_many(path, len(consumers), RESOURCE_CLAIM_RESERVED_FOR_MAX_SIZE))
    return errors


def validate_claim_status_update(new: ResourceClaim, old: ResourceClaim) -> list[FieldError]:
    """Check a write of `new.status` over `old.status` against the claim status rules.

    Each numbered rule below adds its own errors:

    1. A set `driverName` is a valid driver name, and an allocated claim needs one.
    2. The allocation has at most 32 resource handles, each with a valid driver
       name and at most 16384 bytes of data, and `availableOnNodes` is a valid
       node selector.
    3. `reservedFor` has at most 32 entries with distinct UIDs, each with
       resource, name and uid set.
    4. `reservedFor` stays empty while the claim is not allocated.
    5. A claim whose allocation is not shareable has at most one consumer.
    6. While the claim is being deleted or deallocation was requested,
       consumers may be removed but not added.
    7. A set allocation cannot change. It can only be cleared.
    8. Deallocation can be requested only in a write that leaves `reservedFor`
       empty.
    9. `deallocationRequested` requires an allocation.
    10. `deallocationRequested` cannot be cleared while the allocation stays
        set: the driver clears both in one write.

    Rules 5 and 6 apply only to an allocated claim, because rule 4 already
    rejects any consumer of an unallocated one.
    """
    status, old_status = new.status, old.status
    allocation = status.allocation
    errors: list[FieldError] = []

    # Rule 1.
    if status.driver_name:
        errors += validate_driver_name(status.driver_name, "status.driverName")
    elif allocation is not None:
        errors.append(required("status.driverName", "must be set when `allocation` is set"))

    # Rules 2 and 3.
    if allocation is not None:
        errors += _validate_allocation(allocation, "status.allocation")
    errors += _validate_consumers(status.reserved_for, "status.reservedFor")

    # Rules 4 to 6.
    if status.reserved_for:
        if allocation is None:
            errors.append(
                forbidden("status.reservedFor", "may not be set while `allocation` is not set")
            )
        else:
            if not allocation.shareable and len(status.reserved_for) > 1:
                errors.append(
                    forbidden(
                        "status.reservedFor",
                        "may not hold more than one consumer unless the allocation is shareable",
                    )
                )
            if new.deleting or status.deallocation_requested:
                added = set(status.reserved_for) - set(old_status.reserved_for)
                if added:
                    errors.append(
                        forbidden(
                            "status.reservedFor",
                            "new entries may not be added while `deallocationRequested` "
                            "or `metadata.deletionTimestamp` is set",
                        )
                    )

    # Rule 7.
    if (
        old_status.allocation is not None
        and allocation is not None
        and allocation != old_status.allocation
    ):
        errors.append(invalid("status.allocation", allocation.model_dump(by_alias=True), IMMUTABLE))

    # Rule 8.
    if (
        status.deallocation_requested
        and not old_status.deallocation_requested
        and status.reserved_for
    ):
        errors.append(
            forbidden(
                "status.deallocationRequested",
                "deallocation may not be requested while `reservedFor` is set",
            )
        )

    # Rule 9: either field may be the wrong one, so the error points at the whole status.
    if status.deallocation_requested and allocation is None:
        errors.append(
            forbidden("status", "`allocation` must be set when `deallocationRequested` is set")
        )

    # Rule 10.
    if (
        old_status.deallocation_requested
        and not status.deallocation_requested
        and allocation is not None
    ):
        errors.append(
            forbidden(
                "status.deallocationRequested", "may not be cleared while `allocation` is set"
            )
        )

    return errors


# --------------------------------------------------------------------------------------
# PodSchedulingContext
# --------------------------------------------------------------------------------------


def validate_pod_scheduling_context(context: PodSchedulingContext) -> list[FieldError]:
    """Check a PodSchedulingContext's metadata (named as its pod) and spec.

    `spec.selectedNode` is not checked: any string is accepted.
    """
    errors = validate_object_meta(context.metadata, namespaced=True)
    errors += _validate_node_name_set(context.spec.potential_nodes, "spec.potentialNodes")
    return errors


def validate_pod_scheduling_context_status(
    claims: tuple[ResourceClaimSchedulingStatus, ...],
) -> list[FieldError]:
    """Check `status.resourceClaims`: unique names and valid `unsuitableNodes` sets.

    NOTE: kube-apiserver 1.27-1.29 prints these paths as `status.claims[...]`,
    which is not the JSON name; the simulator prints `status.resourceClaims[...]`.
    """
    errors: list[FieldError] = []
    names: set[str] = set()
    for i, entry in enumerate(claims):
        entry_path = index("status.resourceClaims", i)
        errors += _validate_node_name_set(
            entry.unsuitable_nodes, child(entry_path, "unsuitableNodes")
        )
        if entry.name in names:
            errors.append(duplicate(child(entry_path, "name"), entry.name))
        names.add(entry.name)
    return errors
