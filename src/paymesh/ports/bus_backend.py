"""The store an event bus runs on: the store port and the bus's own tables in one backend.

One backend because routing is one commit across both: the event leaves the store's outbox
in the same write that creates its deliveries (`paymesh.ports.bus`).
"""

from __future__ import annotations

from typing import Protocol

from paymesh.ports.bus import BusStore
from paymesh.ports.store import Store


class BusBackend(Store, BusStore, Protocol):
    pass
