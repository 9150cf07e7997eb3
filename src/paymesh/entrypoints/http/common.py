"""What every route needs: the wiring, authentication, responses, query parameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from paymesh.entrypoints.http.errors import status_of
from paymesh.ports.bus_backend import BusBackend
from paymesh.ports.ratelimit import RateLimit
from paymesh.ports.rule_mirror import NoMirror, RuleMirror
from paymesh.service.apikeys import Authenticator
from paymesh.service.bus import EventBus
from paymesh.service.errors import ApiError, BadRequest, RateLimited
from paymesh.service.idempotency import MAX_KEY_LENGTH
from paymesh.service.payments import PaymentService
from paymesh.service.psp_routing import RoutingService
from paymesh.service.reviews import ReviewService
from paymesh.service.views import Reply
from paymesh.service.webhooks import WebhookService

_encode = msgspec.json.Encoder().encode
JSON = "application/json"


@dataclass(slots=True)
class Api:
    """What the routes need, taken from what bootstrap built (`api_process.build_app`)."""

    store: BusBackend
    payments: PaymentService
    webhooks: WebhookService
    auth: Authenticator
    limiter: RateLimit
    bus: EventBus
    reviews: ReviewService
    routing: RoutingService
    openapi: bytes
    #: On AWS: EventBridge, where merchants' rules run.
    rules: RuleMirror = field(default_factory=NoMirror)


def json_response(status: int, data: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(_encode(data), status_code=status, media_type=JSON, headers=headers)


def reply_response(reply: Reply) -> Response:
    headers = {"Idempotent-Replayed": "true"} if reply.replayed else None
    return Response(reply.body, status_code=reply.status, media_type=JSON, headers=headers)


def error_response(exc: ApiError) -> Response:
    headers = None
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(max(1, int(exc.retry_after + 0.999)))}
    return json_response(status_of(exc), exc.body(), headers)


def api(request: Request) -> Api:
    state: Api = request.app.state.api
    return state


async def merchant_of(request: Request) -> str:
    a = api(request)
    merchant, key_id = await a.auth.identify(request.headers.get("authorization"))
    wait = await a.limiter.check(key_id)  # by the key's hash: no secret kept in the limiter
    if wait is not None:
        raise RateLimited(wait)
    return merchant


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not key.strip() or len(key) > MAX_KEY_LENGTH:
        raise BadRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters",
            param="Idempotency-Key",
            code="idempotency_key_invalid",
        )
    return key


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadRequest(f"{name} must be an integer", param=name) from exc
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}", param=name)
    return value


def time_param(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        if raw.lstrip("-").isdigit():
            return datetime.fromtimestamp(int(raw), tz=UTC)
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise BadRequest(f"{name} must be epoch seconds or an ISO 8601 time", param=name) from exc
