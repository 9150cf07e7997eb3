"""Giving the C heap's free memory back to the system after a burst of allocations.

The fraud checkpoint encodes tens of MB at a few hundred thousand payments of state (its
parts, then one msgpack buffer of them all) and frees it again. glibc keeps what it freed
for later use, so without this the server's RSS settles at its highest checkpoint's level,
not at what it holds (issue 18's memory soak).

Two things, both needed:

- `pin_mmap_threshold`: glibc serves a large allocation with its own mmap and unmaps it when
  freed, but the first time it frees one it raises its threshold to that size (up to 32
  MiB), so from then on blocks of that size come from the heap and stay there when freed.
  In the soak that was a step of 10-25 MiB in RSS after each checkpoint (the heap's free
  bytes rose by as much while the bytes in use did not). Pinning the threshold keeps every
  block of 1 MiB or more in a mapping of its own, given back the moment it is freed.
- `heap_releaser`: `malloc_trim(0)` returns the free pages of every arena (smaller blocks,
  the many parts of a snapshot); Python's own small-object arenas are returned by CPython
  itself when empty.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

#: glibc's `mallopt` parameters (malloc.h); not exported by any Python module.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Blocks this big or bigger get a mapping of their own. Under it lie nearly all of the
#: server's allocations (objects, the SQLite page cache's pages, request bodies); over it, the
#: rare big buffers (a checkpoint's parts, a big dict's table), for which an mmap and a munmap
#: cost nothing next to filling them.
MMAP_THRESHOLD = 1 << 20
#: Free bytes at the heap's top kept before glibc gives them back. Pinning the mmap threshold
#: also pins this at its default of 128 KiB, and the heap then shrank and grew again under
#: load (brk calls, fresh pages faulted in). The checkpoint's explicit trim still returns it.
TRIM_THRESHOLD = 16 << 20


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def pin_mmap_threshold(size: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at `size` (which also stops it moving); False where there is
    no glibc `mallopt` (musl, macOS), where nothing is changed."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, size)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def heap_releaser() -> Callable[[], None]:
    """A function that trims the C heap, or does nothing where there is no glibc."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is None:  # musl, macOS: no malloc_trim
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def release() -> None:
        trim(0)

    return release
