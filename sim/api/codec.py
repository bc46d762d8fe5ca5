"""Conversion between Kubernetes manifests (YAML or JSON) and the typed API objects.

A manifest file contains one or more documents, each a Kubernetes object with
`apiVersion`, `kind` and `metadata`. The codec turns each document into the
model of `sim.api.types` for its kind (or a `GenericObject` for any other kind)
and writes objects back in the wire form: camelCase keys, `apiVersion` and
`kind` first, zero values left out as Go's `omitempty` does.

Only classic DRA is modelled, so resource kinds must use
`resource.k8s.io/v1alpha2` as served by Kubernetes 1.27-1.29. Kinds and fields
that appeared with structured parameters in 1.30, and the later API versions
(v1alpha3, v1beta1, ...), are rejected with a message that says so.

Two loading modes exist. Strict mode (the default) rejects any field that the
model of a typed kind does not have, as `kubectl apply --validate=strict` would.
Lenient mode drops such fields and reports their paths instead, so that
real-world manifests with container images, commands and volumes load; fields
that are known but misplaced (for example `name:` at the top level) are
rejected in both modes because dropping them would change the object's meaning.
"""

from __future__ import annotations

import difflib
import json
import re
import types
import typing
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from sim.api.types import (
    RESOURCE_API_VERSION,
    TYPED_KINDS,
    GenericObject,
    ObjectMeta,
    PodResourceClaim,
    ResourceClaimList,
    ResourceClass,
    TopLevelObject,
    api_version_of,
    kind_of,
)

__all__ = [
    "IgnoredField",
    "LoadResult",
    "ManifestError",
    "dump_json",
    "dump_yaml",
    "from_dict",
    "load_path",
    "load_yaml",
    "to_dict",
]

RESOURCE_GROUP: Final = "resource.k8s.io"

MANIFEST_SUFFIXES: Final = (".yaml", ".yml", ".json")
"""File suffixes that `load_path` reads when it walks a folder."""

# Kinds that resource.k8s.io/v1alpha2 gained in Kubernetes 1.30 for structured parameters.
_KINDS_ONLY_IN_1_30: Final = frozenset(
    {"ResourceClaimParameters", "ResourceClassParameters", "ResourceSlice"}
)

# Metadata fields that people write at the top level of an object by mistake.
_METADATA_KEYS_AT_TOP_LEVEL: Final = frozenset(
    {"name", "generateName", "namespace", "labels", "annotations"}
)

_NO_VALUE: Final = object()
_MAX_VALUE_CHARS: Final = 60


# --------------------------------------------------------------------------------------
# Errors and results
# --------------------------------------------------------------------------------------


class ManifestError(ValueError):
    """A manifest that cannot be turned into API objects, with its location in the input.

    The message is one line. It names the file and the document, counted from 1
    as editors count, with the line where the document starts when known. Then
    come the field path in camelCase as written in the manifest, the problem, the
    offending value and a hint. The attributes contain the same parts for programs.

    Attributes:
        source: File name or other label of the input.
        document: 0-based index of the non-empty document in the input, or None
            when the problem is not inside one document (a missing file).
        path: Dotted field path such as `spec.containers[0].image`, "" for the
            whole document.
        value: The offending value, or None when there is none to show.
        line: 1-based line in the input where the document starts or where the
            syntax error is, or None when unknown.
        column: 1-based column of a syntax error, None for other problems.
        problem: What is wrong, without the location.
        hint: How to fix it, "" when there is no specific advice.
        message: The full one-line message, the same as `str(error)`.
    """

    def __init__(
        self,
        problem: str,
        *,
        source: str,
        document: int | None = None,
        path: str = "",
        value: object = _NO_VALUE,
        line: int | None = None,
        column: int | None = None,
        hint: str = "",
    ) -> None:
        self.source = source
        self.document = document
        self.path = path
        self.value = None if value is _NO_VALUE else value
        self.line = line
        self.column = column
        self.problem = problem
        self.hint = hint
        self._has_value = value is not _NO_VALUE
        self.message = self._format()
        super().__init__(self.message)

    def _format(self) -> str:
        location = [self.source]
        if self.document is not None:
            doc = f"document {self.document + 1}"
            if self.line is not None and self.column is None:
                doc += f" (line {self.line})"
            location.append(doc)
        if self.column is not None:
            location.append(f"line {self.line}, column {self.column}")
        if self.path:
            location.append(self.path)
        text = ": ".join([*location, self.problem])
        if self._has_value:
            text += f" (got {_show(self.value)})"
        if self.hint:
            text += f". {self.hint}"
        return text

    def relocated(self, *, path_prefix: str = "", line: int | None = None) -> ManifestError:
        """Return a copy whose path is inside an enclosing object (a List item) and with a line."""
        path = self.path
        if path_prefix:
            path = (
                f"{path_prefix}.{path}"
                if path and not path.startswith("[")
                else (path_prefix + path)
            )
        return ManifestError(
            self.problem,
            source=self.source,
            document=self.document,
            path=path,
            value=self.value if self._has_value else _NO_VALUE,
            line=self.line if line is None else line,
            column=self.column,
            hint=self.hint,
        )


@dataclass(frozen=True)
class IgnoredField:
    """A field that lenient loading dropped because the typed model has no such field."""

    source: str
    document: int
    kind: str
    name: str
    path: str


@dataclass
class LoadResult:
    """Objects read from one or more manifests, in input order, and the fields dropped."""

    objects: list[TopLevelObject] = field(default_factory=list)
    ignored: list[IgnoredField] = field(default_factory=list)

    def extend(self, other: LoadResult) -> None:
        """Append the objects and ignored fields of another result."""
        self.objects.extend(other.objects)
        self.ignored.extend(other.ignored)


def _show(value: object) -> str:
    """Render a value for a message, shortened to one readable line."""
    if isinstance(value, str):
        text = repr(value)
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except ValueError:
            text = repr(value)
    if len(text) > _MAX_VALUE_CHARS:
        text = text[: _MAX_VALUE_CHARS - 3] + "..."
    return text


# --------------------------------------------------------------------------------------
# Model introspection: which keys a model accepts and what type each field has
# --------------------------------------------------------------------------------------


@cache
def _fields_by_alias(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """Map the wire name (camelCase alias) of every field of a model to its FieldInfo."""
    return {info.alias or name: info for name, info in model.model_fields.items()}


def _strip_none(annotation: Any) -> Any:
    """Return `X` for `X | None`, or the annotation unchanged."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _element_type(annotation: Any) -> Any:
    """Return the element type of `tuple[X, ...]` or the value type of `dict[str, X]`."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin is tuple and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    return Any


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


# --------------------------------------------------------------------------------------
# Unknown fields: one recursive walk over the model fields
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _UnknownField:
    path: str
    key: str
    value: object
    model: type[BaseModel]
    # Set for fields that are known to be misplaced or version-specific. These are
    # rejected in lenient mode too, because dropping them would change the object.
    fatal_hint: str = ""


def _misplaced_field_hint(model: type[BaseModel], key: str, data: Mapping[str, Any]) -> str:
    """Return advice for a field that is known to be written in the wrong place, or ""."""
    if issubclass(model, TopLevelObject) and key in _METADATA_KEYS_AT_TOP_LEVEL:
        return f'"{key}" belongs under "metadata:", not at the top level of the object'
    if model is PodResourceClaim and key in ("resourceClaimName", "resourceClaimTemplateName"):
        return (
            "this is the flattened form of Kubernetes 1.31 and later; pods of the "
            f'resource.k8s.io/v1alpha2 era (Kubernetes 1.27-1.29) put it under "source:", as in '
            f'"source: {{{key}: {_show(data[key])}}}"'
        )
    if model is ResourceClass and key == "structuredParameters":
        return (
            '"structuredParameters" exists only in Kubernetes 1.30 (structured parameters), '
            "which the simulator does not model; classic DRA classes of 1.27-1.29 have no "
            "such field"
        )
    return ""


def _split_unknown(
    model: type[BaseModel], data: Mapping[Any, Any], path: str, unknown: list[_UnknownField]
) -> dict[str, Any]:
    """Return a copy of `data` with only the model's field keys, recording the others.

    Nested models are walked through mappings, tuples of models and optional
    fields. A null value of a known field is dropped, because the Go decoder
    leaves the zero value in place for null and the zero value is the default
    here.
    """
    known = _fields_by_alias(model)
    cleaned: dict[str, Any] = {}
    for key, value in data.items():
        info = known.get(key) if isinstance(key, str) else None
        if info is None:
            unknown.append(
                _UnknownField(
                    path=_join(path, key),
                    key=str(key),
                    value=value,
                    model=model,
                    fatal_hint=_misplaced_field_hint(model, str(key), data),
                )
            )
            continue
        if value is None:
            continue
        cleaned[key] = _split_value(info.annotation, value, _join(path, key), unknown)
    return cleaned


def _split_value(annotation: Any, value: Any, path: str, unknown: list[_UnknownField]) -> Any:
    annotation = _strip_none(annotation)
    if _is_model(annotation) and isinstance(value, Mapping):
        return _split_unknown(annotation, value, path, unknown)
    if typing.get_origin(annotation) is tuple and isinstance(value, list):
        element = _element_type(annotation)
        if _is_model(element):
            return [
                _split_unknown(element, item, f"{path}[{i}]", unknown)
                if isinstance(item, Mapping)
                else item
                for i, item in enumerate(value)
            ]
    return value


def _unknown_field_error(found: _UnknownField, source: str, document: int) -> ManifestError:
    allowed = sorted(_fields_by_alias(found.model))
    if found.fatal_hint:
        return ManifestError(
            f"field {found.key!r} is not valid here",
            source=source,
            document=document,
            path=found.path,
            value=found.value,
            hint=found.fatal_hint[0].upper() + found.fatal_hint[1:],
        )
    suggestions = _suggest(found.key, allowed)
    hint = f"Did you mean {' or '.join(repr(s) for s in suggestions)}? " if suggestions else ""
    hint += (
        f"Fields of {found.model.__name__}: {', '.join(allowed)}. Load leniently to ignore "
        "fields that the simulator does not model"
    )
    return ManifestError(
        f"unknown field {found.key!r}",
        source=source,
        document=document,
        path=found.path,
        value=found.value,
        hint=hint,
    )


def _suggest(key: str, allowed: Sequence[str]) -> list[str]:
    """Return the allowed field names closest to a misspelled key (case and snake_case first)."""
    folded = key.replace("_", "").replace("-", "").lower()
    exact = [name for name in allowed if name.lower() == folded]
    if exact:
        return exact
    return difflib.get_close_matches(key, allowed, n=2, cutoff=0.75)


# --------------------------------------------------------------------------------------
# Type errors: pydantic ValidationError -> ManifestError
# --------------------------------------------------------------------------------------

_EXPECTED_BY_ERROR_TYPE: Final = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean (true or false)",
    "model_type": "an object (a mapping of fields)",
    "dict_type": "an object (a mapping of keys to values)",
    "tuple_type": "a list",
    "list_type": "a list",
}


def _describe_union(annotation: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}
    members = [names.get(a, getattr(a, "__name__", str(a))) for a in typing.get_args(annotation)]
    return ", ".join(members[:-1]) + " or " + members[-1] if len(members) > 1 else members[0]


def _error_path(model: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[str, str]:
    """Translate a pydantic error location into a camelCase path and the expected type.

    The path uses `.field` for model fields, `[i]` for list items and `[key]` for
    map keys, as kube-apiserver prints field paths. Union member tags that
    pydantic appends to the location (`str`, `int`, ...) are dropped; the
    expected type then lists the union members.
    """
    path = ""
    annotation: Any = model
    union_expected = ""
    for item in loc:
        annotation = _strip_none(annotation)
        if _is_model(annotation) and isinstance(item, str):
            info = _fields_by_alias(annotation).get(item)
            path = _join(path, item)
            annotation = info.annotation if info is not None else Any
        elif typing.get_origin(annotation) in (tuple, dict):
            path += f"[{item}]"
            annotation = _element_type(annotation)
        elif _is_union(annotation):
            union_expected = _describe_union(annotation)
            annotation = Any
        else:
            path = f"{path}[{item}]" if isinstance(item, int) else _join(path, item)
            annotation = Any
    return path, union_expected


def _type_error(
    model: type[BaseModel], error: ValidationError, source: str, document: int
) -> ManifestError:
    """Turn the first problem of a ValidationError into a ManifestError."""
    details = error.errors()
    first = details[0]
    path, union_expected = _error_path(model, first["loc"])
    other_paths = {_error_path(model, d["loc"])[0] for d in details[1:]} - {path}

    if first["type"] == "missing":
        problem = "missing required field"
        value: object = _NO_VALUE
    else:
        expected = union_expected or _EXPECTED_BY_ERROR_TYPE.get(first["type"], "")
        problem = f"expected {expected}" if expected else first["msg"][0].lower() + first["msg"][1:]
        value = first["input"]

    hint = _type_error_hint(first)
    if other_paths:
        count = len(other_paths)
        more = f"There {'are' if count > 1 else 'is'} {count} more invalid field" + (
            "s" if count > 1 else ""
        )
        hint = f"{hint}. {more}" if hint else more
    return ManifestError(
        problem, source=source, document=document, path=path, value=value, hint=hint
    )


def _type_error_hint(error: ErrorDetails) -> str:
    ctx = error.get("ctx") or {}
    if (
        error["type"] == "model_type"
        and ctx.get("class_name") == "ResourceClaimRef"
        and isinstance(error["input"], str)
    ):
        name = error["input"]
        return (
            "A container's resources.claims entry is an object naming one of the pod's "
            f'spec.resourceClaims: write "- name: {name}" instead of "- {name}"'
        )
    return ""


# --------------------------------------------------------------------------------------
# apiVersion and kind
# --------------------------------------------------------------------------------------


def _check_type_meta(
    data: Mapping[Any, Any], source: str, document: int
) -> type[TopLevelObject] | None:
    """Check apiVersion and kind, and return the typed model for them (None: GenericObject)."""
    for key in ("apiVersion", "kind"):
        value = data.get(key)
        if value is None:
            hint = ""
            if "metadata" not in data and "items" not in data:
                hint = "Every Kubernetes object starts with apiVersion and kind"
            raise ManifestError(
                f"missing required field {key!r}",
                source=source,
                document=document,
                path=key,
                hint=hint,
            )
        if not isinstance(value, str) or not value:
            raise ManifestError(
                "expected a non-empty string",
                source=source,
                document=document,
                path=key,
                value=value,
            )
    api_version: str = data["apiVersion"]
    kind: str = data["kind"]
    group = api_version.rpartition("/")[0]

    if group == RESOURCE_GROUP:
        if api_version != RESOURCE_API_VERSION:
            raise ManifestError(
                f"{api_version} is not supported",
                source=source,
                document=document,
                path="apiVersion",
                hint=(
                    f"Only {RESOURCE_API_VERSION} is supported: the simulator models classic "
                    "DRA of Kubernetes 1.27-1.29, and later versions of resource.k8s.io "
                    "(v1alpha3, v1beta1, v1) describe a different, device-based API"
                ),
            )
        if kind in _KINDS_ONLY_IN_1_30:
            raise ManifestError(
                f"{kind} is not supported",
                source=source,
                document=document,
                path="kind",
                hint=(
                    f"{kind} exists only in Kubernetes 1.30, where {RESOURCE_API_VERSION} gained "
                    "structured parameters; the simulator models classic DRA of 1.27-1.29, "
                    "which has no such kind"
                ),
            )

    model = TYPED_KINDS.get(kind)
    if model is None:
        _check_unknown_kind(api_version, kind, group, source, document)
        return None
    if api_version != model.API_VERSION:
        raise ManifestError(
            f"kind {kind} needs apiVersion {model.API_VERSION}",
            source=source,
            document=document,
            path="apiVersion",
            value=api_version,
        )
    return model


def _check_unknown_kind(
    api_version: str, kind: str, group: str, source: str, document: int
) -> None:
    """Reject a kind that is a typo of a typed kind or unknown in resource.k8s.io."""
    by_folded_name = {name.lower(): model for name, model in TYPED_KINDS.items()}
    typo_of = by_folded_name.get(kind.lower())
    if typo_of is not None and api_version == typo_of.API_VERSION:
        raise ManifestError(
            f"unknown kind {kind!r} in {api_version}",
            source=source,
            document=document,
            path="kind",
            hint=f"Kinds are case-sensitive: did you mean {typo_of.KIND!r}?",
        )
    if group == RESOURCE_GROUP:
        known = sorted(
            name for name, model in TYPED_KINDS.items() if api_version == model.API_VERSION
        )
        raise ManifestError(
            f"unknown kind {kind!r} in {api_version}",
            source=source,
            document=document,
            path="kind",
            hint=f"Known kinds: {', '.join(known)}",
        )


# --------------------------------------------------------------------------------------
# Dict <-> object
# --------------------------------------------------------------------------------------


def _to_json_text(data: Mapping[str, Any], source: str, document: int) -> str:
    """Serialise parsed input as JSON, the form kube-apiserver decodes, for strict validation."""
    try:
        return json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ManifestError(
            f"the document contains a value that JSON cannot represent ({exc})",
            source=source,
            document=document,
        ) from exc


def _validate(
    model: type[TopLevelObject], data: Mapping[str, Any], source: str, document: int
) -> TopLevelObject:
    """Build a model from wire data with Kubernetes' JSON typing (no "4" for an integer)."""
    try:
        return model.model_validate_json(_to_json_text(data, source, document), strict=True)
    except ValidationError as exc:
        raise _type_error(model, exc, source, document) from None


def from_dict(
    data: Mapping[str, Any],
    *,
    lenient: bool = False,
    source: str = "<input>",
    document: int = 0,
) -> tuple[TopLevelObject, list[str]]:
    """Convert one parsed manifest document into an API object.

    Typed kinds come back with empty `api_version` and `kind` fields, because
    their class fixes both (read them with `api_version_of` and `kind_of`). So a
    parsed object equals the same object built in code. Other kinds become a
    `GenericObject` whose metadata is still checked as ObjectMeta.

    Args:
        data: The document as parsed from YAML or JSON.
        lenient: Drop fields that the typed model does not have instead of
            rejecting them. Misplaced fields with a known fix are rejected anyway.
        source: File name used in error messages.
        document: 0-based index of the document in the file, for error messages.

    Returns:
        The object and the dotted camelCase paths of the fields dropped in
        lenient mode (always empty in strict mode).

    Raises:
        ManifestError: The document is not an object, has a wrong or unsupported
            apiVersion or kind, has an unknown field (strict mode) or a misplaced
            one, or has a value of the wrong type.
    """
    if not isinstance(data, Mapping):
        raise ManifestError(
            "expected a Kubernetes object (a mapping with apiVersion and kind), got "
            + _describe_non_object(data),
            source=source,
            document=document,
        )
    model = _check_type_meta(data, source, document)

    unknown: list[_UnknownField] = []
    if model is None:
        wire = _split_generic(data, unknown, source, document)
        model = GenericObject
    else:
        wire = _split_unknown(model, data, "", unknown)
        wire.pop("apiVersion", None)
        wire.pop("kind", None)

    # Report the most serious problem first: a misplaced field, then a wrong type,
    # then (strict mode only) a field that the model does not have.
    misplaced = [found for found in unknown if found.fatal_hint]
    if misplaced:
        raise _unknown_field_error(misplaced[0], source, document)
    obj = _validate(model, wire, source, document)
    if unknown and not lenient:
        raise _unknown_field_error(unknown[0], source, document)
    return obj, [found.path for found in unknown]


def _split_generic(
    data: Mapping[Any, Any], unknown: list[_UnknownField], source: str, document: int
) -> dict[str, Any]:
    """Build the GenericObject wire form: checked metadata, everything else in `body`."""
    metadata = data.get("metadata")
    wire: dict[str, Any] = {"apiVersion": data["apiVersion"], "kind": data["kind"]}
    if isinstance(metadata, Mapping):
        wire["metadata"] = _split_unknown(ObjectMeta, metadata, "metadata", unknown)
    elif metadata is not None:
        raise ManifestError(
            "expected an object (a mapping of fields)",
            source=source,
            document=document,
            path="metadata",
            value=metadata,
        )
    else:
        # An object without metadata has no name; the usual cause is a top-level name.
        for key in _METADATA_KEYS_AT_TOP_LEVEL & {k for k in data if isinstance(k, str)}:
            unknown.append(
                _UnknownField(
                    path=key,
                    key=key,
                    value=data[key],
                    model=GenericObject,
                    fatal_hint=_misplaced_field_hint(GenericObject, key, data),
                )
            )
    wire["body"] = {
        str(key): value
        for key, value in data.items()
        if key not in ("apiVersion", "kind", "metadata")
    }
    return wire


def _describe_non_object(data: object) -> str:
    if isinstance(data, list):
        return f"a list of {len(data)} entries"
    if isinstance(data, str):
        return f"the string {_show(data)}"
    return f"{type(data).__name__} {_show(data)}"


def to_dict(obj: TopLevelObject | ResourceClaimList) -> dict[str, Any]:
    """Convert an object to its wire form: apiVersion and kind first, zero values left out.

    A `GenericObject` writes its body keys at the top level after metadata. A
    ResourceClaimList writes every item with its apiVersion and kind.

    Raises:
        ValueError: A GenericObject body has an apiVersion, kind or metadata key,
            which would collide with the object's own fields.
    """
    if isinstance(obj, ResourceClaimList):
        listed: dict[str, Any] = {"apiVersion": obj.API_VERSION, "kind": obj.KIND}
        metadata = obj.metadata.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        if metadata:
            listed["metadata"] = metadata
        listed["items"] = [to_dict(item) for item in obj.items]
        return listed

    wire = obj.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    out: dict[str, Any] = {"apiVersion": api_version_of(obj), "kind": kind_of(obj)}
    wire.pop("apiVersion", None)
    wire.pop("kind", None)
    if not isinstance(obj, GenericObject):
        out.update(wire)
        return out

    if "metadata" in wire:
        out["metadata"] = wire["metadata"]
    body: dict[str, Any] = wire.get("body", {})
    clashes = sorted({"apiVersion", "kind", "metadata"} & body.keys())
    if clashes:
        raise ValueError(
            f"{obj.kind} {obj.name!r}: body contains {', '.join(clashes)}, which are "
            "fields of the object itself; set them on the GenericObject instead"
        )
    out.update(body)
    return out


# --------------------------------------------------------------------------------------
# YAML, JSON and Markdown input
# --------------------------------------------------------------------------------------


class StrictYamlLoader(yaml.SafeLoader):
    """The YAML loader of scenarios, `--set` values and manifests.

    It is PyYAML's SafeLoader with two changes. Timestamps and "=" stay
    strings, as in Kubernetes' YAML-to-JSON step. A key written twice in one
    mapping is an error, where PyYAML would silently keep the last value.
    The API server with `fieldValidation=Strict` (kubectl `--validate=strict`)
    rejects duplicate fields too. Keys merged in with `<<` may still be
    overridden.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Construct a mapping, rejecting a key that appears twice in it.

        Raises:
            yaml.constructor.ConstructorError: a key is repeated; its marks
                give the line of the repeated key.
        """
        first_marks: dict[Any, yaml.Mark] = {}
        for key_node, _value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                first = first_marks.get(key)
            except TypeError:
                # An unhashable key: SafeLoader rejects it below with its own message.
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r} (first at line {first.line + 1}, column "
                    f"{first.column + 1}); write each key once",
                    key_node.start_mark,
                )
            first_marks[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def load_yaml_text(text: str) -> Any:
    """Parse one YAML document with `StrictYamlLoader`.

    Raises:
        yaml.YAMLError: the text is not valid YAML or repeats a key.
    """
    return yaml.load(text, Loader=StrictYamlLoader)


StrictYamlLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class _Document:
    data: Any
    line: int  # 1-based line where the document's content starts


# A document separator typed with a dash-like character other than the ASCII hyphen,
# for example "–--" with an en dash (U+2013).
_LOOKALIKE_SEPARATOR: Final = re.compile(r"^[\u2010-\u2015\u2212][-\u2010-\u2015\u2212]+\s*$")


def _parse_yaml(text: str, source: str, line_offset: int, first_document: int) -> list[_Document]:
    """Parse every document of a YAML stream, skipping empty ones.

    Raises:
        ManifestError: On a syntax error, with the line and column in the source
            file (`line_offset` lines are added for YAML embedded in Markdown).
    """
    documents: list[_Document] = []
    loader = StrictYamlLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            data = loader.construct_document(node)
            if data is not None:
                documents.append(_Document(data, node.start_mark.line + 1 + line_offset))
    except yaml.MarkedYAMLError as exc:
        raise _yaml_syntax_error(
            exc, text, source, line_offset, first_document + len(documents)
        ) from None
    except yaml.YAMLError as exc:
        raise ManifestError(
            f"invalid YAML: {exc}", source=source, document=first_document + len(documents)
        ) from None
    finally:
        loader.dispose()
    return documents


def _yaml_syntax_error(
    exc: yaml.MarkedYAMLError, text: str, source: str, line_offset: int, document: int
) -> ManifestError:
    lines = text.splitlines()
    mark = exc.problem_mark or exc.context_mark
    line = (mark.line + 1 + line_offset) if mark is not None else None
    column = (mark.column + 1) if mark is not None else None

    problem = f"invalid YAML: {exc.problem or exc.context}"
    if exc.context and exc.problem and exc.context_mark is not None:
        context_line = exc.context_mark.line
        problem += (
            f" ({exc.context} at line {context_line + 1 + line_offset}, "
            f"column {exc.context_mark.column + 1})"
        )
    if mark is not None and mark.line < len(lines):
        problem += f"; the line reads {lines[mark.line].strip()!r}"

    hint = ""
    candidates = [m.line for m in (exc.context_mark, exc.problem_mark) if m is not None]
    for index in sorted({c for n in candidates for c in (n - 1, n) if 0 <= c < len(lines)}):
        text_line = lines[index].strip()
        if _LOOKALIKE_SEPARATOR.match(text_line):
            char = text_line[0]
            hint = (
                f"Line {index + 1 + line_offset} is {text_line!r}, which starts with "
                f"{unicodedata.name(char, 'a dash').lower()} (U+{ord(char):04X}) instead of a "
                "hyphen; a document separator is three hyphens '---'"
            )
            break
    return ManifestError(
        problem, source=source, document=document, line=line, column=column, hint=hint
    )


# Opening fence of a YAML code block in Markdown: ```yaml or ~~~yml, optionally indented.
_FENCE_OPEN: Final = re.compile(r"^\s{0,3}(```+|~~~+)\s*ya?ml\b.*$", re.IGNORECASE)


def _markdown_yaml_blocks(text: str) -> Iterator[tuple[int, str]]:
    """Yield (number of lines before the block's first line, block text) for each YAML block."""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opened = _FENCE_OPEN.match(lines[index])
        index += 1
        if opened is None:
            continue
        fence = opened.group(1)
        start = index
        while index < len(lines) and not lines[index].strip().startswith(fence):
            index += 1
        yield start, "\n".join(lines[start:index])
        index += 1


def _expand_lists(documents: Iterable[_Document], *, source: str, lenient: bool) -> LoadResult:
    """Convert parsed documents to objects, expanding List documents into their items."""
    result = LoadResult()
    for index, document in enumerate(documents):
        data = document.data
        items = _list_items(data)
        if items is None:
            entries: list[tuple[str, Any]] = [("", data)]
        else:
            entries = [(f"items[{i}]", item) for i, item in enumerate(items)]
        for prefix, entry in entries:
            try:
                obj, ignored = from_dict(entry, lenient=lenient, source=source, document=index)
            except ManifestError as exc:
                raise exc.relocated(path_prefix=prefix, line=document.line) from None
            result.objects.append(obj)
            label = obj.metadata.name or obj.metadata.generate_name
            result.ignored.extend(
                IgnoredField(source, index, kind_of(obj), label, _join(prefix, path))
                for path in ignored
            )
    return result


def _list_items(data: Any) -> list[Any] | None:
    """Return the items of a `kind: List` or `<Kind>List` document (with kind filled in), else None.

    Items of a typed list such as ResourceClaimList may leave out apiVersion and
    kind, as list responses of the API server do. They inherit both from the list.
    """
    if not isinstance(data, Mapping):
        return None
    kind = data.get("kind")
    if not isinstance(kind, str) or not isinstance(data.get("items"), list):
        return None
    items: list[Any] = data["items"]
    if kind == "List":
        return items
    item_kind = kind.removesuffix("List")
    if item_kind == kind or item_kind not in TYPED_KINDS:
        return None
    defaults = {"apiVersion": data.get("apiVersion"), "kind": item_kind}
    return [{**defaults, **item} if isinstance(item, Mapping) else item for item in items]


def load_yaml(text: str, *, source: str = "<input>", lenient: bool = False) -> LoadResult:
    """Load every object of a multi-document YAML text.

    Empty documents are skipped, and `kind: List` documents are expanded into
    their items. The whole text is parsed before any document is converted, so
    a syntax error anywhere is reported before problems inside documents.

    Raises:
        ManifestError: On a syntax error or an invalid document (see `from_dict`).
    """
    documents = _parse_yaml(text, source, line_offset=0, first_document=0)
    return _expand_lists(documents, source=source, lenient=lenient)


def _load_markdown(text: str, source: str, lenient: bool) -> LoadResult:
    """Load the fenced YAML blocks of a Markdown page, with line numbers of the page."""
    documents: list[_Document] = []
    for line_offset, block in _markdown_yaml_blocks(text):
        documents.extend(_parse_yaml(block, source, line_offset, len(documents)))
    return _expand_lists(documents, source=source, lenient=lenient)


def _load_json(text: str, source: str, lenient: bool) -> LoadResult:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(
            f"invalid JSON: {exc.msg}",
            source=source,
            document=0,
            line=exc.lineno,
            column=exc.colno,
        ) from None
    return _expand_lists([_Document(data, 1)], source=source, lenient=lenient)


def _load_file(path: Path, lenient: bool) -> LoadResult:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"failed to read the file: {exc}", source=source) from None
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _load_json(text, source, lenient)
    if suffix in (".md", ".markdown"):
        return _load_markdown(text, source, lenient)
    return load_yaml(text, source=source, lenient=lenient)


def load_path(path: str | Path, *, lenient: bool = False) -> LoadResult:
    """Load a manifest file, or every manifest under a folder.

    A folder is walked recursively and its `*.yaml`, `*.yml` and `*.json` files
    are loaded in sorted path order. A Markdown file (`.md`) given directly is
    read for its fenced YAML blocks, and errors name lines of the Markdown file.

    Raises:
        ManifestError: The path does not exist, or a file is invalid.
    """
    path = Path(path)
    if path.is_dir():
        result = LoadResult()
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in MANIFEST_SUFFIXES)
        for file in files:
            if file.is_file():
                result.extend(_load_file(file, lenient))
        return result
    if not path.exists():
        raise ManifestError(
            "the file does not exist",
            source=str(path),
            hint="Check the path, which is relative to the current folder unless absolute",
        )
    return _load_file(path, lenient)


# --------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------


class _ManifestDumper(yaml.SafeDumper):
    """SafeDumper that double-quotes strings with Unicode line breaks.

    PyYAML 6 writes NEL (U+0085), LINE SEPARATOR and PARAGRAPH SEPARATOR
    unescaped in single-quoted scalars, and a reader folds them into spaces.
    In double quotes they are escaped, so they survive a round trip.
    """


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if any(c in value for c in "\x85\u2028\u2029") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ManifestDumper.add_representer(str, _represent_str)


def dump_yaml(objs: Iterable[TopLevelObject]) -> str:
    """Write objects as a multi-document YAML text, one document per object."""
    return yaml.dump_all(
        [to_dict(obj) for obj in objs],
        Dumper=_ManifestDumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
    )


def dump_json(obj: TopLevelObject | ResourceClaimList | Sequence[TopLevelObject]) -> str:
    """Write an object as indented JSON; a sequence of objects becomes a `kind: List`."""
    if isinstance(obj, (TopLevelObject, ResourceClaimList)):
        wire = to_dict(obj)
    else:
        wire = {"apiVersion": "v1", "kind": "List", "items": [to_dict(item) for item in obj]}
    return json.dumps(wire, indent=2, ensure_ascii=False)
