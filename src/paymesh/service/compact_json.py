"""JSON as the service writes it: compact UTF-8, keys as given or sorted.

The standard library's encoder, set up to write byte for byte what msgspec (the codec the HTTP
edge and the stores use) writes for what the service encodes: strings, integers, booleans,
None, lists, dicts and dataclasses. So the service needs no codec library, and what was kept
before (stored replies, idempotency fingerprints) still compares equal. A float, which only a
merchant's routing table holds, may be written in another notation (1e-05, not 0.00001) and
reads back as the same number. NaN and infinity are not JSON: they raise ValueError.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

_compact = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


_sorted = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=True, default=_plain
)


def encode(value: Any) -> bytes:
    return _compact.encode(value).encode()


def encode_sorted(value: Any) -> bytes:
    """Keys sorted at every level (a dataclass's fields too): one text for one value."""
    return _sorted.encode(value).encode()


def decode(raw: bytes) -> Any:
    return json.loads(raw)
