"""Domain errors. Each says which rule was broken; entrypoints map them to HTTP statuses.

DomainError
├── ValidationError            bad input            -> 400 invalid_request_error
│   ├── InvalidAmount
│   └── UnsupportedCurrency
├── InvalidTransition          state machine says no -> 409
└── RefundNotAllowed           more than is left     -> 400 (param amount)
"""

from __future__ import annotations


class DomainError(Exception):
    code = "domain_error"


class ValidationError(DomainError):
    code = "parameter_invalid"

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidAmount(ValidationError):
    code = "amount_invalid"


class UnsupportedCurrency(ValidationError):
    code = "currency_unsupported"

    def __init__(self, currency: object) -> None:
        super().__init__(f"unsupported currency: {currency!r} is not an ISO 4217 code", "currency")


class InvalidTransition(DomainError):
    code = "payment_unexpected_state"

    def __init__(self, payment_id: str, status: str, action: str) -> None:
        super().__init__(f"cannot {action} payment {payment_id}: its status is {status}")
        self.payment_id = payment_id
        self.status = status
        self.action = action


class RefundNotAllowed(ValidationError):
    code = "amount_too_large"
