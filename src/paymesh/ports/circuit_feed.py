"""The circuit feed port: a PSP circuit one process opens or closes, told to the others.

Each process keeps a circuit breaker per PSP (`paymesh.service.circuit`). Alone, every
process must fail on its own before its circuit opens, and each lets its own trial through
after every cooldown: with k processes, k times the calls reach a failing PSP, and a PSP
that fails with 5xx leaves each such payment pending until recovery settles it
(`benchmarks/failover.py` measures both). Told what the others found, a process opens at
once and, when a trial succeeds anywhere, closes at once.

Fire-and-forget, at most once, like the breakers' own state: a process that misses a message
is where it was before there was a feed, and learns from its own calls. Both calls are made
in the payment path, so they never block and never raise. `NoCircuitFeed` is the embedded
mode's: one process, nobody to tell.
"""

from __future__ import annotations

from typing import Protocol


class CircuitFeed(Protocol):
    def opened(self, psp: str, seconds: float) -> None:
        """This process opened `psp`'s circuit for `seconds`."""

    def closed(self, psp: str) -> None:
        """A trial call to `psp` succeeded in this process: its circuit is closed."""


class NoCircuitFeed:
    def opened(self, psp: str, seconds: float) -> None:
        pass

    def closed(self, psp: str) -> None:
        pass


class CircuitListener(Protocol):
    """Applies what other processes said (the breakers); called on the event loop."""

    def peer_opened(self, psp: str, seconds: float) -> None:
        """Another process opened `psp`'s circuit for `seconds` from now."""

    def peer_closed(self, psp: str) -> None:
        """Another process's trial call to `psp` succeeded."""
