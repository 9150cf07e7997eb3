"""Many named rules in one index, so routing an event costs about the same with
ten rules or ten thousand."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from .flatten import Plan, flatten, plan_paths
from .index import Node, insert, walk
from .pattern import CompiledPattern, compile_pattern
from .planner import FieldStats

T = TypeVar("T")


@dataclass(slots=True)
class _Rule(Generic[T]):
    sequence: int  # insertion order; kept when a rule is replaced
    value: T
    pattern: CompiledPattern
    terminals: list[Node]


class RuleSet(Generic[T]):
    """Named rules, each a pattern and a value (a target list, a handler...).

    ``matching(event)`` returns the values of every rule whose pattern matches,
    in insertion order; it gives the same answer as testing each pattern with
    ``CompiledPattern.matches`` but walks one merged index (see index.py).
    Replacing a rule (``add`` with a known name) keeps its place in the order,
    as assigning to an existing dict key does. Matching changes nothing (beyond
    the module's bounded value caches), so threads may match at once; adding or
    removing needs exclusion from matching.
    """

    def __init__(self) -> None:
        self._rules: dict[str, _Rule[T]] = {}
        self._by_sequence: dict[int, _Rule[T]] = {}
        self._next_sequence = 0
        self._stats = FieldStats()
        self._paths: Counter[str] = Counter()
        self._plan: Plan = {}  # which parts of an event any rule looks at
        self._root = Node()
        self._size_at_build = 0
        self._live_branches = 0
        self._stale_branches = 0  # unmarked, but their edges are still in the index

    def add(self, name: str, pattern: Mapping[str, object] | str, value: T) -> None:
        """Add or replace a rule; raises InvalidEventPattern (and changes nothing)."""
        compiled = compile_pattern(pattern)
        old = self._rules.get(name)
        if old is None:
            sequence = self._next_sequence
            self._next_sequence += 1
        else:
            sequence = old.sequence
            self._forget(old)
        rule = _Rule(sequence, value, compiled, [])
        self._rules[name] = rule
        self._by_sequence[sequence] = rule
        self._stats.add(compiled.branches)
        self._count_paths(compiled.paths, +1)
        if len(self._rules) >= max(16, 2 * self._size_at_build):
            # The field order was planned with statistics from half as many rules:
            # re-plan. Doubling keeps all rebuilds together within twice one build.
            self._rebuild()
        else:
            self._link(rule)
            self._compact_if_stale()

    def remove(self, name: str) -> None:
        """Remove a rule; KeyError if there is none by that name."""
        rule = self._rules.pop(name)
        del self._by_sequence[rule.sequence]
        self._forget(rule)
        self._compact_if_stale()

    def matching(self, event: Mapping[str, object]) -> list[T]:
        """Values of every rule whose pattern matches ``event``, in insertion order."""
        sequences = walk(self._root, flatten(event, self._plan))
        by_sequence = self._by_sequence
        return [by_sequence[sequence].value for sequence in sorted(sequences)]

    def __len__(self) -> int:
        return len(self._rules)

    def __contains__(self, name: object) -> bool:
        return name in self._rules

    def __iter__(self) -> Iterator[str]:
        return iter(self._rules)

    def pattern(self, name: str) -> CompiledPattern:
        return self._rules[name].pattern

    def _link(self, rule: _Rule[T]) -> None:
        order = self._stats.order
        rule.terminals = [
            insert(self._root, order(branch), rule.sequence) for branch in rule.pattern.branches
        ]
        self._live_branches += len(rule.terminals)

    def _forget(self, rule: _Rule[T]) -> None:
        # Only the rule's end nodes are unmarked; its edges stay until a rebuild.
        for node in rule.terminals:
            node.terminal.discard(rule.sequence)
        self._live_branches -= len(rule.terminals)
        self._stale_branches += len(rule.terminals)
        self._stats.remove(rule.pattern.branches)
        self._count_paths(rule.pattern.paths, -1)

    def _compact_if_stale(self) -> None:
        # Once dead edges outweigh live ones, matching would mostly walk them.
        if self._stale_branches > max(64, self._live_branches):
            self._rebuild()

    def _rebuild(self) -> None:
        self._size_at_build = len(self._rules)
        self._root = Node()
        self._live_branches = self._stale_branches = 0
        for rule in self._rules.values():
            self._link(rule)

    def _count_paths(self, paths: Iterable[str], step: int) -> None:
        # One call only adds or only removes, so the set of paths changed exactly
        # when its size did; only then does the flattening plan need redoing.
        known = len(self._paths)
        for path in paths:
            self._paths[path] += step
            if not self._paths[path]:
                del self._paths[path]
        if len(self._paths) != known:
            self._plan = plan_paths(self._paths)
