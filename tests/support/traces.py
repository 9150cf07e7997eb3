"""A test's own OpenTelemetry SDK provider, spans kept in memory.

The API's global provider can be set once per process; like opentelemetry's own test utils,
`recorded_spans` swaps it for the test's and puts the old one back after, so no other test
in the process runs with tracing on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once


def install(monkeypatch: pytest.MonkeyPatch, provider: trace.TracerProvider | None) -> None:
    """`provider` as the global one for this test (None: the API's no-op, tracing off)."""
    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    if provider is not None:
        trace.set_tracer_provider(provider)


@pytest.fixture
def recorded_spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    install(monkeypatch, provider)
    yield exporter
    provider.shutdown()


@pytest.fixture
def tracing_off(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, None)


def named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def one(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    found = named(spans, name)
    assert len(found) == 1, (name, sorted(s.name for s in spans))
    return found[0]


def span_id(traceparent: object) -> int:
    """The parent span id a W3C traceparent names."""
    assert isinstance(traceparent, str), traceparent
    return int(traceparent.split("-")[2], 16)
