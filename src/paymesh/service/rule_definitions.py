"""Rules as a merchant defines them, checked and made into the bus's `Rule`s.

A definition comes decoded: from a request by the HTTP layer (whose schema has already
checked types and bounds), or from the packaged default rules file by bootstrap. What no
schema can check is checked here: the name, the pattern (its size and whether it compiles),
the targets (built-in names, urls against the target policy, unique ids).

A merchant's rules keep EventBridge's own quotas (Amazon EventBridge quotas, "Rules", "Event
pattern size", and PutTargets: "each rule can have up to five targets"): every rule is
compiled into the router and tried against every event, so their number and size bound the
CPU and memory each merchant can claim.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from paymesh.domain.target_policy import TargetPolicy, TargetUrlRefused
from paymesh.ports.bus import RetryPolicy, Rule, Target
from paymesh.rules import InvalidEventPattern, compile_pattern
from paymesh.service import compact_json
from paymesh.service.errors import BadRequest

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

#: EventBridge: 300 rules per event bus (its default quota); here, per merchant, defaults aside.
MAX_RULES = 300
#: EventBridge: an event pattern is at most 2,048 characters.
MAX_PATTERN_CHARS = 2048
#: EventBridge: at most five targets per rule.
MAX_TARGETS = 5


@dataclass(frozen=True, slots=True)
class TargetDefinition:
    id: str
    type: str  # "builtin" | "http"
    name: str | None = None
    url: str | None = None
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True, slots=True)
class RuleDefinition:
    event_pattern: dict[str, Any]
    #: The pattern's size as EventBridge counts it: the characters of its compact JSON, as
    #: the codec that decoded it writes it (so white space a client adds is free).
    pattern_chars: int
    targets: tuple[TargetDefinition, ...]
    state: str = "ENABLED"  # or DISABLED
    description: str | None = None


def definition_of(doc: dict[str, Any]) -> RuleDefinition:
    """A definition from a document in the API's shape, as the default rules file holds
    them (ours, so not bounded by the API's schema)."""
    return RuleDefinition(
        event_pattern=doc["event_pattern"],
        pattern_chars=len(compact_json.encode(doc["event_pattern"]).decode()),
        targets=tuple(
            TargetDefinition(
                id=t["id"],
                type=t["type"],
                name=t.get("name"),
                url=t.get("url"),
                retry_policy=RetryPolicy(**t.get("retry_policy", {})),
            )
            for t in doc["targets"]
        ),
        state=doc.get("state", "ENABLED"),
        description=doc.get("description"),
    )


def check_pattern_size(pattern_chars: int) -> None:
    if pattern_chars > MAX_PATTERN_CHARS:
        raise BadRequest(
            f"the event pattern is {pattern_chars} characters; EventBridge's "
            f"limit, kept here, is {MAX_PATTERN_CHARS}",
            param="event_pattern",
            code="event_pattern_too_large",
        )


def to_rule(
    merchant_id: str,
    name: str,
    definition: RuleDefinition,
    builtins: set[str],
    policy: TargetPolicy | None = None,
) -> Rule:
    """The rule, or BadRequest naming the first thing wrong: the name, the pattern's size,
    a target (unknown built-in, http without a url, a url `policy` refuses: an internal
    address, or http in live mode), duplicate target ids, a pattern that does not compile."""
    if not _NAME.match(name):
        raise BadRequest("a rule name is 1-64 letters, digits, '.', '_' or '-'", param="name")
    check_pattern_size(definition.pattern_chars)
    targets = []
    for t in definition.targets:
        if t.type == "builtin" and t.name not in builtins:
            raise BadRequest(
                f"unknown built-in target {t.name!r}; known: {', '.join(sorted(builtins))}",
                param="targets",
            )
        if t.type == "http" and not t.url:
            raise BadRequest(f"target {t.id!r} of type http needs a url", param="targets")
        if t.type == "http" and t.url and policy is not None:
            try:
                policy.check_url(t.url)
            except TargetUrlRefused as exc:
                raise BadRequest(
                    f"target {t.id!r}: {exc}", param="targets", code="target_url_not_allowed"
                ) from exc
        targets.append(
            Target(id=t.id, type=t.type, name=t.name, url=t.url, retry_policy=t.retry_policy)
        )
    if len({t.id for t in targets}) != len(targets):
        raise BadRequest("target ids must be unique within a rule", param="targets")
    rule = Rule(
        merchant_id=merchant_id,
        name=name,
        event_pattern=definition.event_pattern,
        targets=tuple(targets),
        state=definition.state,
        description=definition.description,
    )
    try:
        compile_pattern(definition.event_pattern)
    except InvalidEventPattern as exc:
        raise BadRequest(
            f"invalid event_pattern: {exc}", param="event_pattern", code="event_pattern_invalid"
        ) from exc
    return rule
