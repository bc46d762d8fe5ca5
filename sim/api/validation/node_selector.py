"""Validation of core/v1 node selectors, taints and tolerations.

A `NodeSelector` restricts where something may run: a ResourceClass's
`suitableNodes`, an allocation's `availableOnNodes`, a pod's required node
affinity. Validation checks only the shape of each requirement. Whether a Gt/Lt
value is an integer is checked when the scheduler compiles the selector
(`sim.api.selectors`), so a selector that passes here can still fail there.
"""

from __future__ import annotations

from sim.api.errors import FieldError
from sim.api.types import (
    NodeSelector,
    NodeSelectorOperator,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    PreferredSchedulingTerm,
    Taint,
    TaintEffect,
    Toleration,
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
)
from sim.api.validation.names import (
    label_value_errors,
    object_name_errors,
    qualified_name_errors,
)

NODE_SELECTOR_OPERATORS = tuple(op.value for op in NodeSelectorOperator)
"""Operators allowed in `matchExpressions`."""

NODE_FIELD_SELECTOR_OPERATORS = (NodeSelectorOperator.IN.value, NodeSelectorOperator.NOT_IN.value)
"""Operators allowed in `matchFields`."""

NODE_FIELD_SELECTOR_KEY = "metadata.name"
"""The only field a `matchFields` requirement may test."""

TAINT_EFFECTS = tuple(effect.value for effect in TaintEffect)
TOLERATION_OPERATORS = ("Equal", "Exists")

MIN_PREFERENCE_WEIGHT = 1
MAX_PREFERENCE_WEIGHT = 100


def _validate_expression(req: NodeSelectorRequirement, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    values_path = child(path, "values")
    operator = req.operator
    if operator in (NodeSelectorOperator.IN, NodeSelectorOperator.NOT_IN):
        if not req.values:
            errors.append(
                required(values_path, "must be specified when `operator` is 'In' or 'NotIn'")
            )
    elif operator in (NodeSelectorOperator.EXISTS, NodeSelectorOperator.DOES_NOT_EXIST):
        if req.values:
            errors.append(
                forbidden(
                    values_path,
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )
            )
    elif operator in (NodeSelectorOperator.GT, NodeSelectorOperator.LT):
        if len(req.values) != 1:
            errors.append(
                required(values_path, "must be exactly one value when `operator` is 'Gt' or 'Lt'")
            )
    else:
        errors.append(not_supported(child(path, "operator"), operator, NODE_SELECTOR_OPERATORS))

    errors += invalid_each(child(path, "key"), req.key, qualified_name_errors(req.key))
    return errors


def _validate_field_requirement(req: NodeSelectorRequirement, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if req.operator in NODE_FIELD_SELECTOR_OPERATORS:
        if len(req.values) != 1:
            errors.append(
                required(
                    child(path, "values"),
                    "must be exactly one value when `operator` is 'In' or 'NotIn' "
                    "in a node field selector",
                )
            )
    else:
        errors.append(
            not_supported(child(path, "operator"), req.operator, NODE_FIELD_SELECTOR_OPERATORS)
        )

    if req.key != NODE_FIELD_SELECTOR_KEY:
        errors.append(
            invalid(
                child(path, "key"),
                req.key,
                f"not a valid field selector key, use '{NODE_FIELD_SELECTOR_KEY}'",
            )
        )
    else:
        for i, value in enumerate(req.values):
            errors += invalid_each(
                index(child(path, "values"), i), value, object_name_errors(value)
            )
    return errors


def validate_node_selector_term(term: NodeSelectorTerm, path: str) -> list[FieldError]:
    """Check every requirement of one term (a term with no requirements is valid)."""
    errors: list[FieldError] = []
    for i, req in enumerate(term.match_expressions):
        errors += _validate_expression(req, index(child(path, "matchExpressions"), i))
    for i, req in enumerate(term.match_fields):
        errors += _validate_field_requirement(req, index(child(path, "matchFields"), i))
    return errors


def validate_node_selector(selector: NodeSelector, path: str) -> list[FieldError]:
    """Check a node selector: at least one term, and each requirement well formed.

    In `matchExpressions` the key is a label name. In/NotIn need a value,
    Exists/DoesNotExist take none, Gt/Lt take exactly one, and other operators
    are NotSupported. In `matchFields` the key is `metadata.name`, the operator
    In or NotIn, and there is exactly one value, which is a valid node name.
    """
    terms_path = child(path, "nodeSelectorTerms")
    if not selector.node_selector_terms:
        return [required(terms_path, "must have at least one node selector term")]

    errors: list[FieldError] = []
    for i, term in enumerate(selector.node_selector_terms):
        errors += validate_node_selector_term(term, index(terms_path, i))
    return errors


def validate_preferred_terms(
    terms: tuple[PreferredSchedulingTerm, ...], path: str
) -> list[FieldError]:
    """Check weighted node-affinity preferences: weight 1-100 and a valid term."""
    errors: list[FieldError] = []
    for i, term in enumerate(terms):
        term_path = index(path, i)
        if not MIN_PREFERENCE_WEIGHT <= term.weight <= MAX_PREFERENCE_WEIGHT:
            errors.append(
                invalid(
                    child(term_path, "weight"),
                    term.weight,
                    f"must be in the range {MIN_PREFERENCE_WEIGHT}-{MAX_PREFERENCE_WEIGHT}",
                )
            )
        errors += validate_node_selector_term(term.preference, child(term_path, "preference"))
    return errors


def _validate_taint_effect(effect: str, path: str, *, allow_empty: bool) -> list[FieldError]:
    if not effect:
        return [] if allow_empty else [required(path)]
    if effect not in TAINT_EFFECTS:
        return [not_supported(path, effect, TAINT_EFFECTS)]
    return []


def validate_taints(taints: tuple[Taint, ...], path: str) -> list[FieldError]:
    """Check node taints: label-like key and value, a known effect, unique (key, effect)."""
    errors: list[FieldError] = []
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(taints):
        taint_path = index(path, i)
        errors += invalid_each(
            child(taint_path, "key"), taint.key, qualified_name_errors(taint.key)
        )
        errors += invalid_each(
            child(taint_path, "value"), taint.value, label_value_errors(taint.value)
        )
        errors += _validate_taint_effect(
            taint.effect, child(taint_path, "effect"), allow_empty=False
        )

        if (taint.key, taint.effect) in seen:
            # Taints are unique by (key, effect), whatever their values.
            errors.append(duplicate(taint_path, f"{taint.key}:{taint.effect}"))
        seen.add((taint.key, taint.effect))
    return errors


def validate_tolerations(tolerations: tuple[Toleration, ...], path: str) -> list[FieldError]:
    """Check pod tolerations.

    The operator is Equal (also when empty) or Exists. An empty key matches
    every taint and therefore requires Exists. Exists takes no value, Equal a
    valid label value. `tolerationSeconds` requires the NoExecute effect, and a
    set effect must be a known taint effect.
    """
    errors: list[FieldError] = []
    for i, toleration in enumerate(tolerations):
        tol_path = index(path, i)
        operator_path = child(tol_path, "operator")
        if toleration.key:
            errors += invalid_each(
                child(tol_path, "key"), toleration.key, qualified_name_errors(toleration.key)
            )
        elif toleration.operator != "Exists":
            errors.append(
                invalid(operator_path, toleration.operator, "must be 'Exists' when `key` is empty")
            )

        if (
            toleration.toleration_seconds is not None
            and toleration.effect != TaintEffect.NO_EXECUTE
        ):
            errors.append(
                invalid(
                    child(tol_path, "effect"),
                    toleration.effect,
                    "must be 'NoExecute' when `tolerationSeconds` is set",
                )
            )

        if toleration.operator in ("", "Equal"):
            errors += invalid_each(
                child(tol_path, "value"), toleration.value, label_value_errors(toleration.value)
            )
        elif toleration.operator == "Exists":
            if toleration.value:
                errors.append(
                    invalid(
                        child(tol_path, "value"),
                        toleration.value,
                        "must be empty when `operator` is 'Exists'",
                    )
                )
        else:
            errors.append(not_supported(operator_path, toleration.operator, TOLERATION_OPERATORS))

        errors += _validate_taint_effect(
            toleration.effect, child(tol_path, "effect"), allow_empty=True
        )
    return errors
