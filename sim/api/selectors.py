"""Node, label and field selectors, evaluated the way Kubernetes 1.27-1.29 evaluates them.

A node selector (`core/v1.NodeSelector`) restricts the nodes on which something may
run: `ResourceClass.suitableNodes`, `AllocationResult.availableOnNodes` and a pod's
required node affinity all use one. kube-scheduler converts each selector once per
scheduling cycle. When a DRA selector does not convert, the cycle ends with an Error
status, whereas an invalid term of a pod's node affinity only matches no node. This
module splits the work the same way. `compile_node_selector` validates and converts
a selector, raising `SelectorError` (or, with `lazy=True`, dropping invalid terms).
The `CompiledNodeSelector` then matches one node (`matches`) or every row of a
columnar `NodeLabelTable` at once (`mask`, with numpy vector operations and no
Python loop over nodes).

Node selector rules (`k8s.io/component-helpers/scheduling/corev1/nodeaffinity` and
`k8s.io/apimachinery/pkg/labels`):

* A `None` selector matches every node.
* Terms are ORed. A term with neither `matchExpressions` nor `matchFields` is dropped,
  and a selector left without terms matches no node.
* Requirements inside a term are ANDed. `matchExpressions` test node labels.
  `In` needs the label with one of the values. `NotIn` holds when the label is absent
  or has none of the values. `Exists` / `DoesNotExist` test presence. `Gt` / `Lt` parse
  the label value and the single requirement value as base-10 int64 (Go
  `strconv.ParseInt`: optional sign, ASCII digits, range check) and are false when
  the label is absent or its value does not parse.
* `matchFields` supports only `metadata.name` with `In` / `NotIn` and exactly one
  value. A node whose name is "" has no `metadata.name` field, so Kubernetes skips
  the term's `matchFields` for it.
* Conversion rejects an unknown operator, `In` / `NotIn` without values,
  `Exists` / `DoesNotExist` with values, `Gt` / `Lt` without exactly one int64
  value, an invalid label key, and any value that is not a valid label value. The
  last rule comes from `labels.NewRequirement` and means that a `Gt` / `Lt` bound
  cannot be negative or carry a "+" sign, although a node label such as "-3" still
  parses when matched. `matchFields` on a key other than `metadata.name` is rejected
  here too: API validation rejects it on write, so no real selector carries one.

Label selectors (`?labelSelector=`) and field selectors (`?fieldSelector=`) are the
filters of list and watch. `parse_label_selector` reads the kubectl grammar and
`parse_field_selector` the `metadata.name` / `metadata.namespace` subset that every
kind supports.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from sim.api.errors import FieldError
from sim.api.types import NodeSelector, NodeSelectorOperator, TopLevelObject

BoolArray = npt.NDArray[np.bool_]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_Op = NodeSelectorOperator
_NODE_SELECTOR_OPERATORS = (_Op.IN, _Op.NOT_IN, _Op.EXISTS, _Op.DOES_NOT_EXIST, _Op.GT, _Op.LT)
# metav1.LabelSelector has no Gt / Lt.
_LABEL_SELECTOR_OPERATORS = (_Op.IN, _Op.NOT_IN, _Op.EXISTS, _Op.DOES_NOT_EXIST)
_NODE_FIELD_OPERATORS = (_Op.IN, _Op.NOT_IN)
NODE_NAME_FIELD = "metadata.name"
SUPPORTED_FIELD_SELECTOR_FIELDS = (
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "status.phase",
)
"""Fields a list or watch may select on. The API server accepts `spec.nodeName` and
`status.phase` only for Pods; here they read as "" on kinds that lack them."""


class SelectorError(ValueError):
    """A selector that cannot be evaluated because of its syntax, an operator, a field or a value.

    Attributes:
        errors: One `FieldError` per broken rule, with paths such as
            `nodeSelectorTerms[0].matchExpressions[1].operator`. Empty for
            syntax errors.
        position: 0-based character offset of a syntax error in the selector
            text, or None when the error is not about syntax.
    """

    def __init__(
        self, message: str, *, errors: Sequence[FieldError] = (), position: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errors = tuple(errors)
        self.position = position


# --------------------------------------------------------------------------------------
# Integer parsing and label syntax
# --------------------------------------------------------------------------------------

# ASCII digits only: Python's \d and int() also accept other Unicode digits, "_" and
# surrounding whitespace, which Go's ParseInt rejects.
_INT_RE = re.compile(r"([+-]?)([0-9]+)")
_LABEL_NAME_RE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS1123_SUBDOMAIN_RE = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
)
_LABEL_NAME_MAX = 63
_DNS1123_SUBDOMAIN_MAX = 253
_INT64_MAX_DIGITS = 19


def parse_int64(text: str) -> int | None:
    """Parse `text` as Go's `strconv.ParseInt(text, 10, 64)` does.

    Returns:
        The value, or None when `text` is not an optional sign followed by ASCII
        digits, or lies outside the int64 range.
    """
    match = _INT_RE.fullmatch(text)
    if match is None:
        return None
    # Leading zeros are legal ("007" is 7). Strip them before the length check, so
    # int() never converts a huge digit string.
    digits = match.group(2).lstrip("0") or "0"
    if len(digits) > _INT64_MAX_DIGITS:
        return None
    value = int(digits)
    if match.group(1) == "-":
        value = -value
    if value < INT64_MIN or value > INT64_MAX:
        return None
    return value


def _label_key_problems(key: str) -> list[str]:
    """List why `key` is not a valid label key (a qualified name), or nothing if it is."""
    problems: list[str] = []
    prefix, slash, name = key.rpartition("/")
    if slash:
        if "/" in prefix:
            return ["must be a name, optionally prefixed by a DNS subdomain and '/'"]
        if not prefix:
            problems.append("the prefix before '/' must not be empty")
        elif len(prefix) > _DNS1123_SUBDOMAIN_MAX or not _DNS1123_SUBDOMAIN_RE.fullmatch(prefix):
            problems.append(
                f"the prefix {prefix!r} must be a lowercase DNS subdomain of at most "
                f"{_DNS1123_SUBDOMAIN_MAX} characters"
            )
    if not name:
        problems.append("the name part must not be empty")
    elif len(name) > _LABEL_NAME_MAX or not _LABEL_NAME_RE.fullmatch(name):
        problems.append(
            f"the name part must be at most {_LABEL_NAME_MAX} characters of alphanumerics, "
            "'-', '_' or '.', starting and ending with an alphanumeric"
        )
    return problems


def _is_label_value(value: str) -> bool:
    return value == "" or (len(value) <= _LABEL_NAME_MAX and bool(_LABEL_NAME_RE.fullmatch(value)))


# --------------------------------------------------------------------------------------
# Requirements shared by node selectors and label selectors
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelRequirement:
    """One validated `key operator values` condition on labels.

    Label-selector `=` and `==` are stored as `In` with one value and `!=` as
    `NotIn` with one value, because they match exactly the same labels.

    Attributes:
        key: The label key.
        operator: The operator.
        values: The values of `In` / `NotIn`; empty for the other operators.
        bound: The parsed int64 of `Gt` / `Lt`; 0 for the other operators.
    """

    key: str
    operator: NodeSelectorOperator
    values: frozenset[str] = frozenset()
    bound: int = 0

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Evaluate the requirement against one object's labels."""
        value = labels.get(self.key)
        op = self.operator
        if op is _Op.IN:
            return value is not None and value in self.values
        if op is _Op.NOT_IN:
            return value is None or value not in self.values
        if op is _Op.EXISTS:
            return value is not None
        if op is _Op.DOES_NOT_EXIST:
            return value is None
        if value is None:
            return False
        number = parse_int64(value)
        if number is None:
            return False
        return number > self.bound if op is _Op.GT else number < self.bound

    def __str__(self) -> str:
        op = self.operator
        if op is _Op.EXISTS:
            return self.key
        if op is _Op.DOES_NOT_EXIST:
            return f"!{self.key}"
        if op is _Op.GT:
            return f"{self.key}>{self.bound}"
        if op is _Op.LT:
            return f"{self.key}<{self.bound}"
        word = "in" if op is _Op.IN else "notin"
        return f"{self.key} {word} ({','.join(sorted(self.values))})"


@dataclass(frozen=True)
class FieldRequirement:
    """One `field=value` (or `field!=value` when `negate`) condition on object metadata."""

    field: str
    value: str
    negate: bool = False

    def matches_value(self, actual: str) -> bool:
        """Evaluate the requirement against the object's value of `field`."""
        return (actual == self.value) != self.negate

    def __str__(self) -> str:
        return f"{self.field}{'!=' if self.negate else '='}{self.value}"


def _build_label_requirement(
    key: str,
    operator: str,
    values: Sequence[str],
    path: str,
    allowed: Sequence[NodeSelectorOperator],
    errors: list[FieldError],
) -> LabelRequirement | None:
    """Validate one requirement as `labels.NewRequirement` does, appending problems to `errors`.

    Returns:
        The requirement, or None when at least one problem was found.
    """
    if operator not in allowed:
        supported = ", ".join(str(op) for op in allowed)
        errors.append(
            FieldError(
                f"{path}.operator", "NotSupported", f"supported values: {supported}", operator
            )
        )
        return None
    op = NodeSelectorOperator(operator)
    found = len(errors)

    for problem in _label_key_problems(key):
        errors.append(FieldError(f"{path}.key", "Invalid", problem, key))

    bound = 0
    if op in (_Op.IN, _Op.NOT_IN) and not values:
        errors.append(
            FieldError(f"{path}.values", "Required", f"operator {op} needs at least one value")
        )
    elif op in (_Op.EXISTS, _Op.DOES_NOT_EXIST) and values:
        errors.append(
            FieldError(f"{path}.values", "Invalid", f"operator {op} takes no values", tuple(values))
        )
    elif op in (_Op.GT, _Op.LT):
        if len(values) != 1:
            errors.append(
                FieldError(
                    f"{path}.values",
                    "Invalid",
                    f"operator {op} needs exactly one value",
                    tuple(values),
                )
            )
        for i, value in enumerate(values):
            number = parse_int64(value)
            if number is None:
                errors.append(
                    FieldError(
                        f"{path}.values[{i}]",
                        "Invalid",
                        f"operator {op} needs a base-10 integer in the int64 range",
                        value,
                    )
                )
            else:
                bound = number

    for i, value in enumerate(values):
        if not _is_label_value(value):
            detail = (
                f"must be a valid label value: at most {_LABEL_NAME_MAX} characters of "
                "alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric"
            )
            if op in (_Op.GT, _Op.LT):
                detail += f", so an operator {op} bound cannot be negative or start with '+'"
            errors.append(FieldError(f"{path}.values[{i}]", "Invalid", detail, value))

    if len(errors) > found:
        return None
    kept = frozenset(values) if op in (_Op.IN, _Op.NOT_IN) else frozenset()
    return LabelRequirement(key, op, kept, bound)


def _raise_field_errors(what: str, errors: Sequence[FieldError]) -> None:
    if errors:
        details = "; ".join(str(e) for e in errors)
        raise SelectorError(f"invalid {what}: {details}", errors=errors)


# --------------------------------------------------------------------------------------
# Columnar node labels
# --------------------------------------------------------------------------------------


class _LabelColumn:
    """One label key over all rows: a value code per row (-1 = label absent) and its int64 parse."""

    __slots__ = ("code_of", "codes", "int_valid", "ints", "value_ints")

    def __init__(self, capacity: int) -> None:
        self.codes = np.full(capacity, -1, dtype=np.int32)
        self.ints = np.zeros(capacity, dtype=np.int64)
        self.int_valid = np.zeros(capacity, dtype=np.bool_)
        # Per-key value dictionary. Codes are never reused, so a value that no row
        # carries any more keeps its code.
        self.code_of: dict[str, int] = {}
        self.value_ints: list[int | None] = []

    def grow(self, capacity: int) -> None:
        size = len(self.codes)
        codes = np.full(capacity, -1, dtype=np.int32)
        codes[:size] = self.codes
        ints = np.zeros(capacity, dtype=np.int64)
        ints[:size] = self.ints
        int_valid = np.zeros(capacity, dtype=np.bool_)
        int_valid[:size] = self.int_valid
        self.codes, self.ints, self.int_valid = codes, ints, int_valid

    def set(self, row: int, value: str | None) -> None:
        if value is None:
            self.codes[row] = -1
            self.ints[row] = 0
            self.int_valid[row] = False
            return
        code = self.code_of.get(value)
        if code is None:
            code = len(self.value_ints)
            self.code_of[value] = code
            self.value_ints.append(parse_int64(value))
        number = self.value_ints[code]
        self.codes[row] = code
        self.ints[row] = 0 if number is None else number
        self.int_valid[row] = number is not None


class NodeLabelTable:
    """Labels and names of many nodes, stored by column for vectorised selector matching.

    Every label key has an int32 column of value codes (-1 where a node lacks the
    label) and an int64 column of parsed values with a validity mask for `Gt` /
    `Lt`. Rows are assigned in `add` order and never move. Arrays grow by doubling,
    so `add` costs amortised O(number of the node's labels).

    `version` increases on every change, so callers can cache masks per
    `(compiled selector, table.version)`.
    """

    def __init__(self, names: Sequence[str] = (), labels: Sequence[Mapping[str, str]] = ()) -> None:
        """Create a table of nodes `names[i]` with labels `labels[i]` (no labels if omitted).

        Raises:
            ValueError: `labels` is given with a length other than `len(names)`, or a
                name repeats.
        """
        if labels and len(labels) != len(names):
            raise ValueError(
                f"NodeLabelTable got {len(names)} names but {len(labels)} label maps. "
                "Pass one label map per name, or none at all"
            )
        self._size = 0
        self._capacity = 0
        self._version = 0
        self._names: npt.NDArray[np.object_] = np.empty(0, dtype=object)
        self._named: BoolArray = np.zeros(0, dtype=np.bool_)
        self._labels: list[Mapping[str, str]] = []
        self._row_by_name: dict[str, int] = {}
        self._columns: dict[str, _LabelColumn] = {}
        self._reserve(len(names))
        for i, name in enumerate(names):
            self.add(name, labels[i] if labels else {})

    def __len__(self) -> int:
        return self._size

    @property
    def version(self) -> int:
        """Change counter, increased by `add` and by every `set_labels` that changes labels."""
        return self._version

    @property
    def names(self) -> npt.NDArray[np.object_]:
        """Node names by row, as a read-only view."""
        view = self._names[: self._size]
        view.flags.writeable = False
        return view

    @property
    def label_keys(self) -> tuple[str, ...]:
        """Every label key that any row carries or carried."""
        return tuple(self._columns)

    def row_of(self, name: str) -> int:
        """Return the row of the node called `name`.

        Raises:
            KeyError: No node of that name was added.
        """
        try:
            return self._row_by_name[name]
        except KeyError:
            raise KeyError(f"node {name!r} is not in the label table") from None

    def labels_of(self, row: int) -> Mapping[str, str]:
        """Return the labels of `row` as a read-only mapping."""
        self._check_row(row)
        return MappingProxyType(dict(self._labels[row]))

    def add(self, name: str, labels: Mapping[str, str]) -> int:
        """Append a node and return its row.

        Raises:
            ValueError: A node called `name` is already in the table.
        """
        if name in self._row_by_name:
            raise ValueError(
                f"node {name!r} is already in the label table at row {self._row_by_name[name]}. "
                "Use set_labels to change its labels"
            )
        self._reserve(self._size + 1)
        row = self._size
        self._size += 1
        self._names[row] = name
        self._named[row] = name != ""
        self._row_by_name[name] = row
        copied = dict(labels)
        self._labels.append(copied)
        for key, value in copied.items():
            self._column(key).set(row, value)
        self._version += 1
        return row

    def set_labels(self, row: int, labels: Mapping[str, str]) -> None:
        """Replace every label of `row`, writing only the columns of changed keys.

        Raises:
            IndexError: `row` is not a row of the table.
        """
        self._check_row(row)
        old = self._labels[row]
        new = dict(labels)
        if new == old:
            return
        for key in old.keys() - new.keys():
            self._columns[key].set(row, None)
        for key, value in new.items():
            if old.get(key) != value:
                self._column(key).set(row, value)
        self._labels[row] = new
        self._version += 1

    def requirement_mask(self, requirement: LabelRequirement) -> BoolArray:
        """Evaluate one label requirement on every row."""
        size = self._size
        op = requirement.operator
        column = self._columns.get(requirement.key)
        if column is None:
            # No node carries the key, so only the operators satisfied by absence hold.
            return np.full(size, op in (_Op.NOT_IN, _Op.DOES_NOT_EXIST), dtype=np.bool_)

        codes = column.codes[:size]
        if op is _Op.EXISTS:
            return codes >= 0
        if op is _Op.DOES_NOT_EXIST:
            return codes < 0
        if op is _Op.GT:
            return column.int_valid[:size] & (column.ints[:size] > requirement.bound)
        if op is _Op.LT:
            return column.int_valid[:size] & (column.ints[:size] < requirement.bound)

        wanted = [column.code_of[v] for v in requirement.values if v in column.code_of]
        if not wanted:
            hits = np.zeros(size, dtype=np.bool_)
        elif len(wanted) == 1:
            hits = codes == wanted[0]
        else:
            hits = np.isin(codes, np.asarray(wanted, dtype=codes.dtype))
        # Absent labels have code -1, which is never wanted, so NotIn holds for them.
        return hits if op is _Op.IN else ~hits

    def name_mask(self, requirement: FieldRequirement) -> BoolArray:
        """Evaluate a `metadata.name` requirement on every row.

        Raises:
            ValueError: The requirement is on another field.
        """
        if requirement.field != NODE_NAME_FIELD:
            raise ValueError(
                f"NodeLabelTable can only match field {NODE_NAME_FIELD!r}, "
                f"not {requirement.field!r}"
            )
        hits = np.zeros(self._size, dtype=np.bool_)
        row = self._row_by_name.get(requirement.value)
        if row is not None:
            hits[row] = True
        return ~hits if requirement.negate else hits

    def named_mask(self) -> BoolArray:
        """Return which rows have a non-empty name (a read-only view)."""
        view = self._named[: self._size]
        view.flags.writeable = False
        return view

    def _check_row(self, row: int) -> None:
        if not 0 <= row < self._size:
            raise IndexError(f"row {row} is outside the label table of {self._size} nodes")

    def _column(self, key: str) -> _LabelColumn:
        column = self._columns.get(key)
        if column is None:
            column = _LabelColumn(self._capacity)
            self._columns[key] = column
        return column

    def _reserve(self, needed: int) -> None:
        if needed <= self._capacity:
            return
        capacity = max(16, 2 * self._capacity, needed)
        names = np.empty(capacity, dtype=object)
        names[: self._size] = self._names[: self._size]
        named = np.zeros(capacity, dtype=np.bool_)
        named[: self._size] = self._named[: self._size]
        self._names, self._named = names, named
        for column in self._columns.values():
            column.grow(capacity)
        self._capacity = capacity


# --------------------------------------------------------------------------------------
# Node selectors
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _CompiledTerm:
    expressions: tuple[LabelRequirement, ...]
    fields: tuple[FieldRequirement, ...]

    def matches(self, labels: Mapping[str, str], name: str) -> bool:
        if not all(r.matches(labels) for r in self.expressions):
            return False
        # A nameless node has no metadata.name field, and Kubernetes then skips matchFields.
        if name:
            return all(f.matches_value(name) for f in self.fields)
        return True


@dataclass(frozen=True, eq=False)
class CompiledNodeSelector:
    """A validated node selector, ready to match nodes.

    Instances are immutable and compare and hash by identity.

    Attributes:
        terms: The non-empty, valid terms in selector order, or None for a
            `None` selector, which matches every node.
        errors: The problems of the terms that a lazy compilation left out
            (always empty for a strict one).
    """

    terms: tuple[_CompiledTerm, ...] | None
    errors: tuple[FieldError, ...] = ()

    @property
    def matches_all(self) -> bool:
        """Whether the selector was `None` and so matches every node."""
        return self.terms is None

    def matches(self, labels: Mapping[str, str], name: str) -> bool:
        """Evaluate the selector on one node's labels and name."""
        if self.terms is None:
            return True
        return any(term.matches(labels, name) for term in self.terms)

    def mask(self, table: NodeLabelTable) -> BoolArray:
        """Evaluate the selector on every row of `table` into a new bool array."""
        size = len(table)
        if self.terms is None:
            return np.ones(size, dtype=np.bool_)
        result = np.zeros(size, dtype=np.bool_)
        for term in self.terms:
            term_mask = np.ones(size, dtype=np.bool_)
            for requirement in term.expressions:
                term_mask &= table.requirement_mask(requirement)
            if term.fields:
                fields_mask = np.ones(size, dtype=np.bool_)
                for field_requirement in term.fields:
                    fields_mask &= table.name_mask(field_requirement)
                # A nameless node has no metadata.name field, and Kubernetes then skips matchFields.
                term_mask &= fields_mask | ~table.named_mask()
            result |= term_mask
        return result


def _build_field_requirement(
    key: str, operator: str, values: Sequence[str], path: str, errors: list[FieldError]
) -> FieldRequirement | None:
    found = len(errors)
    if operator not in _NODE_FIELD_OPERATORS:
        supported = ", ".join(str(op) for op in _NODE_FIELD_OPERATORS)
        errors.append(
            FieldError(
                f"{path}.operator", "NotSupported", f"supported values: {supported}", operator
            )
        )
    elif len(values) != 1:
        errors.append(
            FieldError(
                f"{path}.values",
                "Invalid",
                f"operator {operator} needs exactly one value",
                tuple(values),
            )
        )
    if key != NODE_NAME_FIELD:
        errors.append(
            FieldError(f"{path}.key", "NotSupported", f"supported values: {NODE_NAME_FIELD}", key)
        )
    if len(errors) > found:
        return None
    return FieldRequirement(NODE_NAME_FIELD, values[0], negate=operator == _Op.NOT_IN)


def compile_node_selector(sel: NodeSelector | None, *, lazy: bool = False) -> CompiledNodeSelector:
    """Validate and convert a node selector, as kube-scheduler does once per cycle.

    The strict form (`nodeaffinity.NewNodeSelector`, used by the DynamicResources
    plugin for `suitableNodes` and `availableOnNodes`) rejects the whole selector
    when any term is invalid. With `lazy=True` it follows
    `nodeaffinity.NewLazyErrorNodeSelector`, which the NodeAffinity plugin uses for
    a pod's required node affinity: an invalid term matches no node, the other
    terms still apply, and the problems are kept in `errors`.

    Raises:
        SelectorError: The selector cannot be converted and `lazy` is False.
            `errors` lists every problem, each with the path of the term and
            requirement.
    """
    if sel is None:
        return CompiledNodeSelector(terms=None)

    errors: list[FieldError] = []
    terms: list[_CompiledTerm] = []
    for t, term in enumerate(sel.node_selector_terms):
        if not term.match_expressions and not term.match_fields:
            continue
        term_path = f"nodeSelectorTerms[{t}]"
        found = len(errors)
        expressions = [
            _build_label_requirement(
                r.key,
                r.operator,
                r.values,
                f"{term_path}.matchExpressions[{i}]",
                _NODE_SELECTOR_OPERATORS,
                errors,
            )
            for i, r in enumerate(term.match_expressions)
        ]
        fields = [
            _build_field_requirement(
                r.key, r.operator, r.values, f"{term_path}.matchFields[{i}]", errors
            )
            for i, r in enumerate(term.match_fields)
        ]
        if len(errors) > found:
            continue
        terms.append(
            _CompiledTerm(
                tuple(r for r in expressions if r is not None),
                tuple(f for f in fields if f is not None),
            )
        )

    if lazy:
        return CompiledNodeSelector(terms=tuple(terms), errors=tuple(errors))
    _raise_field_errors("node selector", errors)
    return CompiledNodeSelector(terms=tuple(terms))


@functools.lru_cache(maxsize=4096)
def compile_cached(sel: NodeSelector | None, *, lazy: bool = False) -> CompiledNodeSelector:
    """Compile `sel` through an LRU cache keyed by the (frozen, hashable) selector itself.

    Equal selectors share one compiled selector. Selectors that fail to compile
    are not cached and raise `SelectorError` again on every call.
    """
    return compile_node_selector(sel, lazy=lazy)


def match_node_selector(sel: NodeSelector | None, labels: Mapping[str, str], name: str) -> bool:
    """Evaluate `sel` on one node.

    Raises:
        SelectorError: The selector cannot be converted.
    """
    return compile_cached(sel).matches(labels, name)


# --------------------------------------------------------------------------------------
# Label selectors for list and watch
# --------------------------------------------------------------------------------------


class _RequirementLike(Protocol):
    @property
    def key(self) -> str: ...

    @property
    def operator(self) -> str: ...

    @property
    def values(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class LabelSelector:
    """Requirements on labels that must all hold; no requirements matches everything."""

    requirements: tuple[LabelRequirement, ...] = ()

    @property
    def empty(self) -> bool:
        """Whether the selector has no requirements and so matches every object."""
        return not self.requirements

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Evaluate the selector on one object's labels."""
        return all(r.matches(labels) for r in self.requirements)

    def mask(self, table: NodeLabelTable) -> BoolArray:
        """Evaluate the selector on every row of `table` into a new bool array."""
        result = np.ones(len(table), dtype=np.bool_)
        for requirement in self.requirements:
            result &= table.requirement_mask(requirement)
        return result

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    @classmethod
    def from_api(
        cls,
        match_labels: Mapping[str, str] | None = None,
        match_expressions: Iterable[Mapping[str, Any] | _RequirementLike] | None = None,
    ) -> LabelSelector:
        """Convert a `metav1.LabelSelector` as `metav1.LabelSelectorAsSelector` does.

        `match_expressions` entries are JSON-style mappings (`key`, `operator`,
        `values`) or objects with those attributes. Both arguments empty gives a
        selector that matches everything. A nil `metav1.LabelSelector` matches
        nothing in Kubernetes, and callers must handle that case themselves.

        Raises:
            SelectorError: An operator other than In, NotIn, Exists or
                DoesNotExist, an invalid key or value, or a wrong number of values.
        """
        errors: list[FieldError] = []
        requirements: list[LabelRequirement | None] = []
        for key, value in (match_labels or {}).items():
            requirements.append(
                _build_label_requirement(
                    key, _Op.IN, (value,), f"matchLabels[{key}]", (_Op.IN,), errors
                )
            )
        for i, expression in enumerate(match_expressions or ()):
            if isinstance(expression, Mapping):
                key = str(expression.get("key", ""))
                operator = str(expression.get("operator", ""))
                values: Sequence[str] = tuple(expression.get("values") or ())
            else:
                key, operator, values = expression.key, expression.operator, expression.values
            requirements.append(
                _build_label_requirement(
                    key,
                    operator,
                    values,
                    f"matchExpressions[{i}]",
                    _LABEL_SELECTOR_OPERATORS,
                    errors,
                )
            )
        _raise_field_errors("label selector", errors)
        return cls(tuple(r for r in requirements if r is not None))


@dataclass(frozen=True)
class _Token:
    kind: str  # "key" for identifiers and values, "end" at the end, else the symbol itself
    text: str
    position: int


_WHITESPACE = " \t\r\n"
_SYMBOLS = "=!(),<>"
_TWO_CHAR_SYMBOLS = ("!=", "==")


def _tokenize_label_selector(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char in _WHITESPACE:
            i += 1
        elif text.startswith(_TWO_CHAR_SYMBOLS, i):
            tokens.append(_Token(text[i : i + 2], text[i : i + 2], i))
            i += 2
        elif char in _SYMBOLS:
            tokens.append(_Token(char, char, i))
            i += 1
        else:
            start = i
            while i < len(text) and text[i] not in _WHITESPACE and text[i] not in _SYMBOLS:
                i += 1
            tokens.append(_Token("key", text[start:i], start))
    tokens.append(_Token("end", "", len(text)))
    return tokens


class _LabelSelectorParser:
    """Recursive-descent parser of the kubectl label selector grammar.

    selector    := "" | requirement ("," requirement)*
    requirement := "!" KEY | KEY | KEY ("in" | "notin") "(" values ")"
                 | KEY ("=" | "==" | "!=" | ">" | "<") [VALUE]
    values      := [VALUE] ("," [VALUE])*          (an omitted value is "")
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize_label_selector(text)
        self.index = 0
        self.requirement_count = 0

    def parse(self) -> LabelSelector:
        requirements: list[LabelRequirement] = []
        if self._peek().kind == "end":
            return LabelSelector(())
        while True:
            requirements.append(self._requirement())
            token = self._next()
            if token.kind == "end":
                return LabelSelector(tuple(requirements))
            if token.kind != ",":
                raise self._syntax_error(token, "',' or the end of the selector")
            if self._peek().kind not in ("key", "!"):
                raise self._syntax_error(self._peek(), "a label key or '!' after ','")

    def _peek(self) -> _Token:
        return self.tokens[self.index]

    def _next(self) -> _Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def _syntax_error(self, token: _Token, expected: str) -> SelectorError:
        found = "the end of the selector" if token.kind == "end" else repr(token.text)
        return SelectorError(
            f"invalid label selector {self.text!r}: at position {token.position}: "
            f"found {found}, expected {expected}",
            position=token.position,
        )

    def _requirement(self) -> LabelRequirement:
        token = self._next()
        negated = token.kind == "!"
        if negated:
            token = self._next()
        if token.kind != "key":
            raise self._syntax_error(token, "a label key")
        key_token = token

        operator, values = self._operator_and_values(negated)
        errors: list[FieldError] = []
        path = f"requirement[{self.requirement_count}]"
        self.requirement_count += 1
        requirement = _build_label_requirement(
            key_token.text, operator, values, path, _NODE_SELECTOR_OPERATORS, errors
        )
        if requirement is None:
            details = "; ".join(str(e) for e in errors)
            raise SelectorError(
                f"invalid label selector {self.text!r}: "
                f"at position {key_token.position}: {details}",
                errors=errors,
                position=key_token.position,
            )
        return requirement

    def _operator_and_values(self, negated: bool) -> tuple[NodeSelectorOperator, list[str]]:
        # "!key" takes no operator or value, so the caller next expects ',' or the end.
        if negated:
            return _Op.DOES_NOT_EXIST, []
        if self._peek().kind in (",", "end"):
            return _Op.EXISTS, []
        token = self._next()
        if token.kind == "key" and token.text == "in":
            return _Op.IN, self._value_set()
        if token.kind == "key" and token.text == "notin":
            return _Op.NOT_IN, self._value_set()
        if token.kind in ("=", "=="):
            return _Op.IN, [self._exact_value()]
        if token.kind == "!=":
            return _Op.NOT_IN, [self._exact_value()]
        if token.kind == ">":
            return _Op.GT, [self._exact_value()]
        if token.kind == "<":
            return _Op.LT, [self._exact_value()]
        raise self._syntax_error(token, "one of in, notin, =, ==, !=, >, <")

    def _value_set(self) -> list[str]:
        token = self._next()
        if token.kind != "(":
            raise self._syntax_error(token, "'('")
        values: list[str] = []
        expect_value = True
        while True:
            token = self._next()
            if token.kind == ")":
                if expect_value:
                    values.append("")
                return values
            if token.kind == ",":
                if expect_value:
                    values.append("")
                expect_value = True
            elif token.kind == "key" and expect_value:
                values.append(token.text)
                expect_value = False
            else:
                raise self._syntax_error(token, "a value, ',' or ')'")

    def _exact_value(self) -> str:
        if self._peek().kind in (",", "end"):
            return ""
        token = self._next()
        if token.kind != "key":
            raise self._syntax_error(token, "a value")
        return token.text


def parse_label_selector(text: str) -> LabelSelector:
    """Parse a label selector in the kubectl grammar, e.g. `"a=b,c!=d,e in (x,y),!f,g"`.

    Commas separate requirements that must all hold; whitespace between tokens is
    ignored. `in` / `notin` take a parenthesised value list, `=` / `==` / `!=` /
    `>` / `<` one value (which may be empty), a bare key means the label exists and
    `!key` that it does not. The empty string matches everything.

    Raises:
        SelectorError: The text does not parse (`position` is the offset of the
            offending token) or a key or value is invalid.
    """
    return _LabelSelectorParser(text).parse()


# --------------------------------------------------------------------------------------
# Field selectors for list and watch
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSelector:
    """Requirements on `metadata.name` / `metadata.namespace` that must all hold."""

    requirements: tuple[FieldRequirement, ...] = ()

    @property
    def empty(self) -> bool:
        """Whether the selector has no requirements and so matches every object."""
        return not self.requirements

    def matches(self, obj: TopLevelObject) -> bool:
        """Evaluate the selector on one object (the namespace of a cluster-scoped object is "")."""
        for requirement in self.requirements:
            if not requirement.matches_value(field_value(obj, requirement.field)):
                return False
        return True

    def equality_value(self, field: str) -> str | None:
        """Return the value that `field=value` in this selector requires, or None."""
        for requirement in self.requirements:
            if requirement.field == field and not requirement.negate:
                return requirement.value
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def field_value(obj: TopLevelObject, field: str) -> str:
    """Return an object's value of a supported field selector field ("" when it has none)."""
    if field == "metadata.name":
        return obj.metadata.name
    if field == "metadata.namespace":
        return obj.metadata.namespace
    if field == "spec.nodeName":
        return str(getattr(getattr(obj, "spec", None), "node_name", "") or "")
    return str(getattr(getattr(obj, "status", None), "phase", "") or "")


def _split_field_term(term: str) -> tuple[str, str, bool] | None:
    """Split `field<op>value`, trying `!=`, then `==`, then `=`, each of which must occur once."""
    for symbol, negate in (("!=", True), ("==", False), ("=", False)):
        pieces = term.split(symbol)
        if len(pieces) == 2:
            return pieces[0], pieces[1], negate
    return None


def parse_field_selector(text: str) -> FieldSelector:
    """Parse a field selector such as `"metadata.name=a,metadata.namespace!=kube-system"`.

    Commas separate terms that must all hold; empty terms are skipped. Each term
    is `field=value`, `field==value` or `field!=value`, split as
    `fields.ParseSelector` does: whitespace is not trimmed and the value may be
    empty. Only `metadata.name` and `metadata.namespace` are supported, the
    fields that the API server accepts for every kind.

    Raises:
        SelectorError: A term has no operator or more than one (`position` is the
            term's offset), or names an unsupported field.
    """
    requirements: list[FieldRequirement] = []
    position = 0
    for part in text.split(","):
        start = position
        position += len(part) + 1
        if not part:
            continue
        term = _split_field_term(part)
        if term is None:
            raise SelectorError(
                f"invalid field selector {text!r}: at position {start}: cannot parse {part!r}, "
                "expected field=value, field==value or field!=value",
                position=start,
            )
        field, value, negate = term
        if field not in SUPPORTED_FIELD_SELECTOR_FIELDS:
            supported = ", ".join(SUPPORTED_FIELD_SELECTOR_FIELDS)
            raise SelectorError(
                f"invalid field selector {text!r}: field {field!r} is not supported. "
                f"Supported fields: {supported}",
                errors=[
                    FieldError(
                        "fieldSelector", "NotSupported", f"supported values: {supported}", field
                    )
                ],
                position=start,
            )
        requirements.append(FieldRequirement(field, value, negate))
    return FieldSelector(tuple(requirements))
