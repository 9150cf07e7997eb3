"""Payments as documents: the one serialised form every store adapter keeps.

Indexed fields live in columns (or key attributes); the whole aggregate, refunds included,
is one document, so a payment is read and written as a unit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from paymesh.domain.dispute import Dispute, DisputeStatus, dispute_id_for
from paymesh.domain.payment import (
    Failure,
    FraudAssessment,
    Payment,
    PspAttempt,
    RiskContext,
    Routing,
)
from paymesh.domain.refund import Refund, RefundStatus
from paymesh.domain.review import Review, ReviewStatus
from paymesh.domain.status import PaymentStatus
from paymesh.ports.bus import Attempt, Delivery, RetryPolicy, Rule, Target

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def to_micros(ts: datetime) -> int:
    return int(ts.timestamp() * 1_000_000)


def from_micros(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC)


def _refund_doc(r: Refund) -> dict[str, Any]:
    return {
        "id": r.id,
        "amount": r.amount,
        "status": r.status.value,
        "reason": r.reason,
        "created_us": to_micros(r.created_at),
        "updated_us": to_micros(r.updated_at),
        "connector_refund_id": r.connector_refund_id,
        "failure_reason": r.failure_reason,
    }


def payment_to_doc(p: Payment) -> bytes:
    return _encode(
        {
            "id": p.id,
            "merchant_id": p.merchant_id,
            "amount": p.amount,
            "currency": p.currency,
            "customer_id": p.customer_id,
            "payment_method": p.payment_method,
            "capture_method": p.capture_method,
            "connector": p.connector,
            "created_us": to_micros(p.created_at),
            "updated_us": to_micros(p.updated_at),
            "status": p.status.value,
            "amount_captured": p.amount_captured,
            "amount_refunded": p.amount_refunded,
            "connector_payment_id": p.connector_payment_id,
            "next_action": p.next_action,
            "failure": None
            if p.failure is None
            else {
                "code": p.failure.code,
                "message": p.failure.message,
                "retryable": p.failure.retryable,
                "decline_code": p.failure.decline_code,
            },
            "fraud": None
            if p.fraud is None
            else {
                "score": p.fraud.score,
                "factors": list(p.fraud.factors),
                "decision": p.fraud.decision,
                "model": p.fraud.model,
            },
            "description": p.description,
            "metadata": p.metadata,
            "risk": {
                "device_id": p.risk.device_id,
                "ip_address": p.risk.ip_address,
                "country": p.risk.country,
                "city": p.risk.city,
            },
            "attempt": p.attempt,
            # The PSP's id, as documents had it before `dispute`: a process of the previous
            # version can still read what this one writes.
            "dispute_id": None if p.dispute is None else p.dispute.connector_dispute_id,
            "dispute": _dispute_doc(p.dispute),
            "retired_refs": p.retired_refs,
            "receipt_email": p.receipt_email,
            "receipt_phone": p.receipt_phone,
            "refunds": [_refund_doc(r) for r in p.refunds],
            "routing": None
            if p.routing is None
            else {
                "route": p.routing.route,
                "fallbacks": p.routing.fallbacks,
                "retry_soft_declines": p.routing.retry_soft_declines,
                "attempts": [
                    {"connector": a.connector, "reason": a.reason, "at_us": to_micros(a.at)}
                    for a in p.routing.attempts
                ],
            },
            "review": None
            if p.review is None
            else {
                "id": p.review.id,
                "status": p.review.status.value,
                "reason": p.review.reason,
                "opened_us": to_micros(p.review.opened_at),
                "closed_us": None if p.review.closed_at is None else to_micros(p.review.closed_at),
                "closed_reason": p.review.closed_reason,
                "note": p.review.note,
            },
        }
    )


def _dispute_doc(dispute: Dispute | None) -> dict[str, Any] | None:
    if dispute is None:
        return None
    return {
        "id": dispute.id,
        "connector_dispute_id": dispute.connector_dispute_id,
        "amount": dispute.amount,
        "reason": dispute.reason,
        "status": dispute.status.value,
        "opened_us": to_micros(dispute.opened_at),
        "closed_us": None if dispute.closed_at is None else to_micros(dispute.closed_at),
    }


def _dispute(d: dict[str, Any]) -> Dispute | None:
    doc = d.get("dispute")
    if doc is not None:
        return Dispute(
            id=doc["id"],
            connector_dispute_id=doc["connector_dispute_id"],
            amount=doc["amount"],
            reason=doc["reason"],
            status=DisputeStatus(doc["status"]),
            opened_at=from_micros(doc["opened_us"]),
            closed_at=None if doc["closed_us"] is None else from_micros(doc["closed_us"]),
        )
    if d.get("dispute_id") is None:
        return None
    # Written before disputes were kept whole: only the PSP's id was, and no dispute was
    # closed then. The PSPs dispute what was captured, and the payment's last change is the
    # nearest we have to the opening (a disputed payment takes no new refund).
    return Dispute(
        id=dispute_id_for(d["id"]),
        connector_dispute_id=d["dispute_id"],
        amount=d["amount_captured"],
        reason=None,
        status=DisputeStatus.OPEN,
        opened_at=from_micros(d["updated_us"]),
    )


def _routing(d: dict[str, Any] | None) -> Routing | None:
    if d is None:
        return None
    return Routing(
        route=d["route"],
        fallbacks=list(d["fallbacks"]),
        retry_soft_declines=d["retry_soft_declines"],
        attempts=[
            PspAttempt(a["connector"], a["reason"], from_micros(a["at_us"])) for a in d["attempts"]
        ],
    )


def _review(d: dict[str, Any] | None) -> Review | None:
    if d is None:
        return None
    return Review(
        id=d["id"],
        status=ReviewStatus(d["status"]),
        reason=d["reason"],
        opened_at=from_micros(d["opened_us"]),
        closed_at=None if d["closed_us"] is None else from_micros(d["closed_us"]),
        closed_reason=d.get("closed_reason"),
        note=d.get("note"),
    )


def payment_from_doc(raw: bytes | str, version: int) -> Payment:
    d = _decode(raw)
    failure = d["failure"]
    fraud = d["fraud"]
    payment = Payment(
        id=d["id"],
        merchant_id=d["merchant_id"],
        amount=d["amount"],
        currency=d["currency"],
        customer_id=d["customer_id"],
        payment_method=d["payment_method"],
        capture_method=d["capture_method"],
        connector=d["connector"],
        created_at=from_micros(d["created_us"]),
        updated_at=from_micros(d["updated_us"]),
        status=PaymentStatus(d["status"]),
        amount_captured=d["amount_captured"],
        amount_refunded=d["amount_refunded"],
        connector_payment_id=d["connector_payment_id"],
        next_action=d["next_action"],
        failure=None if failure is None else Failure(**failure),
        fraud=None
        if fraud is None
        else FraudAssessment(
            score=fraud["score"],
            factors=tuple(fraud["factors"]),
            decision=fraud["decision"],
            model=fraud.get("model"),  # absent in documents written before models
        ),
        description=d["description"],
        metadata=d["metadata"],
        risk=RiskContext(**d["risk"]),
        attempt=d["attempt"],
        dispute=_dispute(d),
        version=version,
        retired_refs=d.get("retired_refs", []),
        review=_review(d.get("review")),
        routing=_routing(d.get("routing")),
        # Documents written before confirmations had these have neither.
        receipt_email=d.get("receipt_email"),
        receipt_phone=d.get("receipt_phone"),
    )
    payment.refunds = [
        Refund(
            id=r["id"],
            payment_id=payment.id,
            merchant_id=payment.merchant_id,
            amount=r["amount"],
            currency=payment.currency,
            reason=r["reason"],
            status=RefundStatus(r["status"]),
            created_at=from_micros(r["created_us"]),
            updated_at=from_micros(r["updated_us"]),
            connector_refund_id=r["connector_refund_id"],
            failure_reason=r["failure_reason"],
        )
        for r in d["refunds"]
    ]
    return payment


def _target_doc(t: Target) -> dict[str, Any]:
    return {
        "id": t.id,
        "type": t.type,
        "name": t.name,
        "url": t.url,
        "retry_policy": {
            "maximum_retry_attempts": t.retry_policy.maximum_retry_attempts,
            "maximum_event_age_seconds": t.retry_policy.maximum_event_age_seconds,
        },
    }


def _target(d: dict[str, Any]) -> Target:
    return Target(
        id=d["id"],
        type=d["type"],
        name=d["name"],
        url=d["url"],
        retry_policy=RetryPolicy(**d["retry_policy"]),
    )


def rule_to_doc(r: Rule) -> bytes:
    return _encode(
        {
            "merchant_id": r.merchant_id,
            "name": r.name,
            "event_pattern": r.event_pattern,
            "state": r.state,
            "description": r.description,
            "signing_secret": r.signing_secret,
            "targets": [_target_doc(t) for t in r.targets],
        }
    )


def rule_from_doc(raw: bytes) -> Rule:
    d = _decode(raw)
    return Rule(
        merchant_id=d["merchant_id"],
        name=d["name"],
        event_pattern=d["event_pattern"],
        state=d["state"],
        description=d["description"],
        signing_secret=d["signing_secret"],
        targets=tuple(_target(t) for t in d["targets"]),
    )


def _delivery_doc(x: Delivery) -> dict[str, Any]:
    # No signing secret: the sender looks it up in the rule. The key stays, always null, so
    # a row or message read by an older version still decodes (and the secret a row written
    # by one carried is dropped the next time the row is saved).
    return {
        "target": _target_doc(x.target),
        "event_us": to_micros(x.event_time),
        "created_us": to_micros(x.created_at),
        "signing_secret": None,
        "default_rule": x.default_rule,
        "history": [{"at_us": to_micros(a.at), "error": a.error} for a in x.history],
    }


def delivery_to_doc(x: Delivery) -> bytes:
    return _encode(_delivery_doc(x))


def delivery_from_row(row: tuple[Any, ...]) -> Delivery:
    """Row: id, event_id, merchant_id, rule, status, attempts, next_attempt_us, doc."""
    did, event_id, merchant_id, rule, status, attempts, next_us, raw = row
    return _delivery(did, event_id, merchant_id, rule, status, attempts, next_us, _decode(raw))


def _delivery(
    did: str,
    event_id: str,
    merchant_id: str,
    rule: str,
    status: str,
    attempts: int,
    next_us: int,
    d: dict[str, Any],
) -> Delivery:
    return Delivery(
        id=did,
        event_id=event_id,
        merchant_id=merchant_id,
        rule=rule,
        target=_target(d["target"]),
        event_time=from_micros(d["event_us"]),
        created_at=from_micros(d["created_us"]),
        next_attempt_at=from_micros(next_us),
        attempts=attempts,
        status=status,
        # Rows written before the flag: only a merchant's own rule had a secret.
        default_rule=d.get("default_rule", d.get("signing_secret") is None),
        history=[Attempt(from_micros(a["at_us"]), a["error"]) for a in d["history"]],
    )


def delivery_to_message(x: Delivery, envelope: dict[str, Any]) -> bytes:
    """A delivery as a message on the bus: everything a worker needs, the event included,
    so running it reads nothing from the database."""
    return _encode(
        {
            "id": x.id,
            "event_id": x.event_id,
            "merchant_id": x.merchant_id,
            "rule": x.rule,
            "attempts": x.attempts,
            "next_us": to_micros(x.next_attempt_at),
            "doc": _delivery_doc(x),
            "event": envelope,
        }
    )


def delivery_from_message(raw: bytes) -> tuple[Delivery, dict[str, Any]]:
    m = _decode(raw)
    delivery = _delivery(
        m["id"],
        m["event_id"],
        m["merchant_id"],
        m["rule"],
        "pending",
        m["attempts"],
        m["next_us"],
        m["doc"],
    )
    return delivery, m["event"]


encode_json = _encode
decode_json = _decode
