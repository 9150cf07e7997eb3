"""The Adyen sandbox's payments as `/_ledger` rows: one per pspReference, every merchant account.

    psp_reference     the payment's pspReference
    reference         the merchant's `reference` (required by Adyen, so never null here)
    currency          the payment's currency, lower case
    amount            the authorised `amount.value`
    amount_captured   what was captured: the whole amount at once for an automatic capture
                      of an Authorised (or Received) payment, else the sum of its captures
    amount_refunded   the sum of its refunds
    status            the sandbox's word, as its `GET /v71/payments/{pspReference}` gives it:
                      Authorised, Captured (also once refunded), Cancelled, Refused, Error,
                      RedirectShopper (waiting for 3-D Secure), Received
    idempotency_keys  the Idempotency-Key of its `/payments` request, while remembered (31 days)
    created           when that keyed request arrived, to the second: Adyen's payment record
                      keeps no time of its own, so a payment created without a key has null

Rows are oldest first (the order the payments were made).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import msgspec

from paymesh.sandbox.adyen.idempotency import IdempotencyStore, SavedAnswer
from paymesh.sandbox.adyen.ledger import Ledger, SandboxPayment
from paymesh.sandbox.ledger import LedgerRow

__all__ = ["ledger_rows"]


def ledger_rows(ledger: Ledger) -> list[LedgerRow]:
    creations = _creations(ledger)
    rows = []
    for payment in ledger.payments.values():
        key, created = creations.get(payment.psp_reference, (None, None))
        rows.append(
            LedgerRow(
                psp_reference=payment.psp_reference,
                reference=payment.reference,
                currency=payment.currency.lower(),
                amount=payment.value,
                amount_captured=payment.amount_captured,
                amount_refunded=payment.amount_refunded,
                status=payment.status,
                idempotency_keys=[key] if key is not None else [],
                created=created,
            )
        )
    return rows


class _Answer(msgspec.Struct):
    """The little of a saved answer that tells whether it was a payment's result."""

    psp_reference: str | None = msgspec.field(default=None, name="pspReference")
    result_code: str | None = msgspec.field(default=None, name="resultCode")
    # Only in a modification's answer (capture, cancel, refund), naming the payment.
    payment_psp_reference: str | None = msgspec.field(default=None, name="paymentPspReference")


def _creations(ledger: Ledger) -> dict[str, tuple[str, int]]:
    """pspReference -> (the key its `/payments` request was sent with, that request's time)."""
    found: dict[str, tuple[str, int]] = {}
    for key, saved in _saved_answers(ledger.idempotency):
        try:
            answer = msgspec.json.decode(saved.body, type=_Answer)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        if answer.result_code is None or answer.payment_psp_reference is not None:
            continue
        payment = ledger.payments.get(answer.psp_reference or "")
        if payment is None or not _answered_creation(payment, answer.result_code):
            continue
        found.setdefault(payment.psp_reference, (key, _claimed_at(ledger.idempotency, saved)))
    return found


def _answered_creation(payment: SandboxPayment, result_code: str) -> bool:
    """Whether a payment result with `result_code` was `/payments`' answer, not `/details'`.

    `/payments/details` only finds a payment whose 3-D Secure challenge is over, and then
    never answers RedirectShopper; `/payments` answered exactly such a payment RedirectShopper.
    """
    challenged = payment.result_code == "RedirectShopper" or payment.redirect_result is not None
    return not challenged or result_code == "RedirectShopper"


def _saved_answers(store: IdempotencyStore) -> Iterable[tuple[str, SavedAnswer]]:
    # The store offers no iteration of its own; reading it here keeps its API to what the
    # request pipeline needs. Insertion order is the order the keys were first used.
    for key, saved in store._entries.items():
        if saved.status is not None:
            yield key, saved


def _claimed_at(store: IdempotencyStore, saved: SavedAnswer) -> int:
    """Unix seconds when the key was claimed, from its expiry on the monotonic clock."""
    claimed = saved.expires_at - store._ttl
    return int(time.time() - (time.monotonic() - claimed))
