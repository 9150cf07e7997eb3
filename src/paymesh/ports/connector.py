"""The connector port: one PSP, seen as a translator.

A connector turns our request into the PSP's wire format and the PSP's answer into a
`PspOutcome`. A decline is an answer (status failed, with a Failure), not an exception.
`PspError` means the PSP did not give an answer we can act on; `outcome_unknown` says whether
the PSP may have acted anyway (a timeout after sending), in which case the caller must sync
with the same idempotency key before anything else is tried.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from paymesh.domain.payment import PspOutcome


class PspError(Exception):
    def __init__(
        self,
        psp: str,
        message: str,
        *,
        http_status: int | None = None,
        code: str | None = None,
        retryable: bool = True,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message)
        self.psp = psp
        self.message = message
        self.http_status = http_status
        self.code = code
        self.retryable = retryable
        self.outcome_unknown = outcome_unknown


class WebhookRejected(Exception):
    """The webhook's signature is missing, wrong or stale, or its body is not the PSP's."""


@dataclass(frozen=True, slots=True)
class AuthorizeRequest:
    payment_id: str
    amount: int
    currency: str
    payment_method: str
    capture_method: str
    customer_id: str
    idempotency_key: str
    description: str | None = None
    metadata: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    succeeded: bool | None  # None: pending at the PSP, the verdict comes by webhook
    connector_refund_id: str | None
    failure_reason: str | None = None


@dataclass(frozen=True, slots=True)
class RefundUpdate:
    """One refund's verdict, as PSPs that notify per refund (Adyen, PayPal) report it."""

    refund_id: str | None  # ours, when the PSP echoes our reference
    connector_refund_id: str | None
    amount: int
    succeeded: bool
    failure_reason: str | None = None


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """A PSP notification, verified and translated. Exactly one of the optional parts
    (outcome, amount_refunded, refund, dispute, dispute_closed) is set.

    A signature proves the PSP sent the body, not that the object it describes is the
    payment its metadata names: anyone able to make an object at the PSP chooses its
    metadata. So the event also says which PSP object it is about and what money that
    object holds, and the service applies it only to the payment that object belongs to.
    """

    psp_event_id: str
    created: datetime
    payment_id: str | None  # ours, when the PSP echoes our metadata: a hint, never proof
    connector_payment_id: str | None  # the PSP's id of the payment object it is about
    outcome: PspOutcome | None = None
    #: Cumulative amount refunded at the PSP, with the PSP's refund ids when known (Stripe).
    amount_refunded: int | None = None
    connector_refund_ids: tuple[str, ...] = ()
    refund: RefundUpdate | None = None
    dispute: tuple[str, int, str | None] | None = None  # (dispute id, amount, reason)
    #: The bank's verdict on a dispute: (the PSP's dispute id, won). Its money is the
    #: dispute's, known since it opened; `currency` is still the object's.
    dispute_closed: tuple[str, bool] | None = None
    #: The PSP object's money, from signed (or PSP-confirmed) fields only: its currency, and
    #: the payment's whole amount when the object states it (a PaymentIntent, an Adyen
    #: authorisation, a PayPal order). None where the object holds only a part of it (a
    #: capture, a refund, a dispute): those parts are in `outcome`, `refund` or `dispute`.
    amount: int | None = None
    currency: str | None = None
    #: The outcome is an authorisation the PSP reports without a signed word on whether it
    #: was captured (Adyen's AUTHORISATION: only its unsigned additionalData would say). The
    #: PSP did what we asked, and what we asked is the payment's own capture mode: that, not
    #: the notification, decides between `requires_capture` and `succeeded`.
    capture_as_requested: bool = False
    #: The PSP's id of the delivery, when it signs one (PayPal's PAYPAL-TRANSMISSION-ID): a
    #: transmission seen before is a replay and changes nothing.
    transmission_id: str | None = None
    #: The PSP's id of the object the event reports on when it is neither the payment nor a
    #: refund (PayPal: the disputed capture), for `Connector.confirm` to look up.
    psp_object_id: str | None = None


class Connector(Protocol):
    name: str
    #: The exact body the PSP wants back for an accepted webhook (Adyen: "[accepted]", or
    #: it retries); None when any 2xx will do.
    webhook_ack: bytes | None

    async def authorize(self, request: AuthorizeRequest) -> PspOutcome: ...

    # `currency` is the payment's, for PSPs whose modifications name it (Adyen); a connector
    # may look it up when it is not given.
    async def capture(
        self,
        connector_payment_id: str,
        amount: int,
        idempotency_key: str,
        *,
        currency: str | None = None,
    ) -> PspOutcome: ...

    async def cancel(self, connector_payment_id: str, idempotency_key: str) -> PspOutcome: ...

    async def refund(
        self,
        connector_payment_id: str,
        amount: int,
        refund_id: str,
        reason: str | None,
        idempotency_key: str,
        *,
        currency: str | None = None,
    ) -> RefundOutcome: ...

    async def retrieve(self, connector_payment_id: str) -> PspOutcome:
        """The PSP's current view of the payment (the sync job's question)."""
        ...

    def parse_webhook(
        self, headers: dict[str, str], body: bytes, now: datetime
    ) -> list[WebhookEvent]:
        """Verify and translate; raise WebhookRejected. No I/O."""
        ...

    async def confirm(self, event: WebhookEvent) -> WebhookEvent | None:
        """The event as the PSP itself states it now, before anything acts on it.

        A PSP whose signature covers every field we act on returns the event as it is
        (Stripe, Adyen). One whose webhook bodies are only a hint asks its API about the
        object and answers with what the API says (PayPal); None when the PSP does not know
        the object. Raises PspError when the PSP cannot be asked: the webhook is then
        refused, and the PSP delivers it again later.
        """
        ...

    async def aclose(self) -> None: ...
