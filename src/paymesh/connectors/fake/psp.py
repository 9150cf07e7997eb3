"""`FakePsp`: a `Connector` whose PSP lives in the same process, with a ledger tests read.

What it keeps, like a PSP's own books:

- `charges`: every charge object by id (a declined authorisation makes one too, as a Stripe
  PaymentIntent does), with what was captured and refunded;
- `authorizations`: how many authorisations were executed (replays by key are not), so a test
  can say "exactly one charge";
- `calls`: how many calls each operation received, faulted or not (did we ask again? did we
  ask the other PSP at all?);
- `webhooks`: every state change as a signed notification, in order.

Idempotency as PSPs keep it: a key seen before answers with the first answer, without doing
anything again; the same key with a different request is refused (4xx). Faults come before
the work, or, scripted with `acted=True` (and a random timeout), after it: the work is then
done, its answer stored under the key and its webhook queued, and the caller gets an error.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar, cast

from paymesh.connectors.fake.cards import TEST_CARDS, FakeCard
from paymesh.connectors.fake.faults import FaultRates, Faults, error_for
from paymesh.connectors.fake.webhook import (
    ChargeBody,
    FailureBody,
    FakeWebhooks,
    Notification,
    RefundBody,
    SignedWebhook,
    sign,
)
from paymesh.domain.payment import Failure, PspOutcome
from paymesh.domain.status import PaymentStatus
from paymesh.ports.connector import AuthorizeRequest, PspError, RefundOutcome, WebhookEvent

__all__ = ["FakeCharge", "FakePsp", "FakeRefund"]

S = PaymentStatus
T = TypeVar("T")

WEBHOOK_SECRET = "whsec_fake"  # noqa: S105 - a test double's public secret


@dataclass(slots=True)
class FakeRefund:
    id: str  # the PSP's
    refund_id: str  # ours, as the request named it
    amount: int


@dataclass(slots=True)
class FakeCharge:
    id: str
    payment_id: str  # ours, as the authorisation named it
    amount: int
    currency: str
    payment_method: str
    capture_method: str
    status: PaymentStatus
    amount_capturable: int = 0
    amount_received: int = 0
    failure: Failure | None = None
    next_action: dict[str, str] | None = None
    refunds: list[FakeRefund] = field(default_factory=list)

    @property
    def amount_refunded(self) -> int:
        return sum(r.amount for r in self.refunds)

    def outcome(self) -> PspOutcome:
        # A snapshot: a stored answer must not change when the charge does.
        return PspOutcome(
            status=self.status,
            connector_payment_id=self.id,
            amount_capturable=self.amount_capturable,
            amount_received=self.amount_received,
            failure=self.failure,
            next_action=dict(self.next_action) if self.next_action else None,
        )

    def body(self) -> ChargeBody:
        failure = (
            None
            if self.failure is None
            else FailureBody(
                self.failure.code,
                self.failure.message,
                self.failure.retryable,
                self.failure.decline_code,
            )
        )
        return ChargeBody(
            id=self.id,
            reference=self.payment_id,
            status=self.status,
            amount=self.amount,
            currency=self.currency,
            amount_capturable=self.amount_capturable,
            amount_received=self.amount_received,
            failure=failure,
            next_action=self.next_action,
        )


class FakePsp:
    webhook_ack: bytes | None = None

    def __init__(
        self,
        name: str = "fake",
        *,
        webhook_secret: str = WEBHOOK_SECRET,
        cards: Mapping[str, FakeCard] | None = None,
        unreachable: bool = False,
        seed: int | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.name = name
        #: Every call fails as a refused connection would: the contract's `unreachable`.
        self.unreachable = unreachable
        #: The test cards; a test may make one PSP approve what another declines.
        self.cards: dict[str, FakeCard] = {**TEST_CARDS, **(cards or {})}
        self.charges: dict[str, FakeCharge] = {}
        self.authorizations = 0
        self.calls: Counter[str] = Counter()
        self.webhooks: list[SignedWebhook] = []
        self._secret = webhook_secret
        self._parser = FakeWebhooks(webhook_secret)
        # Webhook timestamps: a test with a fixed clock gives the fake the same one, so the
        # service's signature tolerance sees them as fresh.
        self._clock = clock or (lambda: datetime.now(UTC))
        self._faults = Faults(seed)
        self._answers: dict[str, tuple[object, object]] = {}  # key -> (request, answer)
        self._serial = itertools.count(1)

    # -- what tests control and read -------------------------------------------------------

    def fail_next(self, operation: str, fault: str, *, acted: bool = False, times: int = 1) -> None:
        """Fail the next `times` calls of `operation` with `fault` (see `faults`); with
        `acted`, each does its work (or replays it) first and then loses the answer."""
        self._faults.script(operation, fault, acted, times)

    def pending_faults(self, operation: str) -> int:
        """Scripted faults not used yet: a test can check each was reached."""
        return self._faults.pending(operation)

    def set_fault_rates(
        self, *, error_rate: float = 0.0, rate_limit_rate: float = 0.0, timeout_rate: float = 0.0
    ) -> None:
        """Random faults per call, as the sandboxes' `PUT /_config`; no argument: none."""
        self._faults.rates = FaultRates(error_rate, rate_limit_rate, timeout_rate)

    def charges_for(self, payment_id: str) -> list[FakeCharge]:
        return [c for c in self.charges.values() if c.payment_id == payment_id]

    def webhooks_about(self, connector_payment_id: str) -> list[SignedWebhook]:
        return [w for w in self.webhooks if connector_payment_id.encode() in w.body]

    def complete_authentication(self, charge_id: str, *, succeeded: bool = True) -> FakeCharge:
        """The customer finished (or failed) 3-D Secure; the verdict comes by webhook."""
        charge = self.charges[charge_id]
        if charge.status != S.REQUIRES_ACTION:
            raise ValueError(f"charge {charge_id} is {charge.status}, not awaiting the customer")
        charge.next_action = None
        if succeeded:
            self._approve(charge)
        else:
            charge.status = S.FAILED
            charge.failure = Failure(
                code="payment_intent_authentication_failure",
                message="The customer failed 3-D Secure.",
                retryable=False,
            )
        self._notify(charge)
        return charge

    # -- the Connector port ----------------------------------------------------------------

    async def authorize(self, request: AuthorizeRequest) -> PspOutcome:
        return self._call(
            "authorize", request.idempotency_key, request, lambda: self._authorize(request)
        )

    async def capture(
        self,
        connector_payment_id: str,
        amount: int,
        idempotency_key: str,
        *,
        currency: str | None = None,
    ) -> PspOutcome:
        return self._call(
            "capture",
            idempotency_key,
            (connector_payment_id, amount),
            lambda: self._capture(connector_payment_id, amount),
        )

    async def cancel(self, connector_payment_id: str, idempotency_key: str) -> PspOutcome:
        return self._call(
            "cancel",
            idempotency_key,
            connector_payment_id,
            lambda: self._cancel(connector_payment_id),
        )

    async def refund(
        self,
        connector_payment_id: str,
        amount: int,
        refund_id: str,
        reason: str | None,
        idempotency_key: str,
        *,
        currency: str | None = None,
    ) -> RefundOutcome:
        return self._call(
            "refund",
            idempotency_key,
            (connector_payment_id, amount, refund_id),
            lambda: self._refund(connector_payment_id, amount, refund_id),
        )

    async def retrieve(self, connector_payment_id: str) -> PspOutcome:
        return self._call(
            "retrieve", None, None, lambda: self._charge(connector_payment_id).outcome()
        )

    def parse_webhook(
        self, headers: dict[str, str], body: bytes, now: datetime
    ) -> list[WebhookEvent]:
        return self._parser.parse(headers, body, now)

    async def confirm(self, event: WebhookEvent) -> WebhookEvent | None:
        return event  # the signature covers the whole body: every field is the PSP's

    async def aclose(self) -> None:
        return None  # nothing held: no connection, no file

    # -- one call: faults, idempotency, the work ------------------------------------------

    def _call(self, operation: str, key: str | None, request: object, work: Callable[[], T]) -> T:
        self.calls[operation] += 1
        if self.unreachable:
            raise error_for(self.name, "unreachable")
        fault = self._faults.draw(operation)
        if fault is not None and not fault.acted:
            raise error_for(self.name, fault.fault)
        answer = self._answered(operation, key, request, work)
        if fault is not None:  # the work is done; its answer is lost on the way back
            raise error_for(self.name, fault.fault)
        return answer

    def _answered(
        self, operation: str, key: str | None, request: object, work: Callable[[], T]
    ) -> T:
        if key is None:
            return work()
        seen = self._answers.get(key)
        if seen is not None:
            if seen[0] != (operation, request):
                raise PspError(
                    self.name,
                    "this idempotency key was used with another request",
                    http_status=400,
                    code="idempotency_key_reused",
                    retryable=False,
                )
            # The same operation stored it, so the answer is of the type it returns.
            return cast(T, seen[1])
        answer = work()  # an error raised here is stored nowhere: a retry runs it again
        self._answers[key] = ((operation, request), answer)
        return answer

    def _authorize(self, request: AuthorizeRequest) -> PspOutcome:
        card = self.cards.get(request.payment_method)
        if card is None:
            raise PspError(
                self.name,
                f"no such payment method: {request.payment_method!r}",
                http_status=400,
                code="resource_missing",
                retryable=False,
            )
        self.authorizations += 1
        charge = FakeCharge(
            id=self._new_id("ch"),
            payment_id=request.payment_id,
            amount=request.amount,
            currency=request.currency,
            payment_method=request.payment_method,
            capture_method=request.capture_method,
            status=S.PENDING,
        )
        if card.decline is not None:
            charge.status, charge.failure = S.FAILED, card.decline
        elif card.requires_3ds:
            charge.status = S.REQUIRES_ACTION
            charge.next_action = {
                "type": "redirect_to_url",
                "redirect_url": f"https://{self.name}.fake-psp.test/3ds/{charge.id}",
            }
        else:
            self._approve(charge)
        self.charges[charge.id] = charge
        self._notify(charge)
        return charge.outcome()

    def _approve(self, charge: FakeCharge) -> None:
        if charge.capture_method == "manual":
            charge.status, charge.amount_capturable = S.REQUIRES_CAPTURE, charge.amount
        else:
            charge.status, charge.amount_received = S.SUCCEEDED, charge.amount

    def _capture(self, charge_id: str, amount: int) -> PspOutcome:
        charge = self._charge(charge_id)
        if charge.status != S.REQUIRES_CAPTURE:
            # As the Stripe connector reads Stripe's refusal: the charge's state is the answer.
            return charge.outcome()
        if not 0 < amount <= charge.amount_capturable:
            raise PspError(
                self.name,
                f"cannot capture {amount} of {charge.amount_capturable}",
                http_status=400,
                code="amount_too_large",
                retryable=False,
            )
        # A partial capture releases the rest of the authorisation.
        charge.status, charge.amount_received, charge.amount_capturable = S.SUCCEEDED, amount, 0
        self._notify(charge)
        return charge.outcome()

    def _cancel(self, charge_id: str) -> PspOutcome:
        charge = self._charge(charge_id)
        if charge.status in (S.PENDING, S.REQUIRES_ACTION, S.REQUIRES_CAPTURE):
            charge.status, charge.amount_capturable, charge.next_action = S.CANCELED, 0, None
            self._notify(charge)
        return charge.outcome()  # a charge too late to cancel answers with its state

    def _refund(self, charge_id: str, amount: int, refund_id: str) -> RefundOutcome:
        # A refund the PSP refuses is an answer (its verdict), as the Stripe connector reads
        # a 4xx: never beyond what was captured and not yet refunded.
        charge = self.charges.get(charge_id)
        if charge is None:
            return RefundOutcome(False, None, "resource_missing")
        if charge.status != S.SUCCEEDED:
            return RefundOutcome(False, None, "charge_not_captured")
        if not 0 < amount <= charge.amount_received - charge.amount_refunded:
            return RefundOutcome(False, None, "amount_too_large")
        refund = FakeRefund(self._new_id("re"), refund_id, amount)
        charge.refunds.append(refund)
        self._notify(charge, refund)
        return RefundOutcome(True, refund.id)

    def _charge(self, charge_id: str) -> FakeCharge:
        charge = self.charges.get(charge_id)
        if charge is None:
            raise PspError(
                self.name,
                f"no such charge: {charge_id!r}",
                http_status=404,
                code="resource_missing",
                retryable=False,
            )
        return charge

    def _new_id(self, kind: str) -> str:
        return f"{self.name}_{kind}_{next(self._serial):06d}"

    def _notify(self, charge: FakeCharge, refund: FakeRefund | None = None) -> None:
        notification = Notification(
            id=self._new_id("evt"),
            type="refund.updated" if refund else "charge.updated",
            created=int(self._clock().timestamp()),
            charge=charge.body(),
            refund=None
            if refund is None
            else RefundBody(refund.id, refund.refund_id, refund.amount, succeeded=True),
        )
        self.webhooks.append(sign(notification, self._secret))
