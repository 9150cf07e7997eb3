"""What every sandbox does around its requests: start and stop webhook delivery with the
server, add injected latency, and notice a client that hung up on a held answer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import Request

from paymesh.sandbox.faults import FaultInjector
from paymesh.sandbox.webhooks import WebhookSender


class SandboxLifecycle:
    """Mixed into each sandbox. Starlette does not run a mounted app's lifespan, so a parent
    calls `start()`/`stop()` itself; run standalone, `_lifespan` does it."""

    faults: FaultInjector
    webhooks: WebhookSender

    async def start(self) -> None:
        """Start delivering webhooks. Safe to call twice."""
        self.faults.arm_holds()
        await self.webhooks.start()

    async def stop(self) -> None:
        """Stop delivering webhooks (queued ones are dropped) and release held answers."""
        self.faults.release_holds()
        await self.webhooks.stop()

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Any) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()


def client_gone(request: Request) -> Callable[[], Awaitable[None]]:
    """Waits until the client disconnects (the body has been read, or there was none)."""

    async def wait() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    return wait


async def add_latency(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)
