"""Request bodies as msgspec Structs: one pass decodes JSON and validates types and bounds.

The same Structs give the OpenAPI document its JSON Schemas, so the docs cannot drift from
what is enforced. Unknown fields are refused (a typo must not be silently ignored).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, TypeVar

import msgspec
from msgspec import Meta

from paymesh.domain.money import MAX_AMOUNT
from paymesh.domain.payment import (
    RECEIPT_EMAIL_MAX,
    RECEIPT_EMAIL_PATTERN,
    RECEIPT_PHONE_PATTERN,
)
from paymesh.service.errors import BadRequest

Amount = Annotated[int, Meta(ge=1, le=MAX_AMOUNT, description="minor units of the currency")]
Text = Annotated[str, Meta(min_length=1, max_length=255)]
MetaKey = Annotated[str, Meta(min_length=1, max_length=40)]
MetaValue = Annotated[str, Meta(max_length=500)]


class CreatePaymentBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    amount: Amount
    currency: Annotated[str, Meta(min_length=3, max_length=3, description="ISO 4217, any case")]
    customer_id: Text
    payment_method: Annotated[
        str, Meta(min_length=1, max_length=255, description="a PSP payment-method token")
    ]
    capture_method: Literal["automatic", "manual"] = "automatic"
    connector: Text | None = None
    description: Annotated[str, Meta(max_length=1000)] | None = None
    metadata: Annotated[dict[MetaKey, MetaValue], Meta(max_length=50)] = {}
    device_id: Text | None = None
    ip_address: Annotated[str, Meta(max_length=45)] | None = None
    country: Annotated[str, Meta(pattern="^[A-Za-z]{2}$")] | None = None
    city: Text | None = None
    receipt_email: (
        Annotated[
            str,
            Meta(
                max_length=RECEIPT_EMAIL_MAX,
                pattern=RECEIPT_EMAIL_PATTERN,
                description="the customer's confirmations are emailed here",
            ),
        ]
        | None
    ) = None
    receipt_phone: (
        Annotated[
            str,
            Meta(
                pattern=RECEIPT_PHONE_PATTERN,
                description="E.164 (+ and 8-15 digits): the customer's confirmations by SMS",
            ),
        ]
        | None
    ) = None


class CaptureBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    amount: Amount | None = None


class CancelBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """No fields yet; a body, if sent, must not carry any (they would be ignored)."""


class ReviewDecisionBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """An approval or rejection; `note`, the reviewer's reason, is kept with the review."""

    note: Annotated[str, Meta(max_length=500)] | None = None


class RefundBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    amount: Amount | None = None
    reason: Annotated[str, Meta(max_length=200)] | None = None


BODIES = [CreatePaymentBody, CaptureBody, CancelBody, RefundBody, ReviewDecisionBody]

T = TypeVar("T")

_AT = re.compile(r"at `\$\.?([^`]*)`")
_FIELD = re.compile(r"field `([^`]+)`")


def _param(message: str) -> str | None:
    match = _AT.search(message) or _FIELD.search(message)
    if not match:
        return None
    # "$.metadata[...]" or "$.items[0].x": the top-level field is what a client can fix.
    return re.split(r"[.\[]", match.group(1))[0] or None


def decode(raw: bytes, body_type: type[T], *, empty_ok: bool = False) -> T:
    if not raw.strip():
        if empty_ok:
            return msgspec.json.decode(b"{}", type=body_type)
        raise BadRequest("the request body must be a JSON object", code="body_missing")
    try:
        return msgspec.json.decode(raw, type=body_type)
    except msgspec.ValidationError as exc:
        message = str(exc)
        raise BadRequest(
            message,
            param=_param(message),
            code="parameter_unknown"
            if "unknown field" in message
            else "parameter_missing"
            if "missing required" in message
            else "parameter_invalid",
        ) from exc
    except msgspec.DecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}", code="json_invalid") from exc


# -- response bodies --------------------------------------------------------------------------
#
# What the views in `paymesh.service.views` and the route modules render, as JSON Schema for
# the OpenAPI document. Objects stay open (no `additionalProperties: false`): adding a field is
# not a breaking change for a client, and the envelope of an event carries what the bus adds.
# tests/integration/test_docs.py checks real responses against these, and schemathesis checks
# every answer it provokes, so a view that drifts from its schema fails a test.

JsonSchema = dict[str, object]


def _nullable(kind: str, **extra: object) -> JsonSchema:
    return {"type": [kind, "null"], **extra}


def _obj(required: list[str], properties: dict[str, JsonSchema]) -> JsonSchema:
    return {"type": "object", "required": required, "properties": properties}


def _ref(name: str) -> JsonSchema:
    return {"$ref": f"#/components/schemas/{name}"}


_STR: JsonSchema = {"type": "string"}
_INT: JsonSchema = {"type": "integer"}
_TIME: JsonSchema = {"type": "string", "format": "date-time"}
_PAYMENT_STATUSES = [
    "pending",
    "requires_action",
    "processing",
    "requires_capture",
    "succeeded",
    "failed",
    "canceled",
    "blocked",
    "partially_refunded",
    "refunded",
    "disputed",
]
_FRAUD: JsonSchema = {
    "type": ["object", "null"],
    "required": ["score", "factors", "decision"],
    "properties": {
        "score": _INT,
        "factors": {"type": "array", "items": _STR},
        "decision": {"type": "string", "enum": ["allow", "review", "block"]},
        "model": {
            "type": ["string", "null"],
            "description": "The learned model that scored it (its version); null: the rules alone.",
        },
    },
}


def _list_of(item: str) -> JsonSchema:
    return _obj(
        ["object", "data", "has_more", "url"],
        {
            "object": {"const": "list"},
            "data": {"type": "array", "items": _ref(item)},
            "has_more": {"type": "boolean"},
            "url": _STR,
        },
    )


RESPONSES: dict[str, JsonSchema] = {
    "Error": _obj(
        ["error"],
        {
            "error": _obj(
                ["type", "code", "message"],
                {
                    "type": {
                        "type": "string",
                        "description": "invalid_request_error, card_error, fraud_error, ...",
                    },
                    "code": _STR,
                    "message": _STR,
                    "param": {**_STR, "description": "the request field to fix, if one"},
                    "decline_code": _nullable("string", description="card errors (402)"),
                    "payment_id": {**_STR, "description": "402: the payment that was declined"},
                    "payment": {**_ref("Payment"), "description": "402: the payment as stored"},
                },
            )
        },
    ),
    "Refund": _obj(
        ["id", "object", "payment_id", "amount", "currency", "status", "created_at"],
        {
            "id": _STR,
            "object": {"const": "refund"},
            "payment_id": _STR,
            "amount": _INT,
            "currency": _STR,
            "status": {"type": "string", "enum": ["pending", "succeeded", "failed"]},
            "reason": _nullable("string"),
            "failure_reason": _nullable("string"),
            "connector_refund_id": _nullable("string"),
            "created_at": _TIME,
            "updated_at": _TIME,
        },
    ),
    "Payment": _obj(
        [
            "id",
            "object",
            "status",
            "amount",
            "currency",
            "amount_captured",
            "amount_refunded",
            "capture_method",
            "customer_id",
            "refunds",
            "created_at",
        ],
        {
            "id": _STR,
            "object": {"const": "payment"},
            "status": {"type": "string", "enum": _PAYMENT_STATUSES},
            "amount": {**_INT, "description": "minor units of the currency"},
            "currency": {**_STR, "description": "ISO 4217, upper case"},
            "amount_captured": _INT,
            "amount_refunded": _INT,
            "capture_method": {"type": "string", "enum": ["automatic", "manual"]},
            "customer_id": _STR,
            "payment_method": _STR,
            "connector": _nullable("string", description="the PSP that took the payment"),
            "connector_payment_id": _nullable("string"),
            "next_action": {
                "type": ["object", "null"],
                "description": "3-D Secure: where to send the customer",
            },
            "client_secret": {"type": "null"},
            "failure": {
                "type": ["object", "null"],
                "required": ["code", "message", "retryable"],
                "properties": {
                    "code": _STR,
                    "decline_code": _nullable("string"),
                    "message": _STR,
                    "retryable": {"type": "boolean"},
                },
            },
            "fraud": _FRAUD,
            "routing": {
                "type": ["object", "null"],
                "required": ["route", "attempts"],
                "properties": {
                    "route": {"type": ["string", "null"]},
                    "attempts": {
                        "type": "array",
                        "items": _obj(
                            ["connector", "at"],
                            {"connector": _STR, "reason": _nullable("string"), "at": _TIME},
                        ),
                    },
                },
            },
            "review": {
                "type": ["object", "null"],
                "required": ["id", "status"],
                "properties": {"id": _STR, "status": _STR},
            },
            "description": _nullable("string"),
            "metadata": {"type": "object", "additionalProperties": _STR},
            "receipt_email": _nullable("string", description="where confirmations are emailed"),
            "receipt_phone": _nullable("string", description="where confirmations go by SMS"),
            "refunds": {"type": "array", "items": _ref("Refund")},
            "created_at": _TIME,
            "updated_at": _TIME,
        },
    ),
    "Review": _obj(
        ["id", "object", "payment_id", "status", "amount", "currency", "opened_at"],
        {
            "id": _STR,
            "object": {"const": "review"},
            "payment_id": _STR,
            "status": {"type": "string", "enum": ["open", "approved", "rejected", "closed"]},
            "reason": _nullable("string"),
            "amount": _INT,
            "currency": _STR,
            "customer_id": _STR,
            "payment_status": {"type": "string", "enum": _PAYMENT_STATUSES},
            "fraud": _FRAUD,
            "opened_at": _TIME,
            "closed_at": {"type": ["string", "null"], "format": "date-time"},
            "closed_reason": _nullable("string"),
            "note": _nullable("string", description="the reviewer's note on the decision"),
        },
    ),
    "Event": {
        **_obj(
            ["id", "detail-type", "source", "account", "time", "detail"],
            {
                "version": _STR,
                "id": _STR,
                "detail-type": {**_STR, "description": "payment.succeeded, refund.created, ..."},
                "source": _STR,
                "account": {**_STR, "description": "the merchant"},
                "time": _TIME,
                "region": _STR,
                "resources": {"type": "array", "items": _STR},
                "detail": {"type": "object"},
                "traceparent": {
                    **_STR,
                    "description": "W3C trace context of the work that recorded the event; "
                    "present only while tracing is on",
                },
            },
        ),
        "description": "an event as published: the EventBridge envelope",
    },
    "Notification": _obj(
        ["id", "object", "payment_id", "event_id", "channel", "recipient", "template"],
        {
            "id": _STR,
            "object": {"const": "notification"},
            "payment_id": _STR,
            "event_id": _STR,
            "channel": _STR,
            "recipient": _STR,
            "template": _STR,
            "created_at": _TIME,
        },
    ),
    "Rule": _obj(
        ["object", "name", "state", "event_pattern", "default", "targets"],
        {
            "object": {"const": "rule"},
            "name": _STR,
            "state": {"type": "string", "enum": ["ENABLED", "DISABLED"]},
            "description": _nullable("string"),
            "event_pattern": {"type": "object"},
            "default": {"type": "boolean", "description": "a built-in rule: cannot be deleted"},
            "signing_secret": _nullable(
                "string", description="deliveries of this rule are signed with it"
            ),
            "targets": {
                "type": "array",
                "items": _obj(
                    ["id", "type"],
                    {
                        "id": _STR,
                        "type": {"type": "string", "enum": ["builtin", "http"]},
                        "name": _nullable("string"),
                        "url": _nullable("string"),
                        "retry_policy": _obj(
                            ["maximum_retry_attempts", "maximum_event_age_seconds"],
                            {"maximum_retry_attempts": _INT, "maximum_event_age_seconds": _INT},
                        ),
                    },
                ),
            },
        },
    ),
    "DeletedRule": _obj(
        ["object", "name", "deleted"],
        {"object": {"const": "rule"}, "name": _STR, "deleted": {"const": True}},
    ),
    "PatternTestResult": _obj(["result"], {"result": {"type": "boolean"}}),
    "DeadLetter": _obj(
        ["id", "object", "event_id", "rule", "target", "attempts", "errors"],
        {
            "id": _STR,
            "object": {"const": "dead_letter"},
            "event_id": _STR,
            "rule": _STR,
            "target": _obj(
                ["id", "type"],
                {
                    "id": _STR,
                    "type": _STR,
                    "name": _nullable("string"),
                    "url": _nullable("string"),
                },
            ),
            "attempts": _INT,
            "errors": {
                "type": "array",
                "items": _obj(["at", "error"], {"at": _TIME, "error": _STR}),
            },
            "event": {"anyOf": [_ref("Event"), {"type": "null"}], "description": "null: purged"},
        },
    ),
    "Redriven": _obj(
        ["id", "object", "redriven"],
        {"id": _STR, "object": {"const": "dead_letter"}, "redriven": {"const": True}},
    ),
    "RoutingTable": _obj(
        ["object", "table", "circuits"],
        {
            "object": {"const": "routing_table"},
            "table": {"type": "object", "description": "the routing table as it was PUT"},
            "circuits": {
                "type": "object",
                "additionalProperties": _STR,
                "description": "each PSP's circuit breaker: closed, open or half_open",
            },
        },
    ),
    "WebhookReceipt": _obj(
        ["received", "results"],
        {"received": {"const": True}, "results": {"type": "array"}},
    ),
    "Health": _obj(["status"], {"status": {"type": "string", "enum": ["ok"]}}),
    "Readiness": _obj(["status"], {"status": {"type": "string", "enum": ["ready", "unavailable"]}}),
}
_MONEY_BY_CURRENCY: JsonSchema = {
    "type": "array",
    "items": _obj(["amount", "currency"], {"amount": _INT, "currency": _STR}),
}
RESPONSES["Balance"] = _obj(
    ["object", "available", "pending", "accounts"],
    {
        "object": {"const": "balance"},
        "available": {
            **_MONEY_BY_CURRENCY,
            "description": "owed by the PSPs and settled per their schedule, per currency",
        },
        "pending": {**_MONEY_BY_CURRENCY, "description": "owed, not yet settled"},
        "accounts": {
            "type": "array",
            "description": "every ledger account's balance (debit > 0); per currency they sum "
            "to zero",
            "items": _obj(
                ["account", "currency", "balance"],
                {"account": _STR, "currency": _STR, "balance": _INT},
            ),
        },
    },
)
RESPONSES["BalanceTransaction"] = _obj(
    ["id", "object", "type", "amount", "fee", "net", "currency", "created", "status"],
    {
        "id": _STR,
        "object": {"const": "balance_transaction"},
        "type": {
            "type": "string",
            "enum": ["charge", "refund", "dispute", "dispute_reversal", "payout"],
        },
        "reporting_category": _STR,
        "amount": {**_INT, "description": "before fees; negative when money leaves"},
        "fee": _INT,
        "net": {**_INT, "description": "amount - fee"},
        "currency": _STR,
        "created": {**_INT, "description": "epoch seconds"},
        "available_on": {**_INT, "description": "epoch seconds of the settlement day"},
        "status": {"type": "string", "enum": ["available", "pending"]},
        "source": {**_STR, "description": "the payment"},
        "payment_id": _STR,
        "psp": _STR,
    },
)
for _name in (
    "Payment",
    "Refund",
    "Review",
    "Event",
    "Notification",
    "Rule",
    "DeadLetter",
    "BalanceTransaction",
):
    RESPONSES[f"{_name}List"] = _list_of(_name)

RESPONSES["Dispute"] = _obj(
    ["id", "object", "amount", "currency", "payment_id", "reason", "status", "created"],
    {
        "id": _STR,
        "object": {"const": "dispute"},
        "amount": {**_INT, "description": "disputed, in minor units"},
        "currency": _STR,
        "payment_id": _STR,
        "reason": _nullable("string", description="as Stripe words it, e.g. fraudulent"),
        "status": {
            "type": "string",
            "enum": ["needs_response", "won", "lost"],
            "description": "needs_response while open",
        },
        "created": {**_INT, "description": "epoch seconds"},
        "closed": _nullable("integer", description="epoch seconds; null while open"),
        "connector": _STR,
        "connector_dispute_id": {**_STR, "description": "the PSP's id of the dispute"},
    },
)
RESPONSES["DisputeList"] = _list_of("Dispute")

_STRINGS: JsonSchema = {"type": "array", "minItems": 1, "items": _STR}
_CONNECTORS: JsonSchema = {"type": "array", "items": _STR, "uniqueItems": True}

#: PUT /v1/routing. Checked by `paymesh.domain.routing.parse_table` (which also knows the
#: configured connectors), not by a Struct; this says the same for the docs.
ROUTING_TABLE_BODY: JsonSchema = {
    "type": "object",
    "additionalProperties": False,
    "description": "routes are tried in order; the first that matches the payment picks its "
    "connectors, else `default`",
    "properties": {
        "default": _CONNECTORS,
        "routes": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["connectors"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "connectors": {**_CONNECTORS, "minItems": 1},
                    "currency": _STRINGS,
                    "country": _STRINGS,
                    "payment_method_type": _STRINGS,
                    "amount_gte": {"type": "integer", "minimum": 0},
                    "amount_lt": {"type": "integer", "minimum": 0},
                    "weights": {
                        "type": "object",
                        "minProperties": 1,
                        "additionalProperties": {"type": "integer", "minimum": 0},
                    },
                    "retry_soft_declines": {"type": "boolean"},
                },
            },
        },
    },
}
