"""The EventBridge pattern language: one case per rule of the language, then properties.

The shared conformance corpus (test_eventbridge_conformance.py) pins event-ruler's
behaviour; these cases pin ours where the corpus is silent (numeric limits, null,
IPv6, JSON text, error messages) and the properties look for what no list of
cases thought of.
"""

from __future__ import annotations

import itertools
import json
import re
import string
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from paymesh import rules
from paymesh.rules import InvalidEventPattern, RuleSet, compile_pattern

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def matches(pattern: dict[str, Any] | str, event: dict[str, Any] | str) -> bool:
    return rules.test_event_pattern(pattern, event)


# -- exact values ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "event", "expected"),
    [
        ({"source": ["payment.service"]}, {"source": "payment.service"}, True),
        ({"source": ["payment.service"]}, {"source": "payment.servic"}, False),
        ({"source": ["a", "payment.service"]}, {"source": "payment.service"}, True),
        ({"amount": [3]}, {"amount": 3.0}, True),
        ({"amount": [300]}, {"amount": 3e2}, True),
        ({"amount": [0.1]}, {"amount": 0.1}, True),
        ({"amount": [3]}, {"amount": "3"}, False),
        ({"amount": ["3"]}, {"amount": 3}, False),
        ({"flag": [True]}, {"flag": True}, True),
        ({"flag": [True]}, {"flag": 1}, False),
        ({"flag": [1]}, {"flag": True}, False),
        ({"flag": [False]}, {"flag": 0}, False),
        ({"gone": [None]}, {"gone": None}, True),
        ({"gone": [None]}, {"gone": ""}, False),
        ({"gone": [""]}, {"gone": None}, False),
        ({"gone": [""]}, {"gone": ""}, True),
        ({"account": [123456789012]}, {"account": 123456789012}, True),
        ({"big": [1e30]}, {"big": 1e30}, True),
        ({"source": ["x"]}, {}, False),
    ],
)
def test_exact_values(pattern: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    assert matches(pattern, event) is expected


def test_numbers_compare_by_value_in_json_text() -> None:
    assert matches('{"amount": [300]}', '{"amount": 3e2}')
    assert matches('{"amount": [3.0]}', '{"amount": 3}')
    assert matches('{"amount": [0.30]}', '{"amount": 0.3}')
    assert not matches('{"amount": [0.3]}', '{"amount": 0.30000001}')


def test_nested_fields_and_dotted_keys_are_the_same_path() -> None:
    event = {"detail": {"payment": {"status": "succeeded"}}}
    assert matches({"detail": {"payment": {"status": ["succeeded"]}}}, event)
    assert matches({"detail.payment.status": ["succeeded"]}, event)
    assert matches({"detail": {"payment.status": ["succeeded"]}}, event)
    assert matches(
        {"detail": {"payment": {"status": ["succeeded"]}}},
        {"detail.payment": {"status": "succeeded"}},
    )
    assert not matches({"detail": {"status": ["succeeded"]}}, event)


def test_an_object_is_not_a_value() -> None:
    event = {"detail": {"payment": {"status": "x"}}}
    assert not matches({"detail": {"payment": [{"exists": True}]}}, event)
    assert matches({"detail": {"payment": [{"exists": False}]}}, event)


# -- arrays -----------------------------------------------------------------------------


def test_an_array_field_matches_if_any_element_does() -> None:
    assert matches({"resources": ["pay_2"]}, {"resources": ["pay_1", "pay_2"]})
    assert not matches({"resources": ["pay_3"]}, {"resources": ["pay_1", "pay_2"]})
    assert matches({"grid": [5]}, {"grid": [[1, 2], [3, [4, 5]]]})


def test_fields_from_objects_in_one_array_come_from_one_element() -> None:
    event = {"items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}]}
    assert matches({"items": {"sku": ["a"], "qty": [1]}}, event)
    assert not matches({"items": {"sku": ["a"], "qty": [2]}}, event)
    assert matches({"items": {"sku": ["b"], "qty": [{"numeric": [">", 1]}]}}, event)


def test_separate_arrays_do_not_constrain_each_other() -> None:
    event = {"a": [{"x": 1}, {"x": 2}], "b": [{"y": 1}, {"y": 2}]}
    assert matches({"a": {"x": [1]}, "b": {"y": [2]}}, event)


def test_exists_false_inside_an_array_looks_at_the_chosen_element() -> None:
    event = {"d": [{"name": "alice", "tag": "x"}, {"name": "bob"}]}
    assert matches({"d": {"name": ["bob"], "tag": [{"exists": False}]}}, event)
    assert not matches({"d": {"name": ["alice"], "tag": [{"exists": False}]}}, event)


def test_exists_false_is_judged_against_earlier_fields_in_name_order() -> None:
    # event-ruler checks absence against the fields before it in name order: here
    # "a" sorts before "b", so "a" is absent-checked before an element is chosen.
    event = {"d": [{"a": 1, "b": "y"}, {"b": "x"}]}
    assert not matches({"d": {"a": [{"exists": False}], "b": ["x"]}}, event)
    assert matches({"d": {"b": ["x"], "c": [{"exists": False}]}}, event)


# -- string operators -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ({"prefix": "payment."}, "payment.succeeded", True),
        ({"prefix": "payment."}, "refund.succeeded", False),
        ({"prefix": ""}, "anything", True),
        ({"prefix": {"equals-ignore-case": "PAYMENT."}}, "Payment.Failed", True),
        ({"suffix": ".png"}, "cat.png", True),
        ({"suffix": ".png"}, "cat.PNG", False),
        ({"suffix": {"equals-ignore-case": ".png"}}, "cat.PNG", True),
        ({"equals-ignore-case": "EUR"}, "eur", True),
        ({"equals-ignore-case": "EUR"}, "euro", False),
        ({"wildcard": "*"}, "", True),
        ({"wildcard": "pay_*_live"}, "pay_123_live", True),
        ({"wildcard": "pay_*_live"}, "pay_123_test", False),
        ({"wildcard": "*/lib/*"}, "/usr/lib/x", True),
        ({"wildcard": "a*b*c"}, "abc", True),
        ({"wildcard": "a*b*c"}, "acb", False),
        ({"wildcard": "a*a"}, "a", False),
        ({"wildcard": r"price\*2"}, "price*2", True),
        ({"wildcard": r"price\*2"}, "price 2", False),
        ({"wildcard": r"back\\slash*"}, "back\\slash!", True),
        ({"wildcard": ""}, "", True),
        ({"wildcard": ""}, "x", False),
        ({"exactly": "10.0.0.1"}, "10.0.0.1", True),
    ],
)
def test_string_operators(operator: dict[str, Any], value: str, expected: bool) -> None:
    assert matches({"f": [operator]}, {"f": value}) is expected


@pytest.mark.parametrize(
    "operator",
    [
        {"prefix": "1"},
        {"suffix": "1"},
        {"equals-ignore-case": "1"},
        {"wildcard": "*"},
        {"cidr": "0.0.0.0/0"},
    ],
)
@pytest.mark.parametrize("value", [1, True, None])
def test_string_operators_never_match_other_types(operator: dict[str, Any], value: object) -> None:
    assert not matches({"f": [operator]}, {"f": value})


def test_ignore_case_folds_one_character_at_a_time() -> None:
    # str.lower() turns a word-final capital sigma into the final form; character by
    # character it is the ordinary small sigma, so a prefix compares the same way
    # whether or not the word goes on.
    assert matches({"f": [{"prefix": {"equals-ignore-case": "ΑΣ"}}]}, {"f": "ΑΣΒ"})
    assert matches({"f": [{"equals-ignore-case": "ασ"}]}, {"f": "ΑΣ"})  # noqa: RUF001
    assert matches({"f": [{"suffix": {"equals-ignore-case": "Σ"}}]}, {"f": "ΒΑΣ"})


def test_an_exact_ipv6_literal_matches_any_spelling_of_the_address() -> None:
    assert matches({"ip": ["2001:db8::1"]}, {"ip": "2001:DB8:0:0:0:0:0:1"})
    assert not matches({"ip": ["2001:db8::1"]}, {"ip": "2001:db8::2"})


# -- anything-but ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("failed", "succeeded", True),
        ("failed", "failed", False),
        (["failed", "canceled"], "canceled", False),
        (["failed", "canceled"], "succeeded", True),
        ([100, 200], 200.0, False),
        ([100, 200], 150, True),
        ([100, 200], "100", True),
        ("100", 100, True),
        (100, None, True),
        ("x", False, True),
        ({"prefix": "us-"}, "us-east-1", False),
        ({"prefix": "us-"}, "eu-west-1", True),
        ({"prefix": ["us-", "eu-"]}, "eu-west-1", False),
        ({"suffix": ".png"}, "a.png", False),
        ({"suffix": ".png"}, 5, True),
        ({"equals-ignore-case": "Failed"}, "FAILED", False),
        ({"equals-ignore-case": ["a", "b"]}, "C", True),
        ({"wildcard": "*/lib/*"}, "/usr/lib/x", False),
        ({"wildcard": ["*/lib/*", "*.tmp"]}, "x.tmp", False),
        ({"wildcard": ["*/lib/*", "*.tmp"]}, "x.txt", True),
    ],
)
def test_anything_but(operator: object, value: object, expected: bool) -> None:
    assert matches({"f": [{"anything-but": operator}]}, {"f": value}) is expected


@pytest.mark.parametrize("event", [{}, {"f": []}, {"f": {"x": 1}}, {"g": "x"}])
def test_anything_but_needs_the_field(event: dict[str, Any]) -> None:
    assert not matches({"f": [{"anything-but": "x"}]}, event)
    assert matches({"f": [{"anything-but": "x"}, {"exists": False}]}, event)


# -- numeric ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("numeric", "value", "expected"),
    [
        ([">", 0], 0.000001, True),
        ([">", 0], 0, False),
        ([">=", 0], 0, True),
        (["<", 10], 9.999999, True),
        (["<", 10], 10, False),
        (["<=", 10], 10.0, True),
        (["=", 301.8], 301.8, True),
        (["=", 301.8], 3.018e2, True),
        (["=", 5], 5.000001, False),
        ([">", 0, "<=", 5], 5, True),
        ([">", 0, "<=", 5], 0, False),
        ([">=", -5, "<", 5], -5, True),
        ([">", 70], 70.01, True),
        ([">", 0], "1", False),
        ([">", 0], True, False),
        ([">", 0], None, False),
        ([">=", -5e9], -5_000_000_000, True),
        ([">=", 0], 5_000_000_001, False),  # beyond EventBridge's numeric range
        (["<", 0], -5e9 - 1, False),
    ],
)
def test_numeric(numeric: list[object], value: object, expected: bool) -> None:
    assert matches({"n": [{"numeric": numeric}]}, {"n": value}) is expected


def test_numeric_in_json_text_is_exact_to_six_decimals() -> None:
    assert matches('{"n": [{"numeric": [">", 0.000001]}]}', '{"n": 0.0000011}')
    assert not matches('{"n": [{"numeric": [">", 0.000001]}]}', '{"n": 0.000001}')


# -- exists -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "exists"),
    [
        ({"f": "x"}, True),
        ({"f": None}, True),  # null is a value
        ({"f": ""}, True),
        ({"f": []}, False),  # an empty array holds no value
        ({"f": {}}, False),  # an object is not a leaf
        ({"f": {"g": 1}}, False),
        ({"f": [None]}, True),
        ({"g": 1}, False),
        ({}, False),
    ],
)
def test_exists(event: dict[str, Any], exists: bool) -> None:
    assert matches({"f": [{"exists": True}]}, event) is exists
    assert matches({"f": [{"exists": False}]}, event) is not exists


# -- cidr -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "address", "expected"),
    [
        ("10.0.0.0/8", "10.255.1.2", True),
        ("10.0.0.0/8", "11.0.0.1", False),
        ("10.0.0.0/24", "10.0.0.255", True),
        ("220.160.153.171/31", "220.160.153.170", True),  # host bits set: the block still counts
        ("192.0.2.7/32", "192.0.2.7", True),
        ("0.0.0.0/0", "8.8.8.8", True),
        ("2001:db8::/32", "2001:db8:ffff::1", True),
        ("2001:db8::/32", "2001:db9::1", False),
        ("2001:db8::/32", "10.0.0.1", False),
        ("10.0.0.0/8", "::ffff:10.0.0.1", False),
        ("10.0.0.0/8", "not an ip", False),
        ("10.0.0.0/8", "10.0.0", False),
    ],
)
def test_cidr(block: str, address: str, expected: bool) -> None:
    assert matches({"ip": [{"cidr": block}]}, {"ip": address}) is expected


# -- $or --------------------------------------------------------------------------------


def test_or_at_the_top_and_nested() -> None:
    pattern = {
        "source": ["payment.service"],
        "$or": [
            {"detail-type": ["payment.failed"]},
            {"detail": {"amount": [{"numeric": [">", 1000]}]}},
        ],
    }
    assert matches(pattern, {"source": "payment.service", "detail-type": "payment.failed"})
    assert matches(pattern, {"source": "payment.service", "detail": {"amount": 5000}})
    assert not matches(pattern, {"source": "payment.service", "detail": {"amount": 5}})
    assert not matches(pattern, {"source": "refund.service", "detail-type": "payment.failed"})
    nested = {"detail": {"$or": [{"a": ["1"]}, {"$or": [{"b": ["2"]}, {"c": ["3"]}]}]}}
    assert matches(nested, {"detail": {"c": "3"}})
    assert not matches(nested, {"detail": {"d": "3"}})


# -- JSON text and the public surface ---------------------------------------------------


def test_patterns_and_events_may_be_json_text() -> None:
    assert matches('{"a": ["x"]}', '{"a": "x"}')
    assert compile_pattern('{"a": ["x"]}') == compile_pattern({"a": ["x"]})
    assert compile_pattern('{"a": ["x"]}').matches({"a": ["y", "x"]})


def test_an_event_that_is_not_an_object_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        matches({"a": ["x"]}, "[1, 2]")
    with pytest.raises(ValueError):
        matches({"a": ["x"]}, "{not json")


def test_invalid_event_pattern_is_a_value_error_with_the_path() -> None:
    with pytest.raises(InvalidEventPattern) as caught:
        compile_pattern({"detail": {"amount": [{"numeric": [">", "ten"]}]}})
    assert isinstance(caught.value, ValueError)
    assert caught.value.path == "detail.amount"
    assert "detail.amount" in str(caught.value)
    assert "number" in str(caught.value)


@pytest.mark.parametrize(
    ("pattern", "where", "problem"),
    [
        ("{not json", "", "not valid JSON"),
        ("[1]", "", "JSON object"),
        ({}, "", "empty objects"),
        ({"a": "x"}, "a", "object or an array"),
        ({"a": 1}, "a", "object or an array"),
        ({"a": None}, "a", "object or an array"),
        ({"a": []}, "a", "empty arrays"),
        ({"a": {}}, "a", "empty objects"),
        ({"a": [[1]]}, "a", "nested"),
        ({"a": [float("nan")]}, "a", "finite"),
        ({"a": [{}]}, "a", "one key"),
        ({"a": [{"prefix": "x", "suffix": "y"}]}, "a", "one key"),
        ({"a": [{"contains": "x"}]}, "a", "unrecognized operator 'contains'"),
        ({"a": [{"prefix": 1}]}, "a", "prefix takes a string"),
        ({"a": [{"prefix": {"equals-ignore-case": 1}}]}, "a", "takes a string"),
        ({"a": [{"prefix": {"wildcard": "x"}}]}, "a", "equals-ignore-case"),
        ({"a": [{"suffix": None}]}, "a", "suffix takes a string"),
        ({"a": [{"equals-ignore-case": ["x"]}]}, "a", "takes a string"),
        ({"a": [{"wildcard": "a**b"}]}, "a", "consecutive wildcard characters at position 1"),
        ({"a": [{"wildcard": "a\\b"}]}, "a", "invalid escape character at position 1"),
        ({"a": [{"wildcard": "a\\"}]}, "a", "invalid escape"),
        ({"a": [{"anything-but": []}]}, "a", "non-empty"),
        ({"a": [{"anything-but": ["x", 1]}]}, "a", "mixes strings and numbers"),
        ({"a": [{"anything-but": True}]}, "a", "takes a number"),
        ({"a": [{"anything-but": [None]}]}, "a", "takes a number"),
        ({"a": [{"anything-but": 6e9}]}, "a", "numeric range"),
        ({"a": [{"anything-but": {"prefix": ""}}]}, "a", "empty string"),
        ({"a": [{"anything-but": {"contains": "x"}}]}, "a", "does not support 'contains'"),
        ({"a": [{"anything-but": {"prefix": "x", "suffix": "y"}}]}, "a", "one operator"),
        ({"a": [{"anything-but": {"wildcard": ["a**"]}}]}, "a", "consecutive wildcard"),
        ({"a": [{"anything-but": {"equals-ignore-case": [1]}}]}, "a", "takes a string"),
        ({"a": [{"numeric": 5}]}, "a", "takes an array"),
        ({"a": [{"numeric": []}]}, "a", "takes an array"),
        ({"a": [{"numeric": [">"]}]}, "a", "wrong number of terms"),
        ({"a": [{"numeric": ["!=", 1]}]}, "a", "unrecognized operator '!='"),
        ({"a": [{"numeric": ["<", 5, ">", 1]}]}, "a", "wrong number of terms"),
        ({"a": [{"numeric": [">", 1, ">", 5]}]}, "a", "comes < or <="),
        ({"a": [{"numeric": [">", 5, "<", 1]}]}, "a", "must be below"),
        ({"a": [{"numeric": [">=", 5, "<=", 5]}]}, "a", "must be below"),
        ({"a": [{"numeric": ["=", 1, "<", 5]}]}, "a", "wrong number of terms"),
        ({"a": [{"numeric": [">", 0, "<", 5, "x"]}]}, "a", "wrong number of terms"),
        ({"a": [{"numeric": [">", True]}]}, "a", "takes a number"),
        ({"a": [{"numeric": [">", 5_000_000_001]}]}, "a", "outside"),
        ({"a": [{"numeric": ["<", -6e9]}]}, "a", "outside"),
        ({"a": [{"numeric": ["=", 0.0000001]}]}, "a", "more than 6 decimals"),
        ({"a": [{"numeric": [">", float("inf")]}]}, "a", "finite"),
        ({"a": [{"exists": "yes"}]}, "a", "true or false"),
        ({"a": [{"cidr": "10.0.0.0"}]}, "a", "one '/'"),
        ({"a": [{"cidr": "10.0.0.0/x"}]}, "a", "integer"),
        ({"a": [{"cidr": "10.0.0.0/33"}]}, "a", "not a valid"),
        ({"a": [{"cidr": "10.0.0.256/8"}]}, "a", "not a valid"),
        ({"a": [{"cidr": "2001:db8::/129"}]}, "a", "not a valid"),
        ({"a": [{"cidr": 10}]}, "a", "takes a string"),
        ({"$or": [{"a": ["x"]}]}, "$or", "at least two"),
        ({"$or": {"a": ["x"]}}, "$or", "array"),
        ({"$or": [{"a": ["x"]}, ["b"]]}, "$or", "only objects"),
        ({"$or": [{"a": ["x"]}, {}]}, "", "empty objects"),
        ({"d": {"$or": [{"a": ["x"]}, {"prefix": ["y"]}]}}, "d.prefix", "reserved"),
        ({"$or": [{"a": ["x"]}, {"b": {"numeric": ["y"]}}]}, "b.numeric", "reserved"),
    ],
)
def test_invalid_patterns_say_where_and_what(pattern: object, where: str, problem: str) -> None:
    with pytest.raises(InvalidEventPattern) as caught:
        compile_pattern(pattern)  # type: ignore[arg-type]
    assert caught.value.path == where
    assert problem in str(caught.value)


def test_reserved_names_are_fine_outside_or() -> None:
    assert matches({"prefix": ["x"]}, {"prefix": "x"})


def test_a_later_duplicate_path_wins_as_in_event_ruler() -> None:
    assert matches('{"a": {"b": ["1"]}, "a.b": ["2"]}', {"a": {"b": "2"}})
    assert not matches('{"a": {"b": ["1"]}, "a.b": ["2"]}', {"a": {"b": "1"}})


def test_compiled_patterns_describe_themselves() -> None:
    compiled = compile_pattern({"b": ["x"], "$or": [{"a": [1]}, {"c": [2]}]})
    assert compiled.paths == {"a", "b", "c"}
    assert len(compiled.branches) == 2
    assert "2 branch(es)" in repr(compiled)


def test_events_with_non_json_values_are_a_type_error() -> None:
    with pytest.raises(TypeError):
        compile_pattern({"a": ["x"]}).matches({"a": object()})


# -- properties -------------------------------------------------------------------------

KEYS = st.text(string.ascii_lowercase + "-_", min_size=1, max_size=6)
STRINGS = st.text(max_size=8)
NUMBERS = st.one_of(
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.decimals(places=6, min_value=-(10**10), max_value=10**10).map(float),
)
SCALARS = st.one_of(STRINGS, NUMBERS, st.booleans(), st.none())
JSON_EVENTS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=12,
)
EVENTS = st.dictionaries(KEYS, JSON_EVENTS, min_size=1, max_size=5)


def _one_consistent_view(
    value: object, path: tuple[str, ...], out: dict[str, object], draw: Any
) -> None:
    """Leaves of one element per array, as a pattern can use them together."""
    if isinstance(value, dict):
        for key, child in value.items():
            _one_consistent_view(child, (*path, key), out, draw)
    elif isinstance(value, list):
        if value:
            _one_consistent_view(value[draw(st.integers(0, len(value) - 1))], path, out, draw)
    else:
        out.setdefault(".".join(path), value)


def _operator_that_accepts(value: object, draw: Any) -> object:
    """A pattern value (plain or operator) that must accept ``value``."""
    choices: list[object] = [{"exists": True}]
    if isinstance(value, bool) or value is None:
        choices.append(value)
    elif isinstance(value, str):
        cut = draw(st.integers(0, len(value)))
        end = draw(st.integers(cut, len(value)))
        choices += [
            value,
            {"exactly": value},
            {"prefix": value[:cut]},
            {"suffix": value[cut:]},
            {"prefix": {"equals-ignore-case": _recase(value[:cut])}},
            {"suffix": {"equals-ignore-case": _recase(value[cut:])}},
            {"equals-ignore-case": _recase(value)},
            {"wildcard": _escape(value[:cut]) + "*" + _escape(value[end:])},
            {"anything-but": value + "x"},
            {"anything-but": {"prefix": value + "x"}},
            {"anything-but": {"wildcard": _escape(value) + "x*"}},
        ]
    else:
        assert isinstance(value, int | float)
        choices.append(value)
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        if abs(number) <= 4_000_000_000:
            below = int(number.to_integral_value()) - 1
            choices += [
                {"numeric": [">", below, "<", below + 3]},
                {"numeric": [">=", below]},
                {"anything-but": [below - 1, below - 2]},
            ]
    return draw(st.sampled_from(choices))


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*")


def _recase(text: str) -> str:
    """``text`` with its case swapped, where that is the same text ignoring case."""
    swapped = text.swapcase()
    same = "".join(c.lower() for c in swapped) == "".join(c.lower() for c in text)
    return swapped if same else text


@SETTINGS
@given(EVENTS, st.data())
def test_a_pattern_built_from_an_events_own_leaves_matches_it(
    event: dict[str, Any], data: st.DataObject
) -> None:
    leaves: dict[str, object] = {}
    _one_consistent_view(event, (), leaves, data.draw)
    assume(leaves)
    chosen = data.draw(
        st.lists(st.sampled_from(sorted(leaves)), min_size=1, max_size=4, unique=True)
    )
    pattern = {path: [_operator_that_accepts(leaves[path], data.draw)] for path in chosen}
    assume(all("$or" not in path for path in pattern))
    assert compile_pattern(pattern).matches(event), pattern
    ruleset: RuleSet[str] = RuleSet()
    ruleset.add("r", pattern, "hit")
    assert ruleset.matching(event) == ["hit"]


PATTERN_VALUES = st.one_of(
    st.text(alphabet=string.ascii_letters + "._-/ ", max_size=5),
    st.integers(-1000, 1000),
    st.decimals(places=2, min_value=-100, max_value=100, allow_nan=False).map(float),
)
EVENT_SCALARS = st.one_of(
    PATTERN_VALUES, st.booleans(), st.none(), st.sampled_from(["a", 1, 1.0, "1"])
)


@SETTINGS
@given(PATTERN_VALUES, EVENT_SCALARS)
def test_anything_but_is_the_complement_of_exact_for_present_scalars(
    value: object, present: object
) -> None:
    event = {"f": present}
    exact = matches({"f": [value]}, event)
    assert matches({"f": [{"anything-but": value}]}, event) is not exact
    assert matches({"f": [{"anything-but": [value]}]}, event) is not exact


BOUNDS = st.decimals(places=6, min_value=-(5 * 10**9), max_value=5 * 10**9, allow_nan=False)
IN_RANGE = st.one_of(
    st.integers(-(5 * 10**9), 5 * 10**9),
    st.floats(min_value=-5e9, max_value=5e9, allow_nan=False),
    BOUNDS,
)


@SETTINGS
@given(BOUNDS, st.sampled_from([">", ">="]), BOUNDS, st.sampled_from(["<", "<="]), st.data())
def test_numeric_ranges_agree_with_python_comparisons(
    low: Decimal, low_op: str, high: Decimal, high_op: str, data: st.DataObject
) -> None:
    # Values on a bound are where > and >= differ, so they are drawn often.
    on_a_bound = st.sampled_from([low, high, float(low), int(high)])
    value: Any = data.draw(st.one_of(IN_RANGE, on_a_bound))
    exact = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    above = exact > low if low_op == ">" else exact >= low
    below = exact < high if high_op == "<" else exact <= high
    assert matches({"n": [{"numeric": [low_op, low]}]}, {"n": value}) is above
    assert matches({"n": [{"numeric": [high_op, high]}]}, {"n": value}) is below
    if low < high:
        pattern = {"n": [{"numeric": [low_op, low, high_op, high]}]}
        assert matches(pattern, {"n": value}) is (above and below)
    assert matches({"n": [{"numeric": ["=", low]}]}, {"n": value}) is (exact == low)


SMALL_FIELD_PATTERNS = st.dictionaries(
    st.sampled_from(["a", "b", "c"]),
    st.lists(
        st.one_of(
            st.sampled_from(["x", "y", 1, 2]),
            st.sampled_from(
                [{"exists": True}, {"exists": False}, {"prefix": "x"}, {"numeric": [">", 1]}]
            ),
            st.builds(lambda v: {"anything-but": v}, st.sampled_from(["x", "y"])),
        ),
        min_size=1,
        max_size=2,
    ),
    min_size=1,
    max_size=3,
)
SMALL_EVENTS = st.dictionaries(
    st.sampled_from(["a", "b", "c", "d"]),
    st.one_of(
        st.sampled_from(["x", "y", "xy", 1, 2, 3]),
        st.lists(st.sampled_from(["x", "y", 1, 2]), max_size=2),
    ),
)


@SETTINGS
@given(SMALL_FIELD_PATTERNS, SMALL_FIELD_PATTERNS, SMALL_EVENTS, st.booleans())
def test_or_of_two_patterns_is_either_of_them(
    first: dict[str, Any], second: dict[str, Any], event: dict[str, Any], nest: bool
) -> None:
    either = matches(first, event) or matches(second, event)
    assert matches({"$or": [first, second]}, event) is either
    if nest:  # the same one level down
        wrapped = {"d": {"$or": [first, second]}}
        nested_event = {"d": event}
        assert matches(wrapped, nested_event) is (
            matches({"d": first}, nested_event) or matches({"d": second}, nested_event)
        )


@SETTINGS
@given(st.text(alphabet="ab*\\", max_size=8), st.text(alphabet="ab*\\", max_size=8))
def test_wildcard_agrees_with_a_regular_expression(glob: str, value: str) -> None:
    tokens = re.findall(r"\\.|.", glob, flags=re.DOTALL)  # an escape pair, or one character
    valid = all(not token.startswith("\\") or token in ("\\*", "\\\\") for token in tokens)
    valid = valid and not any(a == b == "*" for a, b in itertools.pairwise(tokens))
    if not valid:
        with pytest.raises(InvalidEventPattern):
            compile_pattern({"f": [{"wildcard": glob}]})
        return
    regex = "".join(".*" if token == "*" else re.escape(token[-1]) for token in tokens)
    expected = re.fullmatch(regex, value, flags=re.DOTALL) is not None
    assert matches({"f": [{"wildcard": glob}]}, {"f": value}) is expected
    assert matches({"f": [{"anything-but": {"wildcard": glob}}]}, {"f": value}) is not expected


@SETTINGS
@given(
    st.lists(st.text(alphabet="ab", min_size=1, max_size=2), min_size=1, max_size=5),
    st.booleans(),
    st.booleans(),
    st.text(alphabet="ab", max_size=8),
)
def test_many_star_wildcards_agree_with_a_regular_expression(
    segments: list[str], open_start: bool, open_end: bool, value: str
) -> None:
    start, end = ("*" if open_start else ""), ("*" if open_end else "")
    glob = start + "*".join(segments) + end
    regex = start.replace("*", ".*") + ".*".join(segments) + end.replace("*", ".*")
    expected = re.fullmatch(regex, value) is not None
    assert matches({"f": [{"wildcard": glob}]}, {"f": value}) is expected


# Letters whose case mappings are irregular: sigma's two small forms, sharp s,
# dotted and dotless i, and the Kelvin sign.
CASES = st.text(alphabet="aAbBσΣςßİık\u212a", max_size=4)  # noqa: RUF001


@SETTINGS
@given(CASES, CASES)
def test_ignore_case_operators_agree_with_lowering_each_character(pattern: str, value: str) -> None:
    def low(text: str) -> str:
        return "".join(char.lower() for char in text)

    assert matches({"f": [{"equals-ignore-case": pattern}]}, {"f": value}) is (
        low(value) == low(pattern)
    )
    prefix = {"f": [{"prefix": {"equals-ignore-case": pattern}}]}
    assert matches(prefix, {"f": value}) is low(value).startswith(low(pattern))
    suffix = {"f": [{"suffix": {"equals-ignore-case": pattern}}]}
    assert matches(suffix, {"f": value}) is low(value).endswith(low(pattern))
    excluded = {"f": [{"anything-but": {"equals-ignore-case": [pattern]}}]}
    assert matches(excluded, {"f": value}) is (low(value) != low(pattern))


OPERATOR_NAMES = st.sampled_from(
    [
        "prefix",
        "suffix",
        "anything-but",
        "numeric",
        "exists",
        "cidr",
        "wildcard",
        "equals-ignore-case",
        "exactly",
        "$or",
        "=",
        ">",
        "<=",
        "x",
    ]
)
JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=6),
    st.sampled_from(["10.0.0.0/8", "::1/64", "a*b", "a**b", "a\\b", ">", "<=", "="]),
)
# Operator-shaped arrays, so numeric's grammar is probed beyond random lists.
NUMERIC_TERM = st.one_of(
    st.sampled_from([">", ">=", "<", "<=", "=", "!"]),
    st.integers(-3, 3),
    st.floats(),
    st.lists(st.integers(), max_size=1),
    st.none(),
)
NUMERIC_ARGS = st.lists(NUMERIC_TERM, max_size=5) | st.tuples(
    st.sampled_from([">", ">="]), NUMERIC_TERM, NUMERIC_TERM, NUMERIC_TERM
).map(list)


@SETTINGS
@given(NUMERIC_ARGS)
def test_numeric_arguments_compile_only_in_their_four_shapes(arguments: list[Any]) -> None:
    try:
        compile_pattern({"f": [{"numeric": arguments}]})
    except InvalidEventPattern:
        return
    shape = [a if isinstance(a, str) else "n" for a in arguments]
    assert shape in (["=", "n"], ["<", "n"], ["<=", "n"], [">", "n"], [">=", "n"]) or (
        len(shape) == 4 and shape[0] in (">", ">=") and shape[1] == shape[3] == "n"
        and shape[2] in ("<", "<=")
    )  # fmt: skip


JSONISH = st.recursive(
    JSON_LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(OPERATOR_NAMES, st.text(max_size=3)), inner, max_size=3),
        st.lists(
            st.dictionaries(OPERATOR_NAMES, st.one_of(inner, NUMERIC_ARGS), max_size=2), max_size=3
        ),
        st.lists(st.builds(lambda args: {"numeric": args}, NUMERIC_ARGS), min_size=1, max_size=2),
    ),
    max_leaves=15,
)


@SETTINGS
@given(st.dictionaries(st.one_of(OPERATOR_NAMES, KEYS), JSONISH, max_size=4), EVENTS)
def test_validation_raises_only_invalid_event_pattern_and_is_deterministic(
    pattern: dict[str, Any], event: dict[str, Any]
) -> None:
    text = json.dumps(pattern)
    try:
        compiled = compile_pattern(pattern)
    except InvalidEventPattern as exc:
        assert str(exc).startswith("invalid event pattern")
        with pytest.raises(InvalidEventPattern):  # the same pattern as JSON text
            compile_pattern(text)
        return
    assert compile_pattern(pattern) == compiled
    assert hash(compile_pattern(pattern)) == hash(compiled)
    assert compile_pattern(text) == compiled
    compiled.matches(event)  # a compiled pattern takes any JSON event
