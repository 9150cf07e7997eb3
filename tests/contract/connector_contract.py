"""The Connector port's contract. A PSP proves itself by subclassing `ConnectorContract` with
fixtures `connector` (talking real HTTP to its sandbox), `set_faults` (a callable taking the
sandbox's fault settings), `unreachable` (the same connector pointed at a closed port) and
`inbox` (a `tests.support.webhook_inbox.WebhookInbox` the sandbox sends its webhooks to, signed
with the secret the connector verifies with); and the class attributes naming its test payment
methods. Adding a PSP means one folder under connectors/ and sandbox/, one subclass, and one
line in `paymesh.connectors.registry`."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import pytest

from paymesh.config import Settings
from paymesh.connectors.registry import REGISTRY, ConnectorSetup
from paymesh.domain.payment import PspOutcome
from paymesh.domain.status import PaymentStatus
from paymesh.ports.connector import (
    AuthorizeRequest,
    Connector,
    PspError,
    WebhookEvent,
    WebhookRejected,
)

S = PaymentStatus
Received = tuple[dict[str, str], bytes]
SetFaults = Callable[[dict[str, object]], None]


class Inbox(Protocol):
    """What the webhook tests read: a real `WebhookInbox`, or the fake's `FakeInbox`."""

    async def wait_for(
        self, predicate: Callable[[dict[str, str], bytes], bool], within: float = ...
    ) -> Received: ...

    async def about(self, connector_payment_id: str, within: float = ...) -> Received: ...


def request(
    method: str, amount: int = 2000, capture: str = "automatic", key: str | None = None
) -> AuthorizeRequest:
    pid = f"pay_{uuid.uuid4().hex[:12]}"
    return AuthorizeRequest(
        payment_id=pid,
        amount=amount,
        currency="usd",
        payment_method=method,
        capture_method=capture,
        customer_id="cus_contract",
        idempotency_key=key or f"k-{pid}",
    )


class ConnectorContract:
    approved: str
    declined_insufficient_funds: str
    needs_authentication: str
    #: True when `confirm` asks the PSP's API because its webhook signature alone does not
    #: make the body the PSP's word on the object (PayPal); False when the signature covers
    #: every field the event is built from (Stripe, Adyen), so there is nothing to ask.
    confirms_with_psp: bool = False
    #: False only for a test double (the in-memory fake), which must never be in the registry.
    registered: bool = True

    async def test_the_psp_is_in_the_registry(self, connector: Connector, tmp_path: Path) -> None:
        if not self.registered:
            pytest.skip("a test double: never in the registry, nothing there to build")
        # What bootstrap builds from the registry for this PSP is this connector.
        entry = REGISTRY[connector.name]
        built = entry.connector(
            ConnectorSetup(Settings.from_env(data_dir=tmp_path), "http://127.0.0.1:9")
        )
        try:
            assert (entry.name, type(built)) == (connector.name, type(connector))
        finally:
            await built.aclose()

    async def test_an_approved_card_succeeds(self, connector: Connector) -> None:
        out = await connector.authorize(request(self.approved))
        assert out.status == S.SUCCEEDED
        assert out.connector_payment_id
        assert out.amount_received == 2000

    async def test_a_decline_is_an_answer_not_an_error(self, connector: Connector) -> None:
        out = await connector.authorize(request(self.declined_insufficient_funds))
        assert out.status == S.FAILED
        assert out.failure is not None
        assert out.failure.decline_code == "insufficient_funds"
        assert out.failure.retryable is False

    async def test_the_same_key_is_one_charge(self, connector: Connector) -> None:
        req = request(self.approved)
        first = await connector.authorize(req)
        second = await connector.authorize(req)
        assert first.connector_payment_id == second.connector_payment_id

    async def test_three_d_secure_asks_for_action(self, connector: Connector) -> None:
        out = await connector.authorize(request(self.needs_authentication))
        assert out.status == S.REQUIRES_ACTION
        assert out.next_action and out.next_action["redirect_url"].startswith("http")

    async def test_partial_capture_of_an_authorisation(self, connector: Connector) -> None:
        auth = await connector.authorize(request(self.approved, 5000, "manual"))
        assert auth.status == S.REQUIRES_CAPTURE
        ref = auth.connector_payment_id
        assert ref is not None
        captured = await connector.capture(ref, 3000, f"cap-{ref}", currency="usd")
        assert (captured.status, captured.amount_received) == (S.SUCCEEDED, 3000)
        again = await connector.capture(ref, 3000, f"cap-{ref}")
        assert again.status == S.SUCCEEDED
        assert (await connector.retrieve(ref)).status == S.SUCCEEDED

    async def test_cancel_an_authorisation(self, connector: Connector) -> None:
        auth = await connector.authorize(request(self.approved, 1000, "manual"))
        assert auth.connector_payment_id is not None
        out = await connector.cancel(auth.connector_payment_id, f"cancel-{uuid.uuid4()}")
        assert out.status == S.CANCELED

    async def test_partial_refunds_up_to_the_amount(self, connector: Connector) -> None:
        paid = await connector.authorize(request(self.approved, 3000))
        ref = paid.connector_payment_id
        assert ref is not None
        first = await connector.refund(ref, 1000, "re_a", None, f"re-a-{ref}")
        # None: accepted, the verdict comes by webhook (Adyen's "received").
        assert first.succeeded in (True, None) and first.connector_refund_id
        replay = await connector.refund(ref, 1000, "re_a", None, f"re-a-{ref}")
        assert replay.connector_refund_id == first.connector_refund_id
        too_much = await connector.refund(ref, 2001, "re_b", None, f"re-b-{ref}")
        assert too_much.succeeded is False
        rest = await connector.refund(ref, 2000, "re_c", None, f"re-c-{ref}", currency="usd")
        assert rest.succeeded in (True, None) and rest.connector_refund_id

    async def test_5xx_means_the_outcome_is_unknown(
        self, connector: Connector, set_faults: SetFaults
    ) -> None:
        set_faults({"error_rate": 1.0})
        with pytest.raises(PspError) as info:
            await connector.authorize(request(self.approved))
        assert info.value.retryable and info.value.outcome_unknown

    async def test_429_means_nothing_was_done(
        self, connector: Connector, set_faults: SetFaults
    ) -> None:
        set_faults({"rate_limit_rate": 1.0})
        with pytest.raises(PspError) as info:
            await connector.authorize(request(self.approved))
        assert info.value.retryable and not info.value.outcome_unknown

    async def test_an_unreachable_psp_did_nothing(self, unreachable: Connector) -> None:
        with pytest.raises(PspError) as info:
            await unreachable.authorize(request(self.approved))
        assert info.value.retryable and not info.value.outcome_unknown

    async def test_a_forged_webhook_is_rejected(self, connector: Connector) -> None:
        with pytest.raises(WebhookRejected):
            connector.parse_webhook({}, b'{"id": "evt_x"}', datetime.now(UTC))

    async def test_an_unknown_payment_is_a_permanent_error(self, connector: Connector) -> None:
        with pytest.raises(PspError) as info:
            await connector.retrieve("no_such_payment_ref")
        assert info.value.retryable is False

    async def test_the_sandboxs_signed_webhook_verifies_and_translates(
        self, connector: Connector, inbox: Inbox
    ) -> None:
        paid = await connector.authorize(request(self.approved, 2500))
        ref = paid.connector_payment_id
        assert ref is not None
        headers, body = await inbox.about(ref)
        events = connector.parse_webhook(headers, body, datetime.now(UTC))
        about = [e for e in events if e.connector_payment_id == ref]
        assert about and all(e.psp_event_id for e in about)
        last = [e for e in about if e.outcome is not None][-1]
        assert last.outcome is not None
        if last.capture_as_requested:
            # An authorisation whose capture the PSP did not sign (Adyen): held, for the
            # payment's own capture mode (here automatic: a capture) to decide.
            assert last.outcome.status == S.REQUIRES_CAPTURE
            assert last.outcome.amount_capturable == 2500
        else:
            assert last.outcome.status in (S.SUCCEEDED, S.PROCESSING)

    def tamper(self, body: bytes) -> bytes:
        """Change the amount (26.00) in a webhook body as this PSP spells it."""
        return body.replace(b"2600", b"2700", 1)

    async def test_a_tampered_webhook_is_rejected(self, connector: Connector, inbox: Inbox) -> None:
        paid = await connector.authorize(request(self.approved, 2600))
        assert paid.connector_payment_id is not None
        headers, body = await inbox.about(paid.connector_payment_id)
        tampered = self.tamper(body)
        assert tampered != body
        connector.parse_webhook(headers, body, datetime.now(UTC))  # the original verifies
        with pytest.raises(WebhookRejected):
            connector.parse_webhook(headers, tampered, datetime.now(UTC))

    async def test_a_partial_refund_is_reported_by_webhook(
        self, connector: Connector, inbox: Inbox
    ) -> None:
        paid = await connector.authorize(request(self.approved, 4000))
        ref = paid.connector_payment_id
        assert ref is not None
        out = await connector.refund(ref, 1500, "re_w", None, f"re-w-{ref}")
        assert out.succeeded in (True, None)

        def refunded(headers: dict[str, str], body: bytes) -> bool:
            if ref.encode() not in body:
                return False
            events = connector.parse_webhook(headers, body, datetime.now(UTC))
            return any(e.amount_refunded or e.refund for e in events)

        headers, body = await inbox.wait_for(refunded)
        events = connector.parse_webhook(headers, body, datetime.now(UTC))
        # Stripe reports the running total; Adyen and PayPal one refund at a time.
        totals = [e.amount_refunded for e in events if e.amount_refunded]
        singles = [(e.refund.amount, e.refund.succeeded) for e in events if e.refund]
        assert totals == [1500] or singles == [(1500, True)]

    async def test_a_confirmed_webhook_names_its_payment_and_the_payments_money(
        self, connector: Connector, inbox: Inbox
    ) -> None:
        req = request(self.approved, 2400)
        paid = await connector.authorize(req)
        ref = paid.connector_payment_id
        assert ref is not None
        headers, body = await inbox.about(ref)
        events = connector.parse_webhook(headers, body, datetime.now(UTC))
        confirmed = [await connector.confirm(e) for e in events]
        about = [e for e in confirmed if e is not None and e.connector_payment_id == ref]
        assert about
        for event in about:
            # What the service checks ownership with: the PSP object's money, as the PSP
            # states it (signed, or confirmed), never left out.
            assert isinstance(event.currency, str) and event.currency.lower() == "usd"
            if event.outcome is not None:  # about the payment itself: its whole amount
                assert (event.payment_id, event.amount) == (req.payment_id, 2400)

    def forged_event(self) -> WebhookEvent:
        return WebhookEvent(
            psp_event_id="evt_contract",
            created=datetime.now(UTC),
            payment_id="pay_contract",
            connector_payment_id="no_such_payment_ref",
            outcome=PspOutcome(S.SUCCEEDED, "no_such_payment_ref", amount_received=100),
            amount=100,
            currency="usd",
        )

    async def test_confirming_an_object_the_psp_does_not_know(self, connector: Connector) -> None:
        event = self.forged_event()
        confirmed = await connector.confirm(event)
        if self.confirms_with_psp:
            assert confirmed is None  # the PSP's word on the object, not the body's
        else:
            assert confirmed == event  # the signature covered it all: nothing to ask

    async def test_confirming_with_an_unreachable_psp(self, unreachable: Connector) -> None:
        event = self.forged_event()
        if not self.confirms_with_psp:
            assert await unreachable.confirm(event) == event  # asks nothing
            return
        # Not "unknown": the webhook must be refused, so that the PSP delivers it again.
        with pytest.raises(PspError) as info:
            await unreachable.confirm(event)
        assert info.value.retryable
