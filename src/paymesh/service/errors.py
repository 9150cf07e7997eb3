"""Errors the API answers with, each carrying its HTTP status and DESIGN.md's error shape.

    ApiError
    ├── BadRequest            400 invalid_request_error (param names the field)
    │   └── CardDataRefused   400 invalid_request_error card_data_not_allowed
    ├── Unauthorized          401 authentication_error
    ├── NotFound              404 invalid_request_error resource_missing
    ├── StateConflict         409 invalid_request_error (the state machine forbids it)
    ├── IdempotencyInFlight   409 invalid_request_error idempotency_key_in_use
    ├── RequestTimeout        408 invalid_request_error request_timeout (headers too slow)
    ├── RequestTooLarge       413 invalid_request_error request_too_large
    ├── UnsupportedMediaType  415 invalid_request_error unsupported_media_type
    ├── IdempotencyMismatch   422 idempotency_error
    ├── RateLimited           429 rate_limit_error (+ Retry-After)
    ├── HeadersTooLarge       431 invalid_request_error request_headers_too_large
    ├── PspUnavailable        503 api_error
    └── Overloaded            503 api_error server_overloaded (too many connections)

The HTTP server itself (entrypoints/http/server.py) answers 400, 408, 431 and 503 in this
shape too, for what never reaches the app: bytes that are not HTTP, slow or huge headers.
"""

from __future__ import annotations

from typing import Any

from paymesh.domain.errors import DomainError, InvalidTransition, ValidationError


class ApiError(Exception):
    status = 500
    type = "api_error"
    code = "internal_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "code": self.code, "message": self.message}
        if self.param is not None:
            error["param"] = self.param
        error.update(self.extra)
        return {"error": error}


class BadRequest(ApiError):
    status = 400
    type = "invalid_request_error"
    code = "parameter_invalid"


class CardDataRefused(BadRequest):
    """A card number where paymesh takes PSP tokens only; never echoes the number."""

    code = "card_data_not_allowed"

    def __init__(self, param: str | None) -> None:
        where = f" (in {param})" if param else ""
        super().__init__(f"the request holds what looks like a card number{where}; paymesh "
                         "never takes card numbers: send the PSP's payment-method token, and "
                         "keep card data out of descriptions, metadata and ids", param=param)


class Unauthorized(ApiError):
    status = 401
    type = "authentication_error"
    code = "api_key_invalid"


class NotFound(ApiError):
    status = 404
    type = "invalid_request_error"
    code = "resource_missing"


class StateConflict(ApiError):
    status = 409
    type = "invalid_request_error"
    code = "payment_unexpected_state"


class IdempotencyInFlight(ApiError):
    status = 409
    type = "invalid_request_error"
    code = "idempotency_key_in_use"


class RequestTimeout(ApiError):
    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class RequestTooLarge(ApiError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class UnsupportedMediaType(ApiError):
    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"


class IdempotencyMismatch(ApiError):
    status = 422
    type = "idempotency_error"
    code = "idempotency_key_reused"


class RateLimited(ApiError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit"

    def __init__(self, retry_after: float) -> None:
        super().__init__("too many requests for this API key; retry after the Retry-After delay")
        self.retry_after = retry_after


class HeadersTooLarge(ApiError):
    status = 431
    type = "invalid_request_error"
    code = "request_headers_too_large"


class PspUnavailable(ApiError):
    status = 503
    type = "api_error"
    code = "psp_unavailable"


class Overloaded(ApiError):
    status = 503
    type = "api_error"
    code = "server_overloaded"


def from_domain(exc: DomainError) -> ApiError:
    if isinstance(exc, ValidationError):
        return BadRequest(exc.message, param=exc.param, code=exc.code)
    if isinstance(exc, InvalidTransition):
        return StateConflict(str(exc), extra={"payment_id": exc.payment_id,
                                              "payment_status": str(exc.status)})
    return BadRequest(str(exc), code=exc.code)
