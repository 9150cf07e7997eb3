"""Reconciliation: the kept results of each PSP's days, one day's exceptions, and a run now.

A settlement report is the PSP account's, all merchants together; a merchant sees the
exceptions about its own payments, and those about no payment at all (an unknown line, a
payout), which are the account's.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from paymesh.entrypoints.http.common import api
from paymesh.entrypoints.http.dashboard.rendering import back_to, page, render
from paymesh.service.reconciliation import MissingReport, kept_results, reconcile_and_keep

#: Days the page lists, back from today.
DAYS = 14


def _sources(request: Request) -> dict[str, Any]:
    sources: dict[str, Any] = request.app.state.report_sources
    return sources


async def _mine(request: Request, merchant: str, exceptions: list[Any]) -> list[Any]:
    store = api(request).store
    shown = []
    for e in exceptions:
        pid = e.get("payment_id")
        if not pid or await store.get_payment(pid, merchant) is not None:
            shown.append(e)
    return shown


@page
async def reconciliation(request: Request, merchant: str) -> Response:
    store = api(request).store
    sources = _sources(request)
    today = datetime.now(UTC).date()
    days = [today - timedelta(days=n) for n in range(DAYS)]
    results = await kept_results(store, sorted(sources), days)
    chosen = None
    psp, day = request.query_params.get("psp", ""), request.query_params.get("date", "")
    with contextlib.suppress(ValueError):
        kept = await kept_results(store, [psp], [date.fromisoformat(day)])
        if kept:
            chosen = {
                **kept[0],
                "exceptions": await _mine(request, merchant, kept[0]["exceptions"]),
            }
    return render(
        request,
        "reconciliation.html",
        {
            "section": "reconciliation",
            "merchant": merchant,
            "results": results,
            "chosen": chosen,
            "psps": sorted(sources),
            "default_day": (today - timedelta(days=2)).isoformat(),
        },
    )


@page
async def run_reconciliation(request: Request, merchant: str) -> Response:
    form = await request.form()
    psp = str(form.get("psp", ""))
    sources = _sources(request)
    if psp not in sources:
        return back_to("/dashboard/reconciliation", error=f"no settlement reports for {psp!r}")
    try:
        day = date.fromisoformat(str(form.get("date", "")))
    except ValueError:
        return back_to("/dashboard/reconciliation", error="the day must be YYYY-MM-DD")
    try:
        view = await reconcile_and_keep(
            api(request).store, psp, day, sources[psp], datetime.now(UTC)
        )
    except MissingReport as exc:
        return back_to("/dashboard/reconciliation", error=str(exc))
    opened = sum(1 for e in view["exceptions"] if not e["resolved"])
    return back_to(
        f"/dashboard/reconciliation?psp={psp}&date={day.isoformat()}",
        notice=f"{psp} {day}: {view['items']} items, {opened} exceptions open",
    )


__all__ = ["reconciliation", "run_reconciliation"]
