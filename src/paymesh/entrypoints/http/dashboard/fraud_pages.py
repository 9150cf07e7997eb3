"""The fraud page: the merchant's fraud scores per UTC day, with the drift signal, as
`paymesh fraud drift --merchant M` prints them (issue 19)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from starlette.requests import Request
from starlette.responses import Response

from paymesh.entrypoints.http.common import api
from paymesh.entrypoints.http.dashboard.rendering import page, render
from paymesh.fraud.drift import ALERT, BASELINE_DAYS, DRIFT_PSI
from paymesh.service.fraud_drift import fraud_drift

__all__ = ["fraud"]

#: Days shown unless `?days=` says otherwise, and the most it may say.
DAYS = 14
MAX_DAYS = 90
#: Payments one page view reads at most: it is read while the visitor waits, on the same
#: store the API writes to (about a second for 50,000 on SQLite), so it stays below the
#: command line's default.
READ_LIMIT = 50_000


def _days(raw: str | None) -> int:
    try:
        return min(max(int(raw or DAYS), 1), MAX_DAYS)
    except ValueError:
        return DAYS


def _midnight(day: date) -> float:
    return datetime.combine(day, time(), UTC).timestamp()


@page
async def fraud(request: Request, merchant: str) -> Response:
    days = _days(request.query_params.get("days"))
    view = await fraud_drift(
        api(request).store,
        days=days,
        today=datetime.now(UTC).date(),
        merchant=merchant,
        limit=READ_LIMIT,
    )
    rows = view.report.days
    return render(
        request,
        "fraud.html",
        {
            "section": "fraud",
            "merchant": merchant,
            "days": days,
            "view": view,
            "rows": rows,
            "alert": ALERT,
            "baseline_days": BASELINE_DAYS,
            "drift_psi": DRIFT_PSI,
            # For the chart (drawn by fraud.js from this attribute: no inline script).
            "chart": {
                # The x axis spans the days asked for, not just those with payments.
                "from": _midnight(view.first_day),
                "to": _midnight(view.last_day),
                "at": [_midnight(d.day) for d in rows],
                "alerted": [round(d.alerted * 100, 2) for d in rows],
                "mean": [round(d.mean, 2) for d in rows],
            },
        },
    )
