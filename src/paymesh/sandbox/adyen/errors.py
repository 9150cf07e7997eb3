"""Adyen's error answers: `{"status", "errorCode", "message", "errorType"}`, as Checkout sends them.

    400 702 validation   the body is not a JSON object
    401 000 security     no `X-API-Key`
    403 901 security     a merchant account the API credential may not use
    404 000 validation   an unknown route, or an unknown pspReference on the sandbox's own GET
    409 704 validation   the Idempotency-Key's first request is still running (transient)
    422 100 validation   `amount` missing
    422 101 validation   a raw card number that fails the Luhn check
    422 130 validation   `reference` missing
    422 137 validation   an amount that is not a positive integer, or more than is left
    422 167 validation   the pspReference of a modification is unknown
    422 702 validation   another required field missing, or the wrong type
    422 704 validation   an Idempotency-Key reused with another request (not transient)
    422 800 validation   a storedPaymentMethodId the vault does not hold
    422 010 validation   the payment is not in a state that allows the modification
    429 000 internal     rate limited (injected)
    500 000 internal     Adyen had a problem (injected, or a bug in the sandbox)

The codes Adyen documents are used where they exist (000, 010, 100, 101, 130, 137, 167, 704,
800, 901); 702 stands in for Adyen's other field errors. Error 704 carries Adyen's
`transient-error` header, which says whether the same request may be sent again later.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["AdyenError"]


class AdyenError(Exception):
    def __init__(
        self,
        status: int,
        error_code: str,
        message: str,
        error_type: str = "validation",
        *,
        transient: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.error_type = error_type
        self.transient = transient

    def body(self) -> bytes:
        fields: dict[str, Any] = {
            "status": self.status,
            "errorCode": self.error_code,
            "message": self.message,
            "errorType": self.error_type,
        }
        return msgspec.json.encode(fields)

    def headers(self) -> dict[str, str]:
        if self.transient is None:
            return {}
        return {"transient-error": "true" if self.transient else "false"}

    # -- the request as a whole -------------------------------------------------------------

    @classmethod
    def unauthorized(cls) -> AdyenError:
        return cls(401, "000", "HTTP Status Response - Unauthorized", "security")

    @classmethod
    def invalid_merchant_account(cls) -> AdyenError:
        return cls(403, "901", "Invalid Merchant Account", "security")

    @classmethod
    def unparsable(cls, detail: str) -> AdyenError:
        return cls(400, "702", f"Unexpected input: {detail}")

    @classmethod
    def not_found(cls, what: str) -> AdyenError:
        return cls(404, "000", f"Not Found: {what}")

    @classmethod
    def internal(cls) -> AdyenError:
        return cls(500, "000", "An internal error happened", "internal")

    @classmethod
    def too_many_requests(cls) -> AdyenError:
        return cls(429, "000", "too many requests", "internal")

    # -- idempotency ----------------------------------------------------------------------

    @classmethod
    def key_in_flight(cls) -> AdyenError:
        return cls(409, "704", "request already processed or in progress", transient=True)

    @classmethod
    def key_reused(cls) -> AdyenError:
        return cls(422, "704", "request already processed or in progress", transient=False)

    @classmethod
    def key_too_long(cls) -> AdyenError:
        return cls(422, "702", "Idempotency-Key is longer than 64 characters")

    # -- fields ---------------------------------------------------------------------------

    @classmethod
    def amount_missing(cls) -> AdyenError:
        return cls(422, "100", "Required object 'amount' is not provided.")

    @classmethod
    def invalid_amount(cls, detail: str) -> AdyenError:
        return cls(422, "137", f"Invalid amount specified: {detail}")

    @classmethod
    def reference_missing(cls) -> AdyenError:
        return cls(422, "130", "Required field 'reference' is not provided.")

    @classmethod
    def field(cls, message: str) -> AdyenError:
        return cls(422, "702", message)

    @classmethod
    def invalid_card_number(cls) -> AdyenError:
        return cls(422, "101", "Invalid card number")

    @classmethod
    def stored_method_unknown(cls) -> AdyenError:
        return cls(422, "800", "Contract not found")

    # -- modifications --------------------------------------------------------------------

    @classmethod
    def unknown_payment(cls) -> AdyenError:
        return cls(422, "167", "Original pspReference required for this operation")

    @classmethod
    def not_allowed(cls, why: str) -> AdyenError:
        return cls(422, "010", f"Not allowed: {why}")
