"""PayPal's resources as the sandbox keeps them, and their JSON as PayPal writes it.

Objects are mutable (a capture is refunded, an authorization voided) and are
rendered on demand by `wire(urls)`, because their HATEOAS links are absolute
and the host the client used is only known per request.

An order holds one purchase unit; its payments (authorizations, captures) are
the same objects the Payments API shows on their own. Rendered inside an
order, a payment has no `supplementary_data`; on its own, or in a webhook, it
names its order (and authorization) in `supplementary_data.related_ids`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from paymesh.sandbox.cards import TestCard
from paymesh.sandbox.paypal.amounts import Money
from paymesh.sandbox.paypal.ids import iso_time

__all__ = [
    "Authorization",
    "Capture",
    "Dispute",
    "Order",
    "Refund",
    "Urls",
    "Wallet",
]

_HONOR_PERIOD = timedelta(days=29)


@dataclass(frozen=True, slots=True)
class Urls:
    """Absolute URLs of the sandbox as the client reached it (mount prefix included)."""

    base: str

    def link(self, path: str, rel: str, method: str = "GET") -> dict[str, str]:
        return {"href": f"{self.base}{path}", "rel": rel, "method": method}


@dataclass(frozen=True, slots=True)
class Wallet:
    """A PayPal buyer account in the sandbox; `email` may trigger a test behaviour."""

    email: str
    account_id: str
    given_name: str = "Sandbox"
    surname: str = "Buyer"

    def wire(self) -> dict[str, Any]:
        return {
            "email_address": self.email,
            "account_id": self.account_id,
            "account_status": "VERIFIED",
            "name": {"given_name": self.given_name, "surname": self.surname},
            "address": {"country_code": "US"},
        }


def _card_wire(card: TestCard, authentication: dict[str, Any] | None) -> dict[str, Any]:
    # Only what PayPal itself echoes: brand, type, last digits and expiry, never a number.
    wire: dict[str, Any] = {
        "last_digits": card.last4,
        "expiry": f"{card.exp_year}-{card.exp_month:02d}",
        "brand": card.brand.upper(),
        "type": card.funding.upper(),
    }
    if authentication is not None:
        wire["authentication_result"] = authentication
    return wire


@dataclass
class Refund:
    id: str
    capture_id: str
    order_id: str
    amount: Money
    status: str  # COMPLETED | PENDING | FAILED | CANCELLED
    invoice_id: str | None
    custom_id: str | None
    note_to_payer: str | None
    created: datetime

    def wire(self, urls: Urls, standalone: bool = True) -> dict[str, Any]:
        wire: dict[str, Any] = {"id": self.id, "amount": self.amount.wire(), "status": self.status}
        for name in ("invoice_id", "custom_id", "note_to_payer"):
            if getattr(self, name) is not None:
                wire[name] = getattr(self, name)
        wire["seller_payable_breakdown"] = {
            "gross_amount": self.amount.wire(),
            "total_refunded_amount": self.amount.wire(),
        }
        if standalone:
            wire["supplementary_data"] = {
                "related_ids": {"order_id": self.order_id, "capture_id": self.capture_id}
            }
        wire["create_time"] = wire["update_time"] = iso_time(self.created)
        wire["links"] = [
            urls.link(f"/v2/payments/refunds/{self.id}", "self"),
            urls.link(f"/v2/payments/captures/{self.capture_id}", "up"),
        ]
        return wire


@dataclass
class Capture:
    id: str
    order_id: str
    authorization_id: str | None
    amount: Money
    status: str  # COMPLETED | DECLINED | PENDING | PARTIALLY_REFUNDED | REFUNDED | FAILED
    final_capture: bool
    invoice_id: str | None
    custom_id: str | None
    processor_response: dict[str, str] | None
    created: datetime
    status_reason: str | None = None
    refunds: list[Refund] = field(default_factory=list)
    updated: datetime | None = None

    @property
    def refunded(self) -> int:
        return sum(r.amount.minor for r in self.refunds if r.status in ("COMPLETED", "PENDING"))

    def wire(self, urls: Urls, standalone: bool = True) -> dict[str, Any]:
        wire: dict[str, Any] = {"id": self.id, "status": self.status}
        if self.status_reason:
            wire["status_details"] = {"reason": self.status_reason}
        wire.update(
            amount=self.amount.wire(),
            final_capture=self.final_capture,
            seller_protection={"status": "NOT_ELIGIBLE"},
        )
        for name in ("invoice_id", "custom_id", "processor_response"):
            if getattr(self, name) is not None:
                wire[name] = getattr(self, name)
        if standalone:
            related = {"order_id": self.order_id}
            if self.authorization_id:
                related["authorization_id"] = self.authorization_id
            wire["supplementary_data"] = {"related_ids": related}
        wire["create_time"] = iso_time(self.created)
        wire["update_time"] = iso_time(self.updated or self.created)
        up = (
            f"/v2/payments/authorizations/{self.authorization_id}"
            if self.authorization_id
            else f"/v2/checkout/orders/{self.order_id}"
        )
        wire["links"] = [
            urls.link(f"/v2/payments/captures/{self.id}", "self"),
            urls.link(f"/v2/payments/captures/{self.id}/refund", "refund", "POST"),
            urls.link(up, "up"),
        ]
        return wire


@dataclass
class Authorization:
    id: str
    order_id: str
    amount: Money
    status: str  # CREATED | CAPTURED | PARTIALLY_CAPTURED | DENIED | VOIDED | PENDING
    invoice_id: str | None
    custom_id: str | None
    processor_response: dict[str, str] | None
    created: datetime
    captures: list[Capture] = field(default_factory=list)
    updated: datetime | None = None

    @property
    def captured(self) -> int:
        return sum(
            c.amount.minor
            for c in self.captures
            if c.status in ("COMPLETED", "PENDING", "PARTIALLY_REFUNDED", "REFUNDED")
        )

    def wire(self, urls: Urls, standalone: bool = True) -> dict[str, Any]:
        wire: dict[str, Any] = {"id": self.id, "status": self.status, "amount": self.amount.wire()}
        for name in ("invoice_id", "custom_id", "processor_response"):
            if getattr(self, name) is not None:
                wire[name] = getattr(self, name)
        wire["seller_protection"] = {"status": "NOT_ELIGIBLE"}
        wire["expiration_time"] = iso_time(self.created + _HONOR_PERIOD)
        if standalone:
            wire["supplementary_data"] = {"related_ids": {"order_id": self.order_id}}
        wire["create_time"] = iso_time(self.created)
        wire["update_time"] = iso_time(self.updated or self.created)
        path = f"/v2/payments/authorizations/{self.id}"
        wire["links"] = [
            urls.link(path, "self"),
            urls.link(f"{path}/capture", "capture", "POST"),
            urls.link(f"{path}/void", "void", "POST"),
            urls.link(f"{path}/reauthorize", "reauthorize", "POST"),
            urls.link(f"/v2/checkout/orders/{self.order_id}", "up"),
        ]
        return wire


@dataclass
class Order:
    id: str
    intent: str  # CAPTURE | AUTHORIZE
    status: str  # CREATED | PAYER_ACTION_REQUIRED | APPROVED | COMPLETED | VOIDED
    amount: Money
    reference_id: str
    custom_id: str | None
    invoice_id: str | None
    description: str | None
    created: datetime
    card: TestCard | None = None
    wallet: Wallet | None = None
    return_url: str | None = None
    cancel_url: str | None = None
    #: The 3-D Secure result once the payer has been through it (card orders).
    authentication: dict[str, Any] | None = None
    payer_id: str | None = None
    authorizations: list[Authorization] = field(default_factory=list)
    captures: list[Capture] = field(default_factory=list)
    updated: datetime | None = None

    def touch(self) -> None:
        self.updated = datetime.now(UTC)

    def wire(self, urls: Urls) -> dict[str, Any]:
        wire: dict[str, Any] = {"id": self.id, "intent": self.intent, "status": self.status}
        if self.card is not None:
            wire["payment_source"] = {"card": _card_wire(self.card, self.authentication)}
        elif self.wallet is not None:
            wire["payment_source"] = {"paypal": self.wallet.wire()}
        unit: dict[str, Any] = {
            "reference_id": self.reference_id,
            "amount": self.amount.wire(),
            "payee": {
                "merchant_id": "PAYMESHSANDBOX",
                "email_address": "merchant@sandbox.paymesh.test",
            },
        }
        for name in ("description", "custom_id", "invoice_id"):
            if getattr(self, name) is not None:
                unit[name] = getattr(self, name)
        payments: dict[str, Any] = {}
        if self.authorizations:
            payments["authorizations"] = [
                a.wire(urls, standalone=False) for a in self.authorizations
            ]
        if self.captures:
            payments["captures"] = [c.wire(urls, standalone=False) for c in self.captures]
        if payments:
            unit["payments"] = payments
        wire["purchase_units"] = [unit]
        if self.wallet is not None and self.payer_id is not None:
            wire["payer"] = {
                "name": {"given_name": self.wallet.given_name, "surname": self.wallet.surname},
                "email_address": self.wallet.email,
                "payer_id": self.payer_id,
            }
        wire["create_time"] = iso_time(self.created)
        wire["update_time"] = iso_time(self.updated or self.created)
        wire["links"] = self.links(urls)
        return wire

    def minimal(self, urls: Urls) -> dict[str, Any]:
        """What PayPal answers by default (`Prefer: return=minimal`)."""
        return {"id": self.id, "status": self.status, "links": self.links(urls)}

    def links(self, urls: Urls) -> list[dict[str, str]]:
        path = f"/v2/checkout/orders/{self.id}"
        links = [urls.link(path, "self")]
        action = "capture" if self.intent == "CAPTURE" else "authorize"
        if self.status == "CREATED":
            links += [
                urls.link(f"/checkoutnow?token={self.id}", "approve"),
                urls.link(path, "update", "PATCH"),
                urls.link(f"{path}/{action}", action, "POST"),
            ]
        elif self.status == "PAYER_ACTION_REQUIRED":
            links.append(urls.link(self.payer_action_path(), "payer-action"))
        elif self.status == "APPROVED":
            links += [
                urls.link(path, "update", "PATCH"),
                urls.link(f"{path}/{action}", action, "POST"),
            ]
        return links

    def payer_action_path(self) -> str:
        if self.card is not None:  # 3-D Secure, on the card issuer's side of PayPal
            return f"/webapps/helios?action=verify&flow=3ds&cart_id={self.id}"
        return f"/checkoutnow?token={self.id}"


@dataclass
class Dispute:
    id: str
    capture: Capture
    amount: Money
    reason: str
    created: datetime
    #: Set when PayPal resolves it: `dispute_outcome.outcome_code`
    #: (RESOLVED_SELLER_FAVOUR or RESOLVED_BUYER_FAVOUR), and when.
    outcome: str | None = None
    resolved: datetime | None = None

    def wire(self, urls: Urls) -> dict[str, Any]:
        created = iso_time(self.created)
        updated = iso_time(self.resolved) if self.resolved else created
        transaction = {
            "seller_transaction_id": self.capture.id,
            "create_time": iso_time(self.capture.created),
            "transaction_status": "COMPLETED",
            "gross_amount": self.capture.amount.wire(),
            "invoice_number": self.capture.invoice_id,
            "custom": self.capture.custom_id,
            "seller": {"merchant_id": "PAYMESHSANDBOX"},
        }
        return {
            "dispute_id": self.id,
            "create_time": created,
            "update_time": updated,
            "disputed_transactions": [{k: v for k, v in transaction.items() if v is not None}],
            "reason": self.reason,
            "status": "OPEN" if self.outcome is None else "RESOLVED",
            "dispute_amount": self.amount.wire(),
            "dispute_life_cycle_stage": "CHARGEBACK",
            "dispute_channel": "EXTERNAL",
            "seller_response_due_date": iso_time(self.created + timedelta(days=10)),
            **self._outcome(),
            "links": [urls.link(f"/v1/customer/disputes/{self.id}", "self")],
        }

    def _outcome(self) -> dict[str, Any]:
        if self.outcome is None:
            return {}
        outcome: dict[str, Any] = {"outcome_code": self.outcome}
        if self.outcome == "RESOLVED_BUYER_FAVOUR":
            outcome["amount_refunded"] = self.amount.wire()
        return {"dispute_outcome": outcome}
