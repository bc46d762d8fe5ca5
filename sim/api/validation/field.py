"""Field paths and `FieldError` constructors, one per Kubernetes field-error type.

Paths are the JSON paths that kube-apiserver prints in a 422 response:
camelCase field names joined by dots, list indexes in brackets
(`status.reservedFor[2].uid`).
"""

from __future__ import annotations

from collections.abc import Iterable

from sim.api.errors import FieldError


def child(path: str, name: str) -> str:
    """Return the path of field `name` below `path` (`path` may be empty)."""
    return f"{path}.{name}" if path else name


def index(path: str, i: int) -> str:
    """Return the path of list element `i` of the list at `path`."""
    return f"{path}[{i}]"


def required(path: str, detail: str = "") -> FieldError:
    """Build a Required error: the field is missing or empty."""
    return FieldError(path, "Required", detail)


def invalid(path: str, value: object, detail: str) -> FieldError:
    """Build an Invalid error: the value breaks the rule in `detail`."""
    return FieldError(path, "Invalid", detail, value)


def forbidden(path: str, detail: str) -> FieldError:
    """Build a Forbidden error: the field may not be set, or not changed this way."""
    return FieldError(path, "Forbidden", detail)


def duplicate(path: str, value: object) -> FieldError:
    """Build a Duplicate error: the value already occurs earlier in the list or set."""
    return FieldError(path, "Duplicate", "", value)


def not_found(path: str, value: object, detail: str) -> FieldError:
    """Build a NotFound error: the value names something that does not exist.

    NOTE: `FieldError.__str__` has no "Not found" branch, so the 422 text of
    this error reads "Invalid value" although its `kind` is "NotFound".
    """
    return FieldError(path, "NotFound", detail, value)


def not_supported(path: str, value: object, supported: Iterable[str]) -> FieldError:
    """Build a NotSupported error that lists the supported values."""
    listed = ", ".join(f'"{v}"' for v in supported)
    return FieldError(path, "NotSupported", f"supported values: {listed}", value)


def too_many(path: str, count: int, max_items: int) -> FieldError:
    """Build a TooMany error for a list of `count` entries, with the count as value."""
    return FieldError(path, "TooMany", f"must have at most {max_items} items", count)


def too_long(path: str, length: int, max_length: int, unit: str = "bytes") -> FieldError:
    """Build a TooLong error for a value of `length` units, with the length as value."""
    detail = f"may not be more than {max_length} {unit}, got {length}"
    return FieldError(path, "TooLong", detail, length)


def invalid_each(path: str, value: object, messages: Iterable[str]) -> list[FieldError]:
    """Build one Invalid error per message returned by a name check."""
    return [invalid(path, value, message) for message in messages]
