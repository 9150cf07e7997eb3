"""Routes of the event bus: rules, TestEventPattern, dead letters.

A rule's body is decoded and bounded by the Structs here; what it means (name, pattern,
targets, EventBridge's quotas) is checked by `paymesh.service.rule_definitions`.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from paymesh.entrypoints.http import schemas
from paymesh.entrypoints.http.common import Api, api, int_param, json_response, merchant_of
from paymesh.ports.bus import Delivery, RetryPolicy, Rule
from paymesh.rules import InvalidEventPattern, test_event_pattern
from paymesh.service import views
from paymesh.service.errors import BadRequest, NotFound, StateConflict
from paymesh.service.rule_definitions import (
    MAX_RULES,
    MAX_TARGETS,
    RuleDefinition,
    TargetDefinition,
    check_pattern_size,
    to_rule,
)


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


def pattern_chars(pattern: dict[str, Any]) -> int:
    """EventBridge counts the pattern's characters as sent; we count its compact JSON, so
    white space a client adds is free and the same pattern always gets the same answer."""
    return len(msgspec.json.encode(pattern).decode())


def definition(body: RuleBody) -> RuleDefinition:
    return RuleDefinition(
        event_pattern=body.event_pattern,
        pattern_chars=pattern_chars(body.event_pattern),
        targets=tuple(
            TargetDefinition(
                id=t.id,
                type=t.type,
                name=t.name,
                url=t.url,
                retry_policy=RetryPolicy(**msgspec.structs.asdict(t.retry_policy)),
            )
            for t in body.targets
        ),
        state=body.state,
        description=body.description,
    )


def rule_view(rule: Rule, default: bool) -> dict[str, Any]:
    return {
        "object": "rule",
        "name": rule.name,
        "state": rule.state,
        "description": rule.description,
        "event_pattern": rule.event_pattern,
        "default": default,
        "signing_secret": rule.signing_secret,
        "targets": [
            {
                "id": t.id,
                "type": t.type,
                "name": t.name,
                "url": t.url,
                "retry_policy": {
                    "maximum_retry_attempts": t.retry_policy.maximum_retry_attempts,
                    "maximum_event_age_seconds": t.retry_policy.maximum_event_age_seconds,
                },
            }
            for t in rule.targets
        ],
    }


def dead_letter_view(d: Delivery, event: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": d.id,
        "object": "dead_letter",
        "event_id": d.event_id,
        "rule": d.rule,
        "target": {
            "id": d.target.id,
            "type": d.target.type,
            "name": d.target.name,
            "url": d.target.url,
        },
        "attempts": d.attempts,
        "errors": [{"at": views.iso(a.at), "error": a.error} for a in d.history],
        "event": event,
    }


# -- routes ---------------------------------------------------------------------------------


async def list_rules(request: Request) -> Response:
    merchant = await merchant_of(request)
    router = api(request).bus.router
    data = [rule_view(r, router.is_default(r)) for r in router.rules_for(merchant)]
    return json_response(200, views.list_view(data, False, "/v1/rules"))


async def put_rule(request: Request) -> Response:
    merchant = await merchant_of(request)
    body = schemas.decode(await request.body(), RuleBody)
    rule = await save_rule(api(request), merchant, request.path_params["name"], definition(body))
    return json_response(200, rule_view(rule, False))


async def save_rule(a: Api, merchant: str, name: str, d: RuleDefinition) -> Rule:
    """Create or replace the merchant's rule `name` (a default rule's name shadows it), in
    the store, the cloud's bus if any, and this process's router. The API and the dashboard
    both save rules this way."""
    bus = a.bus
    rule = to_rule(merchant, name, d, set(bus.targets.builtins), bus.target_policy)
    existing = bus.router.get(merchant, rule.name)
    own = [r for r in bus.router.rules_for(merchant) if not bus.router.is_default(r)]
    if len(own) >= MAX_RULES and all(r.name != rule.name for r in own):
        # 400, as EventBridge's LimitExceededException: the request is refused as it stands
        # (no state of this rule conflicts); deleting a rule makes room.
        raise BadRequest(
            f"a merchant has at most {MAX_RULES} rules of its own (EventBridge's "
            "quota per event bus); delete one, or replace one by its name",
            param="name",
            code="rule_limit_exceeded",
        )
    secret = existing.signing_secret if existing and existing.merchant_id == merchant else None
    rule = replace(rule, signing_secret=secret or "whsec_" + secrets.token_urlsafe(24))
    await a.store.put_rule(rule)
    await a.rules.put(rule)
    bus.router.put(rule)
    return rule


async def delete_rule(request: Request) -> Response:
    merchant = await merchant_of(request)
    name = request.path_params["name"]
    bus = api(request).bus
    if not await api(request).store.delete_rule(merchant, name):
        if bus.router.get(merchant, name) is not None:
            raise StateConflict(
                f"{name!r} is a default rule: PUT it with state DISABLED to turn it off",
                code="rule_is_default",
            )
        raise NotFound(f"no such rule: {name!r}", param="name")
    await api(request).rules.delete(merchant, name)
    bus.router.delete(merchant, name)
    return json_response(200, {"object": "rule", "name": name, "deleted": True})


async def test_pattern(request: Request) -> Response:
    await merchant_of(request)
    body = schemas.decode(await request.body(), PatternTestBody)
    # What could not be stored is not worth trying.
    check_pattern_size(pattern_chars(body.event_pattern))
    try:
        return json_response(200, {"result": test_event_pattern(body.event_pattern, body.event)})
    except InvalidEventPattern as exc:
        raise BadRequest(
            f"invalid event_pattern: {exc}", param="event_pattern", code="event_pattern_invalid"
        ) from exc


async def list_dead_letters(request: Request) -> Response:
    merchant = await merchant_of(request)
    store = api(request).store
    dead, more = await store.dead_letters(
        merchant,
        int_param(request, "limit", 10, 1, 100),
        request.query_params.get("starting_after"),
    )
    data = [dead_letter_view(d, await store.get_event(d.event_id)) for d in dead]
    return json_response(200, views.list_view(data, more, "/v1/dead-letters"))


async def redrive(request: Request) -> Response:
    merchant = await merchant_of(request)
    delivery_id = request.path_params["delivery_id"]
    a = api(request)
    if not await a.store.redrive(merchant, delivery_id, a.bus.clock()):
        raise NotFound(f"no dead letter {delivery_id!r} (unknown, or already redriven)", param="id")
    a.bus.deliveries_due()
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
