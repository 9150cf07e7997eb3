"""Errors the service raises, each carrying DESIGN.md's error shape: a type, a code, a message
(and the field it is about, and facts a client acts on). No HTTP status: the HTTP layer maps
each kind to one (`paymesh.entrypoints.http.errors`), the CLI to a message and exit code.

    ApiError              api_error internal_error
    ├── BadRequest        invalid_request_error (param names the field)
    │   └── CardDataRefused   invalid_request_error card_data_not_allowed
    ├── Unauthorized      authentication_error
    ├── NotFound          invalid_request_error resource_missing
    ├── StateConflict     invalid_request_error (the state machine forbids it)
    ├── IdempotencyInFlight   invalid_request_error idempotency_key_in_use
    ├── IdempotencyMismatch   idempotency_error
    ├── RateLimited       rate_limit_error (retry_after: seconds)
    └── PspUnavailable    api_error
"""

from __future__ import annotations

from typing import Any

from paymesh.domain.errors import DomainError, InvalidTransition, ValidationError


class ApiError(Exception):
    type = "api_error"
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
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
    type = "invalid_request_error"
    code = "parameter_invalid"


class CardDataRefused(BadRequest):
    """A card number where paymesh takes PSP tokens only; never echoes the number."""

    code = "card_data_not_allowed"

    def __init__(self, param: str | None) -> None:
        where = f" (in {param})" if param else ""
        super().__init__(
            f"the request holds what looks like a card number{where}; paymesh "
            "never takes card numbers: send the PSP's payment-method token, and "
            "keep card data out of descriptions, metadata and ids",
            param=param,
        )


class Unauthorized(ApiError):
    type = "authentication_error"
    code = "api_key_invalid"


class NotFound(ApiError):
    type = "invalid_request_error"
    code = "resource_missing"


class StateConflict(ApiError):
    type = "invalid_request_error"
    code = "payment_unexpected_state"


class IdempotencyInFlight(ApiError):
    type = "invalid_request_error"
    code = "idempotency_key_in_use"


class IdempotencyMismatch(ApiError):
    type = "idempotency_error"
    code = "idempotency_key_reused"


class RateLimited(ApiError):
    type = "rate_limit_error"
    code = "rate_limit"

    def __init__(self, retry_after: float) -> None:
        super().__init__("too many requests for this API key; retry after the Retry-After delay")
        self.retry_after = retry_after


class PspUnavailable(ApiError):
    type = "api_error"
    code = "psp_unavailable"


def from_domain(exc: DomainError) -> ApiError:
    if isinstance(exc, ValidationError):
        return BadRequest(exc.message, param=exc.param, code=exc.code)
    if isinstance(exc, InvalidTransition):
        return StateConflict(
            str(exc), extra={"payment_id": exc.payment_id, "payment_status": str(exc.status)}
        )
    return BadRequest(str(exc), code=exc.code)
