"""Idempotency keys: one execution per key, whatever the client or the network does.

The claim is a conditional write that travels in the operation's first changeset, so claiming
the key and recording the payment are one atomic write. Timeline of a key:

    absent ──claim──> in flight (lease) ──complete──> completed (reply kept 24 h)
                         │ lease runs out (the process died)
                         └──> taken over by the next request with the same key, which
                              resumes the same resource (its id was fixed at the claim)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from paymesh.entropy import token_hex
from paymesh.ports.store import IdempotencyRecord, IdempotencyStore, IdempotencyWrite
from paymesh.service.compact_json import encode_sorted
from paymesh.service.errors import IdempotencyInFlight, IdempotencyMismatch
from paymesh.service.views import Reply

#: Longer than the slowest PSP round trip with retries, so a live request is never taken over.
LEASE = timedelta(seconds=60)
TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255


def fingerprint(operation: str, request: Any) -> str:
    """Hash of the operation and its validated request, key order independent."""
    canonical = encode_sorted({"op": operation, "req": request})
    return hashlib.sha256(canonical).hexdigest()


def derived_key(
    merchant_id: str, amount: int, currency: str, customer_id: str, order_id: str
) -> str:
    """The key used when a client sends none but names its order (as the reference does)."""
    raw = f"{merchant_id}|{amount}|{currency}|{customer_id}|{order_id}".encode()
    return "derived_" + hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True, slots=True)
class Claim:
    write: IdempotencyWrite  # goes into the operation's first changeset
    resumed: bool  # a stale claim taken over: the resource may already exist

    @property
    def resource_id(self) -> str:
        return self.write.record.resource_id

    def complete(
        self, reply: Reply, now: datetime, *, first_write: bool = False
    ) -> IdempotencyWrite:
        """The write that stores the reply; `first_write` when it is also the claim itself."""
        record = replace(
            self.write.record,
            completed=True,
            response_status=reply.status,
            response_body=reply.body,
        )
        if first_write:
            return replace(self.write, record=record)
        return IdempotencyWrite(record, now, expected_token=self.write.record.lease_token)


class IdempotencyGuard:
    def __init__(self, store: IdempotencyStore, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock

    async def begin(
        self, merchant_id: str, key: str, fp: str, new_resource_id: Callable[[], str]
    ) -> Reply | Claim:
        """A stored reply to replay, or a claim to execute under; raises 409/422 errors."""
        now = self._clock()
        existing = await self._store.get_idempotency(merchant_id, key)
        if existing is not None and existing.expires_at > now:
            if existing.fingerprint != fp:
                raise IdempotencyMismatch(
                    "this idempotency key was already used with a different request",
                    extra={"idempotency_key": key},
                )
            if existing.completed:
                assert existing.response_status is not None and existing.response_body is not None
                status = 200 if existing.response_status == 201 else existing.response_status
                return Reply(status, existing.response_body, replayed=True)
            if existing.locked_until > now:
                raise IdempotencyInFlight(
                    "a request with this idempotency key is still being processed; retry later"
                )
            taken = replace(existing, lease_token=token_hex(16), locked_until=now + LEASE)
            return Claim(
                IdempotencyWrite(taken, now, expected_token=existing.lease_token), resumed=True
            )
        record = IdempotencyRecord(
            merchant_id=merchant_id,
            key=key,
            fingerprint=fp,
            resource_id=new_resource_id(),
            lease_token=token_hex(16),
            locked_until=now + LEASE,
            expires_at=now + TTL,
        )
        return Claim(IdempotencyWrite(record, now), resumed=False)
