"""The event bus's storage port: rules, per-target deliveries, dead letters.

Routing an event is one commit (see `Changeset.deliveries` and `Changeset.routed`): the event
is marked routed and one delivery per matching (rule, target) is created, so a crash cannot
lose or duplicate a delivery. Each delivery then lives on its own: attempts, backoff and, when
its retry policy is spent, the dead-letter queue, from which a redrive brings it back once.

Whatever carries the events (the store's own tables, or a message broker's streams), routing
asks an `EventRouter` where an event goes and a delivery is run by a `Deliverer`: both are
the service's, so a bus adapter only moves messages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

#: The merchant id of the default rules, which apply to every merchant.
DEFAULT = "*"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    maximum_retry_attempts: int = 3
    maximum_event_age_seconds: int = 3600


@dataclass(frozen=True, slots=True)
class Target:
    id: str
    type: str  # "builtin" | "http"
    name: str | None = None  # builtin handler name
    url: str | None = None  # http endpoint
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True, slots=True)
class Rule:
    merchant_id: str  # DEFAULT ("*") for a default rule that applies to every merchant
    name: str
    event_pattern: dict[str, Any]
    targets: tuple[Target, ...]
    state: str = "ENABLED"  # or DISABLED
    description: str | None = None
    signing_secret: str | None = None  # signs this rule's HTTP deliveries


@dataclass(frozen=True, slots=True)
class Attempt:
    at: datetime
    error: str


@dataclass(slots=True)
class Delivery:
    id: str
    event_id: str
    merchant_id: str
    rule: str
    target: Target
    event_time: datetime
    created_at: datetime
    next_attempt_at: datetime
    attempts: int = 0
    status: str = "pending"  # pending | delivered | dead
    history: list[Attempt] = field(default_factory=list)
    #: Routed by a default rule (merchant "*"), so signed with the deployment's secret; else
    #: by the merchant's own rule, whose secret is looked up when the delivery is sent. No
    #: secret is ever copied into a delivery (nor its row, nor a bus message).
    default_rule: bool = False


@dataclass(frozen=True, slots=True)
class RuleTarget:
    """One target of a rule an event matched: the event gets one delivery per RuleTarget."""

    rule: Rule
    target: Target


def target_label(target: Target, default_rule: bool) -> str:
    """The bounded name a target is counted under (metrics, dead-letter depth): the default
    rules' and built-in targets by name; merchants' own targets, whose ids merchants choose
    (any number of them), as one series per type (`merchant_http`)."""
    if default_rule or target.type == "builtin":
        return target.name or target.id
    return f"merchant_{target.type}"


class EventRouter(Protocol):
    def routes(self, envelope: dict[str, Any]) -> list[RuleTarget]:
        """Where an event goes: each (rule, target) of every enabled rule it matches."""
        ...


class Deliverer(Protocol):
    async def attempt(
        self,
        delivery: Delivery,
        event: dict[str, Any] | None,
        clock: Callable[[], datetime],
        rand: Callable[[], float],
        retry_base: float,
    ) -> None:
        """Run one attempt of `delivery` (`event` None: the event no longer exists). The
        delivery comes back delivered, rescheduled (its `next_attempt_at`) or dead; never
        raises for the target's failure."""
        ...


class RuleStore(Protocol):
    """Merchants' rules (the default ones live in code)."""

    async def put_rule(self, rule: Rule) -> None: ...

    async def delete_rule(self, merchant_id: str, name: str) -> bool: ...

    async def rules(self) -> list[Rule]:
        """Every stored rule of every merchant (the router compiles them all)."""
        ...


class DeliveryStore(Protocol):
    """Deliveries of events to targets: leases, attempts, dead letters and redrive. They are
    created by routing, in the commit that takes their event out of the outbox."""

    async def claim_deliveries(
        self, now: datetime, lease_seconds: float, limit: int
    ) -> list[Delivery]:
        """Due pending deliveries, leased atomically so no other worker takes them."""
        ...

    async def release_leases(self) -> int:
        """Free every lease. Only where no other worker can be running: an embedded server
        at start, whose in-flight deliveries died with the last process."""
        ...

    async def save_delivery(self, delivery: Delivery) -> None:
        """Record an attempt's result (delivered, rescheduled or dead) and drop the lease."""
        ...

    async def dead_letters(
        self, merchant_id: str, limit: int, starting_after: str | None
    ) -> tuple[list[Delivery], bool]: ...

    async def redrive(self, merchant_id: str, delivery_id: str, now: datetime) -> bool:
        """Dead -> pending, once; False if it is not (or no longer) dead."""
        ...

    async def dead_letter_depth(self) -> dict[str, int]:
        """How many deliveries are dead now (not redriven), across all merchants, per
        `target_label`: the dead-letter queue's depth, read at scrape time. Labels rather
        than (rule, target) rows: a target's type and name live in the delivery's document,
        not in columns, and dead letters are few, so a backend reads them and counts."""
        ...

    async def get_event(self, event_id: str) -> dict[str, Any] | None: ...


class BusStore(RuleStore, DeliveryStore, Protocol):
    pass
