"""Selector generation and selector validation of `batch/v1` Jobs, as in Kubernetes 1.27-1.29.

A Job finds its pods with `spec.selector`. Unless `spec.manualSelector` is
true, kube-apiserver's Job strategy generates that selector on create. It
adds four labels to `spec.template.metadata.labels`, each only where the
template lacks that key: `batch.kubernetes.io/job-name` and `job-name` with
the Job's name, and `batch.kubernetes.io/controller-uid` and `controller-uid`
with the Job's uid. It also adds `batch.kubernetes.io/controller-uid: <uid>`
to `spec.selector.matchLabels`. The pods carry the labels because they are
stamped out of the template.

Validation on create and update then rejects:

* without `manualSelector: true`, a template label above whose value is not
  the Job's name or uid, and a selector that does not select exactly those
  labels (a user-written selector, reported as "`selector` not
  auto-generated"). The `batch.kubernetes.io/` labels are required on create,
  and on update only when the old template has both of them, so that Jobs
  created before 1.27 stay valid;
* a missing selector, an invalid one, and a selector that does not match the
  template labels;
* on update, any change of the selector.

Only these selector rules are checked. The rest of the Job spec is checked by
`sim.cluster.workloadcontrollers` before a manifest is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeGuard

from sim.api.errors import FieldError
from sim.api.selectors import LabelSelector, SelectorError
from sim.api.types import GenericObject, TopLevelObject
from sim.api.validation.field import invalid, required
from sim.api.validation.metadata import IMMUTABLE, validate_labels

JOB_API_VERSION: Final = "batch/v1"

# Labels of a Job's pods. The `batch.kubernetes.io/` forms exist since Kubernetes 1.27.
JOB_NAME_LABEL: Final = "batch.kubernetes.io/job-name"
LEGACY_JOB_NAME_LABEL: Final = "job-name"
CONTROLLER_UID_LABEL: Final = "batch.kubernetes.io/controller-uid"
LEGACY_CONTROLLER_UID_LABEL: Final = "controller-uid"

_SELECTOR_PATH: Final = "spec.selector"
_TEMPLATE_LABELS_PATH: Final = "spec.template.metadata.labels"


def is_job(obj: TopLevelObject) -> TypeGuard[GenericObject]:
    """Whether `obj` is a `batch/v1` Job (the only version of Job in 1.27-1.29)."""
    return (
        isinstance(obj, GenericObject) and obj.kind == "Job" and obj.api_version == JOB_API_VERSION
    )


@dataclass(frozen=True)
class _SelectorFields:
    """The fields of a Job body that the selector rules read, with their JSON types checked."""

    spec: Mapping[str, Any]
    manual: bool
    selector: Mapping[str, Any] | None
    """`spec.selector`, or None when it is not set. Kubernetes' nil selector matches nothing."""
    match_labels: Mapping[str, str]
    match_expressions: list[Mapping[str, Any]]
    labels: Mapping[str, str]
    """`spec.template.metadata.labels`."""


def _object(value: Any, path: str, errors: list[FieldError]) -> Mapping[str, Any]:
    """Return a JSON object field. An unset field reads as {}, and another type is an error."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return value
    errors.append(invalid(path, value, "must be an object"))
    return {}


def _string_map(value: Any, path: str, errors: list[FieldError]) -> Mapping[str, str]:
    if value is None:
        return {}
    if isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        return value
    errors.append(invalid(path, value, "must be a map of string keys to string values"))
    return {}


def _read_selector_fields(job: GenericObject) -> tuple[_SelectorFields | None, list[FieldError]]:
    """Read the selector fields of a Job body, or return None and the errors when a type is wrong.

    kube-apiserver rejects such a body already when it decodes the JSON, so
    no selector rule is checked on it.

    NOTE: kube-apiserver returns 400 BadRequest for a wrong JSON type. Here
    these errors become a 422 Invalid instead.
    """
    errors: list[FieldError] = []
    spec = _object(job.body.get("spec"), "spec", errors)
    manual = spec.get("manualSelector")
    if manual is not None and not isinstance(manual, bool):
        errors.append(invalid("spec.manualSelector", manual, "must be a boolean"))
    raw_selector = spec.get("selector")
    selector = _object(raw_selector, _SELECTOR_PATH, errors)
    match_labels = _string_map(selector.get("matchLabels"), "spec.selector.matchLabels", errors)
    expressions = selector.get("matchExpressions") or []
    if not isinstance(expressions, list) or not all(isinstance(e, Mapping) for e in expressions):
        errors.append(
            invalid("spec.selector.matchExpressions", expressions, "must be a list of objects")
        )
    template = _object(spec.get("template"), "spec.template", errors)
    metadata = _object(template.get("metadata"), "spec.template.metadata", errors)
    labels = _string_map(metadata.get("labels"), _TEMPLATE_LABELS_PATH, errors)
    if errors:
        return None, errors
    fields = _SelectorFields(
        spec=spec,
        manual=manual is True,
        selector=None if raw_selector is None else selector,
        match_labels=match_labels,
        match_expressions=expressions,
        labels=labels,
    )
    return fields, []


# --------------------------------------------------------------------------------------
# Selector generation on create
# --------------------------------------------------------------------------------------


def generate_job_selector(job: GenericObject) -> GenericObject:
    """Return the Job with its generated selector and pod labels, as kube-apiserver creates it.

    `job` needs its final name and uid. A Job with `manualSelector: true`, or
    with a field of the wrong JSON type, is returned unchanged, and
    validation then checks it.
    """
    fields, _ = _read_selector_fields(job)
    if fields is None or fields.manual:
        return job
    name, uid = job.metadata.name, job.metadata.uid

    # A label the template already has is kept, and validation rejects a wrong value.
    labels = dict(fields.labels)
    generated = {
        JOB_NAME_LABEL: name,
        LEGACY_JOB_NAME_LABEL: name,
        CONTROLLER_UID_LABEL: uid,
        LEGACY_CONTROLLER_UID_LABEL: uid,
    }
    for key, value in generated.items():
        labels.setdefault(key, value)
    template = dict(fields.spec.get("template") or {})
    template["metadata"] = {**(template.get("metadata") or {}), "labels": labels}

    match_labels = dict(fields.match_labels)
    match_labels.setdefault(CONTROLLER_UID_LABEL, uid)
    selector = {**(fields.selector or {}), "matchLabels": match_labels}

    spec = {**fields.spec, "template": template, "selector": selector}
    return job.model_copy(update={"body": {**job.body, "spec": spec}})


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------


def _label_selector(fields: _SelectorFields) -> LabelSelector | None:
    """Convert `spec.selector`, or return None when it is unset or does not convert."""
    if fields.selector is None:
        return None
    try:
        return LabelSelector.from_api(fields.match_labels, fields.match_expressions)
    except SelectorError:
        return None


def _require_label(labels: Mapping[str, str], key: str, value: str) -> list[FieldError]:
    path = f"{_TEMPLATE_LABELS_PATH}[{key}]"
    detail = f"must be '{value}'"
    if key not in labels:
        return [required(path, detail)]
    if labels[key] != value:
        return [invalid(path, dict(labels), detail)]
    return []


def _validate_generated_selector(
    job: GenericObject, fields: _SelectorFields, require_prefixed_labels: bool
) -> list[FieldError]:
    if fields.manual or fields.selector is None:
        return []
    errors: list[FieldError] = []
    uid, name = job.metadata.uid, job.metadata.name
    if not uid:
        errors.append(required("metadata.uid"))
    expected = {LEGACY_CONTROLLER_UID_LABEL: uid, LEGACY_JOB_NAME_LABEL: name}
    if require_prefixed_labels:
        expected |= {CONTROLLER_UID_LABEL: uid, JOB_NAME_LABEL: name}
    for key, value in expected.items():
        errors += _require_label(fields.labels, key, value)
    selector = _label_selector(fields)
    if selector is not None and not selector.matches(expected):
        errors.append(
            invalid(_SELECTOR_PATH, dict(fields.selector), "`selector` not auto-generated")
        )
    return errors


def _validate_selector(fields: _SelectorFields) -> list[FieldError]:
    """Check that the selector is set, valid, and selects the template's labels."""
    errors: list[FieldError] = []
    if fields.selector is None:
        errors.append(required(_SELECTOR_PATH))
    else:
        errors += validate_labels(fields.match_labels, "spec.selector.matchLabels")
        try:
            LabelSelector.from_api(None, fields.match_expressions)
        except SelectorError as error:
            errors += [
                FieldError(f"{_SELECTOR_PATH}.{e.path}", e.kind, e.detail, e.value)
                for e in error.errors
            ]
    selector = _label_selector(fields)
    # An unset selector matches no labels. A selector that does not convert was reported above.
    if fields.selector is None or (selector is not None and not selector.matches(fields.labels)):
        detail = "`selector` does not match template `labels`"
        errors.append(invalid(_TEMPLATE_LABELS_PATH, dict(fields.labels), detail))
    return errors


def validate_job(job: GenericObject, *, require_prefixed_labels: bool = True) -> list[FieldError]:
    """Check the selector rules of a Job (see the module docstring), but not its metadata.

    Args:
        job: The Job as it is about to be stored.
        require_prefixed_labels: Whether the template must carry the
            `batch.kubernetes.io/` labels too (always on create).
    """
    fields, errors = _read_selector_fields(job)
    if fields is None:
        return errors
    errors = _validate_generated_selector(job, fields, require_prefixed_labels)
    errors += _validate_selector(fields)
    return errors


def _comparable_selector(fields: _SelectorFields) -> tuple[dict[str, str], list[Any]] | None:
    # Kubernetes compares with semantic equality: an empty map or list equals an unset one.
    if fields.selector is None:
        return None
    return dict(fields.match_labels), list(fields.match_expressions)


def validate_job_update(new: GenericObject, old: GenericObject) -> list[FieldError]:
    """Check an update of a Job: the selector rules, and that the selector is unchanged."""
    old_fields, _ = _read_selector_fields(old)
    prefixed = old_fields is not None and all(
        key in old_fields.labels for key in (JOB_NAME_LABEL, CONTROLLER_UID_LABEL)
    )
    errors = validate_job(new, require_prefixed_labels=prefixed)
    new_fields, _ = _read_selector_fields(new)
    if (
        new_fields is not None
        and old_fields is not None
        and _comparable_selector(new_fields) != _comparable_selector(old_fields)
    ):
        errors.append(invalid(_SELECTOR_PATH, new_fields.selector, IMMUTABLE))
    return errors
