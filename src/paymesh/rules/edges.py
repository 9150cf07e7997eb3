"""A trie node, and the edges out of it on one path, indexed by operator.

Given one event value, ``Edges.targets`` finds the children it leads to without
trying edges one by one wherever the operator allows:

- exact values and ``numeric =``: one dict lookup;
- equals-ignore-case: one lookup of the case-folded value;
- prefix / suffix: one lookup per distinct length;
- wildcard with a literal head (``cus_12*``) or tail (``*.png``): a prefix or
  suffix lookup, then the wildcard itself on what was found;
- cidr: one lookup per distinct (IP version, mask length);
- numeric ranges: see ranges.py (a bisect, or one cell per width class).

Left to test one by one: anything-but (which matches nearly everything anyway),
wildcards with stars at both ends, and exact IPv6 literals (any spelling).
"""

from __future__ import annotations

from decimal import Decimal

from .compiler import Condition
from .matchers import (
    Cidr,
    EqualsIgnoreCase,
    Exists,
    Matcher,
    Numeric,
    Prefix,
    Suffix,
    Wildcard,
    parse_ip,
)
from .ranges import RangeIndex
from .values import Value, fold, in_numeric_range

# (length, ignore_case) -> text of that length -> children
Affixes = dict[tuple[int, bool], dict[str, list["Node"]]]
# length -> literal head or tail of that length -> (wildcard, child)
Guarded = dict[int, dict[str, list[tuple[Wildcard, "Node"]]]]


class Node:
    __slots__ = ("edges", "terminal")

    def __init__(self) -> None:
        self.edges: dict[str, Edges] = {}
        self.terminal: set[int] = set()  # sequence numbers of rules whose branch ends here


class Edges:
    __slots__ = (
        "absent", "any_value", "children", "exact", "folded", "heads", "needs_fold", "networks",
        "plain", "prefixes", "ranges", "scan", "suffixes", "tails",
    )  # fmt: skip

    def __init__(self) -> None:
        self.children: dict[Condition, Node] = {}
        self.exact: dict[Value, list[Node]] = {}
        self.folded: dict[str, list[Node]] = {}
        self.prefixes: Affixes = {}
        self.suffixes: Affixes = {}
        self.heads: Guarded = {}
        self.tails: Guarded = {}
        # (IP version, mask length) -> network address as an int -> children
        self.networks: dict[tuple[int, int], dict[int, list[Node]]] = {}
        self.ranges: RangeIndex[Node] = RangeIndex()
        self.scan: list[tuple[Matcher, Node]] = []
        self.any_value: list[Node] = []
        self.absent: list[Node] = []
        self.needs_fold = False  # some ignore-case index wants the folded value
        self.plain = True  # only exact values so far: the walk does the lookup itself

    def child(self, condition: Condition) -> Node:
        """The node this condition leads to, indexing it on first sight."""
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
        if isinstance(matcher, Exists):
            self.any_value.append(node)
        elif isinstance(matcher, EqualsIgnoreCase):
            self.needs_fold = True
            self.folded.setdefault(matcher.text, []).append(node)
        elif isinstance(matcher, Prefix | Suffix):
            table = self.prefixes if isinstance(matcher, Prefix) else self.suffixes
            self.needs_fold = self.needs_fold or matcher.ignore_case
            key = (len(matcher.text), matcher.ignore_case)
            table.setdefault(key, {}).setdefault(matcher.text, []).append(node)
        elif isinstance(matcher, Wildcard):
            self._index_wildcard(matcher, node)
        elif isinstance(matcher, Cidr):
            network = matcher.network
            blocks = self.networks.setdefault((network.version, network.prefixlen), {})
            blocks.setdefault(int(network.network_address), []).append(node)
        elif isinstance(matcher, Numeric):
            if matcher.lower is not None and matcher.lower == matcher.upper:
                self.exact.setdefault(matcher.lower, []).append(node)  # "=", in range
            else:
                self.ranges.insert(matcher, node)
        else:
            self.scan.append((matcher, node))

    def _index_wildcard(self, matcher: Wildcard, node: Node) -> None:
        head, tail = matcher.segments[0], matcher.segments[-1]
        if len(matcher.segments) == 1:  # no star: an exact string
            self.exact.setdefault(head, []).append(node)
        elif head:
            self.heads.setdefault(len(head), {}).setdefault(head, []).append((matcher, node))
        elif tail:
            self.tails.setdefault(len(tail), {}).setdefault(tail, []).append((matcher, node))
        else:
            self.scan.append((matcher, node))

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
        elif (kind is int or kind is Decimal) and self.ranges and in_numeric_range(value):  # type: ignore[arg-type]
            self.ranges.find(value, out)  # type: ignore[arg-type]
        for matcher, node in self.scan:
            if matcher.matches(value):
                out.append(node)

    def _string_targets(self, text: str, out: list[Node]) -> None:
        folded = fold(text) if self.needs_fold else text
        if self.folded:
            hit = self.folded.get(folded)
            if hit:
                out.extend(hit)
        for (length, ignore_case), table in self.prefixes.items():
            hit = table.get((folded if ignore_case else text)[:length])
            if hit:
                out.extend(hit)
        for (length, ignore_case), table in self.suffixes.items():
            source = folded if ignore_case else text
            hit = table.get(source[len(source) - length :])
            if hit:
                out.extend(hit)
        for length, guarded in self.heads.items():
            for wildcard, node in guarded.get(text[:length], ()):
                if wildcard.matches(text):
                    out.append(node)
        for length, guarded in self.tails.items():
            for wildcard, node in guarded.get(text[len(text) - length :], ()):
                if wildcard.matches(text):
                    out.append(node)
        if self.networks:
            self._address_targets(text, out)

    def _address_targets(self, text: str, out: list[Node]) -> None:
        address = parse_ip(text)
        if address is None:
            return
        bits = int(address)
        for (version, mask), table in self.networks.items():
            if version == address.version:
                shift = address.max_prefixlen - mask
                hit = table.get(bits >> shift << shift)
                if hit:
                    out.extend(hit)
