"""Turning traces on (`--traces` / PAYMESH_TRACES), and the traceparent on AWS, where
EventBridge takes no top-level field of ours."""

from __future__ import annotations

import json

import pytest
from opentelemetry import context, trace

from paymesh.adapters.aws.envelopes import entry, envelope
from paymesh.entrypoints.tracing_setup import configure_tracing, trace_mode
from paymesh.tracing import active, traced, traceparent, tracer
from tests.support.traces import tracing_off

__all__ = ["tracing_off"]  # a fixture

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_traces_are_off_unless_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAYMESH_TRACES", raising=False)
    assert trace_mode(None) == "off"
    monkeypatch.setenv("PAYMESH_TRACES", "console")
    assert trace_mode(None) == "console"
    assert trace_mode("OTLP") == "otlp"  # the flag wins over the environment
    with pytest.raises(ValueError, match="off, console, otlp"):
        trace_mode("jaeger")


def test_off_installs_no_provider_and_spans_are_no_ops(tracing_off: None) -> None:
    configure_tracing("off", "paymesh-api")
    with tracer().start_as_current_span("POST /v1/payments") as span:
        assert not span.is_recording()


def test_with_tracing_off_a_span_costs_no_context_switch(tracing_off: None) -> None:
    # The API's no-op span would still attach a context on entry and detach it on exit;
    # `traced` makes none at all while no provider is installed.
    before = context.get_current()
    with traced("deliver send_confirmation", kind=trace.SpanKind.CONSUMER) as span:
        assert span is trace.INVALID_SPAN
        assert context.get_current() is before
    assert not active() and traceparent() is None


def test_console_prints_each_span_with_the_service_name(
    tracing_off: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    configure_tracing("console", "paymesh-worker")
    with tracer().start_as_current_span("deliver send_confirmation"):
        pass
    printed = json.loads(capsys.readouterr().out)
    assert printed["name"] == "deliver send_confirmation"
    assert printed["resource"]["attributes"]["service.name"] == "paymesh-worker"
    trace.get_tracer_provider().shutdown()  # type: ignore[attr-defined]


def test_on_eventbridge_the_traceparent_travels_in_the_detail_and_comes_back() -> None:
    ours = {
        "version": "0",
        "id": "evt-1",
        "source": "payment.service",
        "detail-type": "payment.succeeded",
        "account": "shop",
        "time": "2026-11-23T19:00:00Z",
        "region": "local",
        "resources": ["pay_1"],
        "detail": {"payment_id": "pay_1"},
        "traceparent": TRACEPARENT,
    }
    put = entry(ours, "bus")
    assert "traceparent" not in put and "TraceHeader" not in put  # PutEvents' own fields only
    detail = json.loads(put["Detail"])
    delivered = {
        "version": "0",
        "id": "eventbridge-id",
        "source": put["Source"],
        "detail-type": put["DetailType"],
        "account": "123456789012",
        "time": put["Time"],
        "region": "eu-west-1",
        "resources": put["Resources"],
        "detail": detail,
    }
    back = envelope(delivered)
    assert back["traceparent"] == TRACEPARENT
    assert back["detail"] == {"payment_id": "pay_1"}
    assert "traceparent" not in envelope({**delivered, "detail": {"payment_id": "pay_1"}})
