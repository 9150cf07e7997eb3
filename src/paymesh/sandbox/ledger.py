"""`GET /_ledger`: every sandbox's payments in one PSP-neutral shape, for audits.

Real PSPs answer "what did you charge?" with reports; the sandboxes answer it here, next to
`/_config`, outside any PSP's API and without auth. An audit ("exactly one charge per payment
across all PSPs", "the store agrees with each PSP") reads the three ledgers and compares rows
without knowing any PSP's objects:

    {"psp": "stripe", "payments": [LedgerRow, ...]}    every payment in memory, oldest first

`?reference=<merchant reference>` keeps only that payment's rows (there may be several: one
per attempt the merchant made). Each sandbox maps its own records to rows (`<psp>/audit.py`);
what its status words mean and what counts as captured there is documented in that module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = ["LedgerRow", "ledger_route"]


class LedgerRow(msgspec.Struct, kw_only=True):
    """One payment as the PSP recorded it. Amounts are in the currency's ISO 4217 minor unit."""

    psp_reference: str  # the PSP's id of the payment
    reference: str | None  # the merchant's reference (paymesh's payment id), if one was sent
    currency: str  # ISO 4217, lower case
    amount: int  # authorised or requested
    amount_captured: int  # money actually taken from the payer
    amount_refunded: int  # money actually given back (not an uncaptured remainder released)
    status: str  # the PSP's own word for the payment's state
    charged: bool = False  # never given: amount_captured > 0, set on construction
    idempotency_keys: list[str]  # keys the payment was created under, as far as still known
    created: int | None  # unix seconds; None where the PSP's record does not say

    def __post_init__(self) -> None:
        self.charged = self.amount_captured > 0


class _Ledger(msgspec.Struct):
    psp: str
    payments: list[LedgerRow]


def ledger_route(
    psp: str, rows: Callable[[], Iterable[LedgerRow]], path: str = "/_ledger"
) -> Route:
    """`GET` answers `rows()` (oldest first), optionally only those with `?reference=`."""

    async def endpoint(request: Request) -> Response:
        unknown = sorted(set(request.query_params) - {"reference"})
        if unknown:
            return _ledger_error(
                f"Unknown query parameter(s): {', '.join(unknown)}. Only 'reference' is taken."
            )
        reference = request.query_params.get("reference")
        payments = [row for row in rows() if reference is None or row.reference == reference]
        body = msgspec.json.encode(_Ledger(psp, payments))
        return Response(body, media_type="application/json")

    return Route(path, endpoint, methods=["GET"])


def _ledger_error(message: str) -> Response:
    body = {"error": {"type": "invalid_request_error", "message": message}}
    return Response(msgspec.json.encode(body), status_code=400, media_type="application/json")
