"""The HTTP status of every error, and the errors only the HTTP edge raises.

Service errors carry a type and a code; the status they answer with is decided here, in one
table, by the error's kind (its nearest class in the table):

    ApiError                  500 api_error internal_error
    ├── BadRequest            400 (CardDataRefused too)
    ├── Unauthorized          401
    ├── NotFound              404
    ├── StateConflict         409
    ├── IdempotencyInFlight   409
    ├── IdempotencyMismatch   422
    ├── RateLimited           429 (+ Retry-After)
    ├── PspUnavailable        503
    │   the HTTP edge's own, about the request as HTTP or the server:
    ├── RequestTimeout        408 invalid_request_error request_timeout (headers too slow)
    ├── RequestTooLarge       413 invalid_request_error request_too_large
    ├── UnsupportedMediaType  415 invalid_request_error unsupported_media_type
    ├── HeadersTooLarge       431 invalid_request_error request_headers_too_large
    ├── Overloaded            503 api_error server_overloaded (too many connections)
    └── RouteRefused          404 route_not_found, 405 method_not_allowed (Starlette's own)

The HTTP server itself (server.py) answers 400, 408, 431 and 503 in this shape too, for what
never reaches the app: bytes that are not HTTP, slow or huge headers.
"""

from __future__ import annotations

from paymesh.service.errors import (
    ApiError,
    BadRequest,
    IdempotencyInFlight,
    IdempotencyMismatch,
    NotFound,
    PspUnavailable,
    RateLimited,
    StateConflict,
    Unauthorized,
)


class RequestTimeout(ApiError):
    type = "invalid_request_error"
    code = "request_timeout"


class RequestTooLarge(ApiError):
    type = "invalid_request_error"
    code = "request_too_large"


class UnsupportedMediaType(ApiError):
    type = "invalid_request_error"
    code = "unsupported_media_type"


class HeadersTooLarge(ApiError):
    type = "invalid_request_error"
    code = "request_headers_too_large"


class Overloaded(ApiError):
    type = "api_error"
    code = "server_overloaded"


class RouteRefused(ApiError):
    """Starlette's refusal of a request no route takes, with its status: 404 (no such path),
    405 (the path, not this method), or another it chose."""

    type = "invalid_request_error"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message, code="route_not_found" if status == 404 else "method_not_allowed")
        self.status = status


STATUS: dict[type[ApiError], int] = {
    ApiError: 500,
    BadRequest: 400,
    Unauthorized: 401,
    NotFound: 404,
    StateConflict: 409,
    IdempotencyInFlight: 409,
    IdempotencyMismatch: 422,
    RateLimited: 429,
    PspUnavailable: 503,
    RequestTimeout: 408,
    RequestTooLarge: 413,
    UnsupportedMediaType: 415,
    HeadersTooLarge: 431,
    Overloaded: 503,
}


def status_of(error: ApiError) -> int:
    if isinstance(error, RouteRefused):
        return error.status
    for kind in type(error).__mro__:
        status = STATUS.get(kind)
        if status is not None:
            return status
    return 500
