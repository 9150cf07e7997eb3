"""The notifier port: how a customer confirmation leaves paymesh, by email or by SMS.

A sender delivers one message or raises; it never decides about retries. What it raises says
whether trying again may help:

    NotSent                     the message did not go out (or may not have)
    +-- SendLater               transient: the server was unreachable, busy or throttling
    +-- Undeliverable           permanent: the address or number is refused, the credentials
                                are wrong; trying again sends nothing (dead letter)

A message carries the identity of the outcome it confirms (`EmailMessage.message_id`,
`SmsMessage.idempotency_token`, both derived from the event), so the one repeat a crash
between sending and recording can cause reaches the receiver under the same identity, and
the receiver (a mail client, Twilio) can drop it.

Templates render a confirmation's text from facts about the payment; a template that cannot
be rendered raises `TemplateBroken` (a merchant's override with a mistake in it: permanent).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "EmailMessage",
    "EmailSender",
    "NotSent",
    "Rendered",
    "SendLater",
    "SmsMessage",
    "SmsSender",
    "TemplateBroken",
    "Templates",
    "Undeliverable",
]


@dataclass(frozen=True, slots=True)
class EmailMessage:
    to: str
    subject: str
    text: str
    #: `<event-id@paymesh>`: the same for every send of one outcome.
    message_id: str


@dataclass(frozen=True, slots=True)
class SmsMessage:
    to: str  # E.164
    body: str
    #: The provider's idempotency key: the same for every send of one outcome.
    idempotency_token: str


class NotSent(Exception):
    """The message did not go out. `reason` is safe to show a merchant (no OS error, no
    credentials); `code` is the server's own code when it gave one (SMTP reply, Twilio
    error code)."""

    retryable = False

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class SendLater(NotSent):
    retryable = True


class Undeliverable(NotSent):
    retryable = False


class EmailSender(Protocol):
    async def send(self, message: EmailMessage) -> None:
        """Hand `message` to the mail server; returns once it accepted it. Raises `SendLater`
        or `Undeliverable`."""
        ...


class SmsSender(Protocol):
    async def send(self, message: SmsMessage) -> None:
        """Hand `message` to the SMS provider; returns once it accepted it. Raises
        `SendLater` or `Undeliverable`."""
        ...


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str  # the email's body
    sms: str


class TemplateBroken(Exception):
    """A template could not be rendered (a syntax error, an unknown name in it)."""


class Templates(Protocol):
    def render(self, merchant_id: str, name: str, facts: Mapping[str, Any]) -> Rendered:
        """The merchant's own templates `name` where it has them, the packaged ones where
        not. Raises `TemplateBroken`."""
        ...
