"""RuleSet: many rules in one index; same answers as testing each pattern, in order."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from paymesh.rules import CompiledPattern, InvalidEventPattern, RuleSet, compile_pattern
from paymesh.rules.matchers import Matcher, Numeric, Wildcard
from paymesh.rules.ranges import RangeIndex
from paymesh.rules.values import in_numeric_range

ENVELOPE: dict[str, Any] = {
    "version": "0",
    "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
    "source": "payment.service",
    "detail-type": "payment.initiated",
    "account": "acct_42",
    "time": "2026-11-23T19:00:00Z",
    "region": "local",
    "resources": ["pay_1"],
    "detail": {"payment_id": "pay_1", "amount": 12_000, "currency": "eur", "fraud_score": 82.5},
}

# DESIGN.md's default rules.
DEFAULT_RULES: dict[str, dict[str, Any]] = {
    "payment-initiated": {"detail-type": ["payment.initiated"]},
    "payment-succeeded": {"detail-type": ["payment.succeeded"]},
    "payment-failed": {"detail-type": ["payment.failed"], "detail": {"retryable": [True]}},
    "high-risk-transaction": {
        "detail-type": ["payment.initiated"],
        "detail": {"fraud_score": [{"numeric": [">", 70]}]},
    },
    "fraud-stream": {"detail-type": [{"prefix": "payment."}]},
}


def routed(**changes: Any) -> dict[str, Any]:
    detail = {**ENVELOPE["detail"], **changes.pop("detail", {})}
    return {**ENVELOPE, **changes, "detail": detail}


def default_rules() -> RuleSet[str]:
    ruleset: RuleSet[str] = RuleSet()
    for name, pattern in DEFAULT_RULES.items():
        ruleset.add(name, pattern, name)
    return ruleset


def test_routes_the_default_rules() -> None:
    ruleset = default_rules()
    assert len(ruleset) == 5
    assert ruleset.matching(routed()) == [
        "payment-initiated",
        "high-risk-transaction",
        "fraud-stream",
    ]
    assert ruleset.matching(routed(detail={"fraud_score": 12})) == [
        "payment-initiated",
        "fraud-stream",
    ]
    assert ruleset.matching(routed(**{"detail-type": "payment.failed"})) == ["fraud-stream"]
    failed = routed(**{"detail-type": "payment.failed"}, detail={"retryable": True})
    assert ruleset.matching(failed) == ["payment-failed", "fraud-stream"]
    assert ruleset.matching(routed(**{"detail-type": "refund.succeeded"})) == []


def test_results_follow_insertion_order_and_replacing_keeps_the_place() -> None:
    ruleset: RuleSet[int] = RuleSet()
    for number in range(5):
        ruleset.add(f"r{number}", {"source": ["payment.service"]}, number)
    ruleset.add("r2", {"source": [{"prefix": "payment"}]}, 22)
    assert ruleset.matching(ENVELOPE) == [0, 1, 22, 3, 4]
    assert list(ruleset) == ["r0", "r1", "r2", "r3", "r4"]
    ruleset.remove("r1")
    ruleset.add("r1", {"source": ["payment.service"]}, 11)
    assert ruleset.matching(ENVELOPE) == [0, 22, 3, 4, 11]


def test_replacing_swaps_the_pattern() -> None:
    ruleset = default_rules()
    ruleset.add("fraud-stream", {"detail-type": [{"prefix": "refund."}]}, "fraud-stream")
    assert "fraud-stream" not in ruleset.matching(routed())
    assert ruleset.matching(routed(**{"detail-type": "refund.failed"})) == ["fraud-stream"]
    assert len(ruleset) == 5


def test_remove() -> None:
    ruleset = default_rules()
    ruleset.remove("high-risk-transaction")
    assert ruleset.matching(routed()) == ["payment-initiated", "fraud-stream"]
    assert "high-risk-transaction" not in ruleset
    assert len(ruleset) == 4
    with pytest.raises(KeyError):
        ruleset.remove("high-risk-transaction")


def test_an_invalid_pattern_changes_nothing() -> None:
    ruleset = default_rules()
    with pytest.raises(InvalidEventPattern, match="detail-type"):
        ruleset.add("fraud-stream", {"detail-type": "payment.initiated"}, "broken")
    with pytest.raises(InvalidEventPattern):
        ruleset.add("new", '{"a": [', "broken")
    assert len(ruleset) == 5
    assert "new" not in ruleset
    assert ruleset.matching(routed()) == [
        "payment-initiated",
        "high-risk-transaction",
        "fraud-stream",
    ]


def test_rules_are_validated_compiled_patterns() -> None:
    ruleset: RuleSet[object] = RuleSet()
    target = object()
    ruleset.add("json", '{"detail": {"currency": ["eur"]}}', target)
    assert ruleset.matching(ENVELOPE) == [target]
    assert isinstance(ruleset.pattern("json"), CompiledPattern)
    assert ruleset.pattern("json") == compile_pattern({"detail": {"currency": ["eur"]}})


def test_a_rule_with_several_matching_branches_is_returned_once() -> None:
    ruleset: RuleSet[str] = RuleSet()
    ruleset.add("or", {"$or": [{"source": ["payment.service"]}, {"account": ["acct_42"]}]}, "or")
    assert ruleset.matching(ENVELOPE) == ["or"]


def test_an_empty_rule_set_matches_nothing() -> None:
    assert RuleSet[str]().matching(ENVELOPE) == []


def test_array_consistency_and_exists_false_as_for_one_pattern() -> None:
    ruleset: RuleSet[str] = RuleSet()
    ruleset.add("same-item", {"items": {"sku": ["a"], "qty": [2]}}, "same-item")
    ruleset.add("item-a", {"items": {"sku": ["a"], "qty": [1]}}, "item-a")
    # "sku" sorts before "wrap": the element is chosen, then wrap is absent from it.
    ruleset.add("no-wrap", {"items": {"sku": ["b"], "wrap": [{"exists": False}]}}, "no-wrap")
    # "gift" sorts before "sku": event-ruler judges its absence before any element
    # is chosen, and item a has a gift, so this does not match (EventBridge's quirk).
    ruleset.add("no-gift", {"items": {"sku": ["b"], "gift": [{"exists": False}]}}, "no-gift")
    event = {"items": [{"sku": "a", "qty": 1, "gift": True, "wrap": True}, {"sku": "b", "qty": 2}]}
    assert ruleset.matching(event) == ["item-a", "no-wrap"]
    for name in ruleset:
        assert ruleset.pattern(name).matches(event) is (name in ("item-a", "no-wrap"))


def test_matching_only_tests_rules_the_index_selects(monkeypatch: pytest.MonkeyPatch) -> None:
    # 2,000 rules, each with a wildcard (which is tested, not looked up) behind an
    # exact customer id: an event must test only its own customer's wildcard.
    ruleset: RuleSet[int] = RuleSet()
    for number in range(2_000):
        pattern = {"detail": {"customer_id": [f"cus_{number}"], "note": [{"wildcard": "*gift*"}]}}
        ruleset.add(f"r{number}", pattern, number)
    calls: list[Matcher] = []
    original = Wildcard.matches

    def counting(self: Wildcard, value: Any) -> bool:
        calls.append(self)
        return original(self, value)

    monkeypatch.setattr(Wildcard, "matches", counting)
    event = {"detail": {"customer_id": "cus_1234", "note": "a gift card"}}
    assert ruleset.matching(event) == [1234]
    assert len(calls) == 1


def test_many_removals_compact_the_index_and_keep_answers() -> None:
    ruleset: RuleSet[int] = RuleSet()
    for number in range(600):
        ruleset.add(f"r{number}", {"n": [number], "kind": [{"prefix": "k"}]}, number)
    for number in range(0, 600, 3):
        ruleset.add(f"r{number}", {"n": [number + 1], "kind": ["kind"]}, -number)
    for number in range(600):
        if number % 3 == 1:
            ruleset.remove(f"r{number}")
    assert len(ruleset) == 400
    assert ruleset.matching({"n": 1, "kind": "kind"}) == [0]
    assert ruleset.matching({"n": 2, "kind": "kx"}) == [2]
    assert ruleset.matching({"n": 4, "kind": "kx"}) == []
    assert ruleset.matching({"n": 4, "kind": "kind"}) == [-3]


# -- the index against one-by-one matching ---------------------------------------------

FIELDS = ["a", "b", "c", "d.x", "d.y"]
VALUES = ["x", "y", "xy", "Xy", "10.1.2.3", "", 1, 2, 2.5, True, None]
OPERATORS = st.one_of(
    st.sampled_from(VALUES),
    st.sampled_from(
        [
            {"exists": True},
            {"exists": False},
            {"prefix": "x"},
            {"prefix": ""},
            {"suffix": "y"},
            {"prefix": {"equals-ignore-case": "X"}},
            {"suffix": {"equals-ignore-case": "Y"}},
            {"equals-ignore-case": "XY"},
            {"wildcard": "*y"},
            {"wildcard": "x*"},
            {"numeric": [">", 1]},
            {"numeric": [">=", 2]},
            {"numeric": ["<", 2]},
            {"numeric": ["<=", 1]},
            {"numeric": [">", 1, "<=", 2.5]},
            {"numeric": ["=", 2]},
            {"anything-but": "x"},
            {"anything-but": [1, 2]},
            {"anything-but": {"prefix": "x"}},
            {"cidr": "10.0.0.0/8"},
            {"exactly": "x"},
        ]
    ),
)
FIELD_PATTERNS = st.dictionaries(
    st.sampled_from(FIELDS), st.lists(OPERATORS, min_size=1, max_size=3), min_size=1, max_size=3
)
PATTERNS = st.one_of(
    FIELD_PATTERNS,
    st.builds(
        lambda a, b, rest: {**rest, "$or": [a, b]}, FIELD_PATTERNS, FIELD_PATTERNS, FIELD_PATTERNS
    ),
    st.builds(lambda inner: {"items": inner}, FIELD_PATTERNS),
)
LEAF = st.sampled_from(VALUES)
OBJECT = st.fixed_dictionaries(
    {},
    optional={
        "a": LEAF,
        "b": LEAF,
        "c": st.one_of(LEAF, st.lists(LEAF, max_size=2)),
        "d": st.fixed_dictionaries({}, optional={"x": LEAF, "y": LEAF}),
    },
)
EVENTS = st.builds(
    lambda top, items: {**top, "items": items} if items is not None else top,
    OBJECT,
    st.one_of(st.none(), st.lists(OBJECT, max_size=3)),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(PATTERNS, min_size=1, max_size=12),
    st.lists(EVENTS, min_size=1, max_size=4),
    st.randoms(),
)
def test_the_index_agrees_with_testing_every_pattern(
    patterns: list[dict[str, Any]], events: list[dict[str, Any]], rng: random.Random
) -> None:
    ruleset: RuleSet[int] = RuleSet()
    live: dict[str, tuple[int, CompiledPattern]] = {}
    for number, pattern in enumerate(patterns):
        name = f"r{rng.randrange(len(patterns))}"  # some names repeat: replacement
        ruleset.add(name, pattern, number)
        live[name] = (number, compile_pattern(pattern))
        if rng.random() < 0.2:
            gone = rng.choice(sorted(live))
            ruleset.remove(gone)
            del live[gone]
    assert len(ruleset) == len(live)
    for event in events:
        expected = [number for number, compiled in live.values() if compiled.matches(event)]
        assert ruleset.matching(event) == expected


WORDS = st.text(alphabet="abAB", max_size=3)
BLOCKS = ["10.0.0.0/8", "10.1.0.0/16", "10.1.1.0/24", "10.1.1.1/32", "::/0", "2001:db8::/32"]
ADDRESSES = ["10.1.1.1", "10.2.0.1", "11.0.0.1", "2001:db8::1", "2001:DB8:0::1", "2001:db9::1"]
NUMBERS = st.sampled_from([-1.5, -1, 0, 0.5, 1, 1.5, 2, 3])  # bounds: at most six decimals
EVENT_NUMBERS = st.one_of(NUMBERS, st.sampled_from([-1.0000005, -0.0000005, 0.9999995, 1.0000005]))
ONE_OPERATOR = st.one_of(
    WORDS,
    NUMBERS,
    st.builds(lambda w: {"prefix": w}, WORDS),
    st.builds(lambda w: {"suffix": w}, WORDS),
    st.builds(lambda w: {"prefix": {"equals-ignore-case": w}}, WORDS),
    st.builds(lambda w: {"suffix": {"equals-ignore-case": w}}, WORDS),
    st.builds(lambda w: {"equals-ignore-case": w}, WORDS),
    st.builds(lambda w: {"wildcard": w + "*"}, WORDS),
    st.builds(lambda w: {"wildcard": "*" + w}, WORDS),
    st.builds(lambda a, b: {"wildcard": f"{a}*{b}a*"}, WORDS, WORDS),  # never "**"
    st.builds(lambda w: {"anything-but": {"wildcard": w + "*"}}, WORDS),
    st.builds(lambda w: {"anything-but": w}, WORDS),
    st.builds(lambda n: {"anything-but": [n]}, NUMBERS),
    st.builds(
        lambda op, n: {"numeric": [op, n]}, st.sampled_from([">", ">=", "<", "<=", "="]), NUMBERS
    ),
    st.builds(
        lambda lo, op, width: {"numeric": [">", lo, op, lo + width]},
        NUMBERS,
        st.sampled_from(["<", "<="]),
        st.sampled_from([0.5, 1, 2]),
    ),
    st.sampled_from([{"exists": True}, {"exists": False}, "2001:db8::1"]),
    st.builds(lambda block: {"cidr": block}, st.sampled_from(BLOCKS)),
)
ONE_VALUE = st.one_of(WORDS, EVENT_NUMBERS, st.sampled_from([True, None, *ADDRESSES]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.lists(ONE_OPERATOR, min_size=1, max_size=2), min_size=8, max_size=30),
    st.lists(
        st.one_of(st.none(), ONE_VALUE, st.lists(ONE_VALUE, max_size=2)), min_size=1, max_size=12
    ),
)
def test_every_operator_is_indexed_exactly_as_it_matches(
    conditions: list[list[Any]], values: list[Any]
) -> None:
    # Single-field rules: every event meets every rule's index entry, so a wrong
    # bisect, slice or lookup shows up at once; the rules' own constants (bounds,
    # words) are always among the values tried, since that is where they go wrong.
    ruleset: RuleSet[int] = RuleSet()
    compiled = []
    for number, condition in enumerate(conditions):
        ruleset.add(f"r{number}", {"f": condition}, number)
        compiled.append(compile_pattern({"f": condition}))
    for value in [*values, *_constants(conditions)]:
        event = {} if value is None else {"f": value}
        assert ruleset.matching(event) == [n for n, c in enumerate(compiled) if c.matches(event)]


ITEM = st.fixed_dictionaries(
    {},
    optional={
        "a": st.sampled_from(["x", "y", 1]),
        "b": st.sampled_from(["x", "y", 1]),
        "t": st.lists(st.sampled_from(["x", "y"]), max_size=2),
    },
)
ARRAY_EVENTS = st.builds(
    lambda items, nested, top: {**top, "items": items, "n": nested},
    st.lists(ITEM, max_size=3),
    st.lists(st.one_of(ITEM, st.lists(ITEM, max_size=2)), max_size=2),
    st.fixed_dictionaries({}, optional={"a": st.sampled_from(["x", "y"])}),
)
ARRAY_FIELDS = st.sampled_from(["items.a", "items.b", "items.t", "n.a", "n.b", "n.t", "a"])
ARRAY_VALUES = ["x", "y", 1, {"prefix": "x"}, {"anything-but": "x"}, {"exists": True}]


def _views(value: object, path: str) -> list[dict[str, list[object]]]:
    """Every way to pick one element from each array of objects (or arrays), as flat
    events: array consistency says a pattern matches if it matches one of them."""
    if isinstance(value, dict):
        views: list[dict[str, list[object]]] = [{}]
        for key, child in value.items():
            below = _views(child, f"{path}.{key}" if path else key)
            views = [_union(view, more) for view in views for more in below]
        return views
    if isinstance(value, list):
        scalars = [item for item in value if not isinstance(item, dict | list)]
        picked = [
            view for item in value if isinstance(item, dict | list) for view in _views(item, path)
        ]
        return [_union({path: scalars}, view) for view in picked or [{}]]
    return [{path: [value]}]


def _union(
    first: dict[str, list[object]], second: dict[str, list[object]]
) -> dict[str, list[object]]:
    merged = {path: list(values) for path, values in first.items()}
    for path, values in second.items():
        merged.setdefault(path, []).extend(values)
    return merged


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.dictionaries(
            ARRAY_FIELDS,
            st.lists(st.sampled_from(ARRAY_VALUES), min_size=1, max_size=2),
            min_size=1,
            max_size=3,
        ),
        min_size=1,
        max_size=8,
    ),
    st.lists(ARRAY_EVENTS, min_size=1, max_size=4),
)
def test_array_consistency_is_one_element_per_array(
    patterns: list[dict[str, Any]], events: list[dict[str, Any]]
) -> None:
    ruleset: RuleSet[int] = RuleSet()
    for number, pattern in enumerate(patterns):
        ruleset.add(f"r{number}", pattern, number)
    for event in events:
        views = _views(event, "")
        expected = [
            number
            for number, pattern in enumerate(patterns)
            if any(compile_pattern(pattern).matches(view) for view in views)
        ]
        assert [n for n, p in enumerate(patterns) if compile_pattern(p).matches(event)] == expected
        assert ruleset.matching(event) == expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["items.a", "items.b", "items.t"]),
            st.lists(st.sampled_from([*ARRAY_VALUES, {"exists": False}]), min_size=1, max_size=2),
            min_size=2,
            max_size=3,
        ),
        min_size=1,
        max_size=8,
    ),
    st.lists(ARRAY_EVENTS, min_size=1, max_size=4),
)
def test_exists_false_in_arrays_is_indexed_as_it_matches(
    patterns: list[dict[str, Any]], events: list[dict[str, Any]]
) -> None:
    # Absence inside arrays depends on field order (event-ruler's rule), which the
    # index must keep even where it reorders fields for speed.
    ruleset: RuleSet[int] = RuleSet()
    for number, pattern in enumerate(patterns):
        ruleset.add(f"r{number}", pattern, number)
    for event in events:
        expected = [n for n, p in enumerate(patterns) if compile_pattern(p).matches(event)]
        assert ruleset.matching(event) == expected


# Bounds next to powers of two (in millionths), where the grid's cells meet, and
# values half a millionth either side of them.
GRID_BOUNDS = st.builds(
    lambda sign, power, step: Decimal(sign * (2**power + step)) / 1_000_000,
    st.sampled_from([-1, 1]), st.integers(0, 40), st.integers(-2, 2),
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(GRID_BOUNDS, GRID_BOUNDS, st.booleans(), st.booleans()), min_size=1, max_size=10
    ),
    st.data(),
)
def test_range_index_finds_exactly_the_ranges_holding_a_value(
    bounds: list[tuple[Decimal, Decimal, bool, bool]], data: st.DataObject
) -> None:
    index: RangeIndex[int] = RangeIndex()
    ranges: list[Numeric] = []
    for first, second, low_inclusive, high_inclusive in bounds:
        low, high = sorted((first, second))
        if low < high and in_numeric_range(low) and in_numeric_range(high):
            ranges.append(Numeric(low, low_inclusive, high, high_inclusive))
            index.insert(ranges[-1], len(ranges) - 1)
    assume(ranges)
    edge = data.draw(st.sampled_from([b for r in ranges for b in (r.lower, r.upper)]))
    assert edge is not None
    half = Decimal("0.0000005")
    for value in (edge, edge - half, edge + half):
        found: list[int] = []
        index.find(value, found)
        assert sorted(found) == [n for n, r in enumerate(ranges) if r.matches(value)]


def _constants(pattern: object) -> list[object]:
    if isinstance(pattern, dict):
        return [c for value in pattern.values() for c in _constants(value)]
    if isinstance(pattern, list):
        return [c for value in pattern for c in _constants(value)]
    if isinstance(pattern, str):
        return [pattern, pattern.rstrip("*"), pattern.swapcase()]
    return [pattern] if isinstance(pattern, int | float) and not isinstance(pattern, bool) else []


def test_a_large_random_rule_set_agrees_with_testing_every_pattern() -> None:
    # Enough rules that the planner re-plans several times and edges are shared.
    rng = random.Random(7)
    ruleset: RuleSet[int] = RuleSet()
    compiled: list[CompiledPattern] = []
    simple = [op for op in VALUES if op is not None] + [
        {"prefix": "x"},
        {"numeric": [">", 1]},
        {"exists": False},
    ]
    for number in range(2_000):
        pattern: dict[str, Any] = {
            field: [rng.choice(simple) for _ in range(rng.randint(1, 2))]
            for field in rng.sample(FIELDS, rng.randint(1, 3))
        }
        ruleset.add(f"r{number}", pattern, number)
        compiled.append(compile_pattern(pattern))
    for _ in range(80):
        event = {
            "a": rng.choice(VALUES), "b": rng.choice(VALUES),
            "d": {"x": rng.choice(VALUES)}, "c": [rng.choice(VALUES), rng.choice(VALUES)],
        }  # fmt: skip
        if rng.random() < 0.3:
            del event["a"]
        assert ruleset.matching(event) == [n for n, c in enumerate(compiled) if c.matches(event)]
