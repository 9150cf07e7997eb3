"""Randomness for ids and short-lived tokens: the kernel's CSPRNG, read a block at a time.

`os.urandom` (which `secrets` calls) lets go of the GIL for its system call. On the event
loop's thread each call is a point where the SQLite writer thread takes the GIL, and the loop
waits to have it back: a payment made 12 of them (the ids of its deliveries, its request ids,
its idempotency lease; counted with cProfile in `paymesh serve`), and two more for its events'
`uuid.uuid4()` ids until those came from here too. Bytes cut from one 4 KiB
read are as random as bytes from many small ones. A lock keeps two threads from being handed
the same bytes, and a forked child reads afresh rather than repeat its parent's.

Secrets that live on (API keys, webhook signing secrets) still come from `secrets` itself."""

from __future__ import annotations

import os
import threading
import time
import uuid

#: Bytes read from the kernel at a time: about 300 ids of 80 random bits each.
BLOCK = 4096


class EntropyPool:
    def __init__(self, block: int = BLOCK) -> None:
        self._block = block
        self._lock = threading.Lock()
        self._buffer = b""
        self._at = 0

    def take(self, n: int) -> bytes:
        """`n` bytes no other caller was or will be given."""
        with self._lock:
            if self._at + n > len(self._buffer):
                self._buffer = os.urandom(max(self._block, n))
                self._at = 0
            start, self._at = self._at, self._at + n
            return self._buffer[start : self._at]

    def forget(self) -> None:
        """Drop what is buffered (a forked child must not reuse its parent's bytes)."""
        self._lock = threading.Lock()  # the parent may have held it at the fork
        self._buffer, self._at = b"", 0


_POOL = EntropyPool()
os.register_at_fork(after_in_child=_POOL.forget)


def random_bytes(n: int) -> bytes:
    """`n` random bytes (as `os.urandom`), from the pool."""
    return _POOL.take(n)


def random_bits(n: int) -> int:
    """A uniformly random integer of `n` bits (as `secrets.randbits`)."""
    size = (n + 7) // 8
    return int.from_bytes(_POOL.take(size), "big") >> (8 * size - n)


def token_hex(nbytes: int) -> str:
    """`nbytes` random bytes as hex (as `secrets.token_hex`)."""
    return _POOL.take(nbytes).hex()


def uuid4() -> str:
    """A random (version 4) UUID in its usual text form (as `str(uuid.uuid4())`)."""
    return str(uuid.UUID(bytes=_POOL.take(16), version=4))


def uuid7(now_ns: int | None = None) -> str:
    """A time-ordered (version 7, RFC 9562) UUID in its usual text form: the Unix time in
    milliseconds in its first 48 bits, then 74 random ones.

    For ids that go into a B-tree index as they are made (event ids): a random id lands on
    a random page of the index, which a large database must read in and write back out for
    each one, where ids that grow with time all land on its last pages."""
    ms = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
    rand = int.from_bytes(_POOL.take(10), "big")  # 80 bits, 74 of them kept
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | rand
    value = value & ~(0xF << 76) | 0x7 << 76  # the version, 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # the variant, RFC 9562's (10)
    return str(uuid.UUID(int=value))
