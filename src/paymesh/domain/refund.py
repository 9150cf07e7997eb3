"""Refunds belong to their payment's aggregate: the sum refunded is checked where it is kept."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class RefundStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(slots=True)
class Refund:
    id: str
    payment_id: str
    merchant_id: str
    amount: int
    currency: str
    created_at: datetime
    updated_at: datetime
    reason: str | None = None
    status: RefundStatus = RefundStatus.PENDING
    connector_refund_id: str | None = None
    failure_reason: str | None = None
