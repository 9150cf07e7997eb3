"""Validate an EventBridge pattern and compile it into branches of field conditions.

A pattern is an AND of fields; ``$or`` (at any level) forks it, so the compiled
form is an OR of *branches*, each an AND of ``(path, Condition)`` sorted by
path, exactly as event-ruler expands it. Nested objects flatten into dotted
paths, so ``{"detail": {"code": [...]}}`` and ``{"detail.code": [...]}`` are the
same field; when a path is given twice the later one wins, as in event-ruler.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from .errors import InvalidEventPattern
from .matchers import Matcher, SameAddress, parse_ip
from .operators import ABSENT, RESERVED_NAMES, compile_operator
from .values import FALSE, NULL, TRUE, Tag, Value, canonical

# $or multiplies branches; past this a pattern is more likely a mistake than a rule.
MAX_BRANCHES: Final = 1024
MAX_DEPTH: Final = 64


@dataclass(frozen=True, slots=True)
class Condition:
    """What one field must satisfy: any of its alternatives.

    ``exact`` holds the plain values (hash lookups), ``matchers`` the operators,
    ``absent_ok`` is ``{"exists": false}``: the field may be missing.
    """

    exact: frozenset[Value]
    matchers: tuple[Matcher, ...]
    absent_ok: bool

    def matches(self, value: Value) -> bool:
        if value in self.exact:
            return True
        return any(matcher.matches(value) for matcher in self.matchers)


Branch = tuple[tuple[str, Condition], ...]


def compile_branches(pattern: Mapping[str, object] | str) -> tuple[Branch, ...]:
    """The pattern's branches; raises InvalidEventPattern naming the field and problem."""
    if isinstance(pattern, str | bytes):
        try:
            pattern = json.loads(pattern, parse_float=Decimal)
        except (ValueError, RecursionError) as exc:
            raise InvalidEventPattern(f"not valid JSON: {exc}") from None
    if not isinstance(pattern, Mapping):
        raise InvalidEventPattern(f"a pattern is a JSON object, not {type(pattern).__name__}")
    branches = _parse_object(pattern, None, [{}], in_or=False, depth=0)
    ordered = (tuple(sorted(branch.items())) for branch in branches)
    return tuple(dict.fromkeys(ordered))


Fields = dict[str, Condition]


def _parse_object(
    obj: Mapping[str, object],
    prefix: str | None,
    branches: list[Fields],
    *,
    in_or: bool,
    depth: int,
) -> list[Fields]:
    where = prefix or ""
    if depth > MAX_DEPTH:
        raise InvalidEventPattern(f"nested more than {MAX_DEPTH} levels deep", where)
    if not obj:
        raise InvalidEventPattern("empty objects are not allowed", where)
    for key, value in obj.items():
        if not isinstance(key, str):
            raise InvalidEventPattern(f"field names are strings, not {key!r}", where)
        if key == "$or":
            branches = _parse_or(value, prefix, branches, depth)
            continue
        path = key if prefix is None else f"{prefix}.{key}"
        if in_or and key in RESERVED_NAMES:
            raise InvalidEventPattern(f"{key!r} is reserved and cannot be a field inside $or", path)
        if isinstance(value, Mapping):
            branches = _parse_object(value, path, branches, in_or=in_or, depth=depth + 1)
        elif isinstance(value, list | tuple):
            condition = _parse_values(value, path)
            for branch in branches:
                branch[path] = condition
        else:
            example = str(value) if isinstance(value, Decimal) else json.dumps(value, default=str)
            raise InvalidEventPattern(
                f"must be an object or an array of values, e.g. [{example[:40]}]", path
            )
    return branches


def _parse_or(
    alternatives: object, prefix: str | None, branches: list[Fields], depth: int
) -> list[Fields]:
    where = f"{prefix}.$or" if prefix else "$or"
    if not isinstance(alternatives, list | tuple):
        raise InvalidEventPattern("$or takes an array of at least two objects", where)
    forked: list[Fields] = []
    for alternative in alternatives:
        if not isinstance(alternative, Mapping):
            raise InvalidEventPattern("only objects are allowed in a $or array", where)
        copies = [dict(branch) for branch in branches]
        forked.extend(_parse_object(alternative, prefix, copies, in_or=True, depth=depth + 1))
        if len(forked) > MAX_BRANCHES:
            raise InvalidEventPattern(f"$or expands to more than {MAX_BRANCHES} branches", where)
    if len(alternatives) < 2:
        raise InvalidEventPattern("$or needs at least two objects", where)
    return forked


def _parse_values(items: list[object] | tuple[object, ...], path: str) -> Condition:
    if not items:
        raise InvalidEventPattern("empty arrays are not allowed", path)
    exact: set[Value] = set()
    matchers: list[Matcher] = []
    absent_ok = False
    for item in items:
        if isinstance(item, Mapping):
            try:
                compiled = compile_operator(dict(item))
            except ValueError as exc:
                raise InvalidEventPattern(str(exc), path) from None
            if compiled is ABSENT:
                absent_ok = True
            elif isinstance(compiled, Matcher):
                matchers.append(compiled)
            else:
                exact.add(compiled)
        else:
            value = _exact_value(item, path)
            address = parse_ip(value) if isinstance(value, str) and ":" in value else None
            if address is not None:
                matchers.append(SameAddress(address))
            else:
                exact.add(value)
    return Condition(frozenset(exact), tuple(dict.fromkeys(matchers)), absent_ok)


def _exact_value(item: object, path: str) -> Value:
    problem = "values are strings, numbers, true, false, null or operator objects"
    if isinstance(item, list | tuple):
        raise InvalidEventPattern(f"{problem}; an array cannot be nested here", path)
    try:
        value = canonical(item)
    except TypeError:
        raise InvalidEventPattern(f"{problem}, not {type(item).__name__}", path) from None
    if isinstance(value, Tag) and value not in (TRUE, FALSE, NULL):
        raise InvalidEventPattern(f"numbers must be finite, not {item!r}", path)
    return value
