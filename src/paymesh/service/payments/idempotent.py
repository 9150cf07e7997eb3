"""Running a use case under a client's idempotency key: replay, refuse, or execute once.

The claim is written in the use case's first commit; the reply is stored with the commit that
settles it. When the outcome is not known yet (a PSP did not answer) nothing is stored and the
claim is released, so the client's retry runs again, with the same PSP keys: never twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime

from paymesh.domain.payment import Payment
from paymesh.ports.store import Changeset, IdempotencyConflict, IdempotencyStore, IdempotencyWrite
from paymesh.service.errors import IdempotencyInFlight
from paymesh.service.idempotency import Claim, IdempotencyGuard
from paymesh.service.payments.unit_of_work import PaymentWrites
from paymesh.service.views import Reply, payment_reply


class Idempotent:
    def __init__(
        self, records: IdempotencyStore, writes: PaymentWrites, clock: Callable[[], datetime]
    ) -> None:
        self.guard = IdempotencyGuard(records, clock)
        self.writes = writes
        self.clock = clock

    async def run(
        self,
        merchant_id: str,
        key: str | None,
        fp: str,
        new_resource_id: Callable[[], str],
        execute: Callable[[Claim | None], Awaitable[Reply]],
    ) -> Reply:
        if key is None:
            return await execute(None)
        for _ in range(2):
            begun = await self.guard.begin(merchant_id, key, fp, new_resource_id)
            if isinstance(begun, Reply):
                return begun
            try:
                return await execute(begun)
            except IdempotencyConflict:
                continue  # another request claimed it first: look again (replay, 409 or 422)
            except Exception:
                # Nothing to replay: free the key at once so the client's retry runs (and
                # resumes the same resource) instead of waiting out the lease.
                await self.release(begun)
                raise
        raise IdempotencyInFlight("a request with this idempotency key is still being processed")

    async def release(self, claim: Claim) -> None:
        now = self.clock()
        record = replace(claim.write.record, locked_until=now)
        # A conflict means the claim was never written, or is someone else's now.
        with contextlib.suppress(IdempotencyConflict):
            await self.writes.store.commit(
                Changeset(
                    idempotency=IdempotencyWrite(
                        record, now, expected_token=claim.write.record.lease_token
                    )
                )
            )

    async def store_claim(self, claim: Claim | None) -> None:
        """Write the claim alone, before a PSP call whose answer settles the payment."""
        if claim is not None:
            await self.writes.commit(Changeset(idempotency=claim.write))

    async def store_reply(
        self, claim: Claim | None, reply: Reply, first_write: bool = False
    ) -> Reply:
        """Keep `reply` for the key; `first_write` when the claim itself was not written."""
        if claim is not None:
            await self.writes.commit(
                Changeset(idempotency=claim.complete(reply, self.clock(), first_write=first_write))
            )
        return reply

    async def complete(
        self, payment: Payment, claim: Claim | None, first_write: bool = False
    ) -> Reply:
        """The payment's reply, kept for the key."""
        return await self.store_reply(claim, payment_reply(payment), first_write)
