"""One trace per payment (issue 16): the API request, its PSP call, the PSP's webhook, the
outbox and every delivery and handler, with their parent links, on the whole app built by
bootstrap (in-memory store, fake PSP), spans kept by the SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from paymesh.adapters.memory import MemoryStore
from paymesh.bootstrap import build_api, build_core
from paymesh.config import Settings
from paymesh.connectors.fake import FakePsp
from paymesh.entrypoints.http.asgi import build_app
from paymesh.service.apikeys import create_key
from tests.support.traces import named, one, recorded_spans, span_id, tracing_off

__all__ = ["recorded_spans", "tracing_off"]  # fixtures

CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@dataclass
class Shop:
    http: httpx.AsyncClient
    store: MemoryStore
    psp: FakePsp

    async def pay(self, method: str, headers: dict[str, str] | None = None) -> dict[str, object]:
        r = await self.http.post(
            "/v1/payments",
            headers=headers or {},
            json={
                "amount": 2000,
                "currency": "usd",
                "customer_id": "cus_1",
                "payment_method": method,
            },
        )
        assert r.status_code in (200, 201), r.text
        body: dict[str, object] = r.json()
        return body

    async def timeline(self, payment_id: str) -> dict[str, dict[str, object]]:
        events = await self.store.events_for_payment("shop", payment_id)
        return {e.type: e.envelope for e in events}

    async def until_confirmed(self, payment_id: str) -> None:
        for _ in range(500):
            if await self.store.notifications_for_payment("shop", payment_id):
                return
            await asyncio.sleep(0.01)
        raise AssertionError("no confirmation was sent")


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[Shop]:
    settings = Settings.from_env(data_dir=tmp_path, rate_limit=0.0)
    store, psp = MemoryStore(), FakePsp("stripe")
    process = build_api(settings, build_core(settings, store=store, connectors={"stripe": psp}))
    app = build_app(settings, process)
    async with process.running():
        key = await create_key(store, "shop", datetime.now(UTC))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://paymesh.test",
            headers={"Authorization": f"Bearer {key}"},
        ) as http:
            yield Shop(http, store, psp)


async def test_a_payment_its_webhook_and_its_deliveries_are_one_trace(
    shop: Shop, recorded_spans: InMemorySpanExporter
) -> None:
    created = await shop.pay("pm_card_threeDSecure2Required")
    assert created["status"] == "requires_action"
    payment_id, ref = str(created["id"]), str(created["connector_payment_id"])
    shop.psp.complete_authentication(ref)  # the customer passed 3-D Secure: the PSP says so
    headers, body = shop.psp.webhooks_about(ref)[-1]
    hook = await shop.http.post("/webhooks/stripe", headers=headers, content=body)
    assert hook.status_code == 200, hook.text
    await shop.until_confirmed(payment_id)
    await asyncio.sleep(0.1)  # the confirmation's delivery span ends after its commit

    spans = recorded_spans.get_finished_spans()
    request = one(spans, "POST /v1/payments")
    psp_call = one(spans, "stripe authorize")
    webhook_request = one(spans, "POST /webhooks/{psp}")
    webhook = one(spans, "webhook stripe")
    confirmation = one(spans, "deliver send_confirmation")
    handler = one(spans, "handle send_confirmation")
    trace_id = request.context.trace_id

    # The request starts the trace; its PSP call is its child, a client span.
    assert request.parent is None and request.kind == SpanKind.SERVER
    assert request.attributes is not None and request.attributes["http.route"] == "/v1/payments"
    assert psp_call.parent is not None and psp_call.parent.span_id == request.context.span_id
    assert psp_call.kind == SpanKind.CLIENT

    # The events the request recorded carry its context in their envelopes.
    events = await shop.timeline(payment_id)
    assert span_id(events["payment.initiated"]["traceparent"]) == request.context.span_id
    assert span_id(events["payment.requires_action"]["traceparent"]) == request.context.span_id

    # The webhook's own request is a trace of its own (the PSP sent no context of ours); the
    # webhook is applied in the payment's trace, linked to that request.
    assert webhook_request.context.trace_id != trace_id
    assert webhook.context.trace_id == trace_id
    assert webhook.parent is not None and webhook.parent.span_id == request.context.span_id
    assert [link.context.span_id for link in webhook.links] == [webhook_request.context.span_id]
    assert span_id(events["payment.succeeded"]["traceparent"]) == webhook.context.span_id

    # The outbox routes the event, and its delivery runs, as children of the span that
    # recorded it; the handler runs inside the delivery.
    routed = one(spans, "route payment.succeeded")
    assert routed.parent is not None and routed.parent.span_id == webhook.context.span_id
    assert confirmation.kind == SpanKind.CONSUMER
    assert confirmation.parent is not None
    assert confirmation.parent.span_id == webhook.context.span_id
    assert handler.parent is not None and handler.parent.span_id == confirmation.context.span_id
    assert confirmation.attributes is not None
    assert confirmation.attributes["paymesh.delivery.status"] == "delivered"

    # The request's own events were delivered in its trace too (the fraud stream's target).
    [scored] = [
        s
        for s in named(spans, "deliver fraud_detection")
        if s.parent is not None
        and s.parent.span_id == request.context.span_id
        and s.attributes is not None
        and s.attributes["messaging.message.id"] == events["payment.initiated"]["id"]
    ]
    assert {
        s.context.trace_id for s in (psp_call, webhook, routed, confirmation, handler, scored)
    } == {trace_id}


async def test_a_request_with_a_callers_traceparent_joins_the_callers_trace(
    shop: Shop, recorded_spans: InMemorySpanExporter
) -> None:
    created = await shop.pay("pm_card_visa", headers={"traceparent": CALLER})
    spans = recorded_spans.get_finished_spans()
    request = one(spans, "POST /v1/payments")
    assert f"{request.context.trace_id:032x}" == CALLER.split("-")[1]
    assert request.parent is not None and request.parent.span_id == span_id(CALLER)
    events = await shop.timeline(str(created["id"]))
    assert span_id(events["payment.succeeded"]["traceparent"]) == request.context.span_id


async def test_with_tracing_off_no_event_carries_a_traceparent(
    shop: Shop, tracing_off: None
) -> None:
    # Even when the caller sends one: a process that does not trace changes no envelope.
    created = await shop.pay("pm_card_visa", headers={"traceparent": CALLER})
    events = await shop.timeline(str(created["id"]))
    assert set(events) >= {"payment.initiated", "payment.succeeded"}
    assert all("traceparent" not in envelope for envelope in events.values())
