"""Days of payments, as paymesh's ledger books them and as a PSP settles them: the input of
the reconciliation benchmark and tests.

Each day has `payments` captures at random times (never in the last minutes of the day, so
that a clean day is clean), some refunded in part or whole later that day, a few disputed,
half of those won back the same day (a stand-in for the weeks a bank takes).
The ledger side comes from `paymesh.domain.ledger.book`, exactly as the stores book a
payment's events; the PSP side is the `BalanceEntry`s a sandbox would derive from its own
records, priced from the same `FEES`. Discrepancies are injected when the PSP's report is
written (`paymesh.sandbox.settlement.day_report`), so the ground truth is known.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from paymesh.domain.ledger import LedgerTransaction, Move, Movement, book
from paymesh.sandbox.settlement import BalanceEntry, entry_id, priced

__all__ = ["GeneratedDay", "generate_days"]

_CURRENCIES = ("usd", "usd", "usd", "eur", "eur", "gbp", "jpy")


@dataclass
class GeneratedDay:
    day: date
    ledger: list[LedgerTransaction] = field(default_factory=list)
    entries: list[BalanceEntry] = field(default_factory=list)
    #: paymesh's payment id -> the PSP's reference of the payment.
    references: dict[str, str] = field(default_factory=dict)


def _psp_reference(psp: str, rng: random.Random) -> str:
    token = "".join(rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", k=16))
    return {"stripe": f"pi_{token.lower()}", "adyen": token, "paypal": token[:17]}[psp]


def generate_days(
    psp: str, start: date, days: int, payments: int, seed: int = 0
) -> list[GeneratedDay]:
    rng = random.Random(seed)
    return [_day(psp, start + timedelta(days=n), payments, rng) for n in range(days)]


def _day(psp: str, day: date, payments: int, rng: random.Random) -> GeneratedDay:
    out = GeneratedDay(day)
    midnight = datetime.combine(day, time(), UTC)
    for n in range(payments):
        payment_id = f"pay_{day:%Y%m%d}{n:06d}"
        reference = _psp_reference(psp, rng)
        out.references[payment_id] = reference
        currency = rng.choice(_CURRENCIES)
        amount = rng.randint(100, 50_000) * (1 if currency != "jpy" else 3)
        at = midnight + timedelta(seconds=rng.randint(60, 20 * 3600))
        movements = [(Move.CAPTURE, amount, at)]
        roll = rng.random()
        if roll < 0.10:
            movements.append((Move.REFUND, rng.randint(1, amount), at + timedelta(hours=1)))
        elif roll < 0.13:
            movements.append((Move.REFUND, amount, at + timedelta(hours=2)))
        elif roll < 0.15:
            movements.append((Move.DISPUTE, amount, at + timedelta(hours=3)))
            if roll < 0.14:  # won: the funds come back, the dispute fee does not
                movements.append((Move.DISPUTE_WON, amount, at + timedelta(hours=3, minutes=30)))
        capture_id = ""
        for i, (kind, value, when) in enumerate(movements):
            event_id = f"evt_{payment_id}_{i}"
            out.ledger += book(
                event_id=event_id,
                merchant_id="acct_bench",
                payment_id=payment_id,
                psp=psp,
                currency=currency,
                at=when,
                movements=(Movement(kind, value),),
            )
            source = entry_id("", psp, event_id)[:16].upper()
            capture_id = capture_id or source
            gross, fee = priced(psp, kind, value)
            # PayPal names the capture, not the order, as the reference of what follows it.
            on_capture = psp == "paypal" and kind != Move.CAPTURE
            out.entries.append(
                BalanceEntry(
                    id=entry_id("txn_", psp, event_id),
                    kind=kind,
                    psp_reference=capture_id if on_capture else reference,
                    source_id=source,
                    merchant_reference=payment_id,
                    currency=currency,
                    gross=gross,
                    fee=fee,
                    # The PSP's clock is a little behind or ahead of paymesh's.
                    created=when + timedelta(milliseconds=rng.randint(-900, 900)),
                )
            )
    return out
