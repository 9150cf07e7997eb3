"""The generator's own HTTP rule target: timestamps each `payment.succeeded` it is sent.

The run puts a rule on the server (`PUT /v1/rules/...`, see `target.py`) that sends this
run's `payment.succeeded` events here: "delivered" latency, live and without polling. It is
not the end-to-end figure. The event bus routes each event in one commit to every matching
target, this one and `send_confirmation` (which records the customer's confirmation), but
each target has its own 8 delivery slots, and a confirmation waits for its own durable
commit while this receiver answers at once: under load the confirmations queue and are
recorded well after the event reached us. `bench.py` therefore reads the recorded
confirmations back for the end-to-end figure; this one shows how far apart the two are.
"""

from __future__ import annotations

import time

import msgspec
from aiohttp import web

from .stats import PhaseStats

_decode = msgspec.json.Decoder().decode


class ConfirmationReceiver:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._expected: dict[str, tuple[PhaseStats, float]] = {}
        self.url = ""
        self.received = 0
        self.unmatched = 0  # not awaited: warm-up, a duplicate delivery, another run's
        self.last_arrival = 0.0

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/events", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://{self._host}:{port}/events"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def expect(self, order_id: str, stats: PhaseStats, due: float) -> None:
        self._expected[order_id] = (stats, due)

    def forget(self) -> int:
        """Stop waiting; returns how many were still awaited."""
        left = len(self._expected)
        self._expected.clear()
        return left

    async def _handle(self, request: web.Request) -> web.Response:
        now = time.perf_counter()
        body = await request.read()
        self.received += 1
        self.last_arrival = now
        try:
            order_id = _decode(body)["detail"]["metadata"]["order_id"]
            stats, due = self._expected.pop(order_id)
        except (msgspec.DecodeError, KeyError, TypeError):
            self.unmatched += 1
        else:
            stats.delivered(due, now)
        return web.Response(status=204)
