"""Syntax checks for Kubernetes names, label keys and label values.

Each `*_errors` function returns a list of messages (empty when the value is
valid), like the `IsDNS1123Subdomain` family in
`k8s.io/apimachinery/pkg/util/validation`. Callers turn each message into an
Invalid `FieldError` at the path they validate. Lengths count UTF-8 bytes, as
Go's `len(string)` does.
"""

from __future__ import annotations

import re
from functools import lru_cache

DNS1123_LABEL_MAX_LENGTH = 63
DNS1123_SUBDOMAIN_MAX_LENGTH = 253
QUALIFIED_NAME_MAX_LENGTH = 63
LABEL_VALUE_MAX_LENGTH = 63
DRIVER_NAME_MAX_LENGTH = 63
"""Maximum length of a resource driver name, the limit for CSI driver names."""

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_RE = re.compile(_DNS1123_LABEL)
_DNS1123_SUBDOMAIN_RE = re.compile(rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*")
_QUALIFIED_NAME_PART_RE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE_RE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")

_LABEL_SYNTAX = (
    "must be a lowercase RFC 1123 label: lowercase letters, digits and '-', "
    "starting and ending with a letter or digit (for example 'my-name')"
)
_SUBDOMAIN_SYNTAX = (
    "must be a lowercase RFC 1123 subdomain: lowercase letters, digits, '-' and '.', "
    "each dot-separated part starting and ending with a letter or digit "
    "(for example 'gpu.example.com')"
)
_QUALIFIED_PART_SYNTAX = (
    "must consist of letters, digits, '-', '_' or '.', "
    "starting and ending with a letter or digit (for example 'MyName' or 'my.name')"
)


def utf8_length(value: str) -> int:
    """Return the length of `value` in UTF-8 bytes."""
    return len(value.encode("utf-8"))


def _max_length_message(max_length: int) -> str:
    return f"must be no more than {max_length} bytes"


_NAME_CACHE_SIZE = 1 << 16
"""Names remembered per check: the same node and object names recur on every write."""


def dns1123_label_errors(value: str) -> list[str]:
    """Check an RFC 1123 label, such as a namespace name or a pod claim name."""
    return list(_dns1123_label_errors(value))


@lru_cache(maxsize=_NAME_CACHE_SIZE)
def _dns1123_label_errors(value: str) -> tuple[str, ...]:
    errors = []
    if utf8_length(value) > DNS1123_LABEL_MAX_LENGTH:
        errors.append(_max_length_message(DNS1123_LABEL_MAX_LENGTH))
    if not _DNS1123_LABEL_RE.fullmatch(value):
        errors.append(_LABEL_SYNTAX)
    return tuple(errors)


def dns1123_subdomain_errors(value: str) -> list[str]:
    """Check an RFC 1123 subdomain, such as a claim, class, node or pod name."""
    return list(_dns1123_subdomain_errors(value))


@lru_cache(maxsize=_NAME_CACHE_SIZE)
def _dns1123_subdomain_errors(value: str) -> tuple[str, ...]:
    errors = []
    if utf8_length(value) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errors.append(_max_length_message(DNS1123_SUBDOMAIN_MAX_LENGTH))
    if not _DNS1123_SUBDOMAIN_RE.fullmatch(value):
        errors.append(_SUBDOMAIN_SYNTAX)
    return tuple(errors)


def _mask_trailing_dash(value: str) -> str:
    # A generateName prefix may end with '-' because random characters follow it.
    return value[:-1] + "a" if len(value) > 1 and value.endswith("-") else value


def object_name_errors(value: str, *, prefix: bool = False, label: bool = False) -> list[str]:
    """Check an object name (`prefix=True` for a generateName prefix).

    Names are DNS subdomains, or DNS labels when `label` is true (namespaces).
    """
    if prefix:
        value = _mask_trailing_dash(value)
    return dns1123_label_errors(value) if label else dns1123_subdomain_errors(value)


def qualified_name_errors(value: str) -> list[str]:
    """Check a qualified name: an optional DNS-subdomain prefix and '/', then a name part.

    Label keys, annotation keys and finalizers are qualified names
    (`example.com/deletion-protection`, `app`).
    """
    return list(_qualified_name_errors(value))


@lru_cache(maxsize=_NAME_CACHE_SIZE)
def _qualified_name_errors(value: str) -> tuple[str, ...]:
    parts = value.split("/")
    if len(parts) > 2:
        return (
            "must be a qualified name: a name part with an optional DNS subdomain prefix "
            "and one '/' (for example 'example.com/MyName')",
        )

    errors = []
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            errors.extend(f"prefix part {m}" for m in dns1123_subdomain_errors(prefix))

    if not name:
        errors.append("name part must be non-empty")
        return tuple(errors)
    if utf8_length(name) > QUALIFIED_NAME_MAX_LENGTH:
        errors.append(f"name part {_max_length_message(QUALIFIED_NAME_MAX_LENGTH)}")
    if not _QUALIFIED_NAME_PART_RE.fullmatch(name):
        errors.append(f"name part {_QUALIFIED_PART_SYNTAX}")
    return tuple(errors)


def label_value_errors(value: str) -> list[str]:
    """Check a label value: empty, or at most 63 bytes of letters, digits, '-', '_', '.'."""
    return list(_label_value_errors(value))


@lru_cache(maxsize=_NAME_CACHE_SIZE)
def _label_value_errors(value: str) -> tuple[str, ...]:
    errors = []
    if utf8_length(value) > LABEL_VALUE_MAX_LENGTH:
        errors.append(_max_length_message(LABEL_VALUE_MAX_LENGTH))
    if not _LABEL_VALUE_RE.fullmatch(value):
        errors.append(
            "must be empty or consist of letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit (for example 'MyValue' or 'my_value')"
        )
    return tuple(errors)
