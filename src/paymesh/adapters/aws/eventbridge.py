"""The outbox's last step on AWS: committed events onto the EventBridge bus.

PutEvents takes at most ten entries and may accept some of a call and refuse others (each
refused entry has an ErrorCode). Refused entries are put again, alone, with backoff; if some
are still refused the call raises, so the Lambda fails and its DynamoDB stream batch is
retried: an event is never dropped. An event may so be put twice; consumers apply it once
(by the event id carried in the detail, see `envelopes`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from paymesh.adapters.aws.envelopes import entry

MAX_ENTRIES = 10


class PublishFailed(Exception):
    """Some entries were still refused after every retry; nothing was dropped silently."""


class EventBridgePublisher:
    def __init__(
        self,
        client: Any,
        bus: str,
        attempts: int = 4,
        base_delay: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.bus = bus
        self.attempts = attempts
        self.base_delay = base_delay
        self.sleep = sleep

    def publish(self, envelopes: Sequence[dict[str, Any]]) -> None:
        """Put every envelope on the bus, in order, in calls of at most ten."""
        entries = [entry(e, self.bus) for e in envelopes]
        for start in range(0, len(entries), MAX_ENTRIES):
            self._put(entries[start : start + MAX_ENTRIES])

    def _put(self, batch: list[dict[str, Any]]) -> None:
        pending = batch
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(self.base_delay * 2 ** (attempt - 1))
            answer = self.client.put_events(Entries=pending)
            if not answer.get("FailedEntryCount"):
                return
            # Results are in the order of the entries; a failed one has an ErrorCode.
            pending = [
                sent
                for sent, result in zip(pending, answer["Entries"], strict=True)
                if result.get("ErrorCode")
            ]
        raise PublishFailed(
            f"{len(pending)} of {len(batch)} events refused by EventBridge after "
            f"{self.attempts} attempts"
        )
