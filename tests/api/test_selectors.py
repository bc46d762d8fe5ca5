"""Node, label and field selectors.

Node-selector cases run three ways: the compiled selector's scalar `matches`, its
vectorised `mask` over a one-row `NodeLabelTable`, and `reference_match` below, a
plain transcription of the Kubernetes rules that shares no code with `sim`.
Hypothesis then checks that the three agree on random tables and selectors.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.api.selectors import (
    INT64_MAX,
    INT64_MIN,
    CompiledNodeSelector,
    LabelSelector,
    NodeLabelTable,
    SelectorError,
    compile_cached,
    compile_node_selector,
    match_node_selector,
    parse_field_selector,
    parse_int64,
    parse_label_selector,
)
from sim.api.types import (
    Namespace,
    Node,
    NodeSelector,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    ObjectMeta,
    Pod,
)

# --------------------------------------------------------------------------------------
# Builders and the reference implementation
# --------------------------------------------------------------------------------------


def req(key: str, operator: str, *values: str) -> NodeSelectorRequirement:
    return NodeSelectorRequirement(key=key, operator=operator, values=values)


def term(
    *expressions: NodeSelectorRequirement, fields: Sequence[NodeSelectorRequirement] = ()
) -> NodeSelectorTerm:
    return NodeSelectorTerm(match_expressions=expressions, match_fields=tuple(fields))


def selector(*terms: NodeSelectorTerm) -> NodeSelector:
    return NodeSelector(node_selector_terms=terms)


def reference_int64(text: str) -> int | None:
    """Go strconv.ParseInt(text, 10, 64): optional sign, ASCII digits, int64 range."""
    body = text
    sign = 1
    if body[:1] in ("+", "-"):
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if body == "":
        return None
    for char in body:
        if char not in "0123456789":
            return None
    value = sign * int(body)
    if value < -(2**63) or value > 2**63 - 1:
        return None
    return value


def reference_requirement(r: NodeSelectorRequirement, labels: Mapping[str, str]) -> bool:
    has = r.key in labels
    value = labels.get(r.key)
    if r.operator == "In":
        return has and value in r.values
    if r.operator == "NotIn":
        return not has or value not in r.values
    if r.operator == "Exists":
        return has
    if r.operator == "DoesNotExist":
        return not has
    if not has or value is None:
        return False
    label_number = reference_int64(value)
    if label_number is None or len(r.values) != 1:
        return False
    bound = reference_int64(r.values[0])
    if bound is None:
        return False
    if r.operator == "Gt":
        return label_number > bound
    return label_number < bound


def reference_term(t: NodeSelectorTerm, labels: Mapping[str, str], name: str) -> bool:
    for r in t.match_expressions:
        if not reference_requirement(r, labels):
            return False
    if t.match_fields and name != "":
        for r in t.match_fields:
            if r.operator == "In" and name != r.values[0]:
                return False
            if r.operator == "NotIn" and name == r.values[0]:
                return False
    return True


def reference_match(sel: NodeSelector | None, labels: Mapping[str, str], name: str) -> bool:
    if sel is None:
        return True
    for t in sel.node_selector_terms:
        if not t.match_expressions and not t.match_fields:
            continue
        if reference_term(t, labels, name):
            return True
    return False


# --------------------------------------------------------------------------------------
# Node selector matching rules
# --------------------------------------------------------------------------------------

ZONE_A = req("zone", "In", "a")
INT64_MAX_TEXT = str(INT64_MAX)
INT64_OVERFLOW_TEXT = str(INT64_MAX + 1)

MATCH_CASES = [
    pytest.param(None, {}, "n1", True, id="none-selector-matches-all"),
    pytest.param(selector(), {"zone": "a"}, "n1", False, id="no-terms-matches-nothing"),
    pytest.param(selector(term(), term()), {"zone": "a"}, "n1", False, id="all-empty-terms"),
    pytest.param(
        selector(term(), term(ZONE_A)), {"zone": "a"}, "n1", True, id="empty-term-dropped"
    ),
    pytest.param(
        selector(term(ZONE_A), term(req("zone", "In", "b"))),
        {"zone": "b"},
        "n1",
        True,
        id="terms-ored",
    ),
    pytest.param(
        selector(term(ZONE_A, req("gpu", "Exists"))), {"zone": "a"}, "n1", False, id="reqs-anded"
    ),
    pytest.param(
        selector(term(ZONE_A, req("gpu", "Exists"))),
        {"zone": "a", "gpu": ""},
        "n1",
        True,
        id="reqs-anded-all-hold",
    ),
    pytest.param(selector(term(ZONE_A)), {"zone": "a"}, "n1", True, id="in-listed"),
    pytest.param(
        selector(term(req("zone", "In", "a", "b"))), {"zone": "b"}, "n1", True, id="in-second"
    ),
    pytest.param(selector(term(ZONE_A)), {"zone": "c"}, "n1", False, id="in-unlisted"),
    pytest.param(selector(term(ZONE_A)), {}, "n1", False, id="in-absent-label"),
    pytest.param(
        selector(term(req("zone", "In", ""))), {"zone": ""}, "n1", True, id="in-empty-value"
    ),
    pytest.param(
        selector(term(req("zone", "NotIn", "a"))), {}, "n1", True, id="notin-absent-label-true"
    ),
    pytest.param(
        selector(term(req("zone", "NotIn", "a"))), {"zone": "b"}, "n1", True, id="notin-unlisted"
    ),
    pytest.param(
        selector(term(req("zone", "NotIn", "a", "b"))),
        {"zone": "b"},
        "n1",
        False,
        id="notin-listed",
    ),
    pytest.param(selector(term(req("gpu", "Exists"))), {"gpu": "x"}, "n1", True, id="exists"),
    pytest.param(selector(term(req("gpu", "Exists"))), {}, "n1", False, id="exists-absent"),
    pytest.param(
        selector(term(req("gpu", "DoesNotExist"))), {}, "n1", True, id="doesnotexist-absent"
    ),
    pytest.param(
        selector(term(req("gpu", "DoesNotExist"))),
        {"gpu": ""},
        "n1",
        False,
        id="doesnotexist-present",
    ),
    pytest.param(selector(term(req("c", "Gt", "4"))), {"c": "5"}, "n1", True, id="gt-greater"),
    pytest.param(selector(term(req("c", "Gt", "5"))), {"c": "5"}, "n1", False, id="gt-equal"),
    pytest.param(selector(term(req("c", "Gt", "6"))), {"c": "5"}, "n1", False, id="gt-less"),
    pytest.param(selector(term(req("c", "Lt", "6"))), {"c": "5"}, "n1", True, id="lt-less"),
    pytest.param(selector(term(req("c", "Lt", "5"))), {"c": "5"}, "n1", False, id="lt-equal"),
    pytest.param(selector(term(req("c", "Gt", "0"))), {}, "n1", False, id="gt-absent-label"),
    pytest.param(selector(term(req("c", "Lt", "9"))), {}, "n1", False, id="lt-absent-label"),
    pytest.param(
        selector(term(req("c", "Gt", "0"))), {"c": "abc"}, "n1", False, id="gt-label-not-integer"
    ),
    pytest.param(
        selector(term(req("c", "Lt", "9"))), {"c": "abc"}, "n1", False, id="lt-label-not-integer"
    ),
    pytest.param(selector(term(req("c", "Gt", "0"))), {"c": ""}, "n1", False, id="gt-label-empty"),
    pytest.param(
        selector(term(req("c", "Gt", "4"))), {"c": "5.0"}, "n1", False, id="gt-label-decimal"
    ),
    pytest.param(
        selector(term(req("c", "Gt", "4"))), {"c": " 5"}, "n1", False, id="gt-label-space"
    ),
    pytest.param(
        selector(term(req("c", "Gt", "4"))), {"c": "5 "}, "n1", False, id="gt-label-trailing-space"
    ),
    pytest.param(
        selector(term(req("c", "Gt", "999"))),
        {"c": "1_000"},
        "n1",
        False,
        id="gt-label-underscore",
    ),
    pytest.param(
        selector(term(req("c", "Gt", "4"))),
        {"c": "\u0665"},
        "n1",
        False,
        id="gt-label-arabic-digit",
    ),
    pytest.param(selector(term(req("c", "Gt", "4"))), {"c": "+5"}, "n1", True, id="gt-label-plus"),
    pytest.param(selector(term(req("c", "Lt", "0"))), {"c": "-3"}, "n1", True, id="lt-label-minus"),
    pytest.param(
        selector(term(req("c", "Gt", "6"))), {"c": "007"}, "n1", True, id="gt-label-leading-zeros"
    ),
    pytest.param(
        selector(term(req("c", "Gt", "0"))),
        {"c": INT64_OVERFLOW_TEXT},
        "n1",
        False,
        id="gt-label-int64-overflow",
    ),
    pytest.param(
        selector(term(req("c", "Lt", "0"))),
        {"c": str(INT64_MIN - 1)},
        "n1",
        False,
        id="lt-label-int64-underflow",
    ),
    pytest.param(
        selector(term(req("c", "Gt", str(INT64_MAX - 1)))),
        {"c": INT64_MAX_TEXT},
        "n1",
        True,
        id="gt-label-int64-max",
    ),
    pytest.param(
        selector(term(req("c", "Lt", "0"))),
        {"c": str(INT64_MIN)},
        "n1",
        True,
        id="lt-label-int64-min",
    ),
    pytest.param(
        selector(term(req("c", "Gt", INT64_MAX_TEXT))),
        {"c": INT64_MAX_TEXT},
        "n1",
        False,
        id="gt-bound-int64-max",
    ),
    pytest.param(
        selector(term(fields=[req("metadata.name", "In", "n1")])),
        {},
        "n1",
        True,
        id="fields-in-match",
    ),
    pytest.param(
        selector(term(fields=[req("metadata.name", "In", "n1")])),
        {},
        "n2",
        False,
        id="fields-in-other-node",
    ),
    pytest.param(
        selector(term(fields=[req("metadata.name", "NotIn", "n1")])),
        {},
        "n1",
        False,
        id="fields-notin-named-node",
    ),
    pytest.param(
        selector(term(fields=[req("metadata.name", "NotIn", "n1")])),
        {},
        "n2",
        True,
        id="fields-notin-other-node",
    ),
    pytest.param(
        selector(term(ZONE_A, fields=[req("metadata.name", "In", "n1")])),
        {"zone": "b"},
        "n1",
        False,
        id="fields-and-labels-anded",
    ),
    pytest.param(
        selector(term(ZONE_A, fields=[req("metadata.name", "In", "n1")])),
        {"zone": "a"},
        "n1",
        True,
        id="fields-and-labels-both-hold",
    ),
    pytest.param(
        selector(term(fields=[req("metadata.name", "In", "n1")])),
        {},
        "",
        True,
        id="fields-skipped-for-nameless-node",
    ),
    pytest.param(
        selector(term(ZONE_A, fields=[req("metadata.name", "In", "n1")])),
        {"zone": "b"},
        "",
        False,
        id="nameless-node-labels-still-apply",
    ),
]


@pytest.mark.parametrize(("sel", "labels", "name", "expected"), MATCH_CASES)
def test_node_selector_matches(
    sel: NodeSelector | None, labels: dict[str, str], name: str, expected: bool
) -> None:
    compiled = compile_node_selector(sel)
    table = NodeLabelTable([name], [labels])

    assert reference_match(sel, labels, name) is expected
    assert compiled.matches(labels, name) is expected
    assert compiled.mask(table).tolist() == [expected]
    assert match_node_selector(sel, labels, name) is expected


# --------------------------------------------------------------------------------------
# Node selector compile errors
# --------------------------------------------------------------------------------------

ERROR_CASES = [
    pytest.param(
        selector(term(req("zone", "Equals", "a"))),
        ["nodeSelectorTerms[0].matchExpressions[0].operator", "'Equals'", "In, NotIn, Exists"],
        id="unknown-operator",
    ),
    pytest.param(
        selector(term(req("zone", "in", "a"))),
        ["matchExpressions[0].operator", "'in'"],
        id="lowercase-operator",
    ),
    pytest.param(
        selector(term(req("zone", "In"))),
        ["matchExpressions[0].values", "operator In needs at least one value"],
        id="in-without-values",
    ),
    pytest.param(
        selector(term(req("zone", "NotIn"))),
        ["matchExpressions[0].values", "operator NotIn needs at least one value"],
        id="notin-without-values",
    ),
    pytest.param(
        selector(term(req("gpu", "Exists", "x"))),
        ["matchExpressions[0].values", "('x',)", "operator Exists takes no values"],
        id="exists-with-values",
    ),
    pytest.param(
        selector(term(req("gpu", "DoesNotExist", "x"))),
        ["operator DoesNotExist takes no values"],
        id="doesnotexist-with-values",
    ),
    pytest.param(
        selector(term(req("c", "Gt"))),
        ["matchExpressions[0].values", "operator Gt needs exactly one value"],
        id="gt-without-value",
    ),
    pytest.param(
        selector(term(req("c", "Lt", "1", "2"))),
        ["('1', '2')", "operator Lt needs exactly one value"],
        id="lt-two-values",
    ),
    pytest.param(
        selector(term(req("c", "Gt", "5.0"))),
        ["matchExpressions[0].values[0]", "'5.0'", "int64"],
        id="gt-decimal-bound",
    ),
    pytest.param(
        selector(term(req("c", "Gt", " 5"))),
        ["values[0]", "' 5'", "int64"],
        id="gt-space-bound",
    ),
    pytest.param(
        selector(term(req("c", "Lt", "abc"))),
        ["values[0]", "'abc'", "operator Lt needs a base-10 integer"],
        id="lt-word-bound",
    ),
    pytest.param(
        selector(term(req("c", "Gt", INT64_OVERFLOW_TEXT))),
        ["values[0]", INT64_OVERFLOW_TEXT, "int64 range"],
        id="gt-int64-overflow-bound",
    ),
    # labels.NewRequirement also requires every value to be a valid label value,
    # which a signed number is not.
    pytest.param(
        selector(term(req("c", "Lt", "-3"))),
        ["values[0]", "'-3'", "valid label value", "cannot be negative"],
        id="lt-negative-bound",
    ),
    pytest.param(
        selector(term(req("c", "Gt", "+5"))),
        ["values[0]", "'+5'", "valid label value"],
        id="gt-plus-bound",
    ),
    pytest.param(
        selector(term(req("zone", "In", "a b"))),
        ["values[0]", "'a b'", "valid label value"],
        id="in-invalid-value",
    ),
    pytest.param(
        selector(term(req("bad key", "Exists"))),
        ["matchExpressions[0].key", "'bad key'"],
        id="invalid-key",
    ),
    pytest.param(
        selector(term(req("Example.com/gpu", "Exists"))),
        ["matchExpressions[0].key", "lowercase DNS subdomain"],
        id="invalid-key-prefix",
    ),
    pytest.param(
        selector(term(fields=[req("metadata.namespace", "In", "x")])),
        ["nodeSelectorTerms[0].matchFields[0].key", "'metadata.namespace'", "metadata.name"],
        id="fields-other-key",
    ),
    pytest.param(
        selector(term(fields=[req("metadata.name", "Exists")])),
        ["matchFields[0].operator", "'Exists'", "supported values: In, NotIn"],
        id="fields-exists-operator",
    ),
    pytest.param(
        selector(term(fields=[req("metadata.name", "In", "n1", "n2")])),
        ["matchFields[0].values", "operator In needs exactly one value"],
        id="fields-two-values",
    ),
    pytest.param(
        selector(term(fields=[req("metadata.name", "NotIn")])),
        ["matchFields[0].values", "operator NotIn needs exactly one value"],
        id="fields-no-values",
    ),
    pytest.param(
        selector(term(ZONE_A), term(ZONE_A, ZONE_A, req("c", "Gt", "x"))),
        ["nodeSelectorTerms[1].matchExpressions[2].values[0]"],
        id="error-path-indexes",
    ),
    pytest.param(
        selector(term(), term(req("zone", "Foo"))),
        ["nodeSelectorTerms[1].matchExpressions[0].operator"],
        id="dropped-term-keeps-index",
    ),
]


@pytest.mark.parametrize(("sel", "fragments"), ERROR_CASES)
def test_compile_rejects_invalid_selector(sel: NodeSelector, fragments: list[str]) -> None:
    with pytest.raises(SelectorError) as caught:
        compile_node_selector(sel)

    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message
    assert caught.value.errors


def test_compile_reports_every_problem() -> None:
    sel = selector(
        term(req("zone", "Foo"), req("c", "Gt")),
        term(fields=[req("metadata.uid", "In", "x")]),
    )

    with pytest.raises(SelectorError) as caught:
        compile_node_selector(sel)

    paths = [error.path for error in caught.value.errors]
    assert paths == [
        "nodeSelectorTerms[0].matchExpressions[0].operator",
        "nodeSelectorTerms[0].matchExpressions[1].values",
        "nodeSelectorTerms[1].matchFields[0].key",
    ]


def test_error_in_unmatched_term_still_fails() -> None:
    # The scheduler rejects the whole selector even when another term would match.
    sel = selector(term(req("zone", "Exists")), term(req("c", "Gt", "x")))

    with pytest.raises(SelectorError):
        match_node_selector(sel, {"zone": "a"}, "n1")


def test_lazy_compile_drops_invalid_terms() -> None:
    # Pod required node affinity: an invalid term matches nothing, the others still apply.
    sel = selector(term(req("c", "Gt", "x")), term(ZONE_A), term(req("zone", "Foo")))

    compiled = compile_node_selector(sel, lazy=True)
    table = NodeLabelTable(["n0", "n1"], [{"zone": "a", "c": "5"}, {"c": "5"}])

    assert compiled.matches({"zone": "a"}, "n0")
    assert not compiled.matches({"c": "5"}, "n1")
    assert compiled.mask(table).tolist() == [True, False]
    assert [error.path for error in compiled.errors] == [
        "nodeSelectorTerms[0].matchExpressions[0].values[0]",
        "nodeSelectorTerms[2].matchExpressions[0].operator",
    ]


def test_lazy_compile_all_invalid_matches_nothing() -> None:
    compiled = compile_cached(selector(term(req("zone", "In"))), lazy=True)

    assert not compiled.matches({"zone": "a"}, "n0")
    assert compiled.terms == ()
    assert len(compiled.errors) == 1


def test_strict_compile_has_no_errors() -> None:
    assert compile_node_selector(selector(term(ZONE_A))).errors == ()


@pytest.mark.parametrize(
    "bound",
    ["0", "007", INT64_MAX_TEXT],
    ids=["zero", "leading-zeros", "int64-max"],
)
def test_compile_accepts_integer_bounds(bound: str) -> None:
    compiled = compile_node_selector(selector(term(req("c", "Gt", bound))))

    assert compiled.terms is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("42", 42),
        ("+5", 5),
        ("-3", -3),
        ("007", 7),
        ("-0", 0),
        (INT64_MAX_TEXT, INT64_MAX),
        (str(INT64_MIN), INT64_MIN),
        ("0" * 40 + "1", 1),
        (INT64_OVERFLOW_TEXT, None),
        (str(INT64_MIN - 1), None),
        ("9" * 5000, None),
        ("", None),
        ("+", None),
        ("-", None),
        ("+-1", None),
        (" 5", None),
        ("5 ", None),
        ("5\n", None),
        ("5.0", None),
        ("1e3", None),
        ("1_000", None),
        ("0x10", None),
        ("\u0665", None),
    ],
    ids=lambda v: repr(v)[:24] if isinstance(v, str) else None,
)
def test_parse_int64_follows_go(text: str, expected: int | None) -> None:
    assert parse_int64(text) == expected
    if len(text) < 100:
        assert reference_int64(text) == expected


# --------------------------------------------------------------------------------------
# Compiled selectors and the cache
# --------------------------------------------------------------------------------------


def test_node_selector_types_are_hashable() -> None:
    first = selector(term(ZONE_A, fields=[req("metadata.name", "In", "n1")]))
    second = NodeSelector.model_validate(
        {
            "nodeSelectorTerms": [
                {
                    "matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}],
                    "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}],
                }
            ]
        }
    )

    assert first == second
    assert hash(first) == hash(second)


def test_compile_cached_shares_equal_selectors() -> None:
    first = selector(term(req("zone", "In", "cached")))
    second = selector(term(req("zone", "In", "cached")))

    assert compile_cached(first) is compile_cached(second)
    assert compile_cached(None).matches_all


def test_compiled_selector_identity_and_immutability() -> None:
    sel = selector(term(ZONE_A))
    first = compile_node_selector(sel)
    second = compile_node_selector(sel)

    assert first != second
    assert len({first, second, first}) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.terms = None  # type: ignore[misc]


def test_compile_cached_does_not_cache_errors() -> None:
    sel = selector(term(req("zone", "Foo")))

    for _ in range(2):
        with pytest.raises(SelectorError):
            compile_cached(sel)


# --------------------------------------------------------------------------------------
# NodeLabelTable
# --------------------------------------------------------------------------------------


def test_table_add_and_row_of() -> None:
    table = NodeLabelTable(["n0", "n1"], [{"zone": "a"}, {}])

    row = table.add("n2", {"zone": "b"})

    assert row == 2
    assert len(table) == 3
    assert table.row_of("n1") == 1
    assert table.names.tolist() == ["n0", "n1", "n2"]
    assert dict(table.labels_of(2)) == {"zone": "b"}


def test_table_rejects_bad_input() -> None:
    table = NodeLabelTable(["n0"])

    with pytest.raises(ValueError, match="already in the label table"):
        table.add("n0", {})
    with pytest.raises(KeyError, match="'missing'"):
        table.row_of("missing")
    with pytest.raises(IndexError, match="row 5"):
        table.set_labels(5, {})
    with pytest.raises(ValueError, match="2 names but 1 label maps"):
        NodeLabelTable(["a", "b"], [{}])


def test_table_names_view_is_read_only() -> None:
    table = NodeLabelTable(["n0"])

    with pytest.raises(ValueError, match="read-only"):
        table.names[0] = "other"


def test_table_version_bumps_on_change_only() -> None:
    table = NodeLabelTable()
    start = table.version

    table.add("n0", {"zone": "a"})
    after_add = table.version
    table.set_labels(0, {"zone": "a"})
    after_same = table.version
    table.set_labels(0, {"zone": "b"})

    assert after_add > start
    assert after_same == after_add
    assert table.version > after_same


def test_table_set_labels_updates_mask() -> None:
    table = NodeLabelTable(["n0", "n1"], [{"zone": "a", "c": "5"}, {"zone": "b"}])
    zone_a = compile_node_selector(selector(term(ZONE_A)))
    big = compile_node_selector(selector(term(req("c", "Gt", "4"))))

    table.set_labels(0, {"zone": "b"})
    table.set_labels(1, {"zone": "a", "c": "9"})

    assert zone_a.mask(table).tolist() == [False, True]
    assert big.mask(table).tolist() == [False, True]


def test_table_grows_with_new_keys_late() -> None:
    table = NodeLabelTable()
    for i in range(100):
        table.add(f"n{i}", {"i": str(i)})
    table.add("late", {"new-key": "x"})
    compiled = compile_node_selector(
        selector(term(req("i", "Gt", "89")), term(req("new-key", "Exists")))
    )

    mask = compiled.mask(table)

    assert mask.shape == (101,)
    assert np.flatnonzero(mask).tolist() == [*range(90, 100), 100]


def test_mask_on_empty_table() -> None:
    table = NodeLabelTable()

    assert compile_node_selector(selector(term(ZONE_A))).mask(table).shape == (0,)
    assert compile_node_selector(None).mask(table).shape == (0,)


def test_mask_returns_fresh_array() -> None:
    table = NodeLabelTable(["n0"], [{"zone": "a"}])
    compiled = compile_node_selector(selector(term(ZONE_A)))

    first = compiled.mask(table)
    first[0] = False

    assert compiled.mask(table).tolist() == [True]


# --------------------------------------------------------------------------------------
# Property tests: mask, matches and the reference agree
# --------------------------------------------------------------------------------------

LABEL_KEYS = ["zone", "gpu", "example.com/rack", "c"]
# Node label values include ones that are not valid label values: the table stores
# whatever it is given, and Gt / Lt must parse them the way Go does.
NODE_LABEL_VALUES = [
    "a",
    "b",
    "",
    "0",
    "1",
    "7",
    "007",
    "-3",
    "+5",
    " 5",
    "5.0",
    INT64_MAX_TEXT,
    INT64_OVERFLOW_TEXT,
    str(INT64_MIN),
]
SELECTOR_VALUES = ["a", "b", "", "0", "1", "7", "007", "zz"]
INTEGER_BOUNDS = ["0", "1", "5", "7", "007", "6", INT64_MAX_TEXT]
NAME_ALPHABET = "abn01-"

label_maps = st.dictionaries(st.sampled_from(LABEL_KEYS), st.sampled_from(NODE_LABEL_VALUES))
node_names = st.lists(st.text(NAME_ALPHABET, max_size=3), min_size=1, max_size=50, unique=True)


@st.composite
def label_requirements(draw: st.DrawFn) -> NodeSelectorRequirement:
    operator = draw(st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]))
    key = draw(st.sampled_from(LABEL_KEYS))
    if operator in ("In", "NotIn"):
        values = draw(st.lists(st.sampled_from(SELECTOR_VALUES), min_size=1, max_size=3))
    elif operator in ("Gt", "Lt"):
        values = [draw(st.sampled_from(INTEGER_BOUNDS))]
    else:
        values = []
    return req(key, operator, *values)


@st.composite
def node_selectors(draw: st.DrawFn, names: Sequence[str]) -> NodeSelector | None:
    if draw(st.integers(0, 9)) == 0:
        return None
    field_values = st.sampled_from([*names, "absent-node"])
    field_requirements = st.builds(
        lambda op, value: req("metadata.name", op, value),
        st.sampled_from(["In", "NotIn"]),
        field_values,
    )
    terms = draw(
        st.lists(
            st.builds(
                lambda exprs, fields: term(*exprs, fields=fields),
                st.lists(label_requirements(), max_size=3),
                st.lists(field_requirements, max_size=2),
            ),
            max_size=4,
        )
    )
    return selector(*terms)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), names=node_names)
def test_mask_agrees_with_matches_and_reference(data: st.DataObject, names: list[str]) -> None:
    labels = [data.draw(label_maps) for _ in names]
    sel = data.draw(node_selectors(names))
    table = NodeLabelTable(names, labels)

    compiled = compile_node_selector(sel)
    mask = compiled.mask(table)

    assert mask.dtype == np.bool_
    assert mask.shape == (len(names),)
    for row, (name, node_labels) in enumerate(zip(names, labels, strict=True)):
        expected = reference_match(sel, node_labels, name)
        assert compiled.matches(node_labels, name) is expected, (row, node_labels, name)
        assert bool(mask[row]) is expected, (row, node_labels, name)


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    names=node_names,
    steps=st.lists(st.tuples(st.integers(0, 49), label_maps), min_size=1, max_size=20),
)
def test_set_labels_keeps_mask_consistent(
    data: st.DataObject, names: list[str], steps: list[tuple[int, dict[str, str]]]
) -> None:
    labels = [data.draw(label_maps) for _ in names]
    sel = data.draw(node_selectors(names))
    compiled = compile_node_selector(sel)
    table = NodeLabelTable(names, labels)

    for row_draw, new_labels in steps:
        row = row_draw % len(names)
        version = table.version
        table.set_labels(row, new_labels)
        changed = labels[row] != new_labels
        labels[row] = dict(new_labels)

        assert (table.version > version) is changed
        assert dict(table.labels_of(row)) == new_labels
        expected = [reference_match(sel, lab, n) for n, lab in zip(names, labels, strict=True)]
        assert compiled.mask(table).tolist() == expected


@settings(max_examples=150, deadline=None)
@given(
    labels=st.lists(label_maps, min_size=1, max_size=30),
    requirements=st.lists(
        label_requirements().filter(lambda r: r.operator not in ("Gt", "Lt")), max_size=4
    ),
)
def test_label_selector_mask_agrees_with_matches(
    labels: list[dict[str, str]], requirements: list[NodeSelectorRequirement]
) -> None:
    names = [f"n{i}" for i in range(len(labels))]
    table = NodeLabelTable(names, labels)
    label_selector = LabelSelector.from_api(match_expressions=requirements)

    expected = [all(reference_requirement(r, lab) for r in requirements) for lab in labels]

    assert [label_selector.matches(lab) for lab in labels] == expected
    assert label_selector.mask(table).tolist() == expected


# --------------------------------------------------------------------------------------
# Label selectors
# --------------------------------------------------------------------------------------

LABEL_SELECTOR_CASES = [
    pytest.param("", {}, True, id="empty-matches-all"),
    pytest.param("a=b", {"a": "b"}, True, id="equals"),
    pytest.param("a=b", {"a": "c"}, False, id="equals-other-value"),
    pytest.param("a=b", {}, False, id="equals-absent"),
    pytest.param("a==b", {"a": "b"}, True, id="double-equals"),
    pytest.param("a!=b", {"a": "c"}, True, id="not-equals"),
    pytest.param("a!=b", {"a": "b"}, False, id="not-equals-same"),
    pytest.param("a!=b", {}, True, id="not-equals-absent"),
    pytest.param("a in (x,y)", {"a": "y"}, True, id="in"),
    pytest.param("a in (x,y)", {"a": "z"}, False, id="in-unlisted"),
    pytest.param("a notin (x)", {}, True, id="notin-absent"),
    pytest.param("a notin (x)", {"a": "x"}, False, id="notin-listed"),
    pytest.param("a", {"a": ""}, True, id="exists"),
    pytest.param("a", {}, False, id="exists-absent"),
    pytest.param("!a", {}, True, id="not-exists"),
    pytest.param("!a", {"a": "x"}, False, id="not-exists-present"),
    pytest.param("a=b,c", {"a": "b"}, False, id="comma-is-and"),
    pytest.param("a=b,c", {"a": "b", "c": "1"}, True, id="comma-all-hold"),
    pytest.param("  a = b ,\tc in ( x , y )\n", {"a": "b", "c": "y"}, True, id="whitespace"),
    pytest.param("a=", {"a": ""}, True, id="empty-exact-value"),
    pytest.param("a in ()", {"a": ""}, True, id="empty-value-set"),
    pytest.param("a in (x,,y)", {"a": ""}, True, id="empty-value-in-set"),
    pytest.param("a in (x,)", {"a": ""}, True, id="trailing-empty-value"),
    pytest.param("in in (in,notin)", {"in": "notin"}, True, id="keywords-as-key-and-values"),
    pytest.param("a>5", {"a": "6"}, True, id="greater-than"),
    pytest.param("a<5", {"a": "6"}, False, id="less-than"),
    pytest.param("example.com/gpu=true", {"example.com/gpu": "true"}, True, id="prefixed-key"),
]


@pytest.mark.parametrize(("text", "labels", "expected"), LABEL_SELECTOR_CASES)
def test_label_selector_matches(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_label_selector(text).matches(labels) is expected


def test_label_selector_string_round_trips() -> None:
    parsed = parse_label_selector("a=b, !c, d, e notin (y,x), f>3")

    assert str(parsed) == "a in (b),!c,d,e notin (x,y),f>3"
    assert parse_label_selector(str(parsed)) == parsed


LABEL_SELECTOR_ERRORS = [
    pytest.param("a in (x", 7, "found the end of the selector", id="unclosed-set"),
    pytest.param("a=b,", 4, "expected a label key or '!' after ','", id="trailing-comma"),
    pytest.param(",a", 0, "found ','", id="leading-comma"),
    pytest.param("a b", 2, "expected one of in, notin", id="missing-operator"),
    pytest.param("!a=b", 2, "found '='", id="not-exists-with-value"),
    pytest.param("a in x", 5, "expected '('", id="set-without-parens"),
    pytest.param("a in (x y)", 8, "found 'y'", id="set-missing-comma"),
    pytest.param("a=(b)", 2, "expected a value", id="parenthesised-exact-value"),
    pytest.param("a=b c", 4, "found 'c'", id="two-values"),
    pytest.param("=a", 0, "expected a label key", id="missing-key"),
    pytest.param("a>x", 0, "operator Gt needs a base-10 integer", id="gt-not-integer"),
    pytest.param("a>-1", 0, "valid label value", id="gt-negative"),
    pytest.param("x, -a=b", 3, "requirement[1].key", id="invalid-key"),
    pytest.param("a=b c=d", 4, "found 'c'", id="missing-comma"),
    pytest.param("a=@", 0, "'@'", id="invalid-value"),
]


@pytest.mark.parametrize(("text", "position", "fragment"), LABEL_SELECTOR_ERRORS)
def test_label_selector_syntax_errors(text: str, position: int, fragment: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_label_selector(text)

    assert caught.value.position == position
    assert f"at position {position}" in str(caught.value)
    assert fragment in str(caught.value)


def test_label_selector_from_api() -> None:
    label_selector = LabelSelector.from_api(
        {"app": "web"},
        [
            {"key": "tier", "operator": "In", "values": ["front", "edge"]},
            req("canary", "DoesNotExist"),
        ],
    )

    assert label_selector.matches({"app": "web", "tier": "edge"})
    assert not label_selector.matches({"app": "web", "tier": "edge", "canary": "1"})
    assert not label_selector.matches({"app": "db", "tier": "edge"})
    assert LabelSelector.from_api().matches({"any": "thing"})
    assert LabelSelector.from_api().empty


@pytest.mark.parametrize(
    ("match_labels", "expressions", "fragment"),
    [
        pytest.param({}, [req("c", "Gt", "1")], "matchExpressions[0].operator", id="gt"),
        pytest.param({}, [{"key": "a", "operator": "In"}], "needs at least one value", id="in"),
        pytest.param({"bad key": "x"}, [], "matchLabels[bad key].key", id="bad-key"),
        pytest.param({"a": "b c"}, [], "matchLabels[a].values[0]", id="bad-value"),
    ],
)
def test_label_selector_from_api_rejects(
    match_labels: dict[str, str], expressions: list[object], fragment: str
) -> None:
    with pytest.raises(SelectorError, match="invalid label selector") as caught:
        LabelSelector.from_api(match_labels, expressions)  # type: ignore[arg-type]

    assert fragment in str(caught.value)


# --------------------------------------------------------------------------------------
# Field selectors
# --------------------------------------------------------------------------------------

POD = Pod(metadata=ObjectMeta(name="web-0", namespace="default"))
NODE = Node(metadata=ObjectMeta(name="node-1"))

FIELD_SELECTOR_CASES = [
    pytest.param("", POD, True, id="empty-matches-all"),
    pytest.param("metadata.name=web-0", POD, True, id="name-equals"),
    pytest.param("metadata.name==web-0", POD, True, id="name-double-equals"),
    pytest.param("metadata.name!=web-0", POD, False, id="name-not-equals"),
    pytest.param("metadata.name=web-1", POD, False, id="name-other"),
    pytest.param("metadata.namespace=default", POD, True, id="namespace-equals"),
    pytest.param("metadata.namespace!=default", POD, False, id="namespace-not-equals"),
    pytest.param("metadata.namespace=", NODE, True, id="cluster-scoped-empty-namespace"),
    pytest.param("metadata.name=node-1,metadata.namespace=", NODE, True, id="comma-all-hold"),
    pytest.param("metadata.name=node-1,metadata.name=x", NODE, False, id="comma-is-and"),
    pytest.param(",metadata.name=node-1,,", NODE, True, id="empty-terms-skipped"),
    pytest.param(
        "metadata.name!=x", Namespace(metadata=ObjectMeta(name="ns")), True, id="namespace-kind"
    ),
]


@pytest.mark.parametrize(("text", "obj", "expected"), FIELD_SELECTOR_CASES)
def test_field_selector_matches(text: str, obj: Pod | Node, expected: bool) -> None:
    assert parse_field_selector(text).matches(obj) is expected


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        pytest.param("metadata.name", 0, "cannot parse 'metadata.name'", id="no-operator"),
        pytest.param("metadata.name=a=b", 0, "expected field=value", id="two-operators"),
        pytest.param("metadata.name=a,spec", 16, "cannot parse 'spec'", id="second-term"),
        pytest.param(
            "spec.hostname=n1",
            0,
            "field 'spec.hostname' is not supported. Supported fields: metadata.name, "
            "metadata.namespace, spec.nodeName, status.phase",
            id="unsupported-field",
        ),
        pytest.param(
            "metadata.name = a", 0, "field 'metadata.name ' is not supported", id="untrimmed"
        ),
    ],
)
def test_field_selector_errors(text: str, position: int, fragment: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_field_selector(text)

    assert caught.value.position == position
    assert fragment in str(caught.value)


# --------------------------------------------------------------------------------------
# Scale
# --------------------------------------------------------------------------------------


def test_mask_on_ten_thousand_nodes() -> None:
    count = 10_000
    names = [f"node-{i:05d}" for i in range(count)]
    labels = [
        {
            "topology.kubernetes.io/zone": f"zone-{i % 4}",
            "example.com/rack": f"rack-{i % 100}",
            "example.com/gpu-count": str(i % 9),
            **({"example.com/draining": "true"} if i % 50 == 0 else {}),
        }
        for i in range(count)
    ]
    build_start = time.perf_counter()
    table = NodeLabelTable(names, labels)
    build_s = time.perf_counter() - build_start
    sel = selector(
        term(
            req("topology.kubernetes.io/zone", "In", "zone-0", "zone-1"),
            req("example.com/gpu-count", "Gt", "6"),
            req("example.com/draining", "DoesNotExist"),
        ),
        term(req("example.com/rack", "In", "rack-7", "rack-8", "rack-9")),
        term(fields=[req("metadata.name", "In", "node-09999")]),
    )
    compiled = compile_node_selector(sel)

    mask_start = time.perf_counter()
    mask = compiled.mask(table)
    mask_s = time.perf_counter() - mask_start

    print(
        f"\nNodeLabelTable of {count} nodes built in {build_s * 1e3:.1f} ms; "
        f"3-term selector mask in {mask_s * 1e3:.3f} ms ({int(mask.sum())} matches)"
    )
    expected = [compiled.matches(lab, name) for name, lab in zip(names, labels, strict=True)]
    assert mask.tolist() == expected
    assert isinstance(compiled, CompiledNodeSelector)
