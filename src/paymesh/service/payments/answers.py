"""The PSP answers this process is waiting for, so a webhook that overtakes one can wait too.

A PSP sends its webhook as soon as it has acted, and on loopback (the sandboxes) or a fast
network the webhook often arrives before the PSP's answer to our own request is committed.
The payment then has no PSP reference yet, and a webhook never binds one
(`paymesh.service.webhooks`): it is refused with a 409, and the PSP delivers it again later.
That later can be minutes at a real PSP, and it is a second request either way.

When the answer is being awaited in this process, the webhook waits for it instead, for a
few seconds at most: the PSP has already acted, so its answer is normally a moment away.
When it is not (another process is making the call, or it was lost), the 409 stands.
Nothing here changes what a webhook may do: it is applied, after the wait, under the same
rules as before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


class AnswersInFlight:
    """The payments whose PSP answer a task of this process is waiting for and recording."""

    def __init__(self) -> None:
        self._waiting: dict[str, tuple[asyncio.Event, int]] = {}

    @contextlib.contextmanager
    def awaiting(self, payment_id: str) -> Iterator[None]:
        """Around the PSP call and the commit of its answer (or of the failover after it)."""
        event, holders = self._waiting.get(payment_id) or (asyncio.Event(), 0)
        self._waiting[payment_id] = (event, holders + 1)
        try:
            yield
        finally:
            event, holders = self._waiting[payment_id]
            if holders == 1:
                del self._waiting[payment_id]
                event.set()
            else:
                self._waiting[payment_id] = (event, holders - 1)

    def seen(self, payment_id: str) -> asyncio.Event | None:
        """What is awaited for `payment_id` now: taken by a webhook *before* it reads the
        payment, so an answer recorded between that read and `recorded` still counts."""
        waiting = self._waiting.get(payment_id)
        return waiting[0] if waiting else None

    async def recorded(
        self, payment_id: str, within: float, seen: asyncio.Event | None = None
    ) -> bool:
        """Wait until the answer for `payment_id` is recorded, if one is being awaited here
        or was when `seen` was taken; False when none is, or it took longer than `within`
        seconds."""
        waiting = self._waiting.get(payment_id)
        answer = waiting[0] if waiting else seen
        if answer is None:
            return False
        try:
            async with asyncio.timeout(within):
                await answer.wait()
        except TimeoutError:
            return False
        return True
