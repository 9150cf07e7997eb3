"""How long a process's event loop is held, and by what code.

Every request a process is answering waits while its event loop runs something else: a
task that runs 50 ms without awaiting adds 50 ms to every payment in flight. `LoopWatch`
measures that and names the culprit:

- the lag: a timer due every `interval` seconds is observed for how late it fired, into
  `paymesh_event_loop_lag_seconds` (ten samples a second by default; a stall shorter than
  the interval shows only if it covers a timer's due time);
- a stall: a watcher thread checks the timer's heartbeat every quarter of `stall_seconds`.
  When the heartbeat is that overdue, it reads where the loop's thread is (file, function
  and line of the innermost frames: no values, so nothing of a payment or a secret can
  reach the log), and the next beat logs one warning with the stall's length and that
  place. The watcher needs the interpreter to look: C code that holds it without letting
  go (a pass of the cycle collector) is not seen, and the place named may then be where the
  loop went after it.

Stalls of this kind made most of the p99 at 50-100 payments/s (issue 18): the daily
reconciliation's (a TLS context made per report fetch, 25-88 ms each, nine a pass) and the
cycle collector's full passes (`paymesh.adapters.collector`); `benchmarks/README.md`, "What
held the event loop".
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

__all__ = ["LoopWatch", "where"]

log = logging.getLogger(__name__)

#: Frames named in a stall's warning, innermost first.
FRAMES = 8


def where(frame: FrameType | None, frames: int = FRAMES) -> str:
    """`file.py:function:line < caller.py:function:line < ...`, innermost first."""
    parts: list[str] = []
    while frame is not None and len(parts) < frames:
        code = frame.f_code
        parts.append(f"{Path(code.co_filename).name}:{code.co_name}:{frame.f_lineno}")
        frame = frame.f_back
    return " < ".join(parts) or "(no Python frame)"


class LoopWatch:
    """Run `run()` as a task of the loop to watch; cancel it to stop (its thread ends too)."""

    def __init__(
        self,
        observe: Callable[[float], None],
        *,
        stall_seconds: float = 0.1,
        interval: float = 0.1,
    ) -> None:
        self.observe = observe
        self.stall_seconds = stall_seconds
        self.interval = interval
        #: When the timer last fired (monotonic); the watcher reads it from its thread.
        self._beat = 0.0
        #: The beat a stall came after, and where the loop's thread was in it: a stack seen
        #: late (the loop already going again) is not charged to the next stall.
        self._seen: tuple[float, str] | None = None
        self._loop_thread = 0
        self._stop = threading.Event()

    async def run(self) -> None:
        self._loop_thread = threading.get_ident()
        self._beat = time.monotonic()
        if self.stall_seconds > 0:
            threading.Thread(target=self._watch, name="paymesh-loop-watch", daemon=True).start()
        try:
            while True:
                beat = self._beat
                await asyncio.sleep(self.interval)
                now = time.monotonic()
                lag = max(0.0, now - beat - self.interval)
                seen, self._seen = self._seen, None
                self._beat = now
                self.observe(lag)
                if self.stall_seconds > 0 and lag >= self.stall_seconds:
                    log.warning(
                        "event loop held for %.0f ms; its thread was in: %s",
                        lag * 1000,
                        seen[1]
                        if seen is not None and seen[0] == beat
                        # C code that never let go, or a stall over before the watcher looked.
                        else "(not seen: the watcher had no turn while it lasted)",
                    )
        finally:
            self._stop.set()

    def _watch(self) -> None:
        looked_at = 0.0  # the beat whose stall was looked at (once per stall)
        while not self._stop.wait(self.stall_seconds / 4):
            beat = self._beat
            overdue = time.monotonic() - beat - self.interval
            if overdue >= self.stall_seconds and beat != looked_at:
                looked_at = beat
                self._seen = (beat, where(sys._current_frames().get(self._loop_thread)))
