"""Routes of the ledger, in Stripe's shapes: the balance, and the balance transactions.

`GET /v1/balance`: what the PSPs owe the merchant (the `psp_receivable` account), `available`
(settled per the PSP's schedule) and `pending`, per currency; `accounts` adds every account's
balance, which per currency sum to zero. `GET /v1/balance_transactions`: each money movement
that changes it (charges with their fee, refunds, disputes, payouts), newest first.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from paymesh.domain.ledger import Account, LedgerTransaction
from paymesh.entrypoints.http.common import api, int_param, json_response, merchant_of
from paymesh.service import views

_RECEIVABLE = Account.PSP_RECEIVABLE.value


def _epoch(t: datetime) -> int:
    return int(t.timestamp())


def transaction_view(t: LedgerTransaction, today: Any) -> dict[str, Any]:
    return {
        "id": t.id,
        "object": "balance_transaction",
        "type": t.kind.value,
        "reporting_category": t.kind.value,
        "amount": t.amount,
        "fee": t.fee,
        "net": t.net,
        "currency": t.currency,
        "created": _epoch(t.created_at),
        "available_on": _epoch(datetime.combine(t.available_on, time(), tzinfo=UTC)),
        "status": "available" if t.available_on <= today else "pending",
        "source": t.payment_id,
        "payment_id": t.payment_id,
        "psp": t.psp,
    }


async def get_balance(request: Request) -> Response:
    merchant = await merchant_of(request)
    today = datetime.now(UTC).date()
    sums = await api(request).store.ledger_balances(merchant, today)
    currencies = sorted({c for (account, c) in sums if account == _RECEIVABLE})
    return json_response(
        200,
        {
            "object": "balance",
            "available": [{"amount": sums[_RECEIVABLE, c][0], "currency": c} for c in currencies],
            "pending": [{"amount": sums[_RECEIVABLE, c][1], "currency": c} for c in currencies],
            "accounts": [
                {"account": account, "currency": c, "balance": now + later}
                for (account, c), (now, later) in sorted(sums.items())
            ],
        },
    )


async def list_balance_transactions(request: Request) -> Response:
    merchant = await merchant_of(request)
    q = request.query_params
    page, has_more = await api(request).store.balance_transactions(
        merchant,
        int_param(request, "limit", 10, 1, 100),
        q.get("starting_after"),
        q.get("payment_id"),
    )
    today = datetime.now(UTC).date()
    return json_response(
        200,
        views.list_view(
            [transaction_view(t, today) for t in page], has_more, "/v1/balance_transactions"
        ),
    )


def ledger_routes() -> list[BaseRoute]:
    return [
        Route("/v1/balance", get_balance, methods=["GET"]),
        Route("/v1/balance_transactions", list_balance_transactions, methods=["GET"]),
    ]
