"""Service errors carry a type and a code; the HTTP layer's one table gives each its status,
the same status each answered with when the errors carried it themselves."""

from __future__ import annotations

import msgspec
import pytest

from paymesh.entrypoints.http.common import error_response
from paymesh.entrypoints.http.errors import (
    HeadersTooLarge,
    Overloaded,
    RequestTimeout,
    RequestTooLarge,
    RouteRefused,
    UnsupportedMediaType,
    status_of,
)
from paymesh.service import errors
from paymesh.service.errors import (
    ApiError,
    BadRequest,
    CardDataRefused,
    IdempotencyInFlight,
    IdempotencyMismatch,
    NotFound,
    PspUnavailable,
    RateLimited,
    StateConflict,
    Unauthorized,
)

STATUSES = [
    (ApiError("boom"), 500, "api_error", "internal_error"),
    (BadRequest("bad", param="amount"), 400, "invalid_request_error", "parameter_invalid"),
    (CardDataRefused("metadata"), 400, "invalid_request_error", "card_data_not_allowed"),
    (Unauthorized("who"), 401, "authentication_error", "api_key_invalid"),
    (NotFound("gone"), 404, "invalid_request_error", "resource_missing"),
    (StateConflict("no"), 409, "invalid_request_error", "payment_unexpected_state"),
    (IdempotencyInFlight("busy"), 409, "invalid_request_error", "idempotency_key_in_use"),
    (RequestTimeout("slow"), 408, "invalid_request_error", "request_timeout"),
    (RequestTooLarge("big"), 413, "invalid_request_error", "request_too_large"),
    (UnsupportedMediaType("xml"), 415, "invalid_request_error", "unsupported_media_type"),
    (IdempotencyMismatch("other"), 422, "idempotency_error", "idempotency_key_reused"),
    (RateLimited(0.2), 429, "rate_limit_error", "rate_limit"),
    (HeadersTooLarge("huge"), 431, "invalid_request_error", "request_headers_too_large"),
    (PspUnavailable("down"), 503, "api_error", "psp_unavailable"),
    (Overloaded("full"), 503, "api_error", "server_overloaded"),
    (RouteRefused(404, "GET /nope: Not Found"), 404, "invalid_request_error", "route_not_found"),
    (
        RouteRefused(405, "PUT /v1/payments: Method Not Allowed"),
        405,
        "invalid_request_error",
        "method_not_allowed",
    ),
]


@pytest.mark.parametrize(
    ("error", "status", "type_", "code"),
    STATUSES,
    ids=[f"{type(e[0]).__name__}-{e[1]}" for e in STATUSES],
)
def test_each_error_answers_with_its_status_and_shape(
    error: ApiError, status: int, type_: str, code: str
) -> None:
    response = error_response(error)
    assert response.status_code == status
    body = msgspec.json.decode(bytes(response.body))
    assert (body["error"]["type"], body["error"]["code"]) == (type_, code)
    assert body["error"]["message"] == error.message


def test_a_rate_limited_answer_says_when_to_retry() -> None:
    assert error_response(RateLimited(0.2)).headers["retry-after"] == "1"
    assert error_response(RateLimited(2.5)).headers["retry-after"] == "3"


def test_a_new_kind_answers_as_its_nearest_ancestor_in_the_table() -> None:
    class RefundMissing(NotFound):
        code = "refund_missing"

    assert status_of(RefundMissing("no such refund")) == 404


def test_service_errors_carry_no_http_status() -> None:
    for name in dir(errors):
        kind = getattr(errors, name)
        if isinstance(kind, type) and issubclass(kind, ApiError):
            assert not hasattr(kind, "status"), name
