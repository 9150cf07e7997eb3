"""The server's set-up for a run, and undoing it on a server we did not start:

- a routing table that spreads payments over the PSPs by weight (`PUT /v1/routing`), so
  all three connectors and sandboxes carry load;
- the sandboxes' injected latency (`PUT /sandbox/{psp}/_config {"latency_ms": N}`), which
  `overhead` subtracts: what is left is the platform's own time;
- a rule that sends this run's `payment.succeeded` events to the generator's receiver.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp

from .server import PSPS

RULE_PREFIX = "bench-e2e-"


@dataclass
class TargetSetup:
    base_url: str
    api_key: str
    sandbox_url: str | None
    notes: list[str] = field(default_factory=list)
    injected_ms: float | None = None  # None: unknown (no sandbox config could be set)
    routing: dict[str, Any] | None = None
    rule: str | None = None
    _previous_routing: Any = None
    _previous_latency: dict[str, int] = field(default_factory=dict)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"}

    async def apply(
        self,
        psp_weights: dict[str, int] | None,
        latency_ms: int,
        receiver_url: str | None,
        run: str,
    ) -> None:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            if psp_weights:
                await self._routing(http, psp_weights)
            await self._latency(http, latency_ms)
            if receiver_url:
                await self._rule(http, receiver_url, run)

    async def _routing(self, http: aiohttp.ClientSession, weights: dict[str, int]) -> None:
        url = f"{self.base_url}/v1/routing"
        async with http.get(url, headers=self._headers()) as response:
            if response.status != 200:
                self.notes.append(f"GET /v1/routing: {response.status}; PSP spread not set")
                return
            self._previous_routing = (await response.json())["table"]
        connectors = [psp for psp in weights if weights[psp] > 0]
        table = {
            "routes": [
                {"name": "bench-spread", "connectors": connectors, "weights": weights}
                if len(connectors) > 1
                else {"name": "bench-spread", "connectors": connectors}
            ],
            "default": connectors,
        }
        async with http.put(url, json=table, headers=self._headers()) as response:
            if response.status != 200:
                text = await response.text()
                self.notes.append(f"PUT /v1/routing: {response.status} {text[:200]}")
                self._previous_routing = None
                return
        self.routing = table

    async def _latency(self, http: aiohttp.ClientSession, latency_ms: int) -> None:
        if self.sandbox_url is None:
            self.notes.append("no sandbox URL: injected PSP latency unknown, overhead not computed")
            return
        for psp in PSPS:
            url = f"{self.sandbox_url}/{psp}/_config"
            try:
                async with http.get(url) as response:
                    previous = (await response.json())["latency_ms"]
                async with http.put(url, json={"latency_ms": latency_ms}) as response:
                    if response.status != 200:
                        raise ValueError(f"PUT {url}: {response.status}")
            except (aiohttp.ClientError, ValueError, KeyError, TypeError, TimeoutError) as exc:
                self.notes.append(f"sandbox {psp} latency not set ({exc}); overhead not computed")
                return
            self._previous_latency[psp] = previous
        self.injected_ms = float(latency_ms)

    async def _rule(self, http: aiohttp.ClientSession, receiver_url: str, run: str) -> None:
        name = RULE_PREFIX + run
        rule = {
            "description": "payments_load.py: end-to-end latency of this run",
            "event_pattern": {
                "source": ["payment.service"],
                "detail-type": ["payment.succeeded"],
                "detail": {"metadata": {"bench_run": [run]}},
            },
            "targets": [
                {
                    "id": "bench",
                    "type": "http",
                    "url": receiver_url,
                    # A late confirmation is a measurement lost, not worth retrying for long.
                    "retry_policy": {"maximum_retry_attempts": 2, "maximum_event_age_seconds": 60},
                }
            ],
        }
        url = f"{self.base_url}/v1/rules/{name}"
        async with http.put(url, json=rule, headers=self._headers()) as response:
            if response.status != 200:
                text = await response.text()
                self.notes.append(f"PUT /v1/rules/{name}: {response.status} {text[:200]}")
                return
        self.rule = name

    async def restore(self) -> None:
        """Put back what `apply` changed (for a server that outlives the run)."""
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            if self.rule:
                url = f"{self.base_url}/v1/rules/{self.rule}"
                async with http.delete(url, headers=self._headers()):
                    pass
            if self._previous_routing is not None:
                url = f"{self.base_url}/v1/routing"
                async with http.put(url, json=self._previous_routing, headers=self._headers()):
                    pass
            for psp, latency in self._previous_latency.items():
                url = f"{self.sandbox_url}/{psp}/_config"
                async with http.put(url, json={"latency_ms": latency}):
                    pass

    async def confirmations(
        self, payment_ids: list[str], concurrency: int = 8
    ) -> dict[str, float | None]:
        """When each payment's confirmation was recorded (epoch seconds), or None if not yet:
        `GET /v1/payments/{id}/notifications`, a few at a time, after the phase."""
        found: dict[str, float | None] = {}
        slots = asyncio.Semaphore(concurrency)

        async def one(http: aiohttp.ClientSession, payment_id: str) -> None:
            async with slots:
                url = f"{self.base_url}/v1/payments/{payment_id}/notifications"
                try:
                    async with http.get(url, headers=self._headers()) as response:
                        data = (await response.json())["data"]
                except (aiohttp.ClientError, KeyError, ValueError, TimeoutError):
                    data = []
                stamps = [
                    datetime.fromisoformat(n["created_at"].replace("Z", "+00:00")).timestamp()
                    for n in data
                    if n.get("template") == "payment_succeeded"
                ]
                found[payment_id] = min(stamps) if stamps else None

        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            await asyncio.gather(*(one(http, pid) for pid in payment_ids))
        return found
