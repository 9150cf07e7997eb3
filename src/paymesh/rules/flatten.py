"""An event as EventBridge sees it: dotted leaf paths, each with its values.

``{"detail": {"items": [{"sku": "a"}, {"sku": "b"}]}}`` becomes
``{"detail.items.sku": ["a", "b"]}``. Objects are not leaves (only what is
inside them is), and an empty array contributes nothing, which is why
``exists`` is false for both.

Array consistency: a pattern naming two fields of the objects inside one array
must find them in the *same* element. So every leaf that sits inside an object
(or array) that is an element of an array remembers its *membership*: which
array (numbered in document order) and which element, for each enclosing
array. Two leaves can be used together when their memberships agree on every
array they share. A scalar directly in an array gets no entry for that array,
as in event-ruler: one pattern field only ever uses one of its values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .values import Value, canonical

Membership = tuple[tuple[int, int], ...]


@dataclass(slots=True)
class FlatEvent:
    values: dict[str, list[Value]]
    # Same shape as values but only for paths where some leaf sits inside an array
    # element; most events have none, and then matching never merges memberships.
    memberships: dict[str, list[Membership]]

    def leaves(self, path: str) -> Iterable[tuple[Value, Membership]]:
        values = self.values.get(path)
        if not values:
            return ()
        members = self.memberships.get(path)
        if members is None:
            return ((value, ()) for value in values)
        return zip(values, members, strict=True)


# For each object the walk enters (by its path; None is the event itself): the
# keys worth reading there, each with the full path it leads to. Precomputed so
# an unwanted key costs one dict probe and no string building.
Plan = dict[str | None, dict[str, str]]


def plan_paths(paths: Iterable[str]) -> Plan:
    """The plan for flattening only what patterns on ``paths`` can look at.

    A key may itself hold dots, so ``detail.code`` is reached by the key
    ``detail.code`` at the top as well as by ``code`` inside ``detail``.
    """
    prefixes: set[str] = set()
    for path in paths:
        parts = path.split(".")
        prefixes.update(".".join(parts[:end]) for end in range(1, len(parts) + 1))
    plan: Plan = {}
    for prefix in prefixes:
        parts = prefix.split(".")
        for cut in range(len(parts)):
            parent = ".".join(parts[:cut]) if cut else None
            if parent is None or parent in prefixes:
                plan.setdefault(parent, {})[".".join(parts[cut:])] = prefix
    return plan


def flatten(event: Mapping[str, object], plan: Plan | None = None) -> FlatEvent:
    """Flatten ``event``; with a ``plan`` (from plan_paths) only the subtrees it names.

    A key holding dots is joined like nested keys, as EventBridge does, so the
    pattern keys ``"detail.code"`` and ``{"detail": {"code": ...}}`` are one path.
    """
    values: dict[str, list[Value]] = {}
    members: dict[str, list[Membership]] = {}
    array_ids = [0]

    def add(path: str, value: Value, membership: Membership) -> None:
        # The slow path: this leaf (or an earlier one at this path) is in an array.
        bucket = values.setdefault(path, [])
        marks = members.get(path)
        if marks is None:
            marks = members[path] = [()] * len(bucket)
        marks.append(membership)
        bucket.append(value)

    def walk_object(obj: Mapping[str, object], prefix: str | None, membership: Membership) -> None:
        pairs: list[tuple[str, object]]
        if plan is None:
            pairs = [(_join(prefix, key), child) for key, child in obj.items()]
        else:
            keys = plan.get(prefix)
            if keys is None:
                return
            if len(keys) < len(obj):
                pairs = [(path, obj[key]) for key, path in keys.items() if key in obj]
            else:
                pairs = [(path, obj[key]) for key in obj if (path := keys.get(key)) is not None]
        for path, child in pairs:
            kind = type(child)
            if kind is str or kind is int:
                value: Value = child  # type: ignore[assignment]
            elif kind is dict or isinstance(child, Mapping):
                walk_object(child, path, membership)  # type: ignore[arg-type]
                continue
            elif kind is list or kind is tuple:
                walk_array(child, path, membership)  # type: ignore[arg-type]
                continue
            else:
                value = canonical(child)
            if membership or path in members:
                add(path, value, membership)
            else:
                bucket = values.get(path)
                if bucket is None:
                    values[path] = [value]
                else:
                    bucket.append(value)

    def walk_array(items: Sequence[object], path: str, membership: Membership) -> None:
        array_id = array_ids[0]
        array_ids[0] += 1
        for index, item in enumerate(items):
            if isinstance(item, Mapping):
                walk_object(item, path, (*membership, (array_id, index)))
            elif isinstance(item, list | tuple):
                walk_array(item, path, (*membership, (array_id, index)))
            elif membership or path in members:
                add(path, canonical(item), membership)
            else:
                values.setdefault(path, []).append(canonical(item))

    walk_object(event, None, ())
    return FlatEvent(values, members)


def _join(prefix: str | None, key: object) -> str:
    if type(key) is not str:
        raise TypeError(f"event keys must be strings, not {type(key).__name__}")
    return key if prefix is None else f"{prefix}.{key}"


def merge(held: Membership, new: Membership) -> Membership | None:
    """The membership of two leaves used together, or None if they are from different
    elements of one array."""
    if not new or new == held:
        return held
    if not held:
        return new
    combined = dict(held)
    for array_id, index in new:
        if combined.setdefault(array_id, index) != index:
            return None
    return tuple(sorted(combined.items()))


def consistent(held: Membership, new: Membership) -> bool:
    if not new or not held:
        return True
    indexes = dict(held)
    return all(indexes.get(array_id, index) == index for array_id, index in new)
