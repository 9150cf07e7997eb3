"""A real HTTP endpoint that records the webhooks a sandbox sends, for contract tests.

The sandbox posts over loopback exactly as it would to paymesh; a test then waits for the
notification about one payment and hands its raw headers and body to a connector.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.live_server import live_server

Received = tuple[dict[str, str], bytes]


class WebhookInbox:
    def __init__(self) -> None:
        self._received: list[Received] = []
        self._lock = threading.Lock()
        self.url = ""
        self.app = Starlette(routes=[Route("/{path:path}", self._receive, methods=["POST"])])

    async def _receive(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            self._received.append(({k.lower(): v for k, v in request.headers.items()}, body))
        # Adyen wants this exact body; the others only look at the status.
        return Response("[accepted]", media_type="text/plain")

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    async def wait_for(
        self, predicate: Callable[[dict[str, str], bytes], bool], within: float = 10.0
    ) -> Received:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for headers, body in self.received:
                if predicate(headers, body):
                    return headers, body
            await asyncio.sleep(0.02)
        raise AssertionError(f"no matching webhook within {within}s; got {len(self.received)}")

    async def about(self, connector_payment_id: str, within: float = 10.0) -> Received:
        """The first webhook whose body names this PSP payment reference."""
        needle = connector_payment_id.encode()
        return await self.wait_for(lambda _h, body: needle in body, within)


@contextmanager
def webhook_inbox() -> Iterator[WebhookInbox]:
    inbox = WebhookInbox()
    with live_server(inbox.app) as base:
        inbox.url = f"{base}/webhooks"
        yield inbox
