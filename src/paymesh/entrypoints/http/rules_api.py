"""Routes of the event bus: rules, TestEventPattern, dead letters.

A merchant's rules keep EventBridge's own quotas (Amazon EventBridge quotas, "Rules", "Event
pattern size", and PutTargets: "each rule can have up to five targets"): every rule is
compiled into the router and tried against every event, so their number and size bound the
CPU and memory each merchant can claim.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import replace
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from paymesh.entrypoints.http import schemas
from paymesh.entrypoints.http.common import api, int_param, json_response, merchant_of
from paymesh.ports.bus import Delivery, RetryPolicy, Rule, Target
from paymesh.rules import InvalidEventPattern, compile_pattern, test_event_pattern
from paymesh.service import views
from paymesh.service.errors import BadRequest, NotFound, StateConflict
from paymesh.service.target_policy import TargetPolicy, TargetUrlRefused

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

#: EventBridge: 300 rules per event bus (its default quota); here, per merchant, defaults aside.
MAX_RULES = 300
#: EventBridge: an event pattern is at most 2,048 characters.
MAX_PATTERN_CHARS = 2048
#: EventBridge: at most five targets per rule.
MAX_TARGETS = 5


class RetryPolicyBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    maximum_retry_attempts: Annotated[int, Meta(ge=0, le=185)] = 3
    maximum_event_age_seconds: Annotated[int, Meta(ge=60, le=86400)] = 3600


class TargetBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    type: Literal["builtin", "http"]
    name: str | None = None
    url: Annotated[str, Meta(pattern=r"^https?://", max_length=2048)] | None = None
    retry_policy: RetryPolicyBody = msgspec.field(default_factory=RetryPolicyBody)


class RuleBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    event_pattern: dict[str, Any]
    targets: Annotated[list[TargetBody], Meta(min_length=1, max_length=MAX_TARGETS)]
    state: Literal["ENABLED", "DISABLED"] = "ENABLED"
    description: Annotated[str, Meta(max_length=512)] | None = None


class PatternTestBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    event_pattern: dict[str, Any]
    event: dict[str, Any]


def check_pattern_size(pattern: dict[str, Any]) -> None:
    """EventBridge counts the pattern's characters as sent; we count its compact JSON, so
    white space a client adds is free and the same pattern always gets the same answer."""
    size = len(msgspec.json.encode(pattern).decode())
    if size > MAX_PATTERN_CHARS:
        raise BadRequest(f"the event pattern is {size} characters; EventBridge's limit, kept "
                         f"here, is {MAX_PATTERN_CHARS}", param="event_pattern",
                         code="event_pattern_too_large")


def to_rule(merchant_id: str, name: str, body: RuleBody, builtins: set[str],
            policy: TargetPolicy | None = None) -> Rule:
    """Checks what msgspec cannot: the pattern, target names and urls (against `policy`: no
    internal address, https in live mode), unique target ids."""
    if not _NAME.match(name):
        raise BadRequest("a rule name is 1-64 letters, digits, '.', '_' or '-'", param="name")
    check_pattern_size(body.event_pattern)
    targets = []
    for t in body.targets:
        if t.type == "builtin" and t.name not in builtins:
            raise BadRequest(f"unknown built-in target {t.name!r}; known: "
                             f"{', '.join(sorted(builtins))}", param="targets")
        if t.type == "http" and not t.url:
            raise BadRequest(f"target {t.id!r} of type http needs a url", param="targets")
        if t.type == "http" and t.url and policy is not None:
            try:
                policy.check_url(t.url)
            except TargetUrlRefused as exc:
                raise BadRequest(f"target {t.id!r}: {exc}", param="targets",
                                 code="target_url_not_allowed") from exc
        targets.append(Target(id=t.id, type=t.type, name=t.name, url=t.url,
                              retry_policy=RetryPolicy(**msgspec.structs.asdict(t.retry_policy))))
    if len({t.id for t in targets}) != len(targets):
        raise BadRequest("target ids must be unique within a rule", param="targets")
    rule = Rule(merchant_id=merchant_id, name=name, event_pattern=body.event_pattern,
                targets=tuple(targets), state=body.state, description=body.description)
    try:
        compile_pattern(body.event_pattern)
    except InvalidEventPattern as exc:
        raise BadRequest(f"invalid event_pattern: {exc}", param="event_pattern",
                         code="event_pattern_invalid") from exc
    return rule


def rule_view(rule: Rule, default: bool) -> dict[str, Any]:
    return {"object": "rule", "name": rule.name, "state": rule.state,
            "description": rule.description, "event_pattern": rule.event_pattern,
            "default": default, "signing_secret": rule.signing_secret,
            "targets": [{"id": t.id, "type": t.type, "name": t.name, "url": t.url,
                         "retry_policy": {
                             "maximum_retry_attempts": t.retry_policy.maximum_retry_attempts,
                             "maximum_event_age_seconds":
                                 t.retry_policy.maximum_event_age_seconds}}
                        for t in rule.targets]}


def dead_letter_view(d: Delivery, event: dict[str, Any] | None) -> dict[str, Any]:
    return {"id": d.id, "object": "dead_letter", "event_id": d.event_id, "rule": d.rule,
            "target": {"id": d.target.id, "type": d.target.type, "name": d.target.name,
                       "url": d.target.url},
            "attempts": d.attempts,
            "errors": [{"at": views.iso(a.at), "error": a.error} for a in d.history],
            "event": event}


# -- routes ---------------------------------------------------------------------------------

async def list_rules(request: Request) -> Response:
    merchant = await merchant_of(request)
    router = api(request).bus.router
    data = [rule_view(r, router.is_default(r)) for r in router.rules_for(merchant)]
    return json_response(200, views.list_view(data, False, "/v1/rules"))


async def put_rule(request: Request) -> Response:
    merchant = await merchant_of(request)
    bus = api(request).bus
    body = schemas.decode(await request.body(), RuleBody)
    rule = to_rule(merchant, request.path_params["name"], body, set(bus.targets.builtins),
                   bus.target_policy)
    existing = bus.router.get(merchant, rule.name)
    own = [r for r in bus.router.rules_for(merchant) if not bus.router.is_default(r)]
    if len(own) >= MAX_RULES and all(r.name != rule.name for r in own):
        # 400, as EventBridge's LimitExceededException: the request is refused as it stands
        # (no state of this rule conflicts); deleting a rule makes room.
        raise BadRequest(f"a merchant has at most {MAX_RULES} rules of its own (EventBridge's "
                         "quota per event bus); delete one, or replace one by its name",
                         param="name", code="rule_limit_exceeded")
    secret = existing.signing_secret if existing and existing.merchant_id == merchant else None
    rule = replace(rule, signing_secret=secret or "whsec_" + secrets.token_urlsafe(24))
    await api(request).store.put_rule(rule)
    bus.router.put(rule)
    return json_response(200, rule_view(rule, False))


async def delete_rule(request: Request) -> Response:
    merchant = await merchant_of(request)
    name = request.path_params["name"]
    bus = api(request).bus
    if not await api(request).store.delete_rule(merchant, name):
        if bus.router.get(merchant, name) is not None:
            raise StateConflict(f"{name!r} is a default rule: PUT it with state DISABLED to "
                                "turn it off", code="rule_is_default")
        raise NotFound(f"no such rule: {name!r}", param="name")
    bus.router.delete(merchant, name)
    return json_response(200, {"object": "rule", "name": name, "deleted": True})


async def test_pattern(request: Request) -> Response:
    await merchant_of(request)
    body = schemas.decode(await request.body(), PatternTestBody)
    check_pattern_size(body.event_pattern)  # what could not be stored is not worth trying
    try:
        return json_response(200, {"result": test_event_pattern(body.event_pattern,
                                                                body.event)})
    except InvalidEventPattern as exc:
        raise BadRequest(f"invalid event_pattern: {exc}", param="event_pattern",
                         code="event_pattern_invalid") from exc


async def list_dead_letters(request: Request) -> Response:
    merchant = await merchant_of(request)
    store = api(request).store
    dead, more = await store.dead_letters(merchant, int_param(request, "limit", 10, 1, 100),
                                          request.query_params.get("starting_after"))
    data = [dead_letter_view(d, await store.get_event(d.event_id)) for d in dead]
    return json_response(200, views.list_view(data, more, "/v1/dead-letters"))


async def redrive(request: Request) -> Response:
    merchant = await merchant_of(request)
    delivery_id = request.path_params["delivery_id"]
    a = api(request)
    if not await a.store.redrive(merchant, delivery_id, a.bus.clock()):
        raise NotFound(f"no dead letter {delivery_id!r} (unknown, or already redriven)",
                       param="id")
    a.bus.notify()
    return json_response(200, {"id": delivery_id, "object": "dead_letter", "redriven": True})


def bus_routes() -> list[BaseRoute]:
    return [
        Route("/v1/rules", list_rules, methods=["GET"]),
        Route("/v1/rules/test", test_pattern, methods=["POST"]),
        Route("/v1/rules/{name}", put_rule, methods=["PUT"]),
        Route("/v1/rules/{name}", delete_rule, methods=["DELETE"]),
        Route("/v1/dead-letters", list_dead_letters, methods=["GET"]),
        Route("/v1/dead-letters/{delivery_id}/redrive", redrive, methods=["POST"]),
    ]
