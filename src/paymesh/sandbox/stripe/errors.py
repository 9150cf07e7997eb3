"""Stripe's error responses: `{"error": {...}}` with Stripe's types, codes and statuses.

    401 invalid_request_error   no or bad API key
    400 invalid_request_error   parameter_missing, parameter_unknown, parameter_invalid_integer,
                                payment_intent_unexpected_state, amount_too_large,
                                url_invalid, ...
    400 idempotency_error       an Idempotency-Key reused with other parameters
    402 card_error              a decline, with the PaymentIntent embedded
    404 invalid_request_error   resource_missing ("No such payment_intent: 'pi_x'")
    409 invalid_request_error   idempotency_key_in_use
    429 invalid_request_error   rate_limit
    500 api_error               Stripe had a problem

The official libraries pick their exception class from the status and `type`,
so those two must be exact; messages follow Stripe's wording.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["StripeError"]

_DOCS = "https://stripe.com/docs/error-codes/"


class StripeError(Exception):
    """An error answer: HTTP status plus the body of Stripe's `error` object."""

    def __init__(self, status: int, error: dict[str, Any]) -> None:
        super().__init__(error.get("message", ""))
        self.status = status
        self.error = error

    def body(self) -> bytes:
        return msgspec.json.encode({"error": self.error})

    @classmethod
    def invalid_request(
        cls, message: str, *, code: str | None = None, param: str | None = None, status: int = 400
    ) -> StripeError:
        error: dict[str, Any] = {"type": "invalid_request_error", "message": message}
        if code is not None:
            error["code"] = code
            error["doc_url"] = _DOCS + code.replace("_", "-")
        if param is not None:
            error["param"] = param
        return cls(status, error)

    @classmethod
    def parameter_missing(cls, param: str) -> StripeError:
        return cls.invalid_request(
            f"Missing required param: {param}.", code="parameter_missing", param=param
        )

    @classmethod
    def parameter_unknown(cls, param: str) -> StripeError:
        return cls.invalid_request(
            f"Received unknown parameter: {param}", code="parameter_unknown", param=param
        )

    @classmethod
    def invalid_integer(cls, param: str, value: object) -> StripeError:
        return cls.invalid_request(
            f"Invalid integer: {value}", code="parameter_invalid_integer", param=param
        )

    @classmethod
    def resource_missing(
        cls, kind: str, object_id: str, param: str, status: int = 404
    ) -> StripeError:
        return cls.invalid_request(
            f"No such {kind}: '{object_id}'", code="resource_missing", param=param, status=status
        )

    @classmethod
    def url_invalid(cls, param: str) -> StripeError:
        return cls.invalid_request("Not a valid URL", code="url_invalid", param=param)

    @classmethod
    def unexpected_state(cls, message: str) -> StripeError:
        return cls.invalid_request(message, code="payment_intent_unexpected_state")

    @classmethod
    def card_declined(cls, last_payment_error: Any, payment_intent: Any) -> StripeError:
        """402 for a declined confirmation; the body carries the failed PaymentIntent."""
        error = msgspec.to_builtins(last_payment_error)
        error["payment_intent"] = payment_intent
        return cls(402, error)

    @classmethod
    def no_api_key(cls) -> StripeError:
        return cls.invalid_request(
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
            "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, "
            "or we can help at https://support.stripe.com/.",
            status=401,
        )

    @classmethod
    def invalid_api_key(cls, key: str) -> StripeError:
        # Stripe masks all but the prefix and the last four characters.
        shown = key[:8] + "*" * max(len(key) - 12, 0) + key[-4:] if len(key) > 12 else "****"
        return cls.invalid_request(f"Invalid API Key provided: {shown}", status=401)

    @classmethod
    def idempotency_key_in_use(cls, key: str) -> StripeError:
        return cls.invalid_request(
            "There is currently another in-progress request using this Idempotent Key (that "
            "probably means you submitted twice, and the other request is still going "
            f"through): {key}. Please try again later.",
            code="idempotency_key_in_use",
            status=409,
        )

    @classmethod
    def idempotency_mismatch(cls, key: str) -> StripeError:
        return cls(
            400,
            {
                "type": "idempotency_error",
                "message": "Keys for idempotent requests can only be used with the same "
                "parameters they were first used with. Try using a key other than "
                f"'{key}' if you meant to execute a different request.",
            },
        )

    @classmethod
    def rate_limited(cls) -> StripeError:
        return cls.invalid_request(
            "Request rate limit exceeded. Learn more about rate limits here "
            "https://stripe.com/docs/rate-limits.",
            code="rate_limit",
            status=429,
        )

    @classmethod
    def api_error(cls) -> StripeError:
        return cls(500, {"type": "api_error", "message": "An unknown error occurred"})

    @classmethod
    def unrecognized_url(cls, method: str, path: str) -> StripeError:
        return cls.invalid_request(
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
            "or we can help at https://support.stripe.com/.",
            status=404,
        )
