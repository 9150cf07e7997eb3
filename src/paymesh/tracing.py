"""Traces: the OpenTelemetry API calls paymesh makes, and the `traceparent` its events carry.

Only `opentelemetry-api` here. Until an entrypoint installs an SDK tracer provider
(`paymesh.entrypoints.tracing_setup`, off by default) every span is the API's no-op and no
event carries a traceparent: tracing costs nothing and changes nothing until it is turned on.

One trace follows a payment across tasks, processes and NATS:

    POST /v1/payments (server)        the API's middleware, joining a caller's traceparent
      stripe authorize (client)       each PSP call (`MeteredConnector`)
    webhook stripe                    child of the payment's last recorded context, linked
                                      to the webhook's own request
    route payment.succeeded           the outbox's step: routing, or the relay to NATS
    deliver send_confirmation         (consumer) child of the span that recorded the event;
                                      the built-in handler or HTTP target runs inside it

The carrier is the event itself: the context of the span that commits an event is stamped
on it (`stamp`) and stored in its envelope as a top-level W3C `traceparent`, so wherever the
envelope goes (a store's outbox, a NATS message, a redrive) the delivery can rejoin it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from paymesh.domain.events import DomainEvent

__all__ = ["KEY", "active", "context_of", "event_span", "stamp", "traced", "traceparent", "tracer"]

#: The envelope key (and HTTP header) of the W3C trace context.
KEY = "traceparent"
_W3C = TraceContextTextMapPropagator()


def active() -> bool:
    """Whether a tracer provider is installed. Until one is, paymesh makes no span at all:
    the API's no-op spans are free of export, not of work (each still attaches and detaches a
    context), and a payment passes a dozen of them."""
    # The API's global, read directly: `get_tracer_provider()` looks in the environment on
    # every call until a provider is set, which a payment would pay a dozen times. paymesh
    # installs its provider with `set_tracer_provider` (entrypoints/tracing_setup.py).
    return getattr(trace, "_TRACER_PROVIDER", None) is not None


def traced(
    name: str,
    *,
    context: Context | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
    links: Sequence[Link] = (),
) -> AbstractContextManager[Span]:
    """`tracer().start_as_current_span(...)` while tracing is on; nothing while it is off."""
    if not active():
        return nullcontext(trace.INVALID_SPAN)
    return tracer().start_as_current_span(
        name, context=context, kind=kind, attributes=attributes, links=links
    )


def tracer() -> trace.Tracer:
    """paymesh's tracer, from whatever provider is installed when it is asked for (the API's
    proxy follows a provider installed later)."""
    return trace.get_tracer("paymesh")


def traceparent() -> str | None:
    """The W3C traceparent of the active span, if this process records it; None otherwise
    (tracing off, or a caller's context merely passing through a process that does not
    trace), so an untraced process stamps nothing on its events."""
    if not active():
        return None
    current = trace.get_current_span()
    if not current.is_recording():
        return None
    ctx = current.get_span_context()
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def context_of(carrier: Mapping[str, Any]) -> Context | None:
    """The remote parent named by `carrier`'s traceparent (an envelope, or HTTP headers with
    lower-case names); None if it has none or it is malformed."""
    value = carrier.get(KEY)
    if not isinstance(value, str):
        return None
    ctx = _W3C.extract({KEY: value})
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def stamp(events: list[DomainEvent]) -> None:
    """Give `events` (about to be committed) the active span's traceparent, in place; an
    event that already has one keeps it."""
    parent = traceparent()
    if parent is not None and events:
        events[:] = [e if e.traceparent else replace(e, traceparent=parent) for e in events]


def event_span(envelope: Mapping[str, Any], operation: str, kind: SpanKind) -> Span:
    """A started span about one event's passage (`operation`: route, publish), a child of
    the context the event was recorded in; a no-op span for an event that carries no trace
    (recorded while tracing was off), which would otherwise start a trace of one span. The
    caller ends it."""
    parent = context_of(envelope)
    if parent is None:
        return trace.INVALID_SPAN
    return tracer().start_span(
        f"{operation} {envelope.get('detail-type')}",
        context=parent,
        kind=kind,
        attributes={
            "messaging.operation.name": operation,
            "messaging.message.id": str(envelope.get("id")),
        },
    )
