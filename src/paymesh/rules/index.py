"""The rule set's state machine: all rules' branches merged into one trie.

A branch is a sorted list of ``(path, condition)``; the trie has one edge per
distinct condition on a path, so rules that start alike share their first steps
(event-ruler's NameState machine, in dictionaries). Matching walks the trie:
at each node, for each path it has edges on, the event's values at that path
are looked up in per-operator indexes, so the cost follows the edges an event
can take, not the number of rules:

- exact values and ``numeric =``: one dict lookup;
- equals-ignore-case: one lookup of the lower-cased value;
- prefix / suffix: one lookup per distinct prefix length;
- one-sided numeric ranges: a bisect in the sorted bounds (every entry on the
  right side of it matches, so nothing is tested in vain);
- the rest (wildcard, anything-but, cidr, two-sided ranges): tested one by one,
  but only those hanging off nodes the event already reached.
"""

from __future__ import annotations

import bisect
from decimal import Decimal

from .compiler import Branch, Condition
from .flatten import FlatEvent, Membership, consistent, merge
from .matchers import EqualsIgnoreCase, Exists, Matcher, Numeric, Prefix, Suffix
from .values import Value, fold, in_numeric_range

Number = int | Decimal


class Node:
    __slots__ = ("edges", "terminal")

    def __init__(self) -> None:
        self.edges: dict[str, Edges] = {}
        self.terminal: set[int] = set()  # sequence numbers of rules whose branch ends here


class _Bounds:
    """One-sided ranges on one path, sorted by bound."""

    __slots__ = ("bounds", "nodes")

    def __init__(self) -> None:
        self.bounds: list[Number] = []
        self.nodes: list[Node] = []

    def insert(self, bound: Number, node: Node) -> None:
        at = bisect.bisect_right(self.bounds, bound)
        self.bounds.insert(at, bound)
        self.nodes.insert(at, node)


class Edges:
    """Every edge out of one node on one path, indexed by operator."""

    __slots__ = (
        "absent",
        "any_value",
        "children",
        "exact",
        "greater",
        "greater_equal",
        "less",
        "less_equal",
        "lowered",
        "needs_lower",
        "plain",
        "prefixes",
        "scan",
        "suffixes",
    )

    def __init__(self) -> None:
        self.children: dict[Condition, Node] = {}
        self.exact: dict[Value, list[Node]] = {}
        self.lowered: dict[str, list[Node]] = {}
        # (length, ignore_case) -> text -> nodes
        self.prefixes: dict[tuple[int, bool], dict[str, list[Node]]] = {}
        self.suffixes: dict[tuple[int, bool], dict[str, list[Node]]] = {}
        self.greater, self.greater_equal = _Bounds(), _Bounds()
        self.less, self.less_equal = _Bounds(), _Bounds()
        self.scan: list[tuple[Matcher, Node]] = []
        self.any_value: list[Node] = []
        self.absent: list[Node] = []
        self.needs_lower = False  # some ignore-case index wants the lower-cased value
        self.plain = True  # only exact values so far: walk() does the lookup itself

    def child(self, condition: Condition) -> Node:
        node = self.children.get(condition)
        if node is None:
            node = self.children[condition] = Node()
            for value in condition.exact:
                self.exact.setdefault(value, []).append(node)
            for matcher in condition.matchers:
                self._index(matcher, node)
            if condition.absent_ok:
                self.absent.append(node)
            self.plain = self.plain and not condition.matchers
        return node

    def _index(self, matcher: Matcher, node: Node) -> None:
        kind = type(matcher)
        if kind is Exists:
            self.any_value.append(node)
        elif kind is EqualsIgnoreCase:
            self.needs_lower = True
            self.lowered.setdefault(matcher.text, []).append(node)  # type: ignore[attr-defined]
        elif kind is Prefix or kind is Suffix:
            table = self.prefixes if kind is Prefix else self.suffixes
            text: str = matcher.text  # type: ignore[attr-defined]
            key = (len(text), matcher.ignore_case)  # type: ignore[attr-defined]
            self.needs_lower = self.needs_lower or key[1]
            table.setdefault(key, {}).setdefault(text, []).append(node)
        elif kind is not Numeric or not self._index_numeric(matcher, node):  # type: ignore[arg-type]
            self.scan.append((matcher, node))

    def _index_numeric(self, matcher: Numeric, node: Node) -> bool:
        lower, upper = matcher.lower, matcher.upper
        if lower is not None and upper is not None:
            if lower != upper:
                return False  # two-sided: scanned
            self.exact.setdefault(lower, []).append(node)  # "=": in range by validation
        elif lower is not None:
            (self.greater_equal if matcher.lower_inclusive else self.greater).insert(lower, node)
        elif upper is not None:
            (self.less_equal if matcher.upper_inclusive else self.less).insert(upper, node)
        return True

    def targets(self, value: Value, out: list[Node]) -> None:
        """Append every child this value leads to (possibly more than once)."""
        hit = self.exact.get(value)
        if hit:
            out.extend(hit)
        if self.any_value:
            out.extend(self.any_value)
        kind = type(value)
        if kind is str:
            self._string_targets(value, out)  # type: ignore[arg-type]
        elif (kind is int or kind is Decimal) and in_numeric_range(value):  # type: ignore[arg-type]
            self._number_targets(value, out)  # type: ignore[arg-type]
        for matcher, node in self.scan:
            if matcher.matches(value):
                out.append(node)

    def _string_targets(self, text: str, out: list[Node]) -> None:
        lowered = fold(text) if self.needs_lower else text
        if self.lowered:
            hit = self.lowered.get(lowered)
            if hit:
                out.extend(hit)
        for (length, ignore_case), table in self.prefixes.items():
            hit = table.get((lowered if ignore_case else text)[:length])
            if hit:
                out.extend(hit)
        for (length, ignore_case), table in self.suffixes.items():
            source = lowered if ignore_case else text
            hit = table.get(source[len(source) - length :])
            if hit:
                out.extend(hit)

    def _number_targets(self, number: Number, out: list[Node]) -> None:
        if self.greater.nodes:  # bound < number
            out.extend(self.greater.nodes[: bisect.bisect_left(self.greater.bounds, number)])
        if self.greater_equal.nodes:  # bound <= number
            bounds = self.greater_equal.bounds
            out.extend(self.greater_equal.nodes[: bisect.bisect_right(bounds, number)])
        if self.less.nodes:  # bound > number
            out.extend(self.less.nodes[bisect.bisect_right(self.less.bounds, number) :])
        if self.less_equal.nodes:  # bound >= number
            bounds = self.less_equal.bounds
            out.extend(self.less_equal.nodes[bisect.bisect_left(bounds, number) :])


def insert(root: Node, branch: Branch, sequence: int) -> Node:
    """Add one branch; returns the node that records the rule, for later removal."""
    node = root
    for path, condition in branch:
        edges = node.edges.get(path)
        if edges is None:
            edges = node.edges[path] = Edges()
        node = edges.child(condition)
    node.terminal.add(sequence)
    return node


def walk(root: Node, flat: FlatEvent) -> set[int]:
    """Sequence numbers of every rule with a branch the event satisfies."""
    if flat.memberships:
        return _walk_arrays(root, flat)
    matched: set[int] = set()
    values = flat.values
    seen: set[Node] = {root}
    stack = [root]
    reached: list[Node] = []
    while stack:
        node = stack.pop()
        if node.terminal:
            matched.update(node.terminal)
        for path, edges in node.edges.items():
            found = values.get(path)
            if found is None:
                reached.extend(edges.absent)
            elif edges.plain:  # exact values only: the common case, inlined
                exact = edges.exact
                for value in found:
                    hit = exact.get(value)
                    if hit:
                        reached.extend(hit)
            else:
                for value in found:
                    edges.targets(value, reached)
            if reached:
                for child in reached:
                    if child not in seen:
                        seen.add(child)
                        stack.append(child)
                reached.clear()
    return matched


def _walk_arrays(root: Node, flat: FlatEvent) -> set[int]:
    # As walk(), but each step carries the array membership of the leaves used so
    # far, so a branch cannot take two fields from different elements of an array.
    matched: set[int] = set()
    seen: set[tuple[Node, Membership]] = {(root, ())}
    stack: list[tuple[Node, Membership]] = [(root, ())]
    reached: list[Node] = []
    while stack:
        node, held = stack.pop()
        if node.terminal:
            matched.update(node.terminal)
        for path, edges in node.edges.items():
            leaves = list(flat.leaves(path))
            steps: list[tuple[Node, Membership]] = []
            if edges.absent and not any(consistent(held, member) for _, member in leaves):
                steps.extend((child, held) for child in edges.absent)
            for value, member in leaves:
                merged = merge(held, member)
                if merged is None:
                    continue
                edges.targets(value, reached)
                steps.extend((child, merged) for child in reached)
                reached.clear()
            for step in steps:
                if step not in seen:
                    seen.add(step)
                    stack.append(step)
    return matched
