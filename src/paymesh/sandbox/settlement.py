"""Daily settlement reports: what each sandbox would pay out for a UTC day, and its faults.

Each sandbox turns its records into `BalanceEntry`s (one per money movement: a capture, a
refund, a dispute, its reversal) priced from `paymesh.domain.ledger.FEES`, and writes a day of
them in its PSP's format (`<psp>/settlement_report.py`), closed by one payout per currency
that pays out the day's nets. Served at

    GET /_reports/settlement?date=YYYY-MM-DD[&inject=missing,late,...][&seed=N]

next to `/_config` and `/_ledger`, outside any PSP's API and without auth (sandbox only).

`inject` asks for discrepancies, each applied to one movement of any kind (a capture, a
refund, a dispute or its reversal; distinct movements, chosen by a generator seeded with
`seed`, else the day, so a report asked twice is the same report):

    missing            a movement left out
    amount_mismatch    a movement settled for another amount (its fee priced on that)
    unknown            a capture of a payment nobody made
    duplicate          a line written twice
    fee_mismatch       a movement charged another fee
    payout_mismatch    the payout not the sum of the nets
    currency_mismatch  a movement settled in another currency
    late               a movement left for the next day's report (asked there, it appears)
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from paymesh.domain.currencies import EXPONENTS
from paymesh.domain.ledger import Move, schedule

__all__ = [
    "INJECTIONS",
    "BalanceEntry",
    "DayReport",
    "ReportBook",
    "day_report",
    "entry_id",
    "major",
    "settlement_route",
]

INJECTIONS = (
    "missing",
    "amount_mismatch",
    "unknown",
    "duplicate",
    "fee_mismatch",
    "payout_mismatch",
    "currency_mismatch",
    "late",
)


@dataclass(frozen=True, slots=True)
class BalanceEntry:
    """One money movement as the PSP books it. Signs as Stripe's balance transactions:
    `gross` > 0 in, < 0 out; `fee` kept by the PSP; `net` = `gross` - `fee`."""

    id: str  # the PSP's id of the line (stable: the same movement always has the same id)
    kind: Move
    psp_reference: str  # the PSP's id of the payment ("" for a payout)
    source_id: str  # the PSP's id of the movement: charge, capture, refund, dispute, payout
    merchant_reference: str  # the merchant's reference of the payment (paymesh's id)
    currency: str  # lower case
    gross: int
    fee: int
    created: datetime
    payment_method: str = "visa"
    #: The merchant's reference of the movement itself (Adyen: the refund's reference).
    modification_reference: str = ""

    @property
    def net(self) -> int:
        return self.gross - self.fee


def entry_id(prefix: str, *parts: str) -> str:
    """A stable id for a movement, shaped like the PSP's (`txn_...`)."""
    digest = hashlib.sha256("/".join(parts).encode()).hexdigest()[:24]
    return f"{prefix}{digest}"


def major(amount: int, currency: str, signed: bool = True) -> str:
    """`amount` minor units as a decimal in major units (`-12.34`), as reports write money."""
    exponent = EXPONENTS.get(currency.upper(), 2)
    sign = "-" if amount < 0 and signed else ""
    whole, frac = divmod(abs(amount), 10**exponent)
    return f"{sign}{whole}.{frac:0{exponent}d}" if exponent else f"{sign}{whole}"


def priced(psp: str, kind: Move, amount: int) -> tuple[int, int]:
    """(gross, fee) of a movement of `amount` (> 0) at the sandbox's prices."""
    fees = schedule(psp)
    match kind:
        case Move.CAPTURE:
            return amount, fees.fee(amount)
        case Move.DISPUTE:
            return -amount, fees.dispute_fee
        case Move.DISPUTE_WON:
            return amount, 0
        case _:
            return -amount, 0


@dataclass(frozen=True, slots=True)
class DayReport:
    psp: str
    day: date
    entries: tuple[BalanceEntry, ...]  # activity, in report order (duplicates included)
    payouts: tuple[BalanceEntry, ...]
    #: What was injected: (discrepancy, the merchant reference of the movement it changed,
    #: or the currency of the payout it changed), for the benchmark's ground truth.
    injected: tuple[tuple[str, str], ...] = ()


@dataclass
class ReportBook:
    """What a sandbox remembers between reports: movements it has put off to a later day
    (`late`), so that the next day's report carries them."""

    deferred: dict[str, date] = field(default_factory=dict)


def day_report(
    psp: str,
    day: date,
    entries: Iterable[BalanceEntry],
    inject: Sequence[str] = (),
    seed: int | None = None,
    book: ReportBook | None = None,
) -> DayReport:
    book = book if book is not None else ReportBook()
    everything = list(entries)
    # A movement put off from the day before comes today; one put off from today is put off
    # again by the same (seeded) choice, so asking for a day twice gives the same report.
    todays = [e for e in everything if e.created.date() == day or book.deferred.get(e.id) == day]
    todays.sort(key=lambda e: (e.created, e.id))
    rng = random.Random(seed if seed is not None else day.toordinal())
    activity, payout_shift, injected = _inject(psp, day, todays, inject, rng, book)
    payouts = _payouts(psp, day, activity, payout_shift)
    if payout_shift:
        injected.append(("payout_mismatch", payouts[0].currency))
    return DayReport(psp, day, tuple(activity), payouts, tuple(injected))


def _inject(
    psp: str,
    day: date,
    todays: list[BalanceEntry],
    inject: Sequence[str],
    rng: random.Random,
    book: ReportBook,
) -> tuple[list[BalanceEntry], int, list[tuple[str, str]]]:
    unknown_kinds = sorted(set(inject) - set(INJECTIONS))
    if unknown_kinds:
        raise ValueError(f"unknown discrepancy: {', '.join(unknown_kinds)}")
    needs = [kind for kind in inject if kind not in ("unknown", "payout_mismatch")]
    # Distinct movements for distinct discrepancies, so that each is one finding.
    pool = list(range(len(todays)))
    rng.shuffle(pool)
    if len(pool) < len(needs):
        raise ValueError(f"{len(todays)} movements on {day} are too few for {len(needs)} faults")
    chosen = dict(zip(needs, pool, strict=False))
    injected = [(kind, todays[i].merchant_reference) for kind, i in chosen.items()]
    out = list(todays)
    drop: set[int] = set()
    twice: set[int] = set()
    for kind, i in chosen.items():
        entry = out[i]
        if kind == "missing":
            drop.add(i)
        elif kind == "late":
            book.deferred[entry.id] = day + timedelta(days=1)
            drop.add(i)
        elif kind == "duplicate":
            twice.add(i)
        elif kind == "amount_mismatch":
            # Priced as its kind: a capture's fee follows the amount, a dispute's is flat.
            gross, fee = priced(psp, entry.kind, abs(entry.gross) + rng.randint(1, 500))
            out[i] = replace(entry, gross=gross, fee=fee)
        elif kind == "fee_mismatch":
            out[i] = replace(entry, fee=entry.fee + rng.randint(1, 50))
        elif kind == "currency_mismatch":
            out[i] = replace(entry, currency="eur" if entry.currency != "eur" else "usd")
    result: list[BalanceEntry] = []
    for i, entry in enumerate(out):
        if i in drop:
            continue
        result.append(entry)
        if i in twice:
            result.append(entry)
    if "unknown" in inject:
        amount = rng.randint(500, 50_000)
        gross, fee = priced(psp, Move.CAPTURE, amount)
        ref = entry_id("", psp, "unknown", str(day), str(rng.random()))[:16].upper()
        injected.append(("unknown", f"ord_{ref.lower()}"))
        result.append(
            BalanceEntry(
                id=entry_id("txn_", psp, "unknown", ref),
                kind=Move.CAPTURE,
                psp_reference=ref,
                source_id=ref,
                merchant_reference=f"ord_{ref.lower()}",
                currency=todays[0].currency if todays else "usd",
                gross=gross,
                fee=fee,
                created=datetime.combine(day, time(12), UTC),
            )
        )
    shift = -rng.randint(1, 500) if "payout_mismatch" in inject and result else 0
    return result, shift, injected


def _payouts(
    psp: str, day: date, activity: Sequence[BalanceEntry], shift: int
) -> tuple[BalanceEntry, ...]:
    nets: Counter[str] = Counter()
    for entry in activity:
        nets[entry.currency] += entry.net
    at = datetime.combine(day, time(23, 59, 59), UTC)
    payouts = []
    for n, currency in enumerate(sorted(nets)):
        amount = nets[currency] + (shift if n == 0 else 0)
        payout_id = entry_id("po_", psp, str(day), currency)
        payouts.append(
            BalanceEntry(
                id=entry_id("txn_", psp, "payout", str(day), currency),
                kind=Move.PAYOUT,
                psp_reference="",
                source_id=payout_id,
                merchant_reference="",
                currency=currency,
                gross=-amount,
                fee=0,
                created=at,
                payment_method="",
            )
        )
    return tuple(payouts)


Writer = Callable[[DayReport], str]


def settlement_route(
    psp: str,
    entries: Callable[[], Iterable[BalanceEntry]],
    write: Writer,
    path: str = "/_reports/settlement",
) -> Route:
    """`GET ?date=` answers the day's report in the PSP's format (see the module's doc)."""
    book = ReportBook()

    async def endpoint(request: Request) -> Response:
        query = request.query_params
        unknown = sorted(set(query) - {"date", "inject", "seed"})
        if unknown:
            return _bad(f"Unknown query parameter(s): {', '.join(unknown)}.")
        try:
            day = date.fromisoformat(query.get("date", ""))
        except ValueError:
            return _bad("'date' must be a day, YYYY-MM-DD.")
        inject = [k for k in query.get("inject", "").split(",") if k]
        try:
            seed = int(query["seed"]) if "seed" in query else None
            report = day_report(psp, day, entries(), inject, seed, book)
        except ValueError as exc:
            return _bad(str(exc))
        return PlainTextResponse(write(report), media_type="text/csv; charset=utf-8")

    return Route(path, endpoint, methods=["GET"])


def _bad(message: str) -> Response:
    return PlainTextResponse(message + "\n", status_code=400)
