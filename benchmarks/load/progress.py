"""The progress bar: the whole sweep, and the phase running now with its live figures.

Redrawn by a task on the event loop every 0.25 s, not by rich's own refresh thread, so it
costs the generator (which shares 2 cores with the server) next to nothing. On a terminal
only; either way, one line per finished phase is printed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column

from .stats import PhaseStats, percentile

TICK = 0.25
WINDOW = 2000  # answers the live p99 is taken over


class SweepProgress:
    def __init__(self, console: Console, phases: int, enabled: bool) -> None:
        self._console = console
        self._enabled = enabled and console.is_terminal
        self._progress = Progress(
            TextColumn("{task.description}", table_column=Column(no_wrap=True, min_width=15)),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}", table_column=Column(no_wrap=True, ratio=1)),
            console=console,
            auto_refresh=False,
            disable=not self._enabled,
        )
        self._sweep = self._progress.add_task("sweep", total=phases, info="")
        self._phase: TaskID | None = None

    def __enter__(self) -> SweepProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    @contextlib.asynccontextmanager
    async def phase(
        self, label: str, stats: PhaseStats, inflight: Callable[[], int]
    ) -> AsyncIterator[None]:
        task = self._progress.add_task(label, total=stats.scheduled or None, info="")
        self._phase = task

        async def tick() -> None:
            while True:
                self._update(task, stats, inflight())
                await asyncio.sleep(TICK)

        ticker = asyncio.get_running_loop().create_task(tick())
        try:
            yield
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            self._update(task, stats, 0)
            self._progress.remove_task(task)
            self._progress.advance(self._sweep)
            self._progress.refresh()

    def note(self, text: str) -> None:
        """A line above the bars (the one-line summary of a finished phase)."""
        self._progress.console.print(text, highlight=False)

    def status(self, text: str) -> None:
        self._progress.update(self._sweep, info=text)
        self._progress.refresh()

    def _update(self, task: TaskID, stats: PhaseStats, inflight: int) -> None:
        if not self._enabled:
            return
        recent = sorted(stats.api_latency[-WINDOW:])
        p99 = percentile(recent, 99)
        info = (
            f"{inflight} in flight · {stats.requests} answers · "
            f"p99 {'-' if p99 is None else f'{p99 * 1000:.1f}'} ms · {stats.failures()} errors"
        )
        if stats.name == "payments":
            info += (
                f" · {stats.outcomes['blocked']} fraud-blocked"
                f" · delivered {len(stats.delivered_latency)}/{stats.e2e_expected}"
            )
        self._progress.update(task, completed=stats.sent + stats.dropped, info=info)
        self._progress.refresh()
