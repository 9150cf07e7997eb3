"""The review queue, the dead letters, the rules and the PSP routing: the pages an operator
acts on. Every action goes through the same services as the API's routes (a review approved
here captures exactly as `POST /v1/reviews/{id}/approve` does) and ends in a redirect back to
its page that says how it went."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from paymesh.domain.review import ReviewStatus
from paymesh.entrypoints.http import schemas
from paymesh.entrypoints.http.common import api
from paymesh.entrypoints.http.dashboard.rendering import back_to, page, render
from paymesh.entrypoints.http.rules_api import (
    PatternTestBody,
    RuleBody,
    dead_letter_view,
    definition,
    pattern_chars,
    save_rule,
)
from paymesh.ports.bus import Rule
from paymesh.ports.store import PaymentQuery
from paymesh.rules import InvalidEventPattern, test_event_pattern
from paymesh.service.errors import ApiError, BadRequest
from paymesh.service.rule_definitions import RuleDefinition, TargetDefinition

#: Dead letters a page shows, and the most "redrive all" takes in one go.
DEAD_LETTER_PAGE = 100

# -- reviews --------------------------------------------------------------------------------


@page
async def reviews(request: Request, merchant: str) -> Response:
    raw = request.query_params.get("status", "open")
    status = ReviewStatus(raw) if raw in ReviewStatus.__members__.values() else None
    held, _ = await api(request).store.list_payments(
        PaymentQuery(merchant_id=merchant, limit=100, under_review=True, review_status=status)
    )
    return render(
        request,
        "reviews.html",
        {
            "section": "reviews",
            "merchant": merchant,
            "rows": held,
            "status": raw,
            "statuses": [s.value for s in ReviewStatus],
        },
    )


async def _decide(request: Request, merchant: str, approve: bool) -> Response:
    review_id = request.path_params["review_id"]
    note = str((await request.form()).get("note") or "").strip()[:500] or None
    service = api(request).reviews
    try:
        if approve:
            await service.approve(merchant, review_id, note)
        else:
            await service.reject(merchant, review_id, note)
    except ApiError as exc:
        return back_to("/dashboard/reviews", error=f"{review_id}: {exc.message}")
    done = "approved: the payment is captured" if approve else "rejected: the payment is voided"
    return back_to("/dashboard/reviews", notice=f"{review_id} {done}")


@page
async def approve(request: Request, merchant: str) -> Response:
    return await _decide(request, merchant, approve=True)


@page
async def reject(request: Request, merchant: str) -> Response:
    return await _decide(request, merchant, approve=False)


# -- dead letters ---------------------------------------------------------------------------


@page
async def dead_letters(request: Request, merchant: str) -> Response:
    store = api(request).store
    dead, more = await store.dead_letters(merchant, DEAD_LETTER_PAGE, None)
    rows = [dead_letter_view(d, await store.get_event(d.event_id)) for d in dead]
    for row in rows:
        row["payload"] = msgspec.json.format(msgspec.json.encode(row["event"]), indent=2).decode()
    return render(
        request,
        "dead_letters.html",
        {"section": "dead-letters", "merchant": merchant, "rows": rows, "more": more},
    )


@page
async def redrive_one(request: Request, merchant: str) -> Response:
    a = api(request)
    delivery_id = request.path_params["delivery_id"]
    if not await a.store.redrive(merchant, delivery_id, a.bus.clock()):
        return back_to("/dashboard/dead-letters", error=f"{delivery_id}: already redriven")
    a.bus.deliveries_due()
    return back_to("/dashboard/dead-letters", notice=f"{delivery_id} redriven")


@page
async def redrive_all(request: Request, merchant: str) -> Response:
    a = api(request)
    dead, _ = await a.store.dead_letters(merchant, DEAD_LETTER_PAGE, None)
    now = a.bus.clock()
    done = [d.id for d in dead if await a.store.redrive(merchant, d.id, now)]
    a.bus.deliveries_due()
    return back_to("/dashboard/dead-letters", notice=f"{len(done)} dead letters redriven")


# -- rules ----------------------------------------------------------------------------------

SAMPLE_EVENT = {
    "version": "0",
    "id": "00000000-0000-0000-0000-000000000000",
    "source": "payment.service",
    "detail-type": "payment.succeeded",
    "account": "",
    "time": "",
    "region": "local",
    "resources": ["pay_sample"],
    "detail": {"payment_id": "pay_sample", "amount": 250000, "currency": "usd"},
}
SAMPLE_PATTERN = {
    "detail-type": ["payment.succeeded"],
    "detail": {"amount": [{"numeric": [">=", 100000]}]},
}


def _pretty(doc: object) -> str:
    return msgspec.json.format(msgspec.json.encode(doc), indent=2).decode()


@page
async def rules(request: Request, merchant: str) -> Response:
    bus = api(request).bus
    sample = {
        **SAMPLE_EVENT,
        "account": merchant,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return render(
        request,
        "rules.html",
        {
            "section": "rules",
            "merchant": merchant,
            "rows": [
                {
                    "rule": r,
                    "default": bus.router.is_default(r),
                    "pattern": _pretty(r.event_pattern),
                }
                for r in bus.router.rules_for(merchant)
            ],
            "builtins": sorted(bus.targets.builtins),
            "sample_event": _pretty(sample),
            "sample_pattern": _pretty(SAMPLE_PATTERN),
        },
    )


def _rule_body(form: Any) -> tuple[str, RuleBody]:
    """The create form as the API's rule body: the same checks, the same error messages."""
    target: dict[str, Any] = {"id": "t1", "type": form.get("target_type", "")}
    if target["type"] == "http":
        target["url"] = form.get("url", "")
    else:
        target["name"] = form.get("builtin", "")
    try:
        retries = int(form.get("retries") or 3)
    except ValueError:
        retries = -1  # refused below, with the API's message
    target["retry_policy"] = {"maximum_retry_attempts": retries}
    doc = {
        "event_pattern": _json_field(form, "event_pattern"),
        "targets": [target],
        "description": form.get("description") or None,
    }
    return str(form.get("name", "")).strip(), schemas.decode(msgspec.json.encode(doc), RuleBody)


def _json_field(form: Any, name: str) -> Any:
    try:
        return msgspec.json.decode(str(form.get(name, "")))
    except msgspec.DecodeError as exc:
        raise BadRequest(f"{name} is not valid JSON: {exc}", param=name) from None


@page
async def create_rule(request: Request, merchant: str) -> Response:
    form = await request.form()
    try:
        name, body = _rule_body(form)
        rule = await save_rule(api(request), merchant, name, definition(body))
    except ApiError as exc:
        return back_to("/dashboard/rules", error=exc.message)
    return back_to("/dashboard/rules", notice=f"rule {rule.name!r} saved")


@page
async def test_rule(request: Request, merchant: str) -> Response:
    """TestEventPattern for the create form (an htmx fragment): does the sample match?"""
    form = await request.form()
    try:
        body = schemas.decode(
            msgspec.json.encode(
                {
                    "event_pattern": _json_field(form, "event_pattern"),
                    "event": _json_field(form, "sample_event"),
                }
            ),
            PatternTestBody,
        )
        matched = test_event_pattern(body.event_pattern, body.event)
        context: dict[str, Any] = {"matched": matched}
    except (ApiError, InvalidEventPattern, ValueError) as exc:
        context = {"problem": getattr(exc, "message", None) or str(exc)}
    return render(request, "rule_test.html", context)


def _as_definition(rule: Rule, state: str) -> RuleDefinition:
    return RuleDefinition(
        event_pattern=rule.event_pattern,
        pattern_chars=pattern_chars(rule.event_pattern),
        targets=tuple(
            TargetDefinition(
                id=t.id, type=t.type, name=t.name, url=t.url, retry_policy=t.retry_policy
            )
            for t in rule.targets
        ),
        state=state,
        description=rule.description,
    )


@page
async def set_rule_state(request: Request, merchant: str) -> Response:
    """Disable (or enable again) a rule; a default rule is shadowed by the merchant's own
    copy in the new state, as `PUT /v1/rules/{name}` with `state` does."""
    name = request.path_params["name"]
    state = str((await request.form()).get("state", ""))
    a = api(request)
    rule = a.bus.router.get(merchant, name)
    if rule is None or state not in ("ENABLED", "DISABLED"):
        return back_to("/dashboard/rules", error=f"no rule {name!r} to set {state or 'to nothing'}")
    try:
        await save_rule(a, merchant, name, _as_definition(rule, state))
    except ApiError as exc:
        return back_to("/dashboard/rules", error=exc.message)
    return back_to("/dashboard/rules", notice=f"rule {name!r} {state.lower()}")


# -- routing --------------------------------------------------------------------------------


@page
async def routing(request: Request, merchant: str) -> Response:
    service = api(request).routing
    table = await service.table(merchant)
    return render(
        request,
        "routing.html",
        {
            "section": "routing",
            "merchant": merchant,
            "table": _pretty(dict(table.doc)) if table.doc else None,
            "default_order": list(table.default or service.default.default),
            "routes": table.routes,
            "circuits": service.circuits(),
        },
    )
