"""The Stripe connector's translations, as tables, and its webhook signature against the
official stripe package's verifier."""

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import msgspec
import pytest
import stripe
from hypothesis import given
from hypothesis import strategies as st

from paymesh.connectors.stripe import translate, webhook
from paymesh.connectors.stripe.translate import form_body
from paymesh.domain.status import PaymentStatus
from paymesh.ports.connector import AuthorizeRequest, WebhookEvent, WebhookRejected

S = PaymentStatus


def translated(body: bytes) -> list[WebhookEvent]:
    """A body's events, its signature taken as checked: the template's steps after `verify`."""
    return webhook.StripeWebhooks("whsec_test").translate({}, body, datetime.now(UTC))


@pytest.mark.parametrize(
    ("stripe_status", "ours"),
    [
        ("requires_payment_method", S.PENDING),
        ("requires_confirmation", S.PENDING),
        ("requires_action", S.REQUIRES_ACTION),
        ("processing", S.PROCESSING),
        ("requires_capture", S.REQUIRES_CAPTURE),
        ("succeeded", S.SUCCEEDED),
        ("canceled", S.CANCELED),
    ],
)
def test_every_payment_intent_status_maps(stripe_status: str, ours: PaymentStatus) -> None:
    assert translate.outcome_from_intent({"id": "pi_1", "status": stripe_status}).status == ours


def test_the_table_covers_every_stripe_status() -> None:
    assert set(translate.STATUS_MAP) == {
        "requires_payment_method",
        "requires_confirmation",
        "requires_action",
        "processing",
        "requires_capture",
        "succeeded",
        "canceled",
    }


@pytest.mark.parametrize(
    ("code", "decline", "retryable"),
    [
        ("card_declined", "insufficient_funds", False),
        ("card_declined", "generic_decline", False),
        ("expired_card", "expired_card", False),
        ("processing_error", "processing_error", True),
        ("card_declined", "try_again_later", True),
        ("payment_intent_authentication_failure", None, False),
    ],
)
def test_a_failed_attempt_is_failed_with_its_codes(
    code: str, decline: str | None, retryable: bool
) -> None:
    pi = {
        "id": "pi_1",
        "status": "requires_payment_method",
        "last_payment_error": {"code": code, "decline_code": decline, "message": "m"},
    }
    outcome = translate.outcome_from_intent(pi)
    assert outcome.status == S.FAILED
    assert outcome.failure is not None
    assert (outcome.failure.code, outcome.failure.decline_code, outcome.failure.retryable) == (
        code,
        decline,
        retryable,
    )


def test_requires_action_keeps_the_redirect() -> None:
    pi = {
        "id": "pi_1",
        "status": "requires_action",
        "next_action": {
            "type": "redirect_to_url",
            "redirect_to_url": {"url": "https://x/3ds", "return_url": None},
        },
    }
    assert translate.outcome_from_intent(pi).next_action == {
        "type": "redirect_to_url",
        "redirect_url": "https://x/3ds",
    }


def test_form_encoding_is_stripes() -> None:
    fields = translate.form_fields(
        {
            "amount": 5,
            "confirm": True,
            "metadata": {"a": "b"},
            "payment_method_types": ["card"],
            "description": None,
        }
    )
    assert fields == [
        ("amount", "5"),
        ("confirm", "true"),
        ("metadata[a]", "b"),
        ("payment_method_types[0]", "card"),
    ]


def test_authorize_carries_our_ids_and_never_a_stripe_customer() -> None:
    req = AuthorizeRequest(
        payment_id="pay_1",
        amount=100,
        currency="usd",
        payment_method="pm_card_visa",
        capture_method="manual",
        customer_id="cus_merchant",
        idempotency_key="k",
        metadata={"order_id": "o"},
    )
    params = translate.authorize_params(req, None)
    assert params["metadata"] == {
        "order_id": "o",
        "paymesh_payment_id": "pay_1",
        "paymesh_customer_id": "cus_merchant",
    }
    assert params["capture_method"] == "manual" and params["confirm"] is True
    assert "customer" not in params


def test_our_signature_is_accepted_by_the_official_stripe_verifier() -> None:
    body = msgspec.json.encode(
        {"id": "evt_1", "object": "event", "type": "x", "data": {"object": {}}, "created": 1}
    )
    now = int(datetime.now(UTC).timestamp())
    header = webhook.sign(body, "whsec_test", now)
    event = stripe.Webhook.construct_event(body.decode(), header, "whsec_test")
    assert event["id"] == "evt_1"


def test_verify_rejects_what_stripe_rejects() -> None:
    body = b'{"id": "evt_1"}'
    now = datetime.now(UTC)
    good = webhook.sign(body, "whsec_a", int(now.timestamp()))
    webhook.verify(body, good, "whsec_a", now)
    for header in [None, "", "t=1", "v1=abc", "t=x,v1=abc", webhook.sign(body, "whsec_b", 1)]:
        with pytest.raises(WebhookRejected):
            webhook.verify(body, header, "whsec_a", now)
    stale = webhook.sign(body, "whsec_a", int(now.timestamp()) - 301)
    with pytest.raises(WebhookRejected):
        webhook.verify(body, stale, "whsec_a", now)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body.decode(), stale, "whsec_a")


def test_a_rolled_secret_still_verifies_with_either_signature() -> None:
    body = b"{}"
    now = datetime.now(UTC)
    t = int(now.timestamp())
    old = webhook.sign(body, "whsec_old", t).split(",")[1]
    header = webhook.sign(body, "whsec_new", t) + "," + old
    webhook.verify(body, header, "whsec_old", now)
    webhook.verify(body, header, "whsec_new", now)


def test_webhook_translation_of_a_dispute_and_a_refund() -> None:
    dispute = msgspec.json.encode(
        {
            "id": "evt_d",
            "type": "charge.dispute.created",
            "created": 1,
            "data": {
                "object": {
                    "id": "dp_1",
                    "amount": 700,
                    "reason": "fraudulent",
                    "payment_intent": "pi_9",
                }
            },
        }
    )
    [event] = translated(dispute)
    assert (event.connector_payment_id, event.dispute) == ("pi_9", ("dp_1", 700, "fraudulent"))
    refund = msgspec.json.encode(
        {
            "id": "evt_r",
            "type": "charge.refunded",
            "created": 1,
            "data": {"object": {"id": "ch_1", "payment_intent": "pi_9", "amount_refunded": 300}},
        }
    )
    [event] = translated(refund)
    assert event.amount_refunded == 300
    assert (
        translated(
            msgspec.json.encode(
                {"id": "e", "type": "customer.created", "created": 1, "data": {"object": {}}}
            )
        )
        == []
    )
    with pytest.raises(WebhookRejected):
        translated(b"not json")


def _event(event_type: str, obj: dict[str, Any]) -> bytes:
    return msgspec.json.encode(
        {"id": "evt_1", "type": event_type, "created": 1, "data": {"object": obj}}
    )


def test_each_event_states_the_money_of_its_object() -> None:
    intent = {
        "id": "pi_9",
        "object": "payment_intent",
        "status": "requires_capture",
        "amount": 2500,
        "currency": "eur",
        "amount_capturable": 2500,
        "metadata": {"paymesh_payment_id": "pay_1"},
    }
    [event] = translated(_event("payment_intent.amount_capturable_updated", intent))
    assert (event.payment_id, event.connector_payment_id, event.amount, event.currency) == (
        "pay_1",
        "pi_9",
        2500,
        "eur",
    )
    charge = {
        "id": "ch_1",
        "payment_intent": "pi_9",
        "amount": 2500,
        "currency": "eur",
        "amount_refunded": 300,
    }
    [event] = translated(_event("charge.refunded", charge))
    assert (event.amount, event.currency, event.amount_refunded) == (2500, "eur", 300)
    # A dispute holds a part of the payment: its amount is the dispute's, not the payment's.
    dispute = {"id": "dp_1", "amount": 700, "currency": "eur", "payment_intent": "pi_9"}
    [event] = translated(_event("charge.dispute.created", dispute))
    assert (event.amount, event.currency, event.dispute) == (None, "eur", ("dp_1", 700, None))


def test_an_amount_that_is_absent_or_null_states_no_amount() -> None:
    intent = {"id": "pi_9", "status": "succeeded", "amount": None}
    [event] = translated(_event("payment_intent.succeeded", intent))
    assert (event.amount, event.currency) == (None, None)


@pytest.mark.parametrize(
    "change",
    [
        {"amount": "2500"},
        {"amount": True},
        {"amount": 25.0},
        {"currency": 7},
        {"metadata": "pay_1"},
        {"last_payment_error": "declined"},
    ],
)
def test_a_field_of_another_type_is_a_malformed_body(change: dict[str, object]) -> None:
    # Signed means Stripe sent it, not that it has the shape we read: rejected whole (a 400
    # that changes nothing), never read as something it does not say.
    intent = {"id": "pi_9", "status": "succeeded", "amount": 2500, "currency": "usd", **change}
    with pytest.raises(WebhookRejected, match="not a webhook Stripe sends"):
        translated(_event("payment_intent.succeeded", intent))


@pytest.mark.parametrize(("status", "won"), [("won", True), ("lost", False)])
def test_a_closed_dispute_is_its_verdict(status: str, won: bool) -> None:
    dispute = {
        "id": "dp_1",
        "amount": 700,
        "currency": "eur",
        "payment_intent": "pi_9",
        "status": status,
    }
    [event] = translated(_event("charge.dispute.closed", dispute))
    assert (event.connector_payment_id, event.dispute_closed, event.dispute) == (
        "pi_9",
        ("dp_1", won),
        None,
    )
    assert (event.amount, event.currency) == (None, "eur")


def test_an_inquiry_closed_without_a_chargeback_is_ignored() -> None:
    inquiry = {"id": "dp_1", "amount": 700, "currency": "eur", "status": "warning_closed"}
    assert translated(_event("charge.dispute.closed", inquiry)) == []


@given(
    st.lists(
        st.tuples(
            st.text(max_size=30) | st.sampled_from(["amount", "metadata[order_id]", "a b"]),
            st.text(max_size=40) | st.sampled_from(["pi_3Q", "12.5", "x y+z", "é&="]),
        ),
        max_size=8,
    )
)
def test_the_form_body_is_urlencodes_to_the_byte(fields: list[tuple[str, str]]) -> None:
    assert form_body(fields) == urlencode(fields).encode()
