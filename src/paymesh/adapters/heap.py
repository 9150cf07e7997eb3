"""Giving the C heap's free memory back to the system after a burst of allocations.

The fraud checkpoint encodes tens of MB at a few hundred thousand payments of state (its
parts, then one msgpack buffer of them all) and frees it again. glibc keeps what it freed
for later use, so without this the server's RSS settles at its highest checkpoint's level,
not at what it holds (issue 18's memory soak).
`malloc_trim(0)` returns the free pages of every arena; Python's own small-object arenas
are returned by CPython itself when empty.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable


def heap_releaser() -> Callable[[], None]:
    """A function that trims the C heap, or does nothing where there is no glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # musl, macOS: no malloc_trim
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def release() -> None:
        trim(0)

    return release
