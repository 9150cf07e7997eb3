"""Attribute values in DynamoDB's wire form, and the keys and positions items are stored at.

The low-level client speaks `{"S": ...}`, `{"N": "<digits>"}`, `{"B": bytes}`: numbers
travel as strings, so they are parsed straight to `int` here and never become `Decimal` or
`float`. Times are whole microseconds since the epoch (UTC) computed with integer
arithmetic, so a datetime reads back exactly as it was written.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

Item = dict[str, dict[str, Any]]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
#: Width of a zero-padded microsecond time in a sort key: years past 5000 still fit.
_WIDTH = 20


def us(at: datetime) -> int:
    """Microseconds since the epoch, exactly (a float timestamp would round)."""
    return (at - EPOCH) // _US


def at_us(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def seconds(at: datetime) -> int:
    """Whole epoch seconds, rounded up: what DynamoDB's TTL attribute holds."""
    return -(-us(at) // 1_000_000)


def padded(value: int) -> str:
    """A non-negative integer as a string that sorts as the number does."""
    return f"{max(value, 0):0{_WIDTH}d}"


def key(*parts: str) -> str:
    """`a#b#c`, with `%` and `#` in a part escaped so no two tuples share a key."""
    return "#".join(p.replace("%", "%25").replace("#", "%23") for p in parts)


def shard(name: str, shards: int) -> int:
    """A stable shard of `name` (crc32: the same in every process, unlike `hash`)."""
    return zlib.crc32(name.encode()) % shards


# -- values -------------------------------------------------------------------------------


def S(value: str) -> dict[str, Any]:
    return {"S": value}


def N(value: int) -> dict[str, Any]:
    return {"N": str(value)}


def B(value: bytes) -> dict[str, Any]:
    return {"B": bytes(value)}


def BOOL(value: bool) -> dict[str, Any]:
    return {"BOOL": value}


def s(item: Item, name: str) -> str:
    return str(item[name]["S"])


def s_or(item: Item, name: str, default: str | None) -> str | None:
    value = item.get(name)
    return default if value is None else str(value["S"])


def n(item: Item, name: str) -> int:
    return int(item[name]["N"])


def n_or(item: Item, name: str) -> int | None:
    value = item.get(name)
    return None if value is None else int(value["N"])


def b(item: Item, name: str) -> bytes:
    return bytes(item[name]["B"])


def b_or(item: Item, name: str) -> bytes | None:
    value = item.get(name)
    return None if value is None else bytes(value["B"])


def flag(item: Item, name: str) -> bool:
    value = item.get(name)
    return value is not None and bool(value["BOOL"])


def when(item: Item, name: str) -> datetime:
    return at_us(n(item, name))


def when_or(item: Item, name: str) -> datetime | None:
    value = n_or(item, name)
    return None if value is None else at_us(value)
