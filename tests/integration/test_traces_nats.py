"""A trace crosses NATS in the event's envelope: an event committed inside a span is relayed
to JetStream by one connection and routed and delivered by a dispatcher on another (as in
separate processes), whose spans continue the trace from the envelope's `traceparent` alone."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime
from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from paymesh.adapters.http_targets import AiohttpTargetSender
from paymesh.adapters.memory import MemoryStore
from paymesh.adapters.nats.bus import Dispatcher, Layout, OutboxRelay, connect, ensure_streams
from paymesh.domain.events import DomainEvent
from paymesh.ports.bus import Delivery
from paymesh.ports.store import Changeset
from paymesh.service.bus import Targets
from paymesh.service.event_router import Router
from paymesh.tracing import stamp, tracer
from tests.contract.bus_contract import cancelled, rule
from tests.support.nats import NatsServer
from tests.support.traces import one, recorded_spans, span_id

__all__ = ["recorded_spans"]  # a fixture

_names = itertools.count()


async def test_the_traceparent_crosses_nats_to_the_delivery_and_its_handler(
    nats_server: NatsServer, recorded_spans: InMemorySpanExporter
) -> None:
    store = MemoryStore()
    await store.open()
    layout = Layout(prefix=f"trace{next(_names)}", ack_wait_seconds=5.0)
    received: list[dict[str, Any]] = []

    async def confirm(event: dict[str, Any], delivery: Delivery) -> None:
        with tracer().start_as_current_span("confirmation sent"):
            received.append(event)

    api_nc = await connect(nats_server.url, "test-api")
    worker_nc = await connect(nats_server.url, "test-worker")
    sender = AiohttpTargetSender()
    await ensure_streams(api_nc.jetstream(), layout)
    relay = OutboxRelay(store, api_nc.jetstream(), layout, poll_seconds=0.05)
    dispatcher = Dispatcher(
        store,
        worker_nc.jetstream(),
        layout,
        Router([rule("confirmations", "confirm")]),
        Targets({"confirm": confirm}, sender),
        lambda: datetime.now(UTC),
    )
    # Started outside any span: what the worker knows of the trace comes from the message.
    tasks = [asyncio.create_task(relay.run()), asyncio.create_task(dispatcher.run())]
    try:
        with tracer().start_as_current_span("POST /v1/payments") as request:
            event = DomainEvent(
                "payment.succeeded", "pay_1", "m1", datetime.now(UTC), {"amount": 2500}
            )
            changes = Changeset(events=[event])
            stamp(changes.events)
            await store.commit(changes)
        relay.notify()
        for _ in range(500):
            if received:
                break
            await asyncio.sleep(0.02)
        assert received, "the event was not delivered over NATS"
        await asyncio.sleep(0.1)  # the delivery span ends after the handler returns
    finally:
        dispatcher.closing()
        for task in tasks:
            await cancelled(task)
        await dispatcher.stop()
        await worker_nc.close()
        await api_nc.close()
        await sender.aclose()
        await store.close()

    recorded = request.get_span_context()
    [envelope] = received
    assert span_id(envelope["traceparent"]) == recorded.span_id  # carried inside the message

    spans = recorded_spans.get_finished_spans()
    published = one(spans, "publish payment.succeeded")
    routed = one(spans, "route payment.succeeded")
    delivered = one(spans, "deliver confirm")
    handled = one(spans, "handle confirm")
    sent = one(spans, "confirmation sent")
    assert (published.kind, routed.kind, delivered.kind) == (
        SpanKind.PRODUCER,
        SpanKind.CONSUMER,
        SpanKind.CONSUMER,
    )
    for span in (published, routed, delivered):
        assert span.parent is not None and span.parent.span_id == recorded.span_id, span.name
    assert handled.parent is not None and handled.parent.span_id == delivered.context.span_id
    assert sent.parent is not None and sent.parent.span_id == handled.context.span_id
    assert {s.context.trace_id for s in (published, routed, delivered, handled, sent)} == {
        recorded.trace_id
    }
