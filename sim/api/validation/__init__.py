"""Defaulting and validation that the simulated API server applies to every write.

kube-apiserver rejects a write that breaks a field rule with HTTP 422 and one
message per broken rule. The functions here return those rules as a list of
`FieldError` (empty when the object is valid). `sim.api.server.APIServer` calls
them and raises `Invalid(kind, name, errors)`:

* create: `apply_defaults`, then `prepare_for_create` once the name and uid
  are set, then `validate_create`.
* main-resource update: `validate_update(new, old)`, after the server copied
  the stored status into `new`, because the main resource cannot change status.
* status update: `validate_status_update(new, old)`, after the server copied
  the stored spec and metadata into `new`.

The rules follow `resource.k8s.io/v1alpha2` and core/v1 validation of
Kubernetes 1.27-1.29, limited to the fields that `sim.api.types` models, and
the selector rules of `batch/v1` Jobs, which are `GenericObject`s. Paths
are the camelCase JSON paths that kube-apiserver prints
(`status.reservedFor[2].uid`). The messages state the same rules in our own words,
except the short Job selector messages, which are kube-apiserver's so that
they can be searched for.

The server resets the status of a ResourceClaim, PodSchedulingContext or Pod on
create, as kube-apiserver does. `validate_create` still checks a status that is
set, as if a status update had written it over an empty status. A server that
keeps the status (for example when it loads a saved cluster state) therefore
cannot store a status that no sequence of writes could reach.
"""

from __future__ import annotations

from typing import TypeVar

from sim.api.errors import FieldError
from sim.api.types import (
    AllocationMode,
    GenericObject,
    Namespace,
    Node,
    Pod,
    PodSchedulingContext,
    ResourceClaim,
    ResourceClaimStatus,
    ResourceClaimTemplate,
    ResourceClass,
    TopLevelObject,
)
from sim.api.validation.batch import (
    generate_job_selector,
    is_job,
    validate_job,
    validate_job_update,
)
from sim.api.validation.core import (
    validate_namespace,
    validate_node,
    validate_pod,
    validate_pod_status,
    validate_pod_update,
)
from sim.api.validation.metadata import (
    TOTAL_ANNOTATION_SIZE_LIMIT_BYTES,
    validate_object_meta,
    validate_object_meta_update,
)
from sim.api.validation.node_selector import validate_node_selector
from sim.api.validation.resource import (
    ALLOCATION_RESULT_RESOURCE_HANDLES_MAX_SIZE,
    POD_SCHEDULING_NODE_LIST_MAX_SIZE,
    RESOURCE_CLAIM_RESERVED_FOR_MAX_SIZE,
    RESOURCE_HANDLE_DATA_MAX_SIZE,
    validate_claim_status_update,
    validate_pod_scheduling_context,
    validate_pod_scheduling_context_status,
    validate_resource_claim,
    validate_resource_claim_template,
    validate_resource_claim_template_update,
    validate_resource_claim_update,
    validate_resource_class,
)

__all__ = [
    "ALLOCATION_RESULT_RESOURCE_HANDLES_MAX_SIZE",
    "POD_SCHEDULING_NODE_LIST_MAX_SIZE",
    "RESOURCE_CLAIM_RESERVED_FOR_MAX_SIZE",
    "RESOURCE_HANDLE_DATA_MAX_SIZE",
    "TOTAL_ANNOTATION_SIZE_LIMIT_BYTES",
    "apply_defaults",
    "prepare_for_create",
    "validate_create",
    "validate_node_selector",
    "validate_status_update",
    "validate_update",
]

T = TypeVar("T", bound=TopLevelObject)


def apply_defaults(obj: T) -> T:
    """Return `obj` with API defaults applied, or `obj` itself when nothing changes.

    The only default that classic DRA depends on: an empty
    `spec.allocationMode` becomes WaitForFirstConsumer, in claims and in the
    claim spec of templates.
    """
    default_mode = AllocationMode.WAIT_FOR_FIRST_CONSUMER.value
    if isinstance(obj, ResourceClaim) and not obj.spec.allocation_mode:
        spec = obj.spec.model_copy(update={"allocation_mode": default_mode})
        return obj.model_copy(update={"spec": spec})
    if isinstance(obj, ResourceClaimTemplate) and not obj.spec.spec.allocation_mode:
        claim_spec = obj.spec.spec.model_copy(update={"allocation_mode": default_mode})
        template_spec = obj.spec.model_copy(update={"spec": claim_spec})
        return obj.model_copy(update={"spec": template_spec})
    return obj


def prepare_for_create(obj: T) -> T:
    """Return `obj` with the fields that kube-apiserver's create strategy fills in.

    Unlike `apply_defaults`, this runs on create only and needs the object's
    final name and uid. The only such field modelled: a Job's generated
    selector and pod labels (`sim.api.validation.batch`).
    """
    if is_job(obj):
        prepared: T = generate_job_selector(obj)  # type: ignore[assignment]  # same class
        return prepared
    return obj


def _validate_metadata(obj: TopLevelObject) -> list[FieldError]:
    # GenericObject: the server decides from its CRDs whether the kind is namespaced.
    namespaced = None if isinstance(obj, GenericObject) else obj.NAMESPACED
    return validate_object_meta(
        obj.metadata, namespaced=namespaced, name_is_label=isinstance(obj, Namespace)
    )


def _validate_object(obj: TopLevelObject) -> list[FieldError]:
    # Check metadata and spec. Status rules are kind-specific and checked separately.
    if isinstance(obj, ResourceClass):
        return validate_resource_class(obj)
    if isinstance(obj, ResourceClaim):
        return validate_resource_claim(obj)
    if isinstance(obj, ResourceClaimTemplate):
        return validate_resource_claim_template(obj)
    if isinstance(obj, PodSchedulingContext):
        return validate_pod_scheduling_context(obj)
    if isinstance(obj, Pod):
        return validate_pod(obj)
    if isinstance(obj, Node):
        return validate_node(obj)
    if isinstance(obj, Namespace):
        return validate_namespace(obj)
    if is_job(obj):
        return _validate_metadata(obj) + validate_job(obj)
    return _validate_metadata(obj)


def _validate_status(new: TopLevelObject, old: TopLevelObject) -> list[FieldError]:
    if isinstance(new, ResourceClaim) and isinstance(old, ResourceClaim):
        return validate_claim_status_update(new, old)
    if isinstance(new, PodSchedulingContext):
        return validate_pod_scheduling_context_status(new.status.resource_claims)
    if isinstance(new, Pod):
        return validate_pod_status(new)
    return []


def _require_same_type(new: TopLevelObject, old: TopLevelObject) -> None:
    if type(new) is not type(old):
        raise TypeError(
            f"cannot validate an update from {type(old).__name__} to {type(new).__name__}: "
            "old and new must be the same kind"
        )


def validate_create(obj: TopLevelObject) -> list[FieldError]:
    """Check an object that is about to be created, after `apply_defaults`.

    A set status is checked as a status update from an empty status (see the
    module docstring).
    """
    errors = _validate_object(obj)
    if isinstance(obj, ResourceClaim):
        errors += _validate_status(obj, obj.model_copy(update={"status": ResourceClaimStatus()}))
    else:
        errors += _validate_status(obj, obj)
    return errors


def validate_update(new: T, old: T) -> list[FieldError]:
    """Check a main-resource update of `old` to `new`.

    Raises:
        TypeError: `new` and `old` are different kinds.
    """
    _require_same_type(new, old)
    errors = validate_object_meta_update(new.metadata, old.metadata)
    if isinstance(new, ResourceClaim) and isinstance(old, ResourceClaim):
        errors += validate_resource_claim_update(new, old)
    elif isinstance(new, ResourceClaimTemplate) and isinstance(old, ResourceClaimTemplate):
        errors += validate_resource_claim_template_update(new, old)
    elif isinstance(new, Pod) and isinstance(old, Pod):
        errors += validate_pod_update(new, old)
    elif is_job(new) and is_job(old):
        errors += _validate_metadata(new) + validate_job_update(new, old)
    else:
        # ResourceClass, PodSchedulingContext, Node, Namespace and other kinds are
        # mutable: the new object only has to be valid.
        errors += _validate_object(new)
    return errors


def validate_status_update(new: T, old: T) -> list[FieldError]:
    """Check a status-subresource update of `old` to `new`.

    Raises:
        TypeError: `new` and `old` are different kinds.
    """
    _require_same_type(new, old)
    errors = validate_object_meta_update(new.metadata, old.metadata)
    errors += _validate_metadata(new)
    errors += _validate_status(new, old)
    return errors
