"""How much a sandbox keeps in memory: bounded, whatever its clients send.

A sandbox takes any test credential (any `sk_test_...` key, any PayPal client id) and keeps
state per credential, per object and per idempotency key. Unbounded, anyone rotating keys,
creating payments or sending fresh idempotency keys could grow it until the process dies.
So each is capped, and what is over the cap is forgotten, oldest first, as the PSPs forget
(Stripe keeps idempotency keys 24 hours, events 30 days):

    accounts          credentials with state (Stripe keys, PayPal client ids). Beyond it the
                      one used least recently is forgotten with everything it holds; using
                      its key again starts a new, empty account. Refusing new keys instead
                      would lock out a new developer (or a test run with fresh keys) until a
                      restart, while the keys that filled the sandbox kept their place
    objects           per account and per kind (payments, charges, refunds, events, orders):
                      beyond it the oldest is forgotten, whatever its state. A rule that kept
                      unfinished ones would let never-confirmed payments pile up without end
    idempotency_keys  per account: beyond it the oldest answered key is forgotten (a key still
                      in flight is never dropped), as if its retention had run out
    access_tokens     PayPal OAuth tokens: beyond it the oldest is revoked; its client gets
                      PayPal's 401 `invalid_token` and fetches a new one, as on expiry
    pending_webhooks  notifications waiting for delivery (queued, or between retries to a
                      receiver that is down): beyond it new ones are dropped and counted

The defaults are far above any test run (the chaos audit makes ~10,000 payments through one
account), so `/_ledger` audits see every payment they made; a test sets them small to watch
the bounds hold. Worst case the memory is accounts x kinds x objects, but what a client must
send to get there (and the sandboxes' loopback-only listener) is its own bound in practice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TypeVar

__all__ = ["MemoryLimits", "forget_oldest"]

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class MemoryLimits:
    accounts: int = 1_000
    objects: int = 100_000
    idempotency_keys: int = 100_000
    access_tokens: int = 10_000
    pending_webhooks: int = 100_000

    def __post_init__(self) -> None:
        for field in fields(self):
            if getattr(self, field.name) < 1:
                raise ValueError(f"MemoryLimits.{field.name}: must be at least 1")


def forget_oldest(entries: dict[K, V], cap: int, keep: Callable[[V], bool]) -> None:
    """Drop the oldest entries (the dict's insertion order) until at most `cap` remain,
    skipping those `keep` says must stay: an idempotency key still in flight, whose
    request will save or release it. Those are few (one per request in progress), so
    this looks at little more than what it drops."""
    excess = len(entries) - cap
    if excess <= 0:
        return
    oldest = []
    for key, entry in entries.items():
        if not keep(entry):
            oldest.append(key)
            if len(oldest) == excess:
                break
    for key in oldest:
        del entries[key]
