"""Stripe's objects to ours and ours to Stripe's: pure functions, tested as tables."""

from __future__ import annotations

import functools
import re
from typing import Any
from urllib.parse import quote_plus

from paymesh.domain.payment import Failure, PspOutcome
from paymesh.domain.status import PaymentStatus
from paymesh.ports.connector import AuthorizeRequest

S = PaymentStatus

#: Every PaymentIntent status, mapped once. requires_payment_method is FAILED only when an
#: attempt failed (last_payment_error set); before any attempt it is still PENDING.
STATUS_MAP: dict[str, PaymentStatus] = {
    "requires_payment_method": S.PENDING,
    "requires_confirmation": S.PENDING,
    "requires_action": S.REQUIRES_ACTION,
    "processing": S.PROCESSING,
    "requires_capture": S.REQUIRES_CAPTURE,
    "succeeded": S.SUCCEEDED,
    "canceled": S.CANCELED,
}

#: Declines that may pass on a later try with the same card; the rest will not.
RETRYABLE_CODES = frozenset(
    {
        "processing_error",
        "try_again_later",
        "issuer_not_available",
        "reenter_transaction",
        "rate_limit",
    }
)


def form_fields(data: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Stripe's form encoding: nested keys as a[b][c], lists as a[0], booleans as true/false."""
    out: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if value is None:
            continue
        if isinstance(value, dict):
            out.extend(form_fields(value, name))
        elif isinstance(value, list | tuple):
            out.extend(form_fields({str(i): v for i, v in enumerate(value)}, name))
        elif isinstance(value, bool):
            out.append((name, "true" if value else "false"))
        else:
            out.append((name, str(value)))
    return out


#: The characters `quote_plus` leaves as they are: a text of only these needs no quoting.
_AS_IS = re.compile(r"[A-Za-z0-9_.~-]*")


def form_body(fields: list[tuple[str, str]]) -> bytes:
    """`urlencode(fields).encode()`, byte for byte, in a quarter of its time: most values (ids,
    amounts, currencies) need no quoting, and a name's quoting is remembered (`urlencode`
    quotes every one afresh, a twentieth of a Stripe payment's CPU in the server)."""
    return "&".join(
        [
            f"{_quoted_name(name)}={value if _AS_IS.fullmatch(value) else quote_plus(value)}"
            for name, value in fields
        ]
    ).encode()


@functools.lru_cache(maxsize=1024)
def _quoted_name(name: str) -> str:
    return name if _AS_IS.fullmatch(name) else quote_plus(name)


def authorize_params(req: AuthorizeRequest, return_url: str | None) -> dict[str, Any]:
    metadata = dict(req.metadata or {})
    # Our ids ride along so a webhook can be matched even before we learn the PI id.
    metadata["paymesh_payment_id"] = req.payment_id
    metadata["paymesh_customer_id"] = req.customer_id
    return {
        "amount": req.amount,
        "currency": req.currency,
        "payment_method": req.payment_method,
        "payment_method_types": ["card"],
        "confirm": True,
        "capture_method": "manual" if req.capture_method == "manual" else "automatic",
        "description": req.description,
        "metadata": metadata,
        "return_url": return_url,
    }


def failure_from_error(error: dict[str, Any]) -> Failure:
    code = error.get("code") or "card_declined"
    decline_code = error.get("decline_code")
    return Failure(
        code=code,
        decline_code=decline_code,
        message=error.get("message") or "the card was declined",
        retryable=code in RETRYABLE_CODES or decline_code in RETRYABLE_CODES,
    )


def outcome_from_intent(pi: dict[str, Any]) -> PspOutcome:
    status = STATUS_MAP.get(pi.get("status", ""), S.PENDING)
    failure = None
    last_error = pi.get("last_payment_error")
    if pi.get("status") == "requires_payment_method" and last_error:
        status = S.FAILED
        failure = failure_from_error(last_error)
    next_action = None
    if status == S.REQUIRES_ACTION and pi.get("next_action"):
        action = pi["next_action"]
        redirect = action.get("redirect_to_url") or {}
        next_action = {"type": "redirect_to_url", "redirect_url": redirect.get("url")}
    return PspOutcome(
        status=status,
        connector_payment_id=pi.get("id"),
        amount_capturable=pi.get("amount_capturable"),
        amount_received=pi.get("amount_received"),
        failure=failure,
        next_action=next_action,
    )
