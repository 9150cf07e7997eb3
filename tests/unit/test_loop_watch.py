"""`LoopWatch`: the event loop's lag measured, and a stall logged with the code that held it."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from paymesh.adapters.metrics.loop_watch import LoopWatch


def hold_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # as a blocking call would: nothing else on the loop runs meanwhile


async def watched(watch: LoopWatch, work: float, hold: float | None = None) -> None:
    task = asyncio.create_task(watch.run())
    await asyncio.sleep(work / 2)
    if hold is not None:
        hold_the_loop(hold)
    await asyncio.sleep(work / 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_a_stall_is_measured_and_logged_once_with_the_code_that_held_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lags: list[float] = []
    watch = LoopWatch(lags.append, stall_seconds=0.1, interval=0.02)
    with caplog.at_level(logging.WARNING, logger="paymesh.adapters.metrics.loop_watch"):
        asyncio.run(watched(watch, work=0.4, hold=0.3))
    [stall] = [lag for lag in lags if lag >= 0.1]
    assert 0.28 <= stall < 1.0
    [warning] = caplog.records
    message = warning.getMessage()
    assert message.startswith(f"event loop held for {stall * 1000:.0f} ms")
    # Innermost first: the sleep's caller, then who called it.
    assert "test_loop_watch.py:hold_the_loop:" in message
    assert message.index("hold_the_loop") < message.index("test_loop_watch.py:watched:")


def test_a_free_loop_is_measured_and_nothing_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    lags: list[float] = []
    with caplog.at_level(logging.WARNING):
        asyncio.run(watched(LoopWatch(lags.append, stall_seconds=0.1, interval=0.02), work=0.3))
    assert len(lags) >= 5 and max(lags) < 0.1
    assert not caplog.records


def test_with_no_stall_threshold_the_lag_is_measured_but_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lags: list[float] = []
    with caplog.at_level(logging.WARNING):
        asyncio.run(
            watched(LoopWatch(lags.append, stall_seconds=0, interval=0.02), work=0.2, hold=0.15)
        )
    # The tick due during the hold is late by the hold less up to one interval (it may fall
    # due just before the hold ends): at least 0.15 - 0.02 s (0.134 s was seen under load,
    # failing the 0.14 this asked for before).
    assert max(lags) >= 0.125
    assert not caplog.records
