"""Per-API-key state: each `sk_test_...` key is its own Stripe account.

Objects live in memory in `Ledger`s: a dict for O(1) lookup plus the creation
order, so Stripe's cursor pagination (newest first, `starting_after`,
`ending_before`) costs O(limit) rather than a sort per request.

Memory is bounded (`paymesh.sandbox.limits`): each ledger keeps at most
`objects` of its kind, forgetting the oldest; the account's idempotency keys are
capped; and beyond `accounts` keys the least recently used account is forgotten.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

import msgspec

from paymesh.sandbox.cards import TestCard
from paymesh.sandbox.limits import MemoryLimits
from paymesh.sandbox.stripe.errors import StripeError
from paymesh.sandbox.stripe.idempotency import IdempotencyStore
from paymesh.sandbox.stripe.objects import Charge, Dispute, PaymentIntent, Refund

__all__ = ["Account", "Accounts", "Ledger", "PendingAuthentication", "StoredEvent"]

T = TypeVar("T")


class Ledger(Generic[T]):
    """Objects of one kind in creation order; `kind` names them in Stripe's 404s.

    At most `capacity` are kept: adding one more forgets the oldest, and tells
    `on_forget` its id (so that what refers to it can let go too).
    """

    def __init__(
        self,
        kind: str,
        capacity: int | None = None,
        on_forget: Callable[[str], None] | None = None,
    ) -> None:
        self.kind = kind
        self._capacity = capacity
        self._on_forget = on_forget
        self._items: dict[str, T] = {}
        self._order: list[str] = []
        # `_order[:_start]` are forgotten ids not yet cut off the list: the O(n) cut is
        # paid once per capacity/4 adds. Positions are absolute; `_dropped` were cut.
        self._start = 0
        self._position: dict[str, int] = {}
        self._dropped = 0

    def __len__(self) -> int:
        return len(self._order) - self._start

    def add(self, object_id: str, item: T) -> None:
        self._position[object_id] = self._dropped + len(self._order)
        self._order.append(object_id)
        self._items[object_id] = item
        if self._capacity is not None and len(self) > self._capacity:
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        object_id = self._order[self._start]
        del self._items[object_id]
        del self._position[object_id]
        self._start += 1
        if self._start > max(16, (self._capacity or 0) // 4):
            del self._order[: self._start]
            self._dropped += self._start
            self._start = 0
        if self._on_forget is not None:
            self._on_forget(object_id)

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
        older = self._collect(range(end - 1, self._start - 1, -1), limit, where)
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


class Account:
    """One API key's Stripe account: its objects, events and idempotency keys."""

    def __init__(
        self,
        api_key: str,
        limits: MemoryLimits | None = None,
        forgotten: Callable[[str], None] | None = None,
    ) -> None:
        """`forgotten` is told the id of each PaymentIntent the account lets go of."""
        limits = limits or MemoryLimits()
        cap = limits.objects
        self.api_key = api_key
        self.payment_intents: Ledger[PaymentIntent] = Ledger(
            "payment_intent", cap, self._forget_payment_intent
        )
        self.charges: Ledger[Charge] = Ledger("charge", cap)
        self.refunds: Ledger[Refund] = Ledger("refund", cap)
        self.disputes: Ledger[Dispute] = Ledger("dispute", cap)
        # Events are the bulk of the memory under load (several per payment); Stripe
        # itself keeps 30 days of them.
        self.events: Ledger[StoredEvent] = Ledger("event", cap)
        self.idempotency = IdempotencyStore(max_entries=limits.idempotency_keys)
        # PaymentIntents that went through 3-D Secure, by id (see `Accounts.by_payment_intent`).
        self.authentications: dict[str, PendingAuthentication] = {}
        self._forgotten = forgotten

    def _forget_payment_intent(self, intent_id: str) -> None:
        self.authentications.pop(intent_id, None)
        if self._forgotten is not None:
            self._forgotten(intent_id)


class Accounts:
    """Every account the sandbox has seen, by API key, created on first use.

    At most `limits.accounts` are kept: a new key beyond them forgets the account
    used least recently (see `paymesh.sandbox.limits` for why not refuse the key).
    """

    def __init__(self, limits: MemoryLimits | None = None) -> None:
        self.limits = limits or MemoryLimits()
        self._by_key: dict[str, Account] = {}  # least recently used first
        # The 3DS page is visited by a customer's browser, which has no API key:
        # it finds the account through the PaymentIntent id.
        self.by_payment_intent: dict[str, Account] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    def __iter__(self) -> Iterator[Account]:
        """Every account, least recently used first (a snapshot: safe to change them)."""
        return iter(list(self._by_key.values()))

    def authenticate(self, authorization: str | None) -> Account:
        key = _api_key(authorization)
        account = self._by_key.pop(key, None)
        if account is None:
            account = Account(key, self.limits, forgotten=self._unindex)
            while len(self._by_key) >= self.limits.accounts:
                self._forget(next(iter(self._by_key)))
        self._by_key[key] = account  # now the most recently used
        return account

    def _forget(self, key: str) -> None:
        account = self._by_key.pop(key)
        for intent_id in account.authentications:
            self.by_payment_intent.pop(intent_id, None)

    def _unindex(self, intent_id: str) -> None:
        self.by_payment_intent.pop(intent_id, None)


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
