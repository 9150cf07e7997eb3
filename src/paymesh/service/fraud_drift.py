"""The fraud drift report (issue 19): the assessments of the last N UTC days' payments, read
from the store, per day (`paymesh.fraud.drift`).

Every merchant's (the operator's view, `paymesh fraud drift`) or one's (the dashboard). The
store's payment query is per merchant, so every merchant is asked in turn; every merchant
that has, or had, an API key is every merchant that can have made a payment.

Bounded: at most `limit` payments are read. Days are read newest first and each one whole,
so a day the limit would cut short is left out with every day before it: a partial day's
scores would look like a drift that is not there (its morning without its evening).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

from paymesh.domain.payment import FraudAssessment
from paymesh.fraud.drift import DayDrift, DriftReport, daily_drift
from paymesh.ports.store import KeyStore, PaymentQuery, PaymentStore

__all__ = ["DEFAULT_LIMIT", "DriftView", "ScoredPayments", "drift_view", "fraud_drift"]

#: Payments read at most, unless the caller says otherwise: enough for two weeks of a busy
#: deployment, and a bound on the memory and time one report can take.
DEFAULT_LIMIT = 100_000
#: Payments asked of the store at a time.
PAGE = 500

Scored = list[tuple[datetime, FraudAssessment | None]]


class ScoredPayments(PaymentStore, KeyStore, Protocol):
    """What the report reads of the store: payments, and the merchants (from their keys)."""


@dataclass(frozen=True, slots=True)
class DriftView:
    report: DriftReport
    merchant: str | None  # None: every merchant's
    first_day: date  # the days asked for, first_day to last_day
    last_day: date
    read: int  # payments read (the days shown)
    limit: int
    #: The limit was reached: the days before `complete_from` were left out.
    capped: bool
    complete_from: date


async def _merchants(store: ScoredPayments, merchant: str | None) -> list[str]:
    if merchant is not None:
        return [merchant]
    return sorted({k.merchant_id for k in await store.list_api_keys(None)})


async def _one_day(
    store: ScoredPayments, merchants: list[str], day: date, budget: int
) -> Scored | None:
    """The day's payments of every merchant, or None when there are more than `budget`."""
    start = datetime.combine(day, time(), tzinfo=UTC)
    end = start + timedelta(days=1)
    rows: Scored = []
    for m in merchants:
        after: str | None = None
        while True:
            # One more than the budget left, so a day that does not fit is known as such.
            page, more = await store.list_payments(
                PaymentQuery(
                    merchant_id=m,
                    created_gte=start,
                    created_lt=end,
                    limit=min(PAGE, budget - len(rows) + 1),
                    starting_after=after,
                )
            )
            rows += [(p.created_at, p.fraud) for p in page]
            if len(rows) > budget:
                return None
            if not more or not page:
                break
            after = page[-1].id
            # The embedded store answers without awaiting anything: let the server's other
            # requests run between pages, or a long report would stall them all.
            await asyncio.sleep(0)
    return rows


async def fraud_drift(
    store: ScoredPayments,
    *,
    days: int,
    today: date,
    merchant: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> DriftView:
    """The drift report of the `days` UTC days up to `today` (included), of `merchant` or of
    every merchant, reading at most `limit` payments."""
    if days < 1 or limit < 1:
        raise ValueError("days and limit must be at least 1")
    merchants = await _merchants(store, merchant)
    first = today - timedelta(days=days - 1)
    scored: Scored = []
    day, capped = today, False
    while day >= first:
        rows = await _one_day(store, merchants, day, limit - len(scored))
        if rows is None:
            capped = True
            break
        scored += rows
        day -= timedelta(days=1)
    return DriftView(
        report=daily_drift(scored),
        merchant=merchant,
        first_day=first,
        last_day=today,
        read=len(scored),
        limit=limit,
        capped=capped,
        complete_from=day + timedelta(days=1) if capped else first,
    )


def _day_view(d: DayDrift) -> dict[str, Any]:
    return {
        "date": d.day.isoformat(),
        "payments": d.payments,
        "mean_score": d.mean,
        "p50": d.p50,
        "p90": d.p90,
        "p99": d.p99,
        "alerted": d.alerted,
        "review": d.review,
        "blocked": d.blocked,
        "histogram": list(d.histogram),
        "models": [{"model": m, "payments": n} for m, n in d.models],
        "baseline_payments": d.baseline_payments,
        "psi": d.psi,
        "psi_noise": d.psi_noise,
        "drift": d.drifted,
        "alert_rate_change": d.alert_rate_change,
    }


def drift_view(view: DriftView) -> dict[str, Any]:
    """The report as JSON-ready data (`paymesh fraud drift --json`, the dashboard's chart).
    Shares are fractions (0.25, not 25); `models` names null for the rules alone."""
    return {
        "merchant": view.merchant,
        "from": view.first_day.isoformat(),
        "to": view.last_day.isoformat(),
        "payments_read": view.read,
        "unscored": view.report.unscored,
        "limit": view.limit,
        "capped": view.capped,
        "complete_from": view.complete_from.isoformat(),
        "days": [_day_view(d) for d in view.report.days],
    }
