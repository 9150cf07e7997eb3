"""Routes of disputes, in Stripe's shapes: `GET /v1/disputes` and `GET /v1/disputes/{id}`.

A dispute lives on its payment (one at most, its id derived from the payment's), so one is
read with its payment. The list is read from the event log: each dispute opened is one
`payment.dispute.created` event, kept newest first with a cursor by every store, so the list
needs no query of its own on any backend; each entry is then its payment's dispute as it is
now (open, won or lost). `starting_after` is a dispute's id, found as its opening's event.

Statuses are Stripe's words: `needs_response` (open: the merchant may still defend it at
the PSP), `won`, `lost`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from paymesh.domain.dispute import DisputeStatus, payment_id_for
from paymesh.domain.payment import Payment
from paymesh.entrypoints.http.common import api, int_param, json_response, merchant_of
from paymesh.ports.store import Store
from paymesh.service import views
from paymesh.service.errors import BadRequest, NotFound

#: The event whose log lists the disputes (`Payment.open_dispute`).
OPENED = "payment.dispute.created"
_STATUS = {
    DisputeStatus.OPEN: "needs_response",
    DisputeStatus.WON: "won",
    DisputeStatus.LOST: "lost",
}


def dispute_view(p: Payment) -> dict[str, Any]:
    d = p.dispute
    assert d is not None
    return {
        "id": d.id,
        "object": "dispute",
        "amount": d.amount,
        "currency": p.currency,
        "payment_id": p.id,
        "reason": d.reason,
        "status": _STATUS[d.status],
        "created": int(d.opened_at.timestamp()),
        "closed": None if d.closed_at is None else int(d.closed_at.timestamp()),
        "connector": p.connector,
        "connector_dispute_id": d.connector_dispute_id,
    }


async def _disputed_payment(store: Store, merchant: str, dispute_id: str) -> Payment | None:
    payment_id = payment_id_for(dispute_id)
    payment = await store.get_payment(payment_id, merchant) if payment_id else None
    if payment is None or payment.dispute is None or payment.dispute.id != dispute_id:
        return None
    return payment


async def get_dispute(request: Request) -> Response:
    merchant = await merchant_of(request)
    store = api(request).store
    dispute_id = request.path_params["dispute_id"]
    payment = await _disputed_payment(store, merchant, dispute_id)
    if payment is None:
        raise NotFound(f"no such dispute: {dispute_id!r}", param="id")
    return json_response(200, dispute_view(payment))


async def list_disputes(request: Request) -> Response:
    merchant = await merchant_of(request)
    store = api(request).store
    limit = int_param(request, "limit", 10, 1, 100)
    after = request.query_params.get("starting_after")
    after_event = None
    if after is not None:
        # A cursor that names no listed dispute is a bad parameter, as the other lists say.
        last = await _disputed_payment(store, merchant, after)
        timeline = [] if last is None else await store.events_for_payment(merchant, last.id)
        after_event = next((e.id for e in timeline if e.type == OPENED), None)
        if after_event is None:
            raise BadRequest(f"no dispute {after!r} in the list", param="starting_after")
    events, has_more = await store.list_events(merchant, OPENED, limit, after_event)
    disputes = []
    for event in events:
        disputed = await store.get_payment(event.payment_id, merchant)
        if disputed is not None and disputed.dispute is not None:
            disputes.append(dispute_view(disputed))
    return json_response(200, views.list_view(disputes, has_more, "/v1/disputes"))


def dispute_routes() -> list[BaseRoute]:
    return [
        Route("/v1/disputes", list_disputes, methods=["GET"]),
        Route("/v1/disputes/{dispute_id}", get_dispute, methods=["GET"]),
    ]
