"""Parsing of the transaction the fraud core scores (and of feedback) from replay records."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

# Re-exported: the fraud core and its callers know it by this name.
from paymesh.domain.fraud_transaction import Transaction as Transaction

OUTCOMES = ("approved", "declined", "disputed")


class TransactionError(ValueError):
    """A replay record that cannot become a `Transaction`; the message names the field."""


_OPTIONAL_STR = (
    "card_fingerprint",
    "device_id",
    "ip_address",
    "country",
    "city",
    "merchant_id",
    "channel",
    "merchant_category",
)


def _timestamp(value: Any) -> float:
    if type(value) is float:  # the usual case, first
        return value
    if isinstance(value, bool):
        raise TransactionError(f"timestamp: not a time: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            msg = f"timestamp: not ISO 8601 nor epoch seconds: {value!r}"
            raise TransactionError(msg) from None
        if parsed.tzinfo is None:  # a naive time in a payment stream is taken as UTC
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    raise TransactionError(f"timestamp: not a time: {value!r}")


def _amount(value: Any) -> int:
    if type(value) is int and value >= 0:  # the usual case, first
        return value
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TransactionError(f"amount: expected integer minor units, got {value!r}")
    try:
        amount = int(value)
    except ValueError:
        raise TransactionError(f"amount: expected integer minor units, got {value!r}") from None
    if amount < 0:
        raise TransactionError(f"amount: negative: {amount}")
    return amount


def _float(name: str, value: Any) -> float | None:
    if type(value) is float:  # the usual case, first
        return value
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TransactionError(f"{name}: not a number: {value!r}") from None


def _approved(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "approved"):
        return True
    if text in ("false", "0", "no", "declined"):
        return False
    raise TransactionError(f"approved: not a boolean: {value!r}")


def _required_str(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if value is None or value == "":
        raise TransactionError(f"{name}: missing")
    return str(value)


def parse_transaction(record: dict[str, Any]) -> Transaction:
    """Build a `Transaction` from a JSON or CSV record (CSV gives strings; empty means absent)."""
    if "timestamp" not in record or record["timestamp"] in (None, ""):
        raise TransactionError("timestamp: missing")
    if "amount" not in record or record["amount"] in (None, ""):
        raise TransactionError("amount: missing")
    optional = {}
    for name in _OPTIONAL_STR:
        value = record.get(name)
        optional[name] = None if value is None or value == "" else str(value)
    return Transaction(
        transaction_id=_required_str(record, "transaction_id"),
        timestamp=_timestamp(record["timestamp"]),
        customer_id=_required_str(record, "customer_id"),
        amount=_amount(record["amount"]),
        currency=_required_str(record, "currency"),
        lat=_float("lat", record.get("lat")),
        lon=_float("lon", record.get("lon")),
        approved=_approved(record.get("approved")),
        **optional,
    )


def parse_outcome(record: dict[str, Any]) -> tuple[str, str, float]:
    """(transaction id, outcome, time) of a feedback record: one with an `outcome` field."""
    outcome = str(record.get("outcome", "")).strip().lower()
    if outcome not in OUTCOMES:
        raise TransactionError(
            f"outcome: expected one of {OUTCOMES}, got {record.get('outcome')!r}"
        )
    if record.get("timestamp") in (None, ""):
        raise TransactionError("timestamp: missing")
    return _required_str(record, "transaction_id"), outcome, _timestamp(record["timestamp"])
