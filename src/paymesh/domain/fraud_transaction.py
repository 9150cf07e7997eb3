"""The transaction the fraud core scores: what one payment tells the fraud engine.

A plain value, here rather than in `paymesh.fraud`, because more than the engine speaks of it:
the fraud-feed port carries it between processes and its adapters put it on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Transaction:
    transaction_id: str
    timestamp: float  # epoch seconds
    customer_id: str
    amount: int  # minor units
    currency: str
    card_fingerprint: str | None = None
    device_id: str | None = None
    ip_address: str | None = None
    country: str | None = None
    city: str | None = None
    lat: float | None = None
    lon: float | None = None
    merchant_id: str | None = None
    channel: str | None = None
    approved: bool | None = None
    #: What the merchant sells (an MCC or a word: "electronics"): a card's usual kinds of shop.
    merchant_category: str | None = None
