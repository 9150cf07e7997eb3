"""What a client asks of a payment, validated at the edge: one command per use case."""

from __future__ import annotations

from dataclasses import dataclass, field

from paymesh.domain.payment import RiskContext


@dataclass(frozen=True, slots=True)
class CreatePayment:
    amount: int
    currency: str
    customer_id: str
    payment_method: str
    capture_method: str = "automatic"
    connector: str | None = None
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    risk: RiskContext = field(default_factory=RiskContext)
    #: Where the customer's confirmations go (validated at the edge).
    receipt_email: str | None = None
    receipt_phone: str | None = None


@dataclass(frozen=True, slots=True)
class CapturePayment:
    payment_id: str
    #: None: the whole capturable amount.
    amount: int | None = None


@dataclass(frozen=True, slots=True)
class CancelPayment:
    payment_id: str


@dataclass(frozen=True, slots=True)
class RefundPayment:
    payment_id: str
    #: None: what is left to refund.
    amount: int | None = None
    reason: str | None = None
