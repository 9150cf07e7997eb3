"""Webhook events in PayPal's envelope, signed as PayPal signs them.

An event is encoded once, when it happens: its `resource` is a snapshot of
the capture, authorization, refund, order or dispute at that moment, and a
re-delivery (a retry, or a duplicate the faults ask for) carries the very same
body, hence the same event `id`; the same bytes are what the event's `self`
link returns. Each transmission is signed afresh: a new
`paypal-transmission-id` and `-time`, and a signature over them, the webhook id
and the body's CRC32 (see `signing`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from paymesh.sandbox.paypal.ids import event_id, iso_time, transmission_id
from paymesh.sandbox.paypal.objects import Urls
from paymesh.sandbox.paypal.signing import AUTH_ALGO, SigningIdentity, signed_message

__all__ = ["EventPublisher", "cert_path"]

_USER_AGENT = "PayPal/AUHD-214.0-58822716"
_EVENTS_KEPT = 10_000


def cert_path(identity: SigningIdentity) -> str:
    return f"/v1/notifications/certs/{identity.cert_id}"


class WebhookDestination(Protocol):
    """Where webhooks go, read at each event so it may change at run time."""

    webhook_url: str | None
    webhook_id: str


class Sender(Protocol):
    def send(self, url: str, body: bytes, headers: Callable[[], dict[str, str]]) -> None: ...


class EventPublisher:
    def __init__(
        self, destination: WebhookDestination, sender: Sender, identity: SigningIdentity
    ) -> None:
        self._destination = destination
        self._sender = sender
        self._identity = identity
        # The most recent events by id with their merchant, for `GET webhooks-events/{id}`.
        self._recent: OrderedDict[str, tuple[str, bytes]] = OrderedDict()

    def find(self, owner: str, eid: str) -> bytes | None:
        found = self._recent.get(eid)
        return found[1] if found is not None and found[0] == owner else None

    def publish(
        self,
        owner: str,
        event_type: str,
        resource_type: str,
        resource: dict[str, Any],
        summary: str,
        urls: Urls,
        resource_version: str = "2.0",
    ) -> dict[str, Any]:
        eid = event_id()
        event = {
            "id": eid,
            "event_version": "1.0",
            "create_time": iso_time(millis=True),
            "resource_type": resource_type,
            "resource_version": resource_version,
            "event_type": event_type,
            "summary": summary,
            "resource": resource,
            "links": [
                urls.link(f"/v1/notifications/webhooks-events/{eid}", "self"),
                urls.link(f"/v1/notifications/webhooks-events/{eid}/resend", "resend", "POST"),
            ],
        }
        body = msgspec.json.encode(event)
        self._recent[eid] = (owner, body)
        if len(self._recent) > _EVENTS_KEPT:
            self._recent.popitem(last=False)
        url = self._destination.webhook_url
        if url:
            self._sender.send(url, body, self._signer(body, urls))
        return event

    def _signer(self, body: bytes, urls: Urls) -> Callable[[], dict[str, str]]:
        cert_url = f"{urls.base}{cert_path(self._identity)}"
        webhook_id = self._destination.webhook_id

        def headers() -> dict[str, str]:
            tid, sent = transmission_id(), iso_time()
            signature = self._identity.sign(signed_message(tid, sent, webhook_id, body))
            return {
                "Content-Type": "application/json",
                "User-Agent": _USER_AGENT,
                "paypal-transmission-id": tid,
                "paypal-transmission-time": sent,
                "paypal-transmission-sig": signature,
                "paypal-cert-url": cert_url,
                "paypal-auth-algo": AUTH_ALGO,
            }

        return headers
