"""Signed but malformed: webhooks the PSP signed, with fields of types it never sends.

A signature says the PSP sent the bytes, not that every field has the shape we read. Each
connector's `parse_webhook` must then either return events whose every field has its type,
or raise WebhookRejected (a 400 that changes nothing): never another exception, which the
HTTP layer would answer with a 500 (as it did for PayPal's `resource.supplementary_data` as a
string, found by `make fuzz`).

The bodies are the sandboxes' own (`webhook_samples.json`, one per event type); hypothesis
changes the type of one to three of their fields, or drops them, signs the result as the PSP
would, and parses it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paymesh.connectors.adyen import AdyenConnector, AdyenSettings
from paymesh.connectors.adyen.webhook import sign as adyen_sign
from paymesh.connectors.mock_transport import HttpRequest, MockTransport
from paymesh.connectors.paypal import PayPalConnector, PayPalSettings
from paymesh.connectors.stripe import StripeConnector, StripeSettings
from paymesh.connectors.stripe.webhook import sign as stripe_sign
from paymesh.connectors.transport import HttpAnswer
from paymesh.domain.payment import PspOutcome
from paymesh.domain.status import PaymentStatus
from paymesh.ports.connector import Connector, WebhookEvent, WebhookRejected
from paymesh.sandbox.paypal.signing import SigningIdentity, signed_message
from tests.fuzz.common import EXAMPLES

SAMPLES: dict[str, list[dict[str, Any]]] = {
    psp: bodies
    for psp, bodies in json.loads(
        (Path(__file__).parent / "webhook_samples.json").read_text()
    ).items()
    if psp != "about"
}
STRIPE_SECRET = "whsec_hostile"
ADYEN_HMAC = "3C71D7C620CA13837C8D1FA38910FC7F39C6955DFBB5478384F23F9619ED7480"
WEBHOOK_ID = "WH-HOSTILE"
IDENTITY = SigningIdentity.generate()


def _no_io(request: HttpRequest) -> HttpAnswer:
    raise AssertionError(f"parse_webhook sent {request.method} {request.url}: it does no I/O")


CONNECTORS: dict[str, Connector] = {
    "stripe": StripeConnector(
        StripeSettings(
            api_base="http://stripe.invalid",
            secret_key="sk_test_hostile",
            webhook_secret=STRIPE_SECRET,
        ),
        transport=MockTransport(_no_io),
    ),
    "adyen": AdyenConnector(
        AdyenSettings(
            api_base="http://adyen.invalid",
            api_key="AQE_hostile",
            merchant_account="Hostile",
            hmac_key=ADYEN_HMAC,
        ),
        transport=MockTransport(_no_io),
    ),
    "paypal": PayPalConnector(
        PayPalSettings(
            api_base="http://paypal.invalid",
            client_id="hostile",
            client_secret="hostile-secret",
            webhook_id=WEBHOOK_ID,
            trusted_cert_pem=IDENTITY.cert_pem,
        ),
        transport=MockTransport(_no_io),
    ),
}


# -- signing as each PSP signs --------------------------------------------------------------


def _stripe_raw(body: bytes) -> dict[str, str]:
    return {"stripe-signature": stripe_sign(body, STRIPE_SECRET, int(time.time()))}


def _paypal_raw(body: bytes) -> dict[str, str]:
    tid, sent = str(uuid.uuid4()), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "paypal-transmission-id": tid,
        "paypal-transmission-time": sent,
        "paypal-transmission-sig": IDENTITY.sign(signed_message(tid, sent, WEBHOOK_ID, body)),
        "paypal-cert-url": "https://api.paypal.com/v1/notifications/certs/CERT-1",
        "paypal-auth-algo": "SHA256withRSA",
    }


def _stripe(value: Any) -> tuple[dict[str, str], bytes]:
    body = json.dumps(value).encode()
    return _stripe_raw(body), body


def _adyen(value: Any) -> tuple[dict[str, str], bytes]:
    """Every item is signed over its fields as they now are, whatever their types, so that
    the signature holds and what follows it is tested."""
    key = bytes.fromhex(ADYEN_HMAC)
    entries = value.get("notificationItems") if isinstance(value, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        item = entry.get("NotificationRequestItem") if isinstance(entry, dict) else None
        if isinstance(item, dict):
            if not isinstance(item.get("additionalData"), dict):
                item["additionalData"] = {}
            amount = item.get("amount")
            item["additionalData"]["hmacSignature"] = adyen_sign(
                {**item, "amount": amount if isinstance(amount, dict) else {}}, key
            )
    return {}, json.dumps(value).encode()


def _paypal(value: Any) -> tuple[dict[str, str], bytes]:
    body = json.dumps(value).encode()
    return _paypal_raw(body), body


SIGN: dict[str, Callable[[Any], tuple[dict[str, str], bytes]]] = {
    "stripe": _stripe,
    "adyen": _adyen,
    "paypal": _paypal,
}


# -- what a parsed event must be ------------------------------------------------------------


def _optional(value: object, kind: type) -> bool:
    return value is None or (isinstance(value, kind) and type(value) is not bool)


def assert_well_typed(event: WebhookEvent) -> None:
    assert isinstance(event.psp_event_id, str) and event.psp_event_id
    assert isinstance(event.created, datetime) and event.created.tzinfo is not None
    for text in (
        event.payment_id,
        event.connector_payment_id,
        event.currency,
        event.transmission_id,
        event.psp_object_id,
    ):
        assert _optional(text, str), event
    assert _optional(event.amount, int) and _optional(event.amount_refunded, int), event
    assert all(isinstance(ref, str) for ref in event.connector_refund_ids), event
    parts = [event.outcome, event.amount_refunded, event.refund, event.dispute]
    assert sum(part is not None for part in parts) == 1, event  # exactly one, as documented
    if event.outcome is not None:
        _assert_outcome(event.outcome)
    if event.refund is not None:
        refund = event.refund
        assert _optional(refund.refund_id, str) and _optional(refund.connector_refund_id, str)
        assert type(refund.amount) is int and isinstance(refund.succeeded, bool), refund
        assert _optional(refund.failure_reason, str), refund
    if event.dispute is not None:
        dispute_id, amount, reason = event.dispute
        assert isinstance(dispute_id, str) and type(amount) is int and _optional(reason, str)


def _assert_outcome(outcome: PspOutcome) -> None:
    assert isinstance(outcome.status, PaymentStatus)
    assert _optional(outcome.connector_payment_id, str), outcome
    assert _optional(outcome.amount_capturable, int), outcome
    assert _optional(outcome.amount_received, int), outcome
    assert outcome.next_action is None or isinstance(outcome.next_action, dict), outcome
    if outcome.failure is not None:
        failure = outcome.failure
        assert isinstance(failure.code, str) and isinstance(failure.message, str), failure
        assert isinstance(failure.retryable, bool), failure
        assert _optional(failure.decline_code, str), failure


def parse(psp: str, value: Any) -> list[WebhookEvent]:
    headers, body = SIGN[psp](value)
    return CONNECTORS[psp].parse_webhook(headers, body, datetime.now(UTC))


# -- the sandboxes' own bodies ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("psp", "index"), [(psp, i) for psp, bodies in SAMPLES.items() for i in range(len(bodies))]
)
def test_every_sandbox_body_parses_into_well_typed_events(psp: str, index: int) -> None:
    events = parse(psp, SAMPLES[psp][index])
    assert events, f"{psp} sample {index} is about a payment: it must say something"
    for event in events:
        assert_well_typed(event)


def test_the_samples_cover_every_event_type_we_act_on() -> None:
    kinds = {
        psp: {
            body.get("type")
            or body.get("event_type")
            or body["notificationItems"][0]["NotificationRequestItem"]["eventCode"]
            for body in bodies
        }
        for psp, bodies in SAMPLES.items()
    }
    assert {
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "charge.refunded",
        "charge.dispute.created",
    } <= kinds["stripe"]
    assert {"AUTHORISATION", "CAPTURE", "CANCELLATION", "REFUND", "CHARGEBACK"} <= kinds["adyen"]
    assert {
        "PAYMENT.CAPTURE.COMPLETED",
        "PAYMENT.CAPTURE.DECLINED",
        "PAYMENT.AUTHORIZATION.CREATED",
        "PAYMENT.AUTHORIZATION.VOIDED",
        "PAYMENT.CAPTURE.REFUNDED",
        "CHECKOUT.ORDER.APPROVED",
        "CUSTOMER.DISPUTE.CREATED",
    } <= kinds["paypal"]


# -- the fuzzer's find, and its kind ----------------------------------------------------------


def _paypal_capture() -> dict[str, Any]:
    [body] = [b for b in SAMPLES["paypal"] if b["event_type"] == "PAYMENT.CAPTURE.COMPLETED"]
    copy: dict[str, Any] = json.loads(json.dumps(body))
    return copy


@pytest.mark.parametrize(
    "supplementary_data",
    [
        "related_ids",
        7,
        ["order_id"],
        {"related_ids": "5O190127TN364715T"},
        {"related_ids": {"order_id": 42}},
    ],
)
def test_paypal_supplementary_data_of_another_type_is_rejected(supplementary_data: object) -> None:
    body = _paypal_capture()
    body["resource"]["supplementary_data"] = supplementary_data
    with pytest.raises(WebhookRejected, match="not a webhook PayPal sends"):
        parse("paypal", body)


@pytest.mark.parametrize(
    ("psp", "event_type", "path", "value"),
    [
        ("stripe", "payment_intent.succeeded", ("data", "object", "metadata"), "pay_1"),
        ("stripe", "payment_intent.payment_failed", ("data", "object", "last_payment_error"), "x"),
        ("stripe", "charge.refunded", ("data", "object", "amount_refunded"), "300"),
        ("stripe", "charge.refunded", ("data", "object", "refunds"), {"data": [{"id": 1}]}),
        ("stripe", "charge.dispute.created", ("data", "object", "amount"), 7.5),
        ("stripe", "payment_intent.succeeded", ("created",), 10**30),
        (
            "adyen",
            "AUTHORISATION",
            ("notificationItems", 0, "NotificationRequestItem", "merchantReference"),
            2000,
        ),
        ("adyen", "REFUND", ("notificationItems", 0, "NotificationRequestItem", "reason"), []),
        (
            "adyen",
            "CAPTURE",
            ("notificationItems", 0, "NotificationRequestItem", "amount", "value"),
            True,
        ),
        ("paypal", "CHECKOUT.ORDER.APPROVED", ("resource", "purchase_units"), {"0": {}}),
        ("paypal", "CHECKOUT.ORDER.APPROVED", ("resource", "links", 0), "https://x.test"),
        ("paypal", "CUSTOMER.DISPUTE.CREATED", ("resource", "disputed_transactions", 0), None),
        ("paypal", "PAYMENT.CAPTURE.DECLINED", ("resource", "processor_response"), "0500"),
        ("paypal", "PAYMENT.CAPTURE.REFUNDED", ("resource", "amount", "value"), 15),
        ("paypal", "PAYMENT.CAPTURE.COMPLETED", ("create_time",), "0001-01-01T00:00:00+14:00"),
    ],
)
def test_a_field_of_another_type_is_rejected_in_each_psp(
    psp: str, event_type: str, path: Path_, value: object
) -> None:
    [body] = [
        json.loads(json.dumps(b))
        for b in SAMPLES[psp]
        if event_type
        in (
            b.get("type"),
            b.get("event_type"),
            (b.get("notificationItems") or [{}])[0]
            .get("NotificationRequestItem", {})
            .get("eventCode"),
        )
    ][:1]
    _set(body, path, value)
    with pytest.raises(WebhookRejected):
        parse(psp, body)


# -- hypothesis: any field, any type ----------------------------------------------------------

Path_ = tuple[str | int, ...]
_DROP = object()  # the field removed, not replaced

hostile_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63, max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            "0",
            "-1",
            "1e3",
            "20.001",
            "USD",
            "true",
            "null",
            "2026-13-45",
            "0001-01-01T00:00:00+14:00",
        ]
    ),
    st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=4)), max_size=3),
    st.dictionaries(
        st.text(max_size=6), st.one_of(st.none(), st.integers(), st.text(max_size=4)), max_size=2
    ),
    st.just(_DROP),
)


def _paths(value: Any, prefix: Path_ = ()) -> list[Path_]:
    found: list[Path_] = []
    children: list[tuple[str | int, Any]] = (
        list(value.items())
        if isinstance(value, dict)
        else list(enumerate(value))
        if isinstance(value, list)
        else []
    )
    for key, child in children:
        found.append((*prefix, key))
        found.extend(_paths(child, (*prefix, key)))
    return found


def _set(value: Any, path: Path_, new: object) -> None:
    *parents, last = path
    for key in parents:
        value = value[key]
    if new is _DROP:
        del value[last]
    else:
        value[last] = new


def _still_there(value: Any, path: Path_) -> bool:
    for key in path:
        in_dict = isinstance(value, dict) and isinstance(key, str) and key in value
        in_list = isinstance(value, list) and isinstance(key, int) and key < len(value)
        if not (in_dict or in_list):
            return False
        value = value[key]
    return True


@st.composite
def hostile_bodies(draw: st.DrawFn, psp: str) -> Any:
    body = json.loads(json.dumps(draw(st.sampled_from(SAMPLES[psp]), label="sample")))
    for _ in range(draw(st.integers(min_value=1, max_value=3), label="changes")):
        paths = [p for p in _paths(body) if _still_there(body, p)]
        if not paths:
            break
        path = draw(st.sampled_from(paths), label="field")
        _set(body, path, draw(hostile_values, label="value"))
    return body


@pytest.mark.parametrize("psp", ["stripe", "adyen", "paypal"])
@settings(
    max_examples=max(200, EXAMPLES), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(data=st.data())
def test_a_signed_body_with_any_field_of_any_type_is_events_or_rejected(
    psp: str, data: st.DataObject
) -> None:
    body = data.draw(hostile_bodies(psp))
    try:
        events = parse(psp, body)
    except WebhookRejected:
        return  # a 400 that changes nothing
    for event in events:
        assert_well_typed(event)


@pytest.mark.parametrize("psp", ["stripe", "adyen", "paypal"])
@pytest.mark.parametrize(
    "body", [b"", b"not json", b"[]", b"null", b'"x"', b"{}", b"\xff\xfe", b'{"id": "evt_1"}']
)
def test_a_body_that_is_not_json_or_not_an_event_is_rejected_though_signed(
    psp: str, body: bytes
) -> None:
    headers = {"stripe": _stripe_raw, "paypal": _paypal_raw}.get(psp, lambda _b: {})(body)
    with pytest.raises(WebhookRejected):
        CONNECTORS[psp].parse_webhook(headers, body, datetime.now(UTC))


def test_msgspec_names_the_field_not_its_value() -> None:
    # The rejection's message goes back in the 400 (and to the log): the path and the types,
    # never the body's values.
    body = _paypal_capture()
    body["resource"]["supplementary_data"] = "4242424242424242"
    with pytest.raises(WebhookRejected) as info:
        parse("paypal", body)
    assert "supplementary_data" in str(info.value)
    assert "4242424242424242" not in str(info.value)
