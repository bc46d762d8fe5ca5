"""Validation of object metadata: names, namespace, labels, annotations, finalizers, owners.

These checks apply to every kind. The name rule differs per kind and is passed
in by the caller: most names are DNS subdomains, namespace names are DNS labels.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic.alias_generators import to_camel

from sim.api.errors import FieldError
from sim.api.types import ObjectMeta, OwnerReference
from sim.api.validation.field import (
    child,
    forbidden,
    index,
    invalid,
    invalid_each,
    required,
    too_long,
)
from sim.api.validation.names import (
    label_value_errors,
    object_name_errors,
    qualified_name_errors,
    utf8_length,
)

TOTAL_ANNOTATION_SIZE_LIMIT_BYTES = 256 * 1024
"""Maximum summed UTF-8 size of all annotation keys and values of one object."""

IMMUTABLE = "field is immutable"
"""Detail of the Invalid error for a field that an update may not change."""

_TEMPLATE_META_ALLOWED = frozenset({"labels", "annotations"})


def validate_labels(labels: Mapping[str, str], path: str) -> list[FieldError]:
    """Check that every key is a qualified name and every value a valid label value.

    Errors point at the map itself (`metadata.labels`) and carry the bad key or
    value, as kube-apiserver reports them.
    """
    errors: list[FieldError] = []
    for key, value in labels.items():
        errors += invalid_each(path, key, qualified_name_errors(key))
        errors += invalid_each(path, value, label_value_errors(value))
    return errors


def validate_annotations(annotations: Mapping[str, str], path: str) -> list[FieldError]:
    """Check annotation keys (qualified names, case-insensitive) and the total size."""
    errors: list[FieldError] = []
    total_bytes = 0
    for key, value in annotations.items():
        errors += invalid_each(path, key, qualified_name_errors(key.lower()))
        total_bytes += utf8_length(key) + utf8_length(value)
    if total_bytes > TOTAL_ANNOTATION_SIZE_LIMIT_BYTES:
        errors.append(too_long(path, total_bytes, TOTAL_ANNOTATION_SIZE_LIMIT_BYTES))
    return errors


def validate_finalizers(finalizers: tuple[str, ...], path: str) -> list[FieldError]:
    """Check that every finalizer is a qualified name (`example.com/deletion-protection`)."""
    errors: list[FieldError] = []
    for i, finalizer in enumerate(finalizers):
        errors += invalid_each(index(path, i), finalizer, qualified_name_errors(finalizer))
    return errors


def _validate_owner_reference(ref: OwnerReference, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    # The version is the part after the last '/' ("v1", "apps/v1"), so "apps/" has none.
    if not ref.api_version.rpartition("/")[2]:
        errors.append(
            invalid(child(path, "apiVersion"), ref.api_version, "version must not be empty")
        )
    if not ref.kind:
        errors.append(invalid(child(path, "kind"), ref.kind, "kind must not be empty"))
    if not ref.name:
        errors.append(invalid(child(path, "name"), ref.name, "name must not be empty"))
    if not ref.uid:
        errors.append(invalid(child(path, "uid"), ref.uid, "uid must not be empty"))
    return errors


def validate_owner_references(refs: tuple[OwnerReference, ...], path: str) -> list[FieldError]:
    """Check each ownerReference's required fields and that at most one is the controller."""
    errors: list[FieldError] = []
    first_controller = ""
    for i, ref in enumerate(refs):
        errors += _validate_owner_reference(ref, index(path, i))
        if not ref.controller:
            continue
        if first_controller:
            errors.append(
                invalid(
                    index(path, i),
                    f"{ref.kind}/{ref.name}",
                    f"only one reference may have controller set to true, "
                    f"but {first_controller} already has it",
                )
            )
        else:
            first_controller = f"{ref.kind}/{ref.name}"
    return errors


def validate_object_meta(
    meta: ObjectMeta,
    *,
    namespaced: bool | None,
    name_is_label: bool = False,
    path: str = "metadata",
) -> list[FieldError]:
    """Check the metadata of an object that is about to be stored.

    Args:
        meta: The object's metadata.
        namespaced: Whether the kind lives in a namespace. None skips the scope
            check, because the API server decides the scope of a
            `GenericObject` kind. A namespace that is set is still checked.
        name_is_label: Validate the name as a DNS label (namespaces) instead of a
            DNS subdomain.
        path: Path of the metadata field.

    Returns:
        The broken rules, or an empty list when the metadata is valid.
    """
    errors: list[FieldError] = []

    # Name: the API server generates it from generateName before validating, so an
    # empty name is accepted only while generateName is still pending.
    if meta.generate_name:
        errors += invalid_each(
            child(path, "generateName"),
            meta.generate_name,
            object_name_errors(meta.generate_name, prefix=True, label=name_is_label),
        )
    if meta.name:
        errors += invalid_each(
            child(path, "name"), meta.name, object_name_errors(meta.name, label=name_is_label)
        )
    elif not meta.generate_name:
        errors.append(required(child(path, "name"), "name or generateName is required"))

    namespace_path = child(path, "namespace")
    if namespaced is True and not meta.namespace:
        errors.append(required(namespace_path))
    elif namespaced is False and meta.namespace:
        errors.append(forbidden(namespace_path, "not allowed on this type"))
    elif meta.namespace:
        errors += invalid_each(
            namespace_path, meta.namespace, object_name_errors(meta.namespace, label=True)
        )

    if meta.generation < 0:
        errors.append(
            invalid(
                child(path, "generation"), meta.generation, "must be greater than or equal to 0"
            )
        )
    errors += validate_labels(meta.labels, child(path, "labels"))
    errors += validate_annotations(meta.annotations, child(path, "annotations"))
    errors += validate_owner_references(meta.owner_references, child(path, "ownerReferences"))
    errors += validate_finalizers(meta.finalizers, child(path, "finalizers"))
    return errors


def validate_object_meta_update(
    new: ObjectMeta, old: ObjectMeta, path: str = "metadata"
) -> list[FieldError]:
    """Check what an update may not do to metadata.

    Name and namespace never change. A uid, creationTimestamp or
    deletionTimestamp that the update sets must equal the stored one. An empty
    one is accepted, because kube-apiserver copies these server-managed fields
    from the stored object before it validates and `APIServer` does the same.
    No finalizer may be added once deletion started.
    """
    errors: list[FieldError] = []
    if new.name != old.name:
        errors.append(invalid(child(path, "name"), new.name, IMMUTABLE))
    if new.namespace != old.namespace:
        errors.append(invalid(child(path, "namespace"), new.namespace, IMMUTABLE))
    if new.uid and new.uid != old.uid:
        errors.append(invalid(child(path, "uid"), new.uid, IMMUTABLE))
    if new.creation_timestamp is not None and new.creation_timestamp != old.creation_timestamp:
        errors.append(invalid(child(path, "creationTimestamp"), new.creation_timestamp, IMMUTABLE))
    if new.deletion_timestamp is not None and new.deletion_timestamp != old.deletion_timestamp:
        errors.append(invalid(child(path, "deletionTimestamp"), new.deletion_timestamp, IMMUTABLE))

    if old.deletion_timestamp is not None:
        added = [f for f in new.finalizers if f not in old.finalizers]
        if added:
            errors.append(
                forbidden(
                    child(path, "finalizers"),
                    f"no new finalizers can be added while the object is being deleted, "
                    f"found new finalizers {added}",
                )
            )
    return errors


def validate_template_object_meta(meta: ObjectMeta, path: str) -> list[FieldError]:
    """Check the metadata of an object template: only labels and annotations may be set."""
    errors = validate_annotations(meta.annotations, child(path, "annotations"))
    errors += validate_labels(meta.labels, child(path, "labels"))
    for field_name, info in ObjectMeta.model_fields.items():
        if field_name in _TEMPLATE_META_ALLOWED:
            continue
        if getattr(meta, field_name) != info.get_default(call_default_factory=True):
            errors.append(
                forbidden(child(path, to_camel(field_name)), "cannot be set for a template")
            )
    return errors
