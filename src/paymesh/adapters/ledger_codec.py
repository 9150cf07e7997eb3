"""A ledger transaction as stored: one JSON document (the stores index a few of its fields
beside it, and SQL stores keep its postings as rows too, to sum them in SQL)."""

from __future__ import annotations

from datetime import date

import msgspec

from paymesh.adapters.codec import from_micros, to_micros
from paymesh.domain.ledger import Account, LedgerTransaction, Move, Posting

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def ledger_to_doc(t: LedgerTransaction) -> bytes:
    return _encode(
        {
            "id": t.id,
            "merchant_id": t.merchant_id,
            "payment_id": t.payment_id,
            "psp": t.psp,
            "currency": t.currency,
            "kind": t.kind.value,
            "created_us": to_micros(t.created_at),
            "available_on": t.available_on.isoformat(),
            "event_id": t.event_id,
            "psp_reference": t.psp_reference,
            "postings": [[p.account.value, p.amount] for p in t.postings],
        }
    )


def ledger_from_doc(raw: bytes | str) -> LedgerTransaction:
    d = _decode(raw)
    return LedgerTransaction(
        id=d["id"],
        merchant_id=d["merchant_id"],
        payment_id=d["payment_id"],
        psp=d["psp"],
        currency=d["currency"],
        kind=Move(d["kind"]),
        created_at=from_micros(d["created_us"]),
        available_on=date.fromisoformat(d["available_on"]),
        postings=tuple(Posting(Account(a), amount) for a, amount in d["postings"]),
        event_id=d["event_id"],
        psp_reference=d.get("psp_reference", ""),  # absent from transactions booked before it
    )
