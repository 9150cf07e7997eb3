"""Identifiers: a prefix that says what it is, then time-ordered randomness.

The millisecond time first keeps ids of one kind roughly in creation order (friendly to
B-tree indexes and to people reading logs); 80 random bits after it make collisions moot.
"""

from __future__ import annotations

import time
from contextvars import ContextVar

from paymesh.service.entropy import random_bits

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U


def _b32(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        out.append(_ALPHABET[n & 31])
        n >>= 5
    return "".join(reversed(out))


def new_id(prefix: str) -> str:
    return f"{prefix}_{_b32(time.time_ns() // 1_000_000, 9)}{_b32(random_bits(80), 16)}"


#: The payment the running task works on, for its log lines (`payment_id`): set where a
#: payment's id is first known, so the lines of the request that creates it carry it too.
#: Each request and each delivery runs in its own task, so the value never leaks into
#: another's.
working_on: ContextVar[str | None] = ContextVar("paymesh_payment", default=None)
