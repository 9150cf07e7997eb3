"""PayPal's error answers, with PayPal's names, messages and HTTP statuses.

    400 INVALID_REQUEST          malformed JSON, a missing or invalid field
    401 AUTHENTICATION_FAILURE   no Authorization header (REST APIs)
    401 invalid_token            a bearer token PayPal does not know, or expired
    401 invalid_client           wrong client id or secret at /v1/oauth2/token
    404 RESOURCE_NOT_FOUND       an unknown order, authorization, capture or refund
    409 RESOURCE_CONFLICT        the same PayPal-Request-Id is still being processed
    422 UNPROCESSABLE_ENTITY     business validation: ORDER_NOT_APPROVED, REFUND_AMOUNT_EXCEEDED...
    429 RATE_LIMIT_REACHED       too many requests
    500 INTERNAL_SERVER_ERROR    PayPal had a problem

REST errors carry `name`, `message`, `debug_id`, `details[]` (`issue`,
`description`, and for schema errors `field`, `value`, `location`) and an
`information_link`. The OAuth server answers in OAuth's own shape instead
(`error`, `error_description`), as PayPal's does.
"""

from __future__ import annotations

from typing import Any

import msgspec

from paymesh.sandbox.paypal.ids import debug_id

__all__ = ["PayPalError"]

_DOCS = "https://developer.paypal.com/docs/api/"
_INVALID_REQUEST = "Request is not well-formed, syntactically incorrect, or violates schema."
_UNPROCESSABLE = (
    "The requested action could not be performed, semantically incorrect, or "
    "failed business validation."
)


class PayPalError(Exception):
    """An error answer: HTTP status and body. `body()` stamps a `debug_id` on REST errors."""

    def __init__(self, status: int, payload: dict[str, Any]) -> None:
        super().__init__(payload.get("message") or payload.get("error_description") or "")
        self.status = status
        self.payload = payload

    @property
    def issue(self) -> str | None:
        details = self.payload.get("details") or [{}]
        issue = details[0].get("issue")
        return issue if isinstance(issue, str) else None

    def body(self, debug: str | None = None) -> bytes:
        payload = self.payload
        if "name" in payload and "debug_id" not in payload:
            payload = {
                "name": payload["name"],
                "message": payload["message"],
                "debug_id": debug or debug_id(),
                **payload,
            }
        return msgspec.json.encode(payload)

    @classmethod
    def _rest(
        cls,
        status: int,
        name: str,
        message: str,
        api: str,
        details: list[dict[str, Any]] | None = None,
    ) -> PayPalError:
        payload: dict[str, Any] = {"name": name, "message": message}
        if details:
            payload["details"] = details
            anchor = details[0]["issue"]
        else:
            anchor = name
        payload["links"] = [
            {"href": f"{_DOCS}{api}/#error-{anchor}", "rel": "information_link", "method": "GET"}
        ]
        return cls(status, payload)

    @classmethod
    def invalid_request(
        cls,
        issue: str,
        description: str,
        *,
        field: str | None = None,
        value: object = None,
        location: str = "body",
        api: str = "orders/v2",
    ) -> PayPalError:
        detail: dict[str, Any] = {}
        if field is not None:
            detail["field"] = field
            if value is not None:
                detail["value"] = str(value)
            detail["location"] = location
        detail.update(issue=issue, description=description)
        return cls._rest(400, "INVALID_REQUEST", _INVALID_REQUEST, api, [detail])

    @classmethod
    def missing(cls, field: str, api: str = "orders/v2") -> PayPalError:
        return cls.invalid_request(
            "MISSING_REQUIRED_PARAMETER",
            "A required field / parameter is missing.",
            field=field,
            api=api,
        )

    @classmethod
    def invalid_value(
        cls, field: str, value: object, description: str | None = None, api: str = "orders/v2"
    ) -> PayPalError:
        return cls.invalid_request(
            "INVALID_PARAMETER_VALUE",
            description or "The value of a field is invalid.",
            field=field,
            value=value,
            api=api,
        )

    @classmethod
    def unprocessable(
        cls, issue: str, description: str, *, field: str | None = None, api: str = "orders/v2"
    ) -> PayPalError:
        detail: dict[str, Any] = {"field": field, "location": "body"} if field else {}
        detail.update(issue=issue, description=description)
        return cls._rest(422, "UNPROCESSABLE_ENTITY", _UNPROCESSABLE, api, [detail])

    @classmethod
    def not_found(cls, field: str, value: str, api: str = "orders/v2") -> PayPalError:
        return cls._rest(
            404,
            "RESOURCE_NOT_FOUND",
            "The specified resource does not exist.",
            api,
            [
                {
                    "field": field,
                    "value": value,
                    "location": "path",
                    "issue": "INVALID_RESOURCE_ID",
                    "description": "Specified resource ID does not exist. Please check "
                    "the resource ID and try again.",
                }
            ],
        )

    @classmethod
    def unknown_url(cls) -> PayPalError:
        return cls(
            404,
            {"name": "NOT_FOUND", "message": "The specified resource does not exist.", "links": []},
        )

    @classmethod
    def method_not_supported(cls) -> PayPalError:
        return cls(
            405,
            {
                "name": "METHOD_NOT_SUPPORTED",
                "message": "The server does not implement the requested HTTP method.",
                "links": [],
            },
        )

    @classmethod
    def authentication_failure(cls) -> PayPalError:
        return cls(
            401,
            {
                "name": "AUTHENTICATION_FAILURE",
                "message": "Authentication failed due to invalid authentication "
                "credentials or a missing Authorization header.",
                "links": [{"href": f"{_DOCS}overview/#error", "rel": "information_link"}],
            },
        )

    @classmethod
    def invalid_token(cls) -> PayPalError:
        return cls(
            401, {"error": "invalid_token", "error_description": "Access Token not found in cache"}
        )

    @classmethod
    def invalid_client(cls) -> PayPalError:
        return cls(
            401, {"error": "invalid_client", "error_description": "Client Authentication failed"}
        )

    @classmethod
    def unsupported_grant_type(cls, grant: str | None) -> PayPalError:
        description = "Grant Type is NULL" if not grant else f"Grant Type {grant} is not supported"
        return cls(400, {"error": "unsupported_grant_type", "error_description": description})

    @classmethod
    def request_in_progress(cls, api: str = "orders/v2") -> PayPalError:
        return cls._rest(
            409,
            "RESOURCE_CONFLICT",
            "The server has detected a conflict while processing this request.",
            api,
            [
                {
                    "issue": "PREVIOUS_REQUEST_IN_PROGRESS",
                    "description": "A previous request on this resource is currently in "
                    "progress. Please wait for some time and try again.",
                }
            ],
        )

    @classmethod
    def rate_limited(cls) -> PayPalError:
        return cls._rest(
            429,
            "RATE_LIMIT_REACHED",
            "Too many requests. Blocked due to rate limiting.",
            "orders/v2",
        )

    @classmethod
    def internal_error(cls) -> PayPalError:
        return cls._rest(
            500, "INTERNAL_SERVER_ERROR", "An internal server error has occurred.", "orders/v2"
        )
