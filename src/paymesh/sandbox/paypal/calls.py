"""What an endpoint gets to work with, and the background clock for late outcomes.

An endpoint is `(Call) -> Answer`: it reads the request from the call, changes
the merchant's state, emits events, and returns the resource it made or
changed, or raises `PayPalError` having changed nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from paymesh.sandbox.paypal.events import EventPublisher
from paymesh.sandbox.paypal.objects import Urls
from paymesh.sandbox.paypal.state import Answer, Merchant, Merchants

__all__ = ["Call", "Endpoint", "Later"]


class Later:
    """Runs an outcome that PayPal decides some time after the request (an eCheck clears
    or is denied); everything pending is dropped when the sandbox stops."""

    def __init__(self) -> None:
        self._handles: set[asyncio.TimerHandle] = set()

    def run(self, delay_s: float, action: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._handles.discard(handle)
            action()

        handle = loop.call_later(delay_s, fire)
        self._handles.add(handle)

    def cancel_all(self) -> None:
        for handle in self._handles:
            handle.cancel()
        self._handles.clear()


@dataclass(frozen=True, slots=True)
class Call:
    merchant: Merchant
    merchants: Merchants
    events: EventPublisher
    later: Later
    urls: Urls
    body: dict[str, Any]
    path: dict[str, str]
    request_id: str | None = None  # the PayPal-Request-Id header, when sent
    #: How long a pending eCheck takes to settle, in seconds.
    echeck_delay_s: float = 0.2

    def emit(
        self,
        event_type: str,
        resource_type: str,
        resource: dict[str, Any],
        summary: str,
        resource_version: str = "2.0",
    ) -> None:
        self.events.publish(
            self.merchant.client_id,
            event_type,
            resource_type,
            resource,
            summary,
            self.urls,
            resource_version,
        )


Endpoint = Callable[[Call], Answer]
