"""The rule set's state machine: all rules' branches merged into one trie.

A branch is a list of ``(path, condition)`` (in the planner's order); the trie
has one edge per distinct condition on a path, so rules that start alike share
their first steps (event-ruler's NameState machine, in dictionaries). Matching
walks the trie: at each node, for each path it has edges on, the event's values
at that path are looked up in the per-operator indexes of edges.py, so the cost
follows the edges an event can take, not the number of rules.
"""

from __future__ import annotations

from .compiler import Branch
from .edges import Edges, Node
from .flatten import FlatEvent, Membership, consistent, merge

__all__ = ["Node", "insert", "walk"]


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
