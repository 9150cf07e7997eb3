"""A circuit breaker per PSP, fed by the outcome of every real call.

Closed: calls go through; `failure_threshold` failures in a row (5xx, timeouts, refused
connections, 429s: the PSP not answering, never a card decline) open it. Open: the PSP is
skipped by routing for `cooldown` seconds, then one trial call is let through (half-open);
its success closes the circuit, its failure opens it for another cooldown.

With several processes, an opening and a successful trial are told to the others through a
`CircuitFeed` (`paymesh.ports.circuit_feed`), which hands theirs back: a circuit another
process opened is open here too, so the PSP is not failed against once per process. A
circuit opened by another process stays open here a random 0-20 % longer than there, so
that after the cooldown one process, not all of them at once, makes the trial call, and
tells the others how it went.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from paymesh.ports.circuit_feed import CircuitFeed, NoCircuitFeed

#: How much longer than its opener a told process keeps a circuit open, at most: the
#: opener's trial comes first, and its outcome reaches the others before their own would.
PEER_SPREAD = 0.2


@dataclass(slots=True)
class _State:
    failures: int = 0
    open_until: float = 0.0
    trial_running: bool = False


class CircuitBreakers:
    def __init__(
        self,
        failure_threshold: int = 5,
        cooldown: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        feed: CircuitFeed | None = None,
        spread: Callable[[], float] = random.random,
    ) -> None:
        self.threshold = failure_threshold
        self.cooldown = cooldown
        self.clock = clock
        #: Where this process's openings and successful trials go (set once the feed is
        #: built: it needs the breakers to hand the others' back to).
        self.feed: CircuitFeed = feed if feed is not None else NoCircuitFeed()
        self._spread = spread
        self._states: dict[str, _State] = {}

    def _state(self, psp: str) -> _State:
        state = self._states.get(psp)
        if state is None:
            state = self._states[psp] = _State()
        return state

    def state(self, psp: str) -> str:
        s = self._state(psp)
        if s.failures < self.threshold:
            return "closed"
        return "open" if self.clock() < s.open_until else "half_open"

    def allows(self, psp: str) -> bool:
        """May a call go to `psp` now? In half-open state, only one trial at a time."""
        s = self._state(psp)
        current = self.state(psp)
        if current == "closed":
            return True
        if current == "open" or s.trial_running:
            return False
        s.trial_running = True
        return True

    def succeeded(self, psp: str) -> None:
        s = self._state(psp)
        was_closed = s.failures < self.threshold
        s.failures = 0
        s.trial_running = False
        if not was_closed:  # a trial (or a call begun before it opened) got through
            self.feed.closed(psp)

    def failed(self, psp: str) -> None:
        s = self._state(psp)
        was_open = self.state(psp) == "open"
        s.failures += 1
        s.trial_running = False
        if s.failures >= self.threshold:
            s.open_until = self.clock() + self.cooldown
            if not was_open:  # closed or half-open until now: the others should know
                self.feed.opened(psp, self.cooldown)

    def peer_opened(self, psp: str, seconds: float) -> None:
        """Another process opened `psp`'s circuit for `seconds`: open here too (never
        shortened, should this process have opened it for longer)."""
        s = self._state(psp)
        s.failures = max(s.failures, self.threshold)
        until = self.clock() + seconds * (1 + PEER_SPREAD * self._spread())
        s.open_until = max(s.open_until, until)

    def peer_closed(self, psp: str) -> None:
        """Another process's trial call to `psp` succeeded: closed here too."""
        s = self._state(psp)
        s.failures = 0
        s.open_until = 0.0
