"""Fault injection: validated configuration, reproducible draws, releasable holds."""

from __future__ import annotations

import asyncio
import time

import pytest

from paymesh.sandbox.faults import FaultInjector, InvalidFaultConfig, Rejection, RequestFaults


def test_nothing_configured_means_no_faults_and_no_draws() -> None:
    injector = FaultInjector(seed=1)
    assert injector.draw() == RequestFaults()
    # No random number was consumed: the seeded sequence is untouched.
    assert injector.rng.random() == FaultInjector(seed=1).rng.random()


def test_partial_updates_and_read_back() -> None:
    injector = FaultInjector()
    injector.update({"latency_ms": 50, "error_rate": 0.25})
    injector.update({"webhook_reorder": True})
    config = injector.as_dict()
    assert config["latency_ms"] == 50
    assert config["error_rate"] == 0.25
    assert config["webhook_reorder"] is True
    assert config["timeout_hold_ms"] == 30_000


@pytest.mark.parametrize(
    ("change", "mentions"),
    [
        ({"latency": 1}, "latency"),
        ({"error_rate": 2}, "between 0 and 1"),
        ({"rate_limit_rate": "0.5"}, "number"),
        ({"timeout_rate": None}, "number"),
        ({"latency_ms": 1.5}, "whole number"),
        ({"webhook_delay_ms": -5}, "between 0"),
        ({"webhook_reorder": "yes"}, "true or false"),
        ({"webhook_duplicate_rate": True}, "number"),
    ],
)
def test_bad_changes_are_refused_whole(change: dict[str, object], mentions: str) -> None:
    injector = FaultInjector()
    before = injector.as_dict()
    with pytest.raises(InvalidFaultConfig, match=mentions):
        injector.update({"latency_ms": 10, **change})
    assert injector.as_dict() == before


def test_rates_of_one_always_fire_in_priority_order() -> None:
    injector = FaultInjector(seed=5)
    injector.update({"error_rate": 1.0, "rate_limit_rate": 1.0, "timeout_rate": 1.0})
    assert injector.draw().rejection is Rejection.SERVER_ERROR
    injector.update({"error_rate": 0.0})
    faults = injector.draw()
    assert faults.rejection is Rejection.RATE_LIMITED
    assert faults.hold_response_s == 0  # a refused request is not also held
    injector.update({"rate_limit_rate": 0.0, "timeout_hold_ms": 250, "latency_ms": 20})
    assert injector.draw() == RequestFaults(latency_s=0.02, hold_response_s=0.25)


def test_same_seed_same_faults() -> None:
    def sequence(seed: int) -> list[Rejection | None]:
        injector = FaultInjector(seed=seed)
        injector.update({"error_rate": 0.3, "rate_limit_rate": 0.3, "webhook_duplicate_rate": 0.5})
        return [injector.draw().rejection for _ in range(50)]

    first = sequence(11)
    assert first == sequence(11)
    assert {Rejection.SERVER_ERROR, Rejection.RATE_LIMITED, None} <= set(first)
    assert first != sequence(12)


async def test_hold_ends_when_released_or_abandoned() -> None:
    injector = FaultInjector()
    started = time.monotonic()
    await injector.hold(0.05)
    assert time.monotonic() - started >= 0.05

    async def hang_up() -> None:
        await asyncio.sleep(0.01)

    started = time.monotonic()
    await injector.hold(5.0, hang_up)
    assert time.monotonic() - started < 1.0

    asyncio.get_running_loop().call_later(0.01, injector.release_holds)
    started = time.monotonic()
    await injector.hold(5.0)
    assert time.monotonic() - started < 1.0
