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


class CaptureBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    amount: Amount | None = None


class CancelBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """No fields yet; a body, if sent, must not carry any (they would be ignored)."""


class EmptyBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A decision takes no parameters; a body, if sent, must be an empty object."""


class RefundBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    amount: Amount | None = None
    reason: Annotated[str, Meta(max_length=200)] | None = None


BODIES = [CreatePaymentBody, CaptureBody, CancelBody, RefundBody]

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
