"""Errors the API answers with, each carrying its HTTP status and DESIGN.md's error shape.

    ApiError
    ├── BadRequest            400 invalid_request_error (param names the field)
    ├── Unauthorized          401 authentication_error
    ├── NotFound              404 invalid_request_error resource_missing
    ├── StateConflict         409 invalid_request_error (the state machine forbids it)
    ├── IdempotencyInFlight   409 invalid_request_error idempotency_key_in_use
    ├── IdempotencyMismatch   422 idempotency_error
    ├── RateLimited           429 rate_limit_error (+ Retry-After)
    └── PspUnavailable        503 api_error
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


class PspUnavailable(ApiError):
    status = 503
    type = "api_error"
    code = "psp_unavailable"


def from_domain(exc: DomainError) -> ApiError:
    if isinstance(exc, ValidationError):
        return BadRequest(exc.message, param=exc.param, code=exc.code)
    if isinstance(exc, InvalidTransition):
        return StateConflict(str(exc), extra={"payment_id": exc.payment_id,
                                              "payment_status": str(exc.status)})
    return BadRequest(str(exc), code=exc.code)
