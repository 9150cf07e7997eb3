"""Routes of the v1 API: parse, authenticate, call a service, answer. Nothing else.

Errors of every kind leave through `error_response`, in DESIGN.md's shape: a 4xx for anything
the client can fix, never a 500 for bad input.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp

from paymesh.adapters.metrics import PaymeshMetrics
from paymesh.domain import money
from paymesh.domain.errors import DomainError
from paymesh.domain.payment import Payment, RiskContext
from paymesh.domain.status import PaymentStatus
from paymesh.entrypoints.http import schemas
from paymesh.entrypoints.http.common import (
    JSON,
    Api,
    api,
    error_response,
    idempotency_key,
    int_param,
    json_response,
    merchant_of,
    reply_response,
    time_param,
)
from paymesh.entrypoints.http.dashboard import dashboard_routes
from paymesh.entrypoints.http.dashboard.live import LiveFigures
from paymesh.entrypoints.http.disputes_api import dispute_routes
from paymesh.entrypoints.http.errors import RouteRefused
from paymesh.entrypoints.http.intake import Intake
from paymesh.entrypoints.http.ledger_api import ledger_routes
from paymesh.entrypoints.http.metrics import metrics_routes, observed
from paymesh.entrypoints.http.reviews_api import review_routes
from paymesh.entrypoints.http.routing_api import routing_routes
from paymesh.entrypoints.http.rules_api import bus_routes
from paymesh.ports.connector import WebhookRejected
from paymesh.ports.store import PaymentQuery
from paymesh.service import views
from paymesh.service.errors import ApiError, BadRequest, NotFound, from_domain
from paymesh.service.payments import CreatePayment

log = logging.getLogger(__name__)


# -- payments -------------------------------------------------------------------------------


async def create_payment(request: Request) -> Response:
    merchant = await merchant_of(request)
    body = schemas.decode(await request.body(), schemas.CreatePaymentBody)
    command = CreatePayment(
        amount=body.amount,
        currency=money.normalize_currency(body.currency),
        customer_id=body.customer_id,
        payment_method=body.payment_method,
        capture_method=body.capture_method,
        connector=body.connector,
        description=body.description,
        metadata=dict(body.metadata),
        risk=RiskContext(
            device_id=body.device_id,
            ip_address=body.ip_address,
            country=body.country.upper() if body.country else None,
            city=body.city,
        ),
        receipt_email=body.receipt_email,
        receipt_phone=body.receipt_phone,
    )
    key = idempotency_key(request)
    return reply_response(await api(request).payments.create(merchant, command, key))


async def own_payment(request: Request) -> tuple[str, Payment]:
    """The authenticated merchant and the payment in the path; 404 if it is not theirs."""
    merchant = await merchant_of(request)
    payment_id = request.path_params["payment_id"]
    payment = await api(request).store.get_payment(payment_id, merchant)
    if payment is None:
        raise NotFound(f"no such payment: {payment_id!r}", param="id")
    return merchant, payment


async def get_payment(request: Request) -> Response:
    _, payment = await own_payment(request)
    return json_response(200, views.payment_view(payment))


async def list_payments(request: Request) -> Response:
    merchant = await merchant_of(request)
    q = request.query_params
    status = q.get("status")
    if status is not None and status not in PaymentStatus.__members__.values():
        raise BadRequest(f"unknown status {status!r}", param="status")
    query = PaymentQuery(
        merchant_id=merchant,
        customer_id=q.get("customer_id"),
        status=PaymentStatus(status) if status else None,
        created_gte=time_param(request, "created_gte"),
        created_lt=time_param(request, "created_lt"),
        limit=int_param(request, "limit", 10, 1, 100),
        starting_after=q.get("starting_after"),
    )
    page, has_more = await api(request).store.list_payments(query)
    return json_response(
        200, views.list_view([views.payment_view(p) for p in page], has_more, "/v1/payments")
    )


async def payment_events(request: Request) -> Response:
    merchant, payment = await own_payment(request)
    events = await api(request).store.events_for_payment(merchant, payment.id)
    return json_response(
        200,
        views.list_view(
            [views.event_view(e) for e in events], False, f"/v1/payments/{payment.id}/events"
        ),
    )


async def payment_notifications(request: Request) -> Response:
    merchant, payment = await own_payment(request)
    sent = await api(request).store.notifications_for_payment(merchant, payment.id)
    return json_response(
        200,
        views.list_view(
            [views.notification_view(n) for n in sent],
            False,
            f"/v1/payments/{payment.id}/notifications",
        ),
    )


async def capture_payment(request: Request) -> Response:
    merchant = await merchant_of(request)
    body = schemas.decode(await request.body(), schemas.CaptureBody, empty_ok=True)
    return reply_response(
        await api(request).payments.capture(
            merchant, request.path_params["payment_id"], body.amount, idempotency_key(request)
        )
    )


async def cancel_payment(request: Request) -> Response:
    merchant = await merchant_of(request)
    schemas.decode(await request.body(), schemas.CancelBody, empty_ok=True)
    return reply_response(
        await api(request).payments.cancel(
            merchant, request.path_params["payment_id"], idempotency_key(request)
        )
    )


async def create_refund(request: Request) -> Response:
    merchant = await merchant_of(request)
    body = schemas.decode(await request.body(), schemas.RefundBody, empty_ok=True)
    return reply_response(
        await api(request).payments.refund(
            merchant,
            request.path_params["payment_id"],
            body.amount,
            body.reason,
            idempotency_key(request),
        )
    )


async def get_refund(request: Request) -> Response:
    merchant = await merchant_of(request)
    refund_id = request.path_params["refund_id"]
    refund = await api(request).store.get_refund(refund_id, merchant)
    if refund is None:
        raise NotFound(f"no such refund: {refund_id!r}", param="id")
    return json_response(200, views.refund_view(refund))


async def list_events(request: Request) -> Response:
    merchant = await merchant_of(request)
    q = request.query_params
    events, has_more = await api(request).store.list_events(
        merchant, q.get("type"), int_param(request, "limit", 10, 1, 100), q.get("starting_after")
    )
    return json_response(
        200, views.list_view([views.event_view(e) for e in events], has_more, "/v1/events")
    )


# -- webhooks and operations ----------------------------------------------------------------


async def psp_webhook(request: Request) -> Response:
    psp = request.path_params["psp"]
    service = api(request).webhooks
    if psp not in service.connectors:
        raise NotFound(f"no connector {psp!r} is configured", param="psp")
    try:
        results = await service.receive(psp, dict(request.headers), await request.body())
    except WebhookRejected as exc:
        raise BadRequest(str(exc), code="webhook_signature_invalid") from exc
    ack = service.connectors[psp].webhook_ack
    if ack is not None:
        return Response(ack, media_type="text/plain")
    return json_response(200, {"received": True, "results": results})


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type=JSON)


async def readyz(request: Request) -> Response:
    try:
        ready = await api(request).store.ping()
    except Exception:
        ready = False
    return json_response(200 if ready else 503, {"status": "ready" if ready else "unavailable"})


async def openapi(request: Request) -> Response:
    return Response(api(request).openapi, media_type=JSON)


# -- assembly -------------------------------------------------------------------------------

Endpoint = Callable[[Request], Awaitable[Response]]


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/payments", create_payment, methods=["POST"]),
        Route("/v1/payments", list_payments, methods=["GET"]),
        Route("/v1/payments/{payment_id}", get_payment, methods=["GET"]),
        Route("/v1/payments/{payment_id}/events", payment_events, methods=["GET"]),
        Route("/v1/payments/{payment_id}/notifications", payment_notifications, methods=["GET"]),
        Route("/v1/payments/{payment_id}/capture", capture_payment, methods=["POST"]),
        Route("/v1/payments/{payment_id}/cancel", cancel_payment, methods=["POST"]),
        Route("/v1/payments/{payment_id}/refunds", create_refund, methods=["POST"]),
        Route("/v1/refunds/{refund_id}", get_refund, methods=["GET"]),
        Route("/v1/events", list_events, methods=["GET"]),
        Route("/webhooks/{psp}", psp_webhook, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]


async def _on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _on_domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return error_response(from_domain(exc))


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    response = error_response(
        RouteRefused(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")
    )
    if exc.status_code == 405:  # name every method the path allows (RFC 9110), not one route's
        allowed: set[str] = set()
        for route in request.app.routes:
            if (
                isinstance(route, Route)
                and route.methods
                and route.matches(request.scope)[0] == Match.PARTIAL
            ):
                allowed |= route.methods
        response.headers["Allow"] = ", ".join(sorted(allowed - {"HEAD"}))
    return response


async def _on_bad_bytes(request: Request, exc: Exception) -> Response:
    # msgspec raises these past its own errors: bytes that are not UTF-8, and JSON nested
    # deeper than the interpreter's stack (a pattern compiler would recurse as deep).
    if isinstance(exc, RecursionError):
        return error_response(BadRequest("the request nests too deeply", code="json_too_deep"))
    reason = exc.reason if isinstance(exc, UnicodeDecodeError) else str(exc)
    return error_response(
        BadRequest(f"the request is not valid UTF-8: {reason}", code="json_invalid")
    )


async def _on_crash(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(ApiError("an internal error occurred; it has been logged"))


def exception_handlers() -> dict[Any, Any]:
    return {
        ApiError: _on_api_error,
        DomainError: _on_domain_error,
        HTTPException: _on_http_error,
        UnicodeDecodeError: _on_bad_bytes,
        RecursionError: _on_bad_bytes,
        Exception: _on_crash,
    }


class ObservedApp(Starlette):
    """Starlette with request ids and request metrics around everything, its own error
    middleware included: a crash's 500 is counted and carries its `Request-Id` too, and the
    line logging it carries the request id."""

    def build_middleware_stack(self) -> ASGIApp:
        return observed(super().build_middleware_stack(), self.state.metrics)


def build_http_app(
    state: Api,
    extra_routes: list[BaseRoute],
    lifespan: Any,
    *,
    metrics: PaymeshMetrics | None = None,
    metrics_token: str | None = None,
) -> Starlette:
    """`metrics`: the process's (a fresh registry when None); `metrics_token`: what
    `/metrics` asks for (None: `/metrics` answers 404)."""
    app = ObservedApp(
        routes=[
            *routes(),
            *bus_routes(),
            *review_routes(),
            *routing_routes(),
            *ledger_routes(),
            *dispute_routes(),
            *metrics_routes(),
            *dashboard_routes(),
            *extra_routes,
        ],
        middleware=[Middleware(Intake)],
        exception_handlers=exception_handlers(),
        lifespan=lifespan,
    )
    app.state.api = state
    app.state.metrics = metrics if metrics is not None else PaymeshMetrics()
    app.state.metrics_token = metrics_token
    # A deliverer process's published metrics, added to this scrape (`build_app` sets it).
    app.state.metrics_beside = None
    app.state.live_figures = LiveFigures(app.state.metrics)
    app.state.report_sources = {}  # build_app gives the process's (reconciliation)
    return app
