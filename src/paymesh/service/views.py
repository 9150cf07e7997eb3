"""The API's resources as JSON-ready dicts, and `Reply`: a response the idempotency layer keeps.

Replies are rendered once, when the operation finishes, and stored byte for byte with the
idempotency record, so a replay is the same response, not a re-rendering.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from paymesh.domain.payment import Payment
from paymesh.domain.refund import Refund
from paymesh.domain.status import PaymentStatus
from paymesh.ports.store import Notification, StoredEvent
from paymesh.service.compact_json import encode


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    replayed: bool = False

    @classmethod
    def of(cls, status: int, data: dict[str, Any]) -> Reply:
        return cls(status, encode(data))


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def refund_view(r: Refund) -> dict[str, Any]:
    return {
        "id": r.id,
        "object": "refund",
        "payment_id": r.payment_id,
        "amount": r.amount,
        "currency": r.currency,
        "status": r.status.value,
        "reason": r.reason,
        "failure_reason": r.failure_reason,
        "connector_refund_id": r.connector_refund_id,
        "created_at": iso(r.created_at),
        "updated_at": iso(r.updated_at),
    }


def payment_view(p: Payment) -> dict[str, Any]:
    failure = None
    if p.failure is not None:
        failure = {
            "code": p.failure.code,
            "decline_code": p.failure.decline_code,
            "message": p.failure.message,
            "retryable": p.failure.retryable,
        }
    fraud = None
    if p.fraud is not None:
        fraud = {
            "score": p.fraud.score,
            "factors": list(p.fraud.factors),
            "decision": p.fraud.decision,
            "model": p.fraud.model,
        }
    return {
        "id": p.id,
        "object": "payment",
        "status": p.status.value,
        "amount": p.amount,
        "currency": p.currency,
        "amount_captured": p.amount_captured,
        "amount_refunded": p.amount_refunded,
        "capture_method": p.capture_method,
        "customer_id": p.customer_id,
        "payment_method": p.payment_method,
        "connector": p.connector,
        "connector_payment_id": p.connector_payment_id,
        "next_action": p.next_action,
        "client_secret": None,
        "failure": failure,
        "fraud": fraud,
        "routing": None
        if p.routing is None
        else {
            "route": p.routing.route,
            "attempts": [
                {"connector": a.connector, "reason": a.reason, "at": iso(a.at)}
                for a in p.routing.attempts
            ],
        },
        "review": None
        if p.review is None
        else {"id": p.review.id, "status": p.review.status.value},
        "description": p.description,
        "metadata": p.metadata,
        "receipt_email": p.receipt_email,
        "receipt_phone": p.receipt_phone,
        "refunds": [refund_view(r) for r in p.refunds],
        "created_at": iso(p.created_at),
        "updated_at": iso(p.updated_at),
    }


def payment_reply(p: Payment, created: bool = False) -> Reply:
    """The answer for a payment after an operation: its object, or the error its state means."""
    if p.status == PaymentStatus.FAILED and p.failure is not None:
        error = {
            "type": "card_error",
            "code": p.failure.code,
            "message": p.failure.message,
            "decline_code": p.failure.decline_code,
            "payment_id": p.id,
            "payment": payment_view(p),
        }
        return Reply.of(402, {"error": error})
    if p.status == PaymentStatus.BLOCKED:
        error = {
            "type": "fraud_error",
            "code": "payment_blocked",
            "message": "the payment was blocked by fraud screening",
            "payment_id": p.id,
            "payment": payment_view(p),
        }
        return Reply.of(402, {"error": error})
    return Reply.of(201 if created else 200, payment_view(p))


def review_view(p: Payment) -> dict[str, Any]:
    r = p.review
    assert r is not None
    return {
        "id": r.id,
        "object": "review",
        "payment_id": p.id,
        "status": r.status.value,
        "reason": r.reason,
        "amount": p.amount,
        "currency": p.currency,
        "customer_id": p.customer_id,
        "payment_status": p.status.value,
        "fraud": None
        if p.fraud is None
        else {
            "score": p.fraud.score,
            "factors": list(p.fraud.factors),
            "decision": p.fraud.decision,
        },
        "opened_at": iso(r.opened_at),
        "closed_at": None if r.closed_at is None else iso(r.closed_at),
        "closed_reason": r.closed_reason,
        "note": r.note,
    }


def event_view(e: StoredEvent) -> dict[str, Any]:
    return e.envelope


def notification_view(n: Notification) -> dict[str, Any]:
    return {
        "id": n.id,
        "object": "notification",
        "payment_id": n.payment_id,
        "event_id": n.event_id,
        "channel": n.channel,
        "recipient": n.recipient,
        "template": n.template,
        "created_at": iso(n.created_at),
    }


def list_view(data: list[dict[str, Any]], has_more: bool, url: str) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}
