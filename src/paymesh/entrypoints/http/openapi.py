"""The OpenAPI 3.1 document, its schemas generated from the very Structs that validate."""

from __future__ import annotations

from typing import Any

import msgspec

from paymesh.entrypoints.http import schemas
from paymesh.entrypoints.http.rules_api import PatternTestBody, RuleBody

_ERROR = {"$ref": "#/components/schemas/Error"}


def _schema(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


#: What each error status means here; every one has the body `Error`.
_ERROR_MEANING = {
    400: "invalid request: the error's `param` names the field to fix",
    401: "no API key, or a revoked or unknown one",
    402: "the payment was declined (card_error) or blocked (fraud_error); `payment` is in it",
    404: "no such object for this merchant",
    409: "the object's state does not allow it, or an Idempotency-Key reused differently",
    413: "the body is too large",
    415: "the body is not application/json",
    422: "the request is well formed but cannot be carried out",
    429: "rate limit: slow down (Retry-After)",
    503: "the PSP or the store is unavailable: retry with the same Idempotency-Key",
}


def _error_response(code: int) -> dict[str, Any]:
    return {
        "description": _ERROR_MEANING.get(code, "error"),
        "content": {"application/json": {"schema": _ERROR}},
    }


def _op(
    summary: str,
    body: str | None = None,
    ok: int = 200,
    errors: tuple[int, ...] = (400, 401, 404, 429),
    idempotent: bool = False,
    params: tuple[dict[str, Any], ...] = (),
    returns: str = "",
) -> dict[str, Any]:
    assert returns, f"{summary}: every operation documents its success body"
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            str(ok): {
                "description": "OK",
                "content": {"application/json": {"schema": _schema(returns)}},
            },
            **{str(code): _error_response(code) for code in errors},
        },
    }
    parameters = list(params)
    if idempotent:
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 255},
            }
        )
    if parameters:
        op["parameters"] = parameters
    if body:
        op["requestBody"] = {
            "required": body == "CreatePaymentBody",
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        }
    return op


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": kind}}


def build_openapi() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        [*schemas.BODIES, RuleBody, PatternTestBody], ref_template="#/components/schemas/{name}"
    )
    components.update(schemas.RESPONSES)
    components["RoutingTableBody"] = schemas.ROUTING_TABLE_BODY
    pid = _path("payment_id")
    write_errors = (400, 401, 402, 404, 409, 422, 429, 503)
    paths = {
        "/v1/payments": {
            "post": _op(
                "Create and confirm a payment",
                "CreatePaymentBody",
                201,
                write_errors,
                idempotent=True,
                returns="Payment",
            ),
            "get": _op(
                "List payments, newest first",
                params=(
                    _query("customer_id"),
                    _query("status"),
                    _query("created_gte"),
                    _query("created_lt"),
                    _query("limit", "integer"),
                    _query("starting_after"),
                ),
                returns="PaymentList",
            ),
        },
        "/v1/payments/{payment_id}": {
            "get": _op("Retrieve a payment", params=(pid,), returns="Payment")
        },
        "/v1/payments/{payment_id}/events": {
            "get": _op("The payment's timeline", params=(pid,), returns="EventList")
        },
        "/v1/payments/{payment_id}/notifications": {
            "get": _op(
                "Confirmations sent for a payment", params=(pid,), returns="NotificationList"
            )
        },
        "/v1/payments/{payment_id}/capture": {
            "post": _op(
                "Capture an authorised payment",
                "CaptureBody",
                200,
                write_errors,
                idempotent=True,
                params=(pid,),
                returns="Payment",
            )
        },
        "/v1/payments/{payment_id}/cancel": {
            "post": _op(
                "Cancel a payment",
                "CancelBody",
                200,
                write_errors,
                idempotent=True,
                params=(pid,),
                returns="Payment",
            )
        },
        "/v1/payments/{payment_id}/refunds": {
            "post": _op(
                "Refund a payment",
                "RefundBody",
                201,
                write_errors,
                idempotent=True,
                params=(pid,),
                returns="Refund",
            )
        },
        "/v1/refunds/{refund_id}": {
            "get": _op("Retrieve a refund", params=(_path("refund_id"),), returns="Refund")
        },
        "/v1/events": {
            "get": _op(
                "The merchant's event log",
                params=(_query("type"), _query("limit", "integer"), _query("starting_after")),
                returns="EventList",
            )
        },
        "/v1/balance": {
            "get": _op(
                "What the PSPs owe the merchant, available and pending, per currency",
                errors=(401, 429),
                returns="Balance",
            )
        },
        "/v1/balance_transactions": {
            "get": _op(
                "Money movements (charges with their fees, refunds, disputes, payouts)",
                params=(
                    _query("payment_id"),
                    _query("limit", "integer"),
                    _query("starting_after"),
                ),
                returns="BalanceTransactionList",
            )
        },
        "/v1/disputes": {
            "get": _op(
                "Disputes (chargebacks) the PSPs opened, newest first",
                errors=(400, 401, 429),
                params=(_query("limit", "integer"), _query("starting_after")),
                returns="DisputeList",
            )
        },
        "/v1/disputes/{dispute_id}": {
            "get": _op("Retrieve a dispute", params=(_path("dispute_id"),), returns="Dispute")
        },
        "/v1/rules": {"get": _op("Rules: the defaults and the merchant's own", returns="RuleList")},
        "/v1/rules/test": {
            "post": _op(
                "TestEventPattern",
                "PatternTestBody",
                200,
                (400, 401, 429),
                returns="PatternTestResult",
            )
        },
        "/v1/rules/{name}": {
            "put": _op(
                "Create or replace a rule",
                "RuleBody",
                200,
                (400, 401, 429),
                params=(_path("name"),),
                returns="Rule",
            ),
            "delete": _op(
                "Delete a rule",
                errors=(401, 404, 409, 429),
                params=(_path("name"),),
                returns="DeletedRule",
            ),
        },
        "/v1/dead-letters": {
            "get": _op(
                "Dead letters, newest first",
                params=(_query("limit", "integer"), _query("starting_after")),
                returns="DeadLetterList",
            )
        },
        "/v1/dead-letters/{delivery_id}/redrive": {
            "post": _op(
                "Deliver a dead letter again", params=(_path("delivery_id"),), returns="Redriven"
            )
        },
        "/v1/reviews": {
            "get": _op(
                "The manual review queue",
                params=(
                    {
                        "name": "status",
                        "in": "query",
                        "required": False,
                        "schema": {
                            "type": "string",
                            "enum": ["open", "approved", "rejected", "closed"],
                        },
                    },
                    _query("limit", "integer"),
                    _query("starting_after"),
                ),
                returns="ReviewList",
            )
        },
        "/v1/reviews/{review_id}": {
            "get": _op("Retrieve a review", params=(_path("review_id"),), returns="Review")
        },
        "/v1/reviews/{review_id}/approve": {
            "post": _op(
                "Approve: capture the held payment",
                "ReviewDecisionBody",
                errors=(400, 401, 404, 409, 429, 503),
                params=(_path("review_id"),),
                returns="Review",
            )
        },
        "/v1/reviews/{review_id}/reject": {
            "post": _op(
                "Reject: void the held payment",
                "ReviewDecisionBody",
                errors=(400, 401, 404, 409, 429, 503),
                params=(_path("review_id"),),
                returns="Review",
            )
        },
        "/v1/routing": {
            "get": _op(
                "The merchant's routing table and each PSP's circuit", returns="RoutingTable"
            ),
            "put": {
                **_op("Replace the routing table", errors=(400, 401, 429), returns="RoutingTable"),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _schema("RoutingTableBody")}},
                },
            },
        },
        "/webhooks/{psp}": {
            "post": {
                **_op(
                    "A PSP's webhook; its signature is the authentication",
                    errors=(400, 404),
                    returns="WebhookReceipt",
                    params=(
                        {
                            "name": "psp",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "enum": ["stripe", "adyen", "paypal"]},
                        },
                    ),
                ),
                "security": [],
            }
        },
        "/healthz": {"get": {**_op("Liveness", errors=(), returns="Health"), "security": []}},
        "/readyz": {
            "get": {
                **_op("Readiness", errors=(), returns="Readiness"),
                "responses": {
                    "200": {
                        "description": "the store answers",
                        "content": {"application/json": {"schema": _schema("Readiness")}},
                    },
                    "503": {
                        "description": "the store does not answer",
                        "content": {"application/json": {"schema": _schema("Readiness")}},
                    },
                },
                "security": [],
            },
        },
    }
    # Adyen wants its own plain-text acknowledgement, the others a JSON receipt.
    paths["/webhooks/{psp}"]["post"]["responses"]["200"]["content"]["text/plain"] = {
        "schema": {"type": "string", "example": "[accepted]"}
    }
    for path, operations in paths.items():
        for method, op in operations.items():
            if method in ("post", "put"):  # a body: its size, and on /v1 its media type
                for status in (413, 415) if path.startswith("/v1/") else (413,):
                    op["responses"].setdefault(str(status), _error_response(status))
    return {
        "openapi": "3.1.0",
        "info": {"title": "paymesh", "version": "1"},
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }
