"""The Stripe sandbox's payments as `/_ledger` rows: one per PaymentIntent, of every account.

    psp_reference     the PaymentIntent's id (`pi_...`)
    reference         `metadata.paymesh_payment_id`, where paymesh's connector puts its id
    amount            the PaymentIntent's `amount`
    amount_captured   its `amount_received`: what its captured charge took. A partial capture
                      releases the rest, which was never taken
    amount_refunded   the sum of its succeeded refunds. Not `Charge.amount_refunded`, which
                      also counts what a partial capture or a cancel released
    status            the PaymentIntent's `status`: requires_payment_method (also after a
                      decline), requires_confirmation, requires_action, requires_capture,
                      processing, succeeded, canceled
    idempotency_keys  the Idempotency-Key of the first keyed request, still remembered (24 h),
                      that answered with this PaymentIntent: the create's key whenever the create
                      had one, as paymesh's always does. The sandbox records no request paths, so
                      a create sent without a key would show a later confirm's or update's key
                      (never a capture's or cancel's: those answers are told apart)
    created           the PaymentIntent's `created`

Rows are oldest first: each account's in creation order, accounts merged by `created`.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable
from typing import TypeVar

import msgspec

from paymesh.sandbox.ledger import LedgerRow
from paymesh.sandbox.stripe.accounts import Account, Accounts, Ledger
from paymesh.sandbox.stripe.idempotency import IdempotencyStore

__all__ = ["REFERENCE_KEY", "ledger_rows"]

#: The metadata key paymesh's Stripe connector sends its payment id under.
REFERENCE_KEY = "paymesh_payment_id"

T = TypeVar("T")


def ledger_rows(accounts: Accounts) -> list[LedgerRow]:
    per_account = [_account_rows(account) for account in _every_account(accounts)]
    return list(heapq.merge(*per_account, key=lambda row: row.created or 0))


def _account_rows(account: Account) -> list[LedgerRow]:
    refunded: Counter[str] = Counter()
    for refund in _oldest_first(account.refunds):
        if refund.payment_intent is not None and refund.status == "succeeded":
            refunded[refund.payment_intent] += refund.amount
    keys = _creation_keys(account.idempotency)
    return [
        LedgerRow(
            psp_reference=intent.id,
            reference=intent.metadata.get(REFERENCE_KEY),
            currency=intent.currency,
            amount=intent.amount,
            amount_captured=intent.amount_received,
            amount_refunded=refunded[intent.id],
            status=intent.status,
            idempotency_keys=[keys[intent.id]] if intent.id in keys else [],
            created=intent.created,
        )
        for intent in _oldest_first(account.payment_intents)
    ]


class _Intent(msgspec.Struct):
    id: str
    status: str
    capture_method: str


class _Error(msgspec.Struct):
    payment_intent: _Intent | None = None  # only in a 402 decline


class _Answer(msgspec.Struct):
    """The little of a saved answer that tells which PaymentIntent it was about."""

    object: str | None = None
    id: str | None = None
    status: str | None = None
    capture_method: str | None = None
    error: _Error | None = None

    def intent(self) -> _Intent | None:
        if self.object == "payment_intent" and self.id and self.status and self.capture_method:
            return _Intent(self.id, self.status, self.capture_method)
        return self.error.payment_intent if self.error is not None else None


def _creation_keys(store: IdempotencyStore) -> dict[str, str]:
    """PaymentIntent id -> the key of the first saved answer that may have created it."""
    found: dict[str, str] = {}
    for key, saved in _saved_answers(store):
        try:
            intent = msgspec.json.decode(saved, type=_Answer).intent()
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        if intent is not None and _may_be_creation(intent):
            found.setdefault(intent.id, key)
    return found


def _may_be_creation(intent: _Intent) -> bool:
    # A create never answers canceled, nor succeeded with manual capture (it stops at
    # requires_capture): those are a cancel's and a capture's answers.
    if intent.status == "canceled":
        return False
    return not (intent.status == "succeeded" and intent.capture_method == "manual")


def _saved_answers(store: IdempotencyStore) -> Iterable[tuple[str, bytes]]:
    # The store offers no iteration of its own; reading it here keeps its API to what the
    # request pipeline needs. Insertion order is the order the keys were first used.
    for key, saved in store._entries.items():
        if saved.status is not None:
            yield key, saved.body


def _every_account(accounts: Accounts) -> Iterable[Account]:
    # Accounts are created on first use of an API key; there is no public list of them.
    return list(accounts._by_key.values())


def _oldest_first(ledger: Ledger[T]) -> list[T]:
    newest_first, _ = ledger.page(len(ledger))
    newest_first.reverse()
    return newest_first
