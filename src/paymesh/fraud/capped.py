"""Capped maps that reach their lasting size when they fill, not long after.

A dict that is kept at `cap` entries by deleting one for each added one (an LRU of
entities, the feedback memory's index) still grows after it is full. CPython never
reuses a deleted entry's slot: each insert takes a fresh one, and when the table runs
out it is rebuilt at the smallest power of two over three times the entries it holds.
Filled one insert at a time, its last rebuild while filling leaves it at 2^k with its
entries only just over a third of that; once full, inserts go on using slots, and the
next rebuild (at three times `cap`) takes it to 2^(k+1), where it stays. For a cap of
200,000 that came at the map's 349,525th insert, in the middle of a server's life:
the memory soak saw the server's RSS step up by 42 MiB at 350,000 payments, long after
its caches were full (`benchmarks/README.md`, the memory soak).

`settle` runs that last rebuild as soon as the map is full: it adds and deletes one
key until the table is rebuilt. Rebuilds after that are at the same size.
"""

from __future__ import annotations

import sys
from typing import Any

#: A key no caller keeps (callers key by ids and fingerprints); lengthened if one does.
_PROBE = "\x00paymesh:settling"


def settle(table: dict[str, Any]) -> bool:
    """Rebuild `table` (full: at its cap) at the size its later rebuilds keep.

    At most four times its length in adds and deletes (a table holding n entries has
    at most 2^k * 2/3 slots, 2^k <= 6n, before it must be rebuilt); some milliseconds for
    a cap of 200,000, once in a map's life. False when no rebuild changed its size: it
    was settled already. Its entries, and their order, are as they were.
    """
    probe = _PROBE
    while probe in table:
        probe += "\x00"
    before = sys.getsizeof(table)
    for _ in range(4 * len(table) + 64):
        table[probe] = None
        del table[probe]
        if sys.getsizeof(table) != before:
            return True
    return False
