"""The overview with its live charts, the payments search, and a payment's own page."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from paymesh.adapters.metrics.instruments import OUTBOX_SCAN
from paymesh.domain.payment import Payment
from paymesh.domain.status import PaymentStatus
from paymesh.entrypoints.http.common import api, json_response
from paymesh.entrypoints.http.dashboard.live import LiveFigures
from paymesh.entrypoints.http.dashboard.rendering import HEADERS, page, render
from paymesh.ports.store import PaymentQuery

#: The search reads at most this many of the newest payments matching what the store can
#: filter (customer, status, dates), and filters PSP and amount among them.
SEARCH_SCAN = 1000
#: Rows a search shows.
SEARCH_ROWS = 50


@page
async def overview(request: Request, merchant: str) -> Response:
    return render(request, "overview.html", {"merchant": merchant, "section": "overview"})


@page
async def live(request: Request, merchant: str) -> Response:
    """One point of every live chart. The rates are this process's; the outbox and the
    dead-letter queue are read from the store, the same for every process."""
    figures: LiveFigures = request.app.state.live_figures
    store = api(request).store
    waiting = await store.undelivered_events(OUTBOX_SCAN)
    now = datetime.now(UTC)
    depth = await store.dead_letter_depth()
    return json_response(
        200,
        {
            "at": now.timestamp(),
            **figures.now(),
            "outbox_backlog": len(waiting),
            "outbox_lag_seconds": round((now - waiting[0].time).total_seconds(), 3)
            if waiting
            else 0.0,
            "dead_letters": sum(depth.values()),
        },
        headers={"Cache-Control": "no-store"},
    )


@dataclass(frozen=True, slots=True)
class Search:
    """The search form, as typed; `problem` says what in it could not be read."""

    id: str = ""
    customer: str = ""
    status: str = ""
    psp: str = ""
    amount_min: str = ""
    amount_max: str = ""
    created_from: str = ""
    created_to: str = ""
    problem: str = ""

    @classmethod
    def of(cls, request: Request) -> Search:
        q = request.query_params
        fields = {k: (q.get(k) or "").strip() for k in cls.__slots__ if k != "problem"}
        return cls(**fields)

    def check(
        self, merchant: str
    ) -> tuple[Search, PaymentQuery | None, tuple[int | None, int | None]]:
        """(self with `problem` set if any, the merchant's query, the amount bounds)."""
        try:
            low = int(self.amount_min) if self.amount_min else None
            high = int(self.amount_max) if self.amount_max else None
            start = _day(self.created_from)
            end = _day(self.created_to)
        except ValueError:
            problem = "amounts are whole minor units (1250 for 12.50) and dates YYYY-MM-DD"
            return replace(self, problem=problem), None, (None, None)
        if self.status and self.status not in PaymentStatus.__members__.values():
            return replace(self, problem="unknown status"), None, (None, None)
        query = PaymentQuery(
            merchant_id=merchant,
            customer_id=self.customer or None,
            status=PaymentStatus(self.status) if self.status else None,
            created_gte=start,
            created_lt=end + timedelta(days=1) if end else None,
            limit=100,
        )
        return self, query, (low, high)


def _day(text: str) -> datetime | None:
    if not text:
        return None
    return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)


async def _find(
    request: Request, query: PaymentQuery, psp: str, amounts: tuple[int | None, ...]
) -> tuple[list[Payment], int]:
    low, high = amounts
    store = api(request).store
    found: list[Payment] = []
    scanned = 0
    after: str | None = None
    while scanned < SEARCH_SCAN and len(found) < SEARCH_ROWS:
        batch, more = await store.list_payments(replace(query, starting_after=after))
        scanned += len(batch)
        found += [
            p
            for p in batch
            if (not psp or p.connector == psp)
            and (low is None or p.amount >= low)
            and (high is None or p.amount <= high)
        ]
        if not more or not batch:
            break
        after = batch[-1].id
    return found[:SEARCH_ROWS], scanned


@page
async def payments(request: Request, merchant: str) -> Response:
    search, query, amounts = Search.of(request).check(merchant)
    rows: list[Payment] = []
    scanned = 0
    if search.id:
        payment = await api(request).store.get_payment(search.id, merchant)
        rows = [payment] if payment else []
    elif query is not None:
        rows, scanned = await _find(request, query, search.psp, amounts)
    context = {
        "section": "payments",
        "merchant": merchant,
        "search": search,
        "rows": rows,
        "scanned": scanned,
        "capped": scanned >= SEARCH_SCAN,
        "statuses": [s.value for s in PaymentStatus],
        "psps": sorted(api(request).routing.connectors),
    }
    if request.headers.get("hx-request") and request.headers.get("hx-target") == "results":
        return render(request, "payment_rows.html", context)
    return render(request, "payments.html", context)


@page
async def payment(request: Request, merchant: str) -> Response:
    a = api(request)
    found = await a.store.get_payment(request.path_params["payment_id"], merchant)
    if found is None:
        return render(
            request,
            "missing.html",
            {"section": "payments", "what": request.path_params["payment_id"]},
            status=404,
        )
    events = await a.store.events_for_payment(merchant, found.id)
    event_ids = {e.id for e in events}
    timeline = [_timeline_entry(e.type, e.time, e.envelope) for e in events]
    dead, _ = await a.store.dead_letters(merchant, 100, None)
    return render(
        request,
        "payment.html",
        {
            "section": "payments",
            "merchant": merchant,
            "p": found,
            "events": timeline,
            # The PSP notifications that changed it (ones that told nothing new change
            # nothing, and are not recorded).
            "webhooks": [e for e in timeline if e["psp_event_id"]],
            "notifications": await a.store.notifications_for_payment(merchant, found.id),
            "dead_letters": [d for d in dead if d.event_id in event_ids],
        },
    )


#: Every event's detail repeats these; the page above shows them once.
_SAME_FOR_EVERY_EVENT = frozenset(
    {"payment_id", "amount", "currency", "customer_id", "connector", "metadata"}
)


def _timeline_entry(kind: str, at: datetime, envelope: dict[str, Any]) -> dict[str, Any]:
    detail = {
        k: v
        for k, v in envelope.get("detail", {}).items()
        if k not in _SAME_FOR_EVERY_EVENT and v not in (None, "", [], {})
    }
    return {
        "type": kind,
        "at": at,
        "detail": detail,
        "id": envelope.get("id"),
        "psp_event_id": detail.pop("psp_event_id", None),
        "psp": envelope.get("detail", {}).get("connector"),
    }


__all__ = ["HEADERS", "live", "overview", "payment", "payments"]
