"""One compiled pattern, and EventBridge's TestEventPattern on top of it."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from decimal import Decimal

from .compiler import Branch, compile_branches
from .flatten import FlatEvent, Membership, consistent, flatten, merge, plan_paths


class CompiledPattern:
    """A validated pattern; ``matches`` tests events against it.

    Equal patterns compile to equal objects (the branches are sorted and
    deduplicated), so compiling is deterministic and comparable.
    """

    __slots__ = ("_plan", "branches")

    def __init__(self, branches: tuple[Branch, ...]) -> None:
        self.branches = branches
        self._plan = plan_paths(path for branch in branches for path, _ in branch)

    @property
    def paths(self) -> frozenset[str]:
        return frozenset(path for branch in self.branches for path, _ in branch)

    def matches(self, event: Mapping[str, object]) -> bool:
        """True if any branch matches. TypeError if the event holds non-JSON values."""
        flat = flatten(event, self._plan)
        return any(branch_matches(branch, flat) for branch in self.branches)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CompiledPattern) and other.branches == self.branches

    def __hash__(self) -> int:
        return hash(self.branches)

    def __repr__(self) -> str:
        return f"CompiledPattern({len(self.branches)} branch(es) over {sorted(self.paths)})"


def compile_pattern(pattern: Mapping[str, object] | str) -> CompiledPattern:
    """Validate and compile a pattern (a dict, or its JSON text); raises InvalidEventPattern."""
    if isinstance(pattern, str):
        return _compile_text(pattern)
    return CompiledPattern(compile_branches(pattern))


@functools.lru_cache(maxsize=1024)
def _compile_text(text: str) -> CompiledPattern:
    # Rule patterns arrive as JSON text over and over (config, API); compile each once.
    return CompiledPattern(compile_branches(text))


def test_event_pattern(
    pattern: Mapping[str, object] | str, event: Mapping[str, object] | str
) -> bool:
    """EventBridge's TestEventPattern: does ``event`` match ``pattern``?

    Raises InvalidEventPattern for a bad pattern, and ValueError if the event is
    not a JSON object.
    """
    compiled = compile_pattern(pattern)
    if isinstance(event, str):
        event = json.loads(event, parse_float=Decimal)
    if not isinstance(event, Mapping):
        raise ValueError(f"an event is a JSON object, not {type(event).__name__}")
    return compiled.matches(event)


test_event_pattern.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def branch_matches(branch: Branch, flat: FlatEvent) -> bool:
    if not flat.memberships:
        # No leaf sits inside an array element, so array consistency cannot fail
        # and each field is tested on its own.
        values = flat.values
        for path, condition in branch:
            found = values.get(path)
            if not found:
                if condition.absent_ok:
                    continue
                return False
            if not any(condition.matches(value) for value in found):
                return False
        return True
    return _search(branch, 0, (), flat, set())


def _search(
    branch: Branch,
    index: int,
    held: Membership,
    flat: FlatEvent,
    failed: set[tuple[int, Membership]],
) -> bool:
    """Backtrack over the leaves each field could use, keeping them array-consistent.

    Fields go in path order, and exists:false is judged against the leaves chosen
    so far, which is how event-ruler (and so EventBridge) evaluates it.
    """
    if index == len(branch):
        return True
    if (index, held) in failed:
        return False
    path, condition = branch[index]
    leaves = list(flat.leaves(path))
    if (
        condition.absent_ok
        and not any(consistent(held, member) for _, member in leaves)
        and _search(branch, index + 1, held, flat, failed)
    ):
        return True
    for value, member in leaves:
        merged = merge(held, member)
        if (
            merged is not None
            and condition.matches(value)
            and _search(branch, index + 1, merged, flat, failed)
        ):
            return True
    failed.add((index, held))
    return False
