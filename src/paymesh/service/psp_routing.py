"""PSP routing: each merchant's routing table, kept through the store, and the plan for one
payment (which PSP first, which to fail over to).

A plan is the first PSP and the fallbacks, in order. PSPs whose circuit is open go to the
back of the line rather than out of it: when every PSP is failing, trying the least recently
failed one still beats refusing the payment outright.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from paymesh.domain.payment import Routing
from paymesh.domain.routing import (
    PaymentFacts,
    RoutingTable,
    default_table,
    parse_table,
)
from paymesh.ports.store import Store
from paymesh.service import compact_json
from paymesh.service.circuit import CircuitBreakers


class RoutingService:
    def __init__(
        self,
        store: Store,
        connectors: list[str],
        default_order: list[str],
        breakers: CircuitBreakers,
        clock: Callable[[], datetime],
        ttl: float | None = None,
    ) -> None:
        self.store = store
        self.connectors = connectors
        self.default = default_table(default_order)
        self.breakers = breakers
        self.clock = clock
        # Embedded, this process makes every change, so its cache never goes stale (ttl None).
        # With many processes a table changed through another one is re-read after `ttl` s.
        self.ttl = ttl
        self._tables: dict[str, tuple[RoutingTable, float]] = {}

    async def table(self, merchant_id: str) -> RoutingTable:
        cached = self._tables.get(merchant_id)
        now = time.monotonic()
        if cached is not None and (self.ttl is None or now - cached[1] < self.ttl):
            return cached[0]
        raw = await self.store.get_blob(f"routing:{merchant_id}")
        table = (
            self.default if raw is None else parse_table(compact_json.decode(raw), self.connectors)
        )
        self._tables[merchant_id] = (table, now)
        return table

    async def put(self, merchant_id: str, doc: object) -> RoutingTable:
        """Validate and keep a merchant's table; raises InvalidRoutingTable."""
        table = parse_table(doc, self.connectors)
        await self.store.put_blob(f"routing:{merchant_id}", compact_json.encode(doc), self.clock())
        self._tables[merchant_id] = (table, time.monotonic())
        return table

    def circuits(self) -> dict[str, str]:
        return {c: self.breakers.state(c) for c in self.connectors}

    async def plan(
        self, merchant_id: str, facts: PaymentFacts, payment_id: str, forced: str | None
    ) -> tuple[str, Routing]:
        if forced is not None:  # the merchant named the PSP: no other may take it
            return forced, Routing(route="explicit")
        decision = (await self.table(merchant_id)).decide(facts, payment_id)
        order = list(decision.connectors or self.default.default)
        closed = [c for c in order if self.breakers.state(c) != "open"]
        order = closed + [c for c in order if c not in closed]
        return order[0], Routing(
            route=decision.route,
            fallbacks=order[1:],
            retry_soft_declines=decision.retry_soft_declines,
        )
