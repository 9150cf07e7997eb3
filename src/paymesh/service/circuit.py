"""A circuit breaker per PSP, fed by the outcome of every real call.

Closed: calls go through; `failure_threshold` failures in a row (5xx, timeouts, refused
connections, 429s: the PSP not answering, never a card decline) open it. Open: the PSP is
skipped by routing for `cooldown` seconds, then one trial call is let through (half-open);
its success closes the circuit, its failure opens it for another cooldown.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


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
    ) -> None:
        self.threshold = failure_threshold
        self.cooldown = cooldown
        self.clock = clock
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
        s.failures = 0
        s.trial_running = False

    def failed(self, psp: str) -> None:
        s = self._state(psp)
        s.failures += 1
        s.trial_running = False
        if s.failures >= self.threshold:
            s.open_until = self.clock() + self.cooldown
