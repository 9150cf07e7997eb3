"""The fixed schedule: arrival `i` is due at `t0 + i / rate` and starts as its own task
whether or not earlier ones have answered. Its latency runs from that due time, so a server
(or a client pool) that queues cannot hide it: no coordinated omission."""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Awaitable, Callable, Sequence

from .stats import PhaseStats
from .workload import Arrival

TIMER_TICK = 0.001  # event-loop timer resolution, seconds


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class OpenLoop:
    """Starts `run_one(arrival, due)` for each arrival on schedule; never waits on answers."""

    def __init__(
        self,
        stats: PhaseStats,
        run_one: Callable[[Arrival, float], Awaitable[None]],
        max_inflight: int,
    ) -> None:
        self._stats = stats
        self._run_one = run_one
        self._max_inflight = max_inflight
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def inflight(self) -> int:
        return len(self._tasks)

    async def run(self, arrivals: Sequence[Arrival], rate: float, t0: float) -> None:
        """`t0` is the first due time (perf_counter), a few ms ahead so arrival 0 is on time."""
        stats = self._stats
        stats.scheduled = len(arrivals)
        interval = 1.0 / rate
        cpu_before = cpu_seconds()
        await self._schedule(arrivals, t0, interval)
        if self._tasks:
            await asyncio.wait(self._tasks)
        stats.generator_cpu = cpu_seconds() - cpu_before
        # A phase lasts at least its schedule; longer if answers trail behind it.
        stats.elapsed = max(stats.last_answer, t0 + len(arrivals) * interval) - t0

    async def _schedule(self, arrivals: Sequence[Arrival], t0: float, interval: float) -> None:
        # Launch everything already due, then sleep to the next due time. Timers have 1 ms
        # resolution (uvloop truncates shorter sleeps to 0, which would spin a core we share
        # with the server), so never sleep less than the tick: at high rates each wake-up
        # sends a small batch, up to ~1 ms late, and that lateness is in the latency.
        i, total = 0, len(arrivals)
        while i < total:
            now = time.perf_counter()
            while i < total and t0 + i * interval <= now:
                self._launch(arrivals[i], t0 + i * interval)
                i += 1
            if i < total:
                await asyncio.sleep(max(TIMER_TICK, t0 + i * interval - time.perf_counter()))

    def _launch(self, arrival: Arrival, due: float) -> None:
        if len(self._tasks) >= self._max_inflight:
            # Sending it anyway would just grow an unbounded backlog in the client.
            self._stats.dropped += 1
            return
        self._stats.sent += 1
        task = asyncio.get_running_loop().create_task(self._run_one(arrival, due))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
