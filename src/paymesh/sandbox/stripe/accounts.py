"""Per-API-key state: each `sk_test_...` key is its own Stripe account.

Objects live in memory in `Ledger`s: a dict for O(1) lookup plus the creation
order, so Stripe's cursor pagination (newest first, `starting_after`,
`ending_before`) costs O(limit) rather than a sort per request.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import msgspec

from paymesh.sandbox.cards import TestCard
from paymesh.sandbox.stripe.errors import StripeError
from paymesh.sandbox.stripe.idempotency import IdempotencyStore
from paymesh.sandbox.stripe.objects import Charge, Dispute, PaymentIntent, Refund

__all__ = ["Account", "Accounts", "Ledger", "PendingAuthentication", "StoredEvent"]

T = TypeVar("T")

EVENTS_KEPT = 100_000


class Ledger(Generic[T]):
    """Objects of one kind in creation order; `kind` names them in Stripe's 404s."""

    def __init__(self, kind: str, capacity: int | None = None) -> None:
        self.kind = kind
        self._capacity = capacity
        self._items: dict[str, T] = {}
        self._order: list[str] = []
        # Absolute positions; `_dropped` of them have been forgotten (capacity).
        self._position: dict[str, int] = {}
        self._dropped = 0

    def __len__(self) -> int:
        return len(self._order)

    def add(self, object_id: str, item: T) -> None:
        self._position[object_id] = self._dropped + len(self._order)
        self._order.append(object_id)
        self._items[object_id] = item
        if self._capacity is not None and len(self._order) > self._capacity * 5 // 4:
            self._forget_oldest(len(self._order) - self._capacity)

    def _forget_oldest(self, count: int) -> None:
        # In batches, so that the O(n) list shift is paid once per capacity/4 adds.
        for object_id in self._order[:count]:
            del self._items[object_id]
            del self._position[object_id]
        del self._order[:count]
        self._dropped += count

    def get(self, object_id: str | None) -> T | None:
        return None if object_id is None else self._items.get(object_id)

    def require(self, object_id: str, param: str = "id", status: int = 404) -> T:
        item = self._items.get(object_id)
        if item is None:
            raise StripeError.resource_missing(self.kind, object_id, param, status)
        return item

    def page(
        self,
        limit: int,
        starting_after: str | None = None,
        ending_before: str | None = None,
        where: Callable[[T], bool] | None = None,
    ) -> tuple[list[T], bool]:
        """One page, newest first, and whether more lie beyond it in that direction."""
        if ending_before is not None:
            start = self._cursor(ending_before, "ending_before") + 1
            newer = self._collect(range(start, len(self._order)), limit, where)
            return list(reversed(newer[:limit])), len(newer) > limit
        end = (
            self._cursor(starting_after, "starting_after")
            if starting_after is not None
            else len(self._order)
        )
        older = self._collect(range(end - 1, -1, -1), limit, where)
        return older[:limit], len(older) > limit

    def _cursor(self, object_id: str, param: str) -> int:
        position = self._position.get(object_id)
        if position is None:
            raise StripeError.resource_missing(self.kind, object_id, param, status=400)
        return position - self._dropped

    def _collect(self, positions: range, limit: int, where: Callable[[T], bool] | None) -> list[T]:
        found: list[T] = []
        for position in positions:
            item = self._items[self._order[position]]
            if where is None or where(item):
                found.append(item)
                if len(found) > limit:  # one extra tells us has_more
                    break
        return found


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event kept exactly as it was sent: its JSON, and its type for filtering."""

    type: str
    created: int
    body: msgspec.Raw


@dataclass(frozen=True, slots=True)
class PendingAuthentication:
    """A PaymentIntent waiting on the customer at the sandbox's 3-D Secure page."""

    card: TestCard
    return_url: str | None


@dataclass
class Account:
    api_key: str
    payment_intents: Ledger[PaymentIntent] = field(default_factory=lambda: Ledger("payment_intent"))
    charges: Ledger[Charge] = field(default_factory=lambda: Ledger("charge"))
    refunds: Ledger[Refund] = field(default_factory=lambda: Ledger("refund"))
    disputes: Ledger[Dispute] = field(default_factory=lambda: Ledger("dispute"))
    # Events are the bulk of the memory under load (several per payment), so
    # only the most recent are kept; Stripe itself keeps 30 days of them.
    events: Ledger[StoredEvent] = field(
        default_factory=lambda: Ledger("event", capacity=EVENTS_KEPT)
    )
    idempotency: IdempotencyStore = field(default_factory=IdempotencyStore)
    authentications: dict[str, PendingAuthentication] = field(default_factory=dict)


class Accounts:
    """Every account the sandbox has seen, by API key, created on first use."""

    def __init__(self) -> None:
        self._by_key: dict[str, Account] = {}
        # The 3DS page is visited by a customer's browser, which has no API key:
        # it finds the account through the PaymentIntent id.
        self.by_payment_intent: dict[str, Account] = {}

    def authenticate(self, authorization: str | None) -> Account:
        key = _api_key(authorization)
        account = self._by_key.get(key)
        if account is None:
            account = self._by_key[key] = Account(key)
        return account


def _api_key(authorization: str | None) -> str:
    """Bearer auth, or HTTP basic with the key as user name (curl -u sk_test_...:)."""
    if not authorization:
        raise StripeError.no_api_key()
    scheme, _, credentials = authorization.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        key = credentials.strip()
    elif scheme == "basic":
        try:
            key = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            raise StripeError.invalid_api_key(credentials) from None
    else:
        raise StripeError.invalid_api_key(authorization)
    if not key:
        raise StripeError.no_api_key()
    # Any test key is accepted, as Stripe's own mock does; live keys never are.
    if not key.startswith("sk_test_") or len(key) == len("sk_test_"):
        raise StripeError.invalid_api_key(key)
    return key
