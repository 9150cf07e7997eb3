"""Domain events: what happened to a payment, recorded by the aggregate, sent via the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from paymesh.domain.ledger import Movement


def _uuid4() -> str:
    return str(uuid.uuid4())


_new_event_id: Callable[[], str] = _uuid4


def draw_event_ids_from(factory: Callable[[], str]) -> None:
    """Where new events' ids (UUIDs, as text) come from. The domain reads no randomness or
    clock of its own choosing: `uuid.uuid4()` unless the process gives a source (a server's
    is time-ordered, from the service's pooled randomness: `paymesh.entropy.uuid7`)."""
    global _new_event_id
    _new_event_id = factory


@dataclass(frozen=True, slots=True)
class DomainEvent:
    """One fact, e.g. `payment.succeeded`. `detail` is plain JSON data."""

    type: str
    payment_id: str
    merchant_id: str
    time: datetime
    detail: dict[str, Any]
    id: str = field(default_factory=lambda: _new_event_id())
    #: The W3C trace context of the work that recorded it, stamped by the service when it
    #: commits (the domain knows no tracer): the delivery of the event continues that trace.
    traceparent: str | None = None
    #: The money it announces moving, booked in the ledger in the same commit; not part of
    #: the envelope (the detail says it in the merchant's terms).
    movements: tuple[Movement, ...] = ()

    def envelope(self, region: str = "local") -> dict[str, Any]:
        """The EventBridge envelope this event is published in (DESIGN.md, Events), with a
        top-level `traceparent` when the event has one (EventBridge itself gets it carried
        in the detail, see `paymesh.adapters.aws.envelopes`)."""
        envelope: dict[str, Any] = {
            "version": "0",
            "id": self.id,
            "source": _SOURCES.get(self.type.split(".", 1)[0], "payment.service"),
            "detail-type": self.type,
            "account": self.merchant_id,
            "time": self.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": region,
            "resources": [self.payment_id],
            "detail": self.detail,
        }
        if self.traceparent:
            envelope["traceparent"] = self.traceparent
        return envelope


_SOURCES = {"fraud": "fraud.service", "review": "fraud.service"}
