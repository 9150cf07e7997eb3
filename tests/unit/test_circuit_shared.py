"""Circuit breakers told of, and telling, the other processes' openings and trials."""

from __future__ import annotations

from dataclasses import dataclass, field

from paymesh.service.circuit import CircuitBreakers


@dataclass
class Told:
    said: list[tuple[str, ...]] = field(default_factory=list)

    def opened(self, psp: str, seconds: float) -> None:
        self.said.append(("opened", psp, str(seconds)))

    def closed(self, psp: str) -> None:
        self.said.append(("closed", psp))


@dataclass
class Clock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


def breakers(clock: Clock, told: Told, spread: float = 0.5) -> CircuitBreakers:
    return CircuitBreakers(
        failure_threshold=3, cooldown=10, clock=clock, feed=told, spread=lambda: spread
    )


def test_an_opening_is_told_once_and_a_successful_trial_closes_it_everywhere() -> None:
    clock, told = Clock(), Told()
    b = breakers(clock, told)
    b.succeeded("stripe")  # closed and working: nothing to tell
    for _ in range(3):
        b.failed("stripe")
    b.failed("stripe")  # a retry begun before it opened: still open, nothing new to tell
    assert told.said == [("opened", "stripe", "10")]
    assert not b.allows("stripe")
    clock.now += 10.5
    assert b.allows("stripe")  # the trial
    b.failed("stripe")  # failed: open again, and the others are told so
    assert told.said[-1] == ("opened", "stripe", "10")
    clock.now += 10.5
    assert b.allows("stripe")
    b.succeeded("stripe")
    assert told.said[2:] == [("closed", "stripe")]
    assert b.state("stripe") == "closed"


def test_a_circuit_another_process_opened_is_open_here_a_little_longer() -> None:
    clock, told = Clock(), Told()
    b = breakers(clock, told, spread=0.5)  # 10 s and 10 % of it
    b.peer_opened("adyen", 10.0)
    assert b.state("adyen") == "open" and not b.allows("adyen")
    assert b.allows("stripe")  # only that PSP
    clock.now += 10.9
    assert b.state("adyen") == "open"  # the opener's own trial comes first
    clock.now += 0.2
    assert b.state("adyen") == "half_open" and b.allows("adyen")
    assert told.said == []  # what it was told it does not tell back


def test_being_told_never_shortens_a_longer_opening_of_its_own() -> None:
    clock, told = Clock(), Told()
    b = breakers(clock, told, spread=0.0)
    for _ in range(3):
        b.failed("stripe")  # open until 110
    clock.now += 8
    b.peer_opened("stripe", 1.0)  # until 109 by that one: 110 stands
    clock.now += 1.5
    assert b.state("stripe") == "open"


def test_a_trial_that_succeeded_elsewhere_closes_the_circuit_here() -> None:
    clock, told = Clock(), Told()
    b = breakers(clock, told)
    b.peer_opened("paypal", 10.0)
    assert not b.allows("paypal")
    b.peer_closed("paypal")
    assert b.state("paypal") == "closed" and b.allows("paypal")
    for _ in range(2):  # and it counts its own failures from nothing again
        b.failed("paypal")
    assert b.state("paypal") == "closed"
    assert told.said == []
