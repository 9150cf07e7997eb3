"""Turning traces on: the OpenTelemetry SDK, installed by an entrypoint, never on import.

`PAYMESH_TRACES` (or `--traces`) chooses where this process's spans go:

- `off` (the default): no SDK provider is installed; every span paymesh opens is the API's
  no-op and no event carries a traceparent;
- `console`: each span is printed to stdout as JSON when it ends (development);
- `otlp`: spans are batched to an OpenTelemetry collector over OTLP/HTTP, at the standard
  `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`); unset, the
  exporter's default, http://localhost:4318.

The service is named by `OTEL_SERVICE_NAME` when set, else `paymesh-api` or
`paymesh-worker`, so the processes of one trace are told apart.
"""

from __future__ import annotations

import os
import sys

MODES = ("off", "console", "otlp")
ENV = "PAYMESH_TRACES"


def trace_mode(given: str | None) -> str:
    """The mode from `--traces`, else `PAYMESH_TRACES`, else off; ValueError if unknown."""
    mode = (given or os.environ.get(ENV) or "off").strip().lower()
    if mode not in MODES:
        raise ValueError(f"--traces / {ENV} must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def configure_tracing(mode: str, service: str) -> None:
    """Install the SDK provider for `mode` (see the module doc) as the process's global one;
    `off` installs nothing. Spans still buffered are flushed at exit (the SDK's own hook)."""
    if mode == "off":
        return
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service}
    provider = TracerProvider(resource=Resource.create(attributes))
    processor: SpanProcessor
    if mode == "console":
        # At once, in order: a developer reads them as the requests happen.
        processor = SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stdout))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # Batched, off the request path: an absent collector costs a failed export per batch.
        processor = BatchSpanProcessor(OTLPSpanExporter())
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
