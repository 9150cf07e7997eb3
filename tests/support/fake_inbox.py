"""The webhooks a `FakePsp` queued, behind `WebhookInbox`'s interface (`about`, `wait_for`),
so the connector contract's webhook tests run on the fake with no HTTP endpoint.

The fake queues a notification in the same call that changes its state, so there is nothing
to wait for: a webhook that is not queued yet never will be, and the test fails at once.
"""

from __future__ import annotations

from collections.abc import Callable

from paymesh.connectors.fake import FakePsp

Received = tuple[dict[str, str], bytes]


class FakeInbox:
    def __init__(self, psp: FakePsp) -> None:
        self.psp = psp

    @property
    def received(self) -> list[Received]:
        return [(dict(w.headers), w.body) for w in self.psp.webhooks]

    async def wait_for(
        self, predicate: Callable[[dict[str, str], bytes], bool], within: float = 0.0
    ) -> Received:
        for headers, body in self.received:
            if predicate(headers, body):
                return headers, body
        raise AssertionError(
            f"no matching webhook; {self.psp.name} queued {len(self.psp.webhooks)}"
        )

    async def about(self, connector_payment_id: str, within: float = 0.0) -> Received:
        """The first webhook whose body names this PSP payment reference."""
        needle = connector_payment_id.encode()
        return await self.wait_for(lambda _h, body: needle in body, within)
