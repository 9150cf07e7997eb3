"""Stripe Events: recorded for `GET /v1/events`, and sent as signed webhooks.

An event is encoded once, when it happens: that freezes `data.object` as it
was at that moment (as Stripe's snapshots are), and the very same bytes are
what `/v1/events/{id}` returns and what the webhook body carries.

Signing follows Stripe's scheme, so `stripe.Webhook.construct_event` accepts
it: `Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`,
keyed with the endpoint's signing secret. Each delivery attempt is signed
afresh, so a late retry still falls inside the receiver's tolerance.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from paymesh.sandbox.stripe.accounts import Account, StoredEvent
from paymesh.sandbox.stripe.ids import new_id
from paymesh.sandbox.stripe.objects import Event, EventData, EventRequest

__all__ = ["EventPublisher", "stripe_signature"]

_USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"


class WebhookDestination(Protocol):
    """Where webhooks go, read at each event so it may change at run time."""

    webhook_url: str | None
    webhook_secret: str


class Sender(Protocol):
    def send(self, url: str, body: bytes, headers: Callable[[], dict[str, str]]) -> None: ...


def stripe_signature(secret: str, body: bytes, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class EventPublisher:
    def __init__(self, destination: WebhookDestination, sender: Sender) -> None:
        self._destination = destination
        self._sender = sender

    def publish(self, account: Account, event_type: str, obj: Any, request: EventRequest) -> None:
        url = self._destination.webhook_url
        created = int(time.time())
        event = Event(
            id=new_id("evt"),
            created=created,
            data=EventData(obj),
            pending_webhooks=1 if url else 0,
            request=request,
            type=event_type,
        )
        body = msgspec.json.encode(event)
        account.events.add(event.id, StoredEvent(event_type, created, msgspec.Raw(body)))
        if url:
            self._sender.send(url, body, self._signer(body))

    def _signer(self, body: bytes) -> Callable[[], dict[str, str]]:
        secret = self._destination.webhook_secret

        def headers() -> dict[str, str]:
            return {
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": _USER_AGENT,
                "Stripe-Signature": stripe_signature(secret, body, int(time.time())),
            }

        return headers
