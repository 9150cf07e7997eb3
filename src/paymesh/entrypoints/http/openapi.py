"""The OpenAPI 3.1 document, its schemas generated from the very Structs that validate."""

from __future__ import annotations

from typing import Any

import msgspec

from paymesh.entrypoints.http import schemas
from paymesh.entrypoints.http.rules_api import PatternTestBody, RuleBody

_ERROR = {"$ref": "#/components/schemas/Error"}
_OBJECT = {"type": "object"}


def _op(
    summary: str,
    body: str | None = None,
    ok: int = 200,
    errors: tuple[int, ...] = (400, 401, 404, 429),
    idempotent: bool = False,
    params: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            str(ok): {"description": "OK", "content": {"application/json": {"schema": _OBJECT}}},
            **{
                str(code): {
                    "description": "error",
                    "content": {"application/json": {"schema": _ERROR}},
                }
                for code in errors
            },
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
    components["Error"] = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["type", "code", "message"],
                "properties": {
                    "type": {"type": "string"},
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "param": {"type": "string"},
                },
            }
        },
    }
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
            ),
        },
        "/v1/payments/{payment_id}": {"get": _op("Retrieve a payment", params=(pid,))},
        "/v1/payments/{payment_id}/events": {"get": _op("The payment's timeline", params=(pid,))},
        "/v1/payments/{payment_id}/notifications": {
            "get": _op("Confirmations sent for a payment", params=(pid,))
        },
        "/v1/payments/{payment_id}/capture": {
            "post": _op(
                "Capture an authorised payment",
                "CaptureBody",
                200,
                write_errors,
                idempotent=True,
                params=(pid,),
            )
        },
        "/v1/payments/{payment_id}/cancel": {
            "post": _op(
                "Cancel a payment", "CancelBody", 200, write_errors, idempotent=True, params=(pid,)
            )
        },
        "/v1/payments/{payment_id}/refunds": {
            "post": _op(
                "Refund a payment", "RefundBody", 201, write_errors, idempotent=True, params=(pid,)
            )
        },
        "/v1/refunds/{refund_id}": {"get": _op("Retrieve a refund", params=(_path("refund_id"),))},
        "/v1/events": {
            "get": _op(
                "The merchant's event log",
                params=(_query("type"), _query("limit", "integer"), _query("starting_after")),
            )
        },
        "/v1/rules": {"get": _op("Rules: the defaults and the merchant's own")},
        "/v1/rules/test": {
            "post": _op("TestEventPattern", "PatternTestBody", 200, (400, 401, 429))
        },
        "/v1/rules/{name}": {
            "put": _op(
                "Create or replace a rule",
                "RuleBody",
                200,
                (400, 401, 429),
                params=(_path("name"),),
            ),
            "delete": _op("Delete a rule", errors=(401, 404, 409, 429), params=(_path("name"),)),
        },
        "/v1/dead-letters": {
            "get": _op(
                "Dead letters, newest first",
                params=(_query("limit", "integer"), _query("starting_after")),
            )
        },
        "/v1/dead-letters/{delivery_id}/redrive": {
            "post": _op("Deliver a dead letter again", params=(_path("delivery_id"),))
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
            )
        },
        "/v1/reviews/{review_id}": {"get": _op("Retrieve a review", params=(_path("review_id"),))},
        "/v1/reviews/{review_id}/approve": {
            "post": _op(
                "Approve: capture the held payment",
                errors=(400, 401, 404, 409, 429, 503),
                params=(_path("review_id"),),
            )
        },
        "/v1/reviews/{review_id}/reject": {
            "post": _op(
                "Reject: void the held payment",
                errors=(400, 401, 404, 409, 429, 503),
                params=(_path("review_id"),),
            )
        },
        "/v1/routing": {
            "get": _op("The merchant's routing table and each PSP's circuit"),
            "put": {
                **_op("Replace the routing table", errors=(400, 401, 429)),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _OBJECT}},
                },
            },
        },
        "/webhooks/{psp}": {
            "post": {
                **_op(
                    "A PSP's webhook; its signature is the authentication",
                    errors=(400, 404),
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
        "/healthz": {"get": {**_op("Liveness", errors=()), "security": []}},
        "/readyz": {"get": {**_op("Readiness", errors=(503,)), "security": []}},
    }
    for path, operations in paths.items():
        for method, op in operations.items():
            if method in ("post", "put"):  # a body: its size, and on /v1 its media type
                for status in (413, 415) if path.startswith("/v1/") else (413,):
                    op["responses"].setdefault(
                        str(status),
                        {
                            "description": "error",
                            "content": {"application/json": {"schema": _ERROR}},
                        },
                    )
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
