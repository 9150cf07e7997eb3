"""The PayPal sandbox's payments as `/_ledger` rows: one per order, of every client (merchant).

    psp_reference     the order's id
    reference         the purchase unit's `custom_id`, else its `reference_id` unless that is
                      PayPal's placeholder `default` (paymesh's connector sends its payment id in
                      both)
    currency          the order's currency, lower case
    amount            the order's amount
    amount_captured   the sum of its captures that took money: COMPLETED, PARTIALLY_REFUNDED or
                      REFUNDED. Not DECLINED, DENIED or FAILED, and not PENDING: an eCheck that
                      has not cleared has taken nothing yet, and may still be denied
    amount_refunded   the sum of its captures' COMPLETED refunds
    status            the order's own status: CREATED, PAYER_ACTION_REQUIRED, APPROVED,
                      COMPLETED, VOIDED. An order is COMPLETED once it was processed, whatever
                      became of the money (declined, voided, refunded): read `charged` and the
                      amounts for that
    idempotency_keys  the PayPal-Request-Ids its create was sent with, while remembered (6 h)
    created           the order's `create_time`

PayPal writes money as decimal strings; every amount here is in the ISO 4217 minor unit, as
paymesh counts it. That is PayPal's smallest unit too, except in HUF and TWD, which have cents
in ISO 4217 that PayPal does not take.

Rows are oldest first (the order the orders were created, across clients).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from paymesh.sandbox.ledger import LedgerRow
from paymesh.sandbox.paypal.amounts import Money
from paymesh.sandbox.paypal.objects import Order
from paymesh.sandbox.paypal.state import Merchant, Merchants

__all__ = ["ledger_rows"]

#: The call type `PayPal-Request-Id`s of order creates are kept under (see `app._API`).
_CREATE_ORDER = "orders.create"
_TOOK_MONEY = frozenset({"COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED"})
#: ISO 4217 exponents of PayPal's currencies (`amounts.SUPPORTED_CURRENCIES`) other than 2.
_ISO_EXPONENT = {"JPY": 0}


def ledger_rows(merchants: Merchants) -> list[LedgerRow]:
    # `by_order` is every order of every merchant, in the order they were created.
    by_client = {merchant.client_id: merchant for merchant in merchants.by_order.values()}
    request_ids: dict[str, list[str]] = {}
    for merchant in by_client.values():
        request_ids.update(_create_request_ids(merchant))
    return [
        _row(merchant.orders[order_id], request_ids.get(order_id, []))
        for order_id, merchant in merchants.by_order.items()
    ]


def _row(order: Order, request_ids: list[str]) -> LedgerRow:
    taken = [c for c in order.captures if c.status in _TOOK_MONEY]
    refunds = [r for c in order.captures for r in c.refunds if r.status == "COMPLETED"]
    default = order.reference_id if order.reference_id != "default" else None
    return LedgerRow(
        psp_reference=order.id,
        reference=order.custom_id or default,
        currency=order.amount.currency.lower(),
        amount=_minor(order.amount),
        amount_captured=sum(_minor(c.amount) for c in taken),
        amount_refunded=sum(_minor(r.amount) for r in refunds),
        status=order.status,
        idempotency_keys=request_ids,
        created=int(order.created.timestamp()),
    )


def _minor(money: Money) -> int:
    value = Decimal(money.wire()["value"])
    return int(value.scaleb(_ISO_EXPONENT.get(money.currency, 2)))


def _create_request_ids(merchant: Merchant) -> dict[str, list[str]]:
    """Order id -> the PayPal-Request-Ids of the create that made it."""
    found: dict[str, list[str]] = {}
    for request_id, resource_id in _saved_creates(merchant):
        found.setdefault(resource_id, []).append(request_id)
    return found


def _saved_creates(merchant: Merchant) -> Iterable[tuple[str, str]]:
    # `RequestIds` offers no iteration of its own; reading it here keeps its API to what the
    # request pipeline needs. Only requests that made something are kept.
    for (call_type, request_id), entry in merchant.request_ids._entries.items():
        if call_type == _CREATE_ORDER and entry.result is not None:
            yield request_id, entry.result.resource.id
