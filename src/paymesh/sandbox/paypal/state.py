"""The sandbox's memory: one merchant account per OAuth client id.

A merchant keeps its orders and payments by id, and the `PayPal-Request-Id`s
it has used. The payer-facing pages (approval, 3-D Secure) are visited by a
browser with no token, so orders are also found across merchants by id.

Memory is bounded (`paymesh.sandbox.limits`): a merchant keeps at most
`objects` orders, authorizations, captures and refunds together, forgetting its
oldest order with everything made from it; at most `idempotency_keys` request
ids; and beyond `accounts` client ids the merchant used least recently is
forgotten.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol

from paymesh.sandbox.limits import MemoryLimits
from paymesh.sandbox.paypal.errors import PayPalError
from paymesh.sandbox.paypal.idempotency import TTL_SECONDS, RequestIds
from paymesh.sandbox.paypal.objects import Authorization, Capture, Dispute, Order, Refund, Urls

__all__ = ["Answer", "Brief", "Merchant", "Merchants", "Resource"]


class Resource(Protocol):
    id: str

    def wire(self, urls: Urls) -> dict[str, Any]: ...


class Brief(enum.Enum):
    """What a request answers when the client did not ask for `return=representation`."""

    FULL = "full"  # the whole resource anyway
    ORDER = "order"  # id, status and links (create order)
    NO_CONTENT = "no_content"  # 204 (void)


@dataclass(frozen=True, slots=True)
class Answer:
    """A successful result: the resource it made or changed, rendered when sent (and when
    a `PayPal-Request-Id` replays it, in its latest state)."""

    status: int
    resource: Resource
    brief: Brief = Brief.FULL


@dataclass
class Merchant:
    client_id: str
    request_id_ttl: float = TTL_SECONDS
    limits: MemoryLimits = field(default_factory=MemoryLimits)
    orders: dict[str, Order] = field(default_factory=dict)
    authorizations: dict[str, Authorization] = field(default_factory=dict)
    captures: dict[str, Capture] = field(default_factory=dict)
    refunds: dict[str, Refund] = field(default_factory=dict)
    request_ids: RequestIds[Answer] = field(init=False)

    def __post_init__(self) -> None:
        self.request_ids = RequestIds(self.request_id_ttl, max_entries=self.limits.idempotency_keys)

    def objects(self) -> int:
        return len(self.orders) + len(self.authorizations) + len(self.captures) + len(self.refunds)

    def make_room(self) -> list[str]:
        """Forget the oldest orders, each with what was made from it, until the merchant
        holds at most `limits.objects`; returns their ids."""
        forgotten = []
        while self.objects() > self.limits.objects and self.orders:
            order = self.orders.pop(next(iter(self.orders)))
            for authorization in order.authorizations:
                self.authorizations.pop(authorization.id, None)
            for capture in order.captures:
                self.captures.pop(capture.id, None)
                for refund in capture.refunds:
                    self.refunds.pop(refund.id, None)
            forgotten.append(order.id)
        return forgotten

    def order(self, order_id: str) -> Order:
        found = self.orders.get(order_id)
        if found is None:
            raise PayPalError.not_found("order_id", order_id)
        return found

    def authorization(self, authorization_id: str) -> Authorization:
        found = self.authorizations.get(authorization_id)
        if found is None:
            raise PayPalError.not_found("authorization_id", authorization_id, "payments/v2")
        return found

    def capture(self, capture_id: str) -> Capture:
        found = self.captures.get(capture_id)
        if found is None:
            raise PayPalError.not_found("capture_id", capture_id, "payments/v2")
        return found

    def refund(self, refund_id: str) -> Refund:
        found = self.refunds.get(refund_id)
        if found is None:
            raise PayPalError.not_found("refund_id", refund_id, "payments/v2")
        return found


class Merchants:
    def __init__(
        self, request_id_ttl: float = TTL_SECONDS, limits: MemoryLimits | None = None
    ) -> None:
        self._ttl = request_id_ttl
        self.limits = limits or MemoryLimits()
        self._by_client: dict[str, Merchant] = {}  # least recently used first
        self.by_order: dict[str, Merchant] = {}
        #: Disputes by id, oldest first, with the client they belong to and the URLs their
        #: webhooks link to: the issuer's verdict (`disputes`) comes with no request.
        self.disputes: dict[str, tuple[str, Dispute, Urls]] = {}

    def __len__(self) -> int:
        return len(self._by_client)

    def get(self, client_id: str) -> Merchant:
        """The client's merchant, made on first use; now the most recently used. A new
        one beyond `limits.accounts` forgets the least recently used (see `limits` for why
        a new client is not refused instead)."""
        merchant = self._by_client.pop(client_id, None)
        if merchant is None:
            merchant = Merchant(client_id, self._ttl, self.limits)
            while len(self._by_client) >= self.limits.accounts:
                self._forget(next(iter(self._by_client)))
        self._by_client[client_id] = merchant
        return merchant

    def add_dispute(self, client_id: str, dispute: Dispute, urls: Urls) -> None:
        self.disputes[dispute.id] = (client_id, dispute, urls)
        while len(self.disputes) > self.limits.objects:
            self.disputes.pop(next(iter(self.disputes)))

    def make_room(self, merchant: Merchant) -> None:
        """After a request made something: keep the merchant within its object budget."""
        for order_id in merchant.make_room():
            self.by_order.pop(order_id, None)

    def _forget(self, client_id: str) -> None:
        merchant = self._by_client.pop(client_id)
        for order_id in merchant.orders:
            self.by_order.pop(order_id, None)
