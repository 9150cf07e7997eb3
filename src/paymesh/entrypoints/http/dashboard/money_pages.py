"""The money page: the balance the PSPs owe, every ledger account, and the latest movements."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from paymesh.domain.ledger import Account
from paymesh.entrypoints.http.common import api
from paymesh.entrypoints.http.dashboard.rendering import page, render

#: Movements the page lists (newest first).
MOVEMENTS = 50


@page
async def money(request: Request, merchant: str) -> Response:
    store = api(request).store
    today = datetime.now(UTC).date()
    sums = await store.ledger_balances(merchant, today)
    currencies = sorted({c for (_, c) in sums})
    receivable = Account.PSP_RECEIVABLE.value
    moves, more = await store.balance_transactions(merchant, MOVEMENTS)
    return render(
        request,
        "money.html",
        {
            "section": "money",
            "merchant": merchant,
            "today": today,
            "balance": [(c, *sums.get((receivable, c), (0, 0))) for c in currencies],
            "accounts": [
                (a.value, [sum(sums.get((a.value, c), (0, 0))) for c in currencies])
                for a in Account
            ],
            "currencies": currencies,
            "totals": [sum(sum(v) for (_, cur), v in sums.items() if cur == c) for c in currencies],
            "moves": moves,
            "more": more,
        },
    )
