"""A PSP webhook, read the same way for every PSP; each fills in its own steps.

    parse(headers, body, now)
      verify     the signature, over what the PSP signs (the raw body and headers; Adyen: the
                 signed fields of each item): WebhookRejected if it does not hold
      decode     the body into typed structures holding the fields the PSP's events are read
                 from, each with its type: a field of another type is a malformed body
      to_events  the decoded body as our `WebhookEvent`s ([] for events we do not act on)

De-duplication and applying are the service's (`service/webhooks.py`): this stops at events.

Signed is not well formed: a signature says the PSP sent the bytes, not that every field has
the shape we read it with (the PSP's next API version, a field we misread, a sandbox bug). A
body that is signed but malformed is rejected whole, as `WebhookRejected` (a 400 that changes
nothing), never an exception the HTTP layer would answer with a 500. Decoding into types
makes that one rule instead of a check at every field: `msgspec` raises one `DecodeError` for
any wrong type at any depth. What can still be wrong once the types are right (a date that is
not a date, an amount with more decimals than its currency) raises `ValueError` in
`to_events`, which is rejected the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import datetime
from typing import Generic, TypeVar

import msgspec

from paymesh.ports.connector import WebhookEvent, WebhookRejected

__all__ = ["WebhookTemplate"]

Decoded = TypeVar("Decoded")


class WebhookTemplate(ABC, Generic[Decoded]):
    #: The PSP's name as its webhooks' rejections say it ("Stripe").
    display_name: str

    def parse(self, headers: Mapping[str, str], body: bytes, now: datetime) -> list[WebhookEvent]:
        """Verify, decode and translate one webhook; raises WebhookRejected. No I/O."""
        lowered = {name.lower(): value for name, value in headers.items()}
        self.verify(lowered, body, now)
        return self.translate(lowered, body, now)

    def translate(
        self, headers: Mapping[str, str], body: bytes, now: datetime
    ) -> list[WebhookEvent]:
        """The steps after the signature: a body already verified, as events."""
        try:
            decoded = self.decode(body)
        except msgspec.DecodeError as exc:  # a ValidationError too: a field of another type
            # msgspec names the field's path and the types, never the value: safe to quote.
            raise WebhookRejected(f"not a webhook {self.display_name} sends: {exc}") from exc
        try:
            return self.to_events(decoded, headers, now)
        except (ValueError, OverflowError) as exc:
            # Not quoted: its message may repeat the body's values, and a 400 is logged.
            raise WebhookRejected(
                f"not a webhook {self.display_name} sends: a field has a value it never has"
            ) from exc

    @abstractmethod
    def verify(self, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
        """Raise WebhookRejected unless the PSP signed this (header names in lower case)."""

    @abstractmethod
    def decode(self, body: bytes) -> Decoded:
        """The body as typed structures (`msgspec.json.decode(body, type=...)`); raises
        msgspec's DecodeError for a body that is not JSON or has a field of another type."""

    @abstractmethod
    def to_events(
        self, decoded: Decoded, headers: Mapping[str, str], now: datetime
    ) -> list[WebhookEvent]:
        """Our events; ValueError for a field whose type is right but whose value is not."""
