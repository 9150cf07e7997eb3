"""`/metrics` and the middleware that observes every request.

`/metrics` answers the Prometheus text exposition of this process only: in scale-out, scrape
every `paymesh serve` on its own, and every `paymesh worker --metrics-port` on its own
listener (`paymesh.entrypoints.worker_metrics`, under the same token rule). It is not for
the world: it answers only a request with `Authorization: Bearer <PAYMESH_METRICS_TOKEN>`;
with no token configured it answers 404 as if it did not exist, so a deployment exposes
nothing until it chooses a token.

`Observed` wraps the whole app (outside Starlette's own error middleware, so a crash's 500
is seen too): it gives the request its id (`request_ids`), stamps `Request-Id` on the
response, counts and times it per route template, and runs it in a server span
(`paymesh.tracing`; a no-op unless traces are on) that joins a caller's `traceparent`. Its
cost is a few dict lookups and one histogram observation per request.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from pathlib import Path
from typing import Any, Protocol

from opentelemetry.trace import SpanKind, StatusCode
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paymesh.adapters.metrics import PaymeshMetrics
from paymesh.adapters.metrics.beside import read_published
from paymesh.adapters.metrics.instruments import OUTBOX_SCAN
from paymesh.entrypoints.http.common import api, error_response
from paymesh.entrypoints.http.errors import RouteRefused
from paymesh.entrypoints.http.request_ids import HEADER, RequestContext, current, new_request_id
from paymesh.ports.bus import DeliveryStore
from paymesh.ports.store import EventLog
from paymesh.service.errors import Unauthorized
from paymesh.tracing import KEY, active, context_of, traced

TOKEN_ENV = "PAYMESH_METRICS_TOKEN"  # noqa: S105 (the variable's name, not a token)
EXPOSITION = "text/plain; version=0.0.4; charset=utf-8"
#: The route label of a request no route matched: raw paths would put ids (and anything a
#: scanner tries) into label values, without bound.
UNMATCHED = "unmatched"

log = logging.getLogger("paymesh.http")
_HEADER = HEADER.lower().encode()
_STATUS_CLASS = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
_TRACEPARENT = KEY.encode()


class MetricsSource(EventLog, DeliveryStore, Protocol):
    """What a scrape reads from the store: the outbox's backlog, the dead letters' depth."""


def metrics_token() -> str | None:
    """The token `/metrics` asks for; None (unset or empty): `/metrics` is off."""
    return os.environ.get(TOKEN_ENV) or None


class Observed:
    def __init__(self, app: ASGIApp, metrics: PaymeshMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = new_request_id()
        current.set(RequestContext(request_id, scope))
        header = (_HEADER, request_id.encode())
        status = 500  # what the client gets if the app fails before answering

        async def stamped(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        method = scope["method"]
        with traced(
            method,  # named for its route once routing has found it
            # A caller's trace joined (None: a new one); nothing read while tracing is off.
            context=context_of(_trace_headers(scope)) if active() else None,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "url.path": scope["path"],
                "paymesh.request_id": request_id,
            },
        ) as span:
            try:
                await self.app(scope, receive, stamped)
            finally:
                template = _template(scope)
                self._record(method, template, status, time.perf_counter() - started)
                span.update_name(f"{method} {template}")
                span.set_attribute("http.route", template)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(StatusCode.ERROR)

    def _record(self, method: str, template: str, status: int, seconds: float) -> None:
        m = self.metrics
        m.http_requests.labels(method, template, _STATUS_CLASS.get(status // 100, "5xx")).inc()
        m.http_duration.labels(method, template).observe(seconds)
        if status >= 500:
            m.http_errors.labels(method, template).inc()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s %d in %.1f ms", method, template, status, seconds * 1000)


def _template(scope: Scope) -> str:
    route = scope.get("route")
    return route.path if isinstance(route, Route) else UNMATCHED


def _trace_headers(scope: Scope) -> dict[str, str]:
    """The caller's W3C trace context, if it sent one: its request joins the caller's trace."""
    for name, value in scope.get("headers", ()):
        if name == _TRACEPARENT:
            return {KEY: value.decode("latin-1")}
    return {}


async def metrics_endpoint(request: Request) -> Response:
    refusal = refused(request, request.app.state.metrics_token)
    if refusal is not None:
        return refusal
    state = request.app.state
    return await exposition(state.metrics, api(request).store, state.metrics_beside)


def refused(request: Request, token: str | None) -> Response | None:
    """The answer to a scrape without the right token (None: let it through). No token
    configured: 404, as if `/metrics` did not exist; a missing or wrong one: 401."""
    if token is None:  # off: the same answer as any path that does not exist
        return error_response(RouteRefused(404, "GET /metrics: Not Found"))
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        response = error_response(
            Unauthorized(
                "GET /metrics needs Authorization: Bearer <metrics token>",
                code="metrics_token_invalid",
            )
        )
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    return None


async def exposition(
    metrics: PaymeshMetrics, store: MetricsSource, beside: Path | None = None
) -> Response:
    """This process's metrics, with what is read at scrape time (outbox, dead letters), and
    the counts its deliverer process published at `beside` (`adapters.metrics.beside`)."""
    metrics.read_outbox(await store.undelivered_events(OUTBOX_SCAN))
    metrics.read_dead_letters(await store.dead_letter_depth())
    published = None if beside is None else await asyncio.to_thread(read_published, beside)
    return Response(metrics.exposition(published), media_type=EXPOSITION)


def metrics_routes() -> list[BaseRoute]:
    return [Route("/metrics", metrics_endpoint, methods=["GET"])]


def observed(app: Any, metrics: PaymeshMetrics) -> Observed:
    return Observed(app, metrics)
