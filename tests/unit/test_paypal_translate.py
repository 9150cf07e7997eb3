"""The PayPal connector's translations and money, as tables; its offline webhook check; its
token cache; and the sandbox's own money and request-id rules, which the connector relies on."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paymesh.connectors.paypal import translate, webhook
from paymesh.connectors.paypal.amounts import AmountNotRepresentable, from_paypal, to_paypal
from paymesh.connectors.paypal.token import TokenCache
from paymesh.domain.status import PaymentStatus
from paymesh.ports.connector import AuthorizeRequest, WebhookEvent, WebhookRejected
from paymesh.sandbox.cards import CARDS
from paymesh.sandbox.paypal.amounts import parse_money
from paymesh.sandbox.paypal.charging import RESPONSE_CODES
from paymesh.sandbox.paypal.errors import PayPalError
from paymesh.sandbox.paypal.idempotency import RequestIds
from paymesh.sandbox.paypal.signing import SigningIdentity, signed_message

S = PaymentStatus
ORDER = "5O190127TN364715T"


# -- money ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "wire"),
    [
        (2000, "usd", {"currency_code": "USD", "value": "20.00"}),
        (5, "usd", {"currency_code": "USD", "value": "0.05"}),
        (123456789, "eur", {"currency_code": "EUR", "value": "1234567.89"}),
        (1000, "jpy", {"currency_code": "JPY", "value": "1000"}),
        (1234, "kwd", {"currency_code": "KWD", "value": "1.234"}),
        (150000, "huf", {"currency_code": "HUF", "value": "1500"}),  # PayPal: no decimals in HUF
        (9900, "twd", {"currency_code": "TWD", "value": "99"}),  # nor in TWD
    ],
)
def test_minor_units_become_paypal_decimal_strings(
    amount: int, currency: str, wire: dict[str, str]
) -> None:
    assert to_paypal(amount, currency) == wire


@pytest.mark.parametrize(("amount", "currency"), [(150050, "huf"), (9901, "twd")])
def test_cents_paypal_cannot_carry_are_refused_not_rounded(amount: int, currency: str) -> None:
    with pytest.raises(AmountNotRepresentable):
        to_paypal(amount, currency)


@pytest.mark.parametrize(
    ("wire", "ours"),
    [
        ({"currency_code": "USD", "value": "20.00"}, (2000, "usd")),
        ({"currency_code": "USD", "value": "20"}, (2000, "usd")),
        ({"currency_code": "USD", "value": "0.5"}, (50, "usd")),
        ({"currency_code": "JPY", "value": "1000"}, (1000, "jpy")),
        ({"currency_code": "HUF", "value": "1500"}, (150000, "huf")),
    ],
)
def test_paypal_amounts_become_minor_units(wire: dict[str, str], ours: tuple[int, str]) -> None:
    assert from_paypal(wire) == ours


@pytest.mark.parametrize(
    "wire",
    [
        {"currency_code": "USD", "value": "20.001"},
        {"currency_code": "USD", "value": "x"},
        {"currency_code": "XXX", "value": "1"},
        {"currency_code": "USD"},
        "20.00",
        None,
        {"currency_code": "USD", "value": "Infinity"},
    ],
)
def test_what_is_not_an_amount_is_refused(wire: object) -> None:
    with pytest.raises(ValueError):
        from_paypal(wire)


@given(
    st.integers(min_value=1, max_value=99_999_999_999),
    st.sampled_from(["usd", "eur", "jpy", "kwd", "gbp"]),
)
def test_money_round_trips_exactly(amount: int, currency: str) -> None:
    assert from_paypal(to_paypal(amount, currency)) == (amount, currency)


@pytest.mark.parametrize(
    ("value", "currency", "minor", "written"),
    [
        ("20.00", "USD", 2000, "20.00"),
        ("20", "USD", 2000, "20.00"),
        ("20.5", "USD", 2050, "20.50"),
        (".5", "USD", 50, "0.50"),
        ("1000", "JPY", 1000, "1000"),
        ("1500", "HUF", 1500, "1500"),
    ],
)
def test_the_sandbox_reads_paypal_amounts(
    value: str, currency: str, minor: int, written: str
) -> None:
    money = parse_money({"currency_code": currency, "value": value}, "/amount")
    assert (money.minor, money.wire()) == (minor, {"currency_code": currency, "value": written})


@pytest.mark.parametrize(
    ("value", "currency", "status", "issue"),
    [
        ("20.001", "USD", 422, "DECIMAL_PRECISION"),
        ("100.5", "JPY", 422, "DECIMALS_NOT_SUPPORTED"),
        ("1500.50", "HUF", 422, "DECIMALS_NOT_SUPPORTED"),
        ("1.234", "KWD", 422, "CURRENCY_NOT_SUPPORTED"),
        ("0.00", "USD", 422, "CANNOT_BE_ZERO_OR_NEGATIVE"),
        ("-1.00", "USD", 422, "CANNOT_BE_ZERO_OR_NEGATIVE"),
        ("1,00", "USD", 400, "INVALID_PARAMETER_SYNTAX"),
        ("20.00", "usd", 400, "INVALID_PARAMETER_SYNTAX"),
    ],
)
def test_the_sandbox_refuses_amounts_as_paypal_does(
    value: str, currency: str, status: int, issue: str
) -> None:
    with pytest.raises(PayPalError) as info:
        parse_money({"currency_code": currency, "value": value}, "/amount")
    assert (info.value.status, info.value.issue) == (status, issue)


# -- statuses, as tables --------------------------------------------------------------------


def test_the_tables_cover_every_paypal_status() -> None:
    assert set(translate.ORDER_STATUS) == {
        "CREATED",
        "SAVED",
        "PAYER_ACTION_REQUIRED",
        "APPROVED",
        "VOIDED",
        "COMPLETED",
    }
    assert set(translate.CAPTURE_STATUS) == {
        "COMPLETED",
        "PARTIALLY_REFUNDED",
        "REFUNDED",
        "PENDING",
        "DECLINED",
        "DENIED",
        "FAILED",
    }
    assert set(translate.AUTHORIZATION_STATUS) == {
        "CREATED",
        "PENDING",
        "CAPTURED",
        "PARTIALLY_CAPTURED",
        "DENIED",
        "VOIDED",
        "EXPIRED",
    }


def _money(value: str) -> dict[str, str]:
    return {"currency_code": "USD", "value": value}


def _order(
    status: str,
    payments: dict[str, Any] | None = None,
    links: list[dict[str, str]] | None = None,
    card: dict[str, Any] | None = None,
) -> dict[str, Any]:
    unit: dict[str, Any] = {"reference_id": "pay_1", "amount": _money("50.00")}
    if payments:
        unit["payments"] = payments
    order: dict[str, Any] = {
        "id": ORDER,
        "status": status,
        "purchase_units": [unit],
        "links": links or [],
    }
    if card is not None:
        order["payment_source"] = {"card": card}
    return order


@pytest.mark.parametrize(
    ("capture_status", "ours", "received"),
    [
        ("COMPLETED", S.SUCCEEDED, 5000),
        ("PARTIALLY_REFUNDED", S.SUCCEEDED, 5000),
        ("REFUNDED", S.SUCCEEDED, 5000),
        ("PENDING", S.PROCESSING, None),
        ("DECLINED", S.FAILED, None),
        ("DENIED", S.FAILED, None),
        ("FAILED", S.FAILED, None),
    ],
)
def test_a_completed_order_is_read_by_its_capture(
    capture_status: str, ours: PaymentStatus, received: int | None
) -> None:
    capture = {"id": "C1", "status": capture_status, "amount": _money("50.00")}
    out = translate.outcome_from_order(_order("COMPLETED", {"captures": [capture]}))
    assert (out.status, out.amount_received, out.connector_payment_id) == (ours, received, ORDER)
    assert (out.failure is not None) == (ours == S.FAILED)


@pytest.mark.parametrize(
    ("auth_status", "ours", "capturable"),
    [
        ("CREATED", S.REQUIRES_CAPTURE, 5000),
        ("PENDING", S.PROCESSING, None),
        ("VOIDED", S.CANCELED, None),
        ("EXPIRED", S.CANCELED, None),
        ("DENIED", S.FAILED, None),
        ("CAPTURED", S.SUCCEEDED, None),
    ],
)
def test_an_authorize_order_is_read_by_its_authorization(
    auth_status: str, ours: PaymentStatus, capturable: int | None
) -> None:
    auth = {"id": "A1", "status": auth_status, "amount": _money("50.00")}
    out = translate.outcome_from_order(_order("COMPLETED", {"authorizations": [auth]}))
    assert (out.status, out.amount_capturable) == (ours, capturable)


def test_a_partially_captured_authorization_received_only_what_was_captured() -> None:
    auth = {"id": "A1", "status": "CAPTURED", "amount": _money("50.00")}
    capture = {"id": "C1", "status": "COMPLETED", "amount": _money("30.00")}
    out = translate.outcome_from_order(
        _order("COMPLETED", {"authorizations": [auth], "captures": [capture]})
    )
    assert (out.status, out.amount_received) == (S.SUCCEEDED, 3000)


@pytest.mark.parametrize("rel", ["payer-action", "approve"])
def test_an_order_waiting_for_its_payer_redirects_there(rel: str) -> None:
    link = {"href": f"http://sandbox/{rel}?token={ORDER}", "rel": rel, "method": "GET"}
    status = "PAYER_ACTION_REQUIRED" if rel == "payer-action" else "CREATED"
    out = translate.outcome_from_order(
        _order(
            status, links=[{"href": "http://sandbox/self", "rel": "self", "method": "GET"}, link]
        )
    )
    assert out.status == S.REQUIRES_ACTION
    assert out.next_action == {"type": "redirect_to_url", "redirect_url": link["href"]}


def test_an_approved_order_is_processing_until_the_merchant_completes_it() -> None:
    assert translate.outcome_from_order(_order("APPROVED")).status == S.PROCESSING
    passed = {
        "authentication_result": {
            "liability_shift": "POSSIBLE",
            "three_d_secure": {"enrollment_status": "Y", "authentication_status": "Y"},
        }
    }
    assert translate.outcome_from_order(_order("APPROVED", card=passed)).status == S.PROCESSING


def test_an_approved_order_whose_3ds_failed_is_failed() -> None:
    failed = {
        "authentication_result": {
            "liability_shift": "NO",
            "three_d_secure": {"enrollment_status": "Y", "authentication_status": "N"},
        }
    }
    out = translate.outcome_from_order(_order("APPROVED", card=failed))
    assert out.status == S.FAILED
    assert out.failure is not None
    assert (out.failure.code, out.failure.retryable) == ("authentication_failed", False)


@pytest.mark.parametrize(
    ("code", "decline", "retryable"),
    [
        ("5120", "insufficient_funds", False),
        ("5400", "expired_card", False),
        ("0500", "do_not_honor", False),
        ("5100", "generic_decline", False),
        ("00N7", "incorrect_cvc", False),
        ("9500", "fraudulent", False),
        ("9520", "lost_card", False),
        ("9100", "try_again_later", True),
        ("5920", "issuer_not_available", True),
        ("8000", "processing_error", True),
        ("PPXX", "generic_decline", False),  # a code we do not know is a hard decline
    ],
)
def test_processor_codes_become_decline_codes(code: str, decline: str, retryable: bool) -> None:
    failure = translate.failure_from_processor(
        {"avs_code": "G", "cvv_code": "P", "response_code": code}
    )
    assert (failure.code, failure.decline_code, failure.retryable) == (
        "card_declined",
        decline,
        retryable,
    )
    assert code in failure.message


def test_every_declining_vault_card_reads_back_as_its_own_decline() -> None:
    """The sandbox writes each vault decline as a PayPal code; the connector reads it back."""
    for card in CARDS.values():
        if card.decline is None:
            continue
        code = RESPONSE_CODES[card.decline.decline_code]
        read = translate.failure_from_processor({"response_code": code}).decline_code
        # PayPal has one code for lost and stolen cards.
        expected = (
            "lost_card" if card.decline.decline_code == "stolen_card" else card.decline.decline_code
        )
        assert read == expected, card.token


def test_a_denied_ewallet_capture_is_a_non_retryable_denial() -> None:
    out = translate.outcome_from_capture(
        {"id": "C1", "status": "DENIED", "amount": _money("5.00")}, ORDER
    )
    assert out.status == S.FAILED
    assert out.failure is not None
    assert (out.failure.code, out.failure.retryable) == ("payment_denied", False)


# -- ours to PayPal's -----------------------------------------------------------------------


def _request(method: str, capture: str = "automatic") -> AuthorizeRequest:
    return AuthorizeRequest(
        payment_id="pay_1",
        amount=2050,
        currency="eur",
        payment_method=method,
        capture_method=capture,
        customer_id="cus_1",
        idempotency_key="paymesh:pay_1:authorize:1",
        description="order o-1",
    )


def test_a_card_order_carries_the_vault_token_and_our_ids() -> None:
    body = translate.order_request(_request("pm_card_visa"), "https://shop/return")
    assert body == {
        "intent": "CAPTURE",
        "purchase_units": [
            {
                "reference_id": "pay_1",
                "custom_id": "pay_1",
                "invoice_id": "paymesh:pay_1:authorize:1",
                "amount": {"currency_code": "EUR", "value": "20.50"},
                "description": "order o-1",
            }
        ],
        "payment_source": {
            "card": {
                "vault_id": "pm_card_visa",
                "attributes": {"verification": {"method": "SCA_WHEN_REQUIRED"}},
                "experience_context": {
                    "return_url": "https://shop/return",
                    "cancel_url": "https://shop/return",
                },
            }
        },
    }


def test_manual_capture_is_an_authorize_order() -> None:
    assert (
        translate.order_request(_request("pm_card_visa", "manual"), None)["intent"] == "AUTHORIZE"
    )


@pytest.mark.parametrize(
    ("method", "email"), [("paypal", None), ("paypal:buyer@example.com", "buyer@example.com")]
)
def test_a_wallet_order_asks_for_the_buyer(method: str, email: str | None) -> None:
    source = translate.order_request(_request(method), None)["payment_source"]
    assert list(source) == ["paypal"]
    assert source["paypal"].get("email_address") == email
    assert source["paypal"]["experience_context"]["user_action"] == "PAY_NOW"


# -- webhooks -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def identity() -> SigningIdentity:
    return SigningIdentity.generate()


def _signed(
    identity: SigningIdentity, body: bytes, sent: datetime, webhook_id: str = "WH-1"
) -> dict[str, str]:
    tid = "b2384410-f8d2-11ea-8b14-a55d0a5ad0a2"
    when = sent.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "PAYPAL-TRANSMISSION-ID": tid,
        "PAYPAL-TRANSMISSION-TIME": when,
        "PAYPAL-TRANSMISSION-SIG": identity.sign(signed_message(tid, when, webhook_id, body)),
        "PAYPAL-CERT-URL": "https://api.paypal.com/v1/notifications/certs/CERT-1",
        "PAYPAL-AUTH-ALGO": "SHA256withRSA",
    }


def test_a_signed_transmission_verifies_and_any_change_does_not(identity: SigningIdentity) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    body = b'{"id":"WH-1"}'
    cert = webhook.load_certificate(identity.cert_pem)
    headers = _signed(identity, body, now)
    webhook.verify(headers, body, cert, "WH-1", now)  # header names in any case
    broken = [
        ({}, body, "WH-1", now),
        ({**headers, "PAYPAL-AUTH-ALGO": "SHA1withRSA"}, body, "WH-1", now),
        (headers, b'{"id":"WH-2"}', "WH-1", now),
        (headers, body, "WH-OTHER", now),  # sent to another endpoint
        ({**headers, "PAYPAL-TRANSMISSION-SIG": "not base64!"}, body, "WH-1", now),
        ({**headers, "PAYPAL-TRANSMISSION-TIME": "yesterday"}, body, "WH-1", now),
        (headers, body, "WH-1", now + timedelta(seconds=301)),  # stale: a replay
        (headers, body, "WH-1", now - timedelta(seconds=301)),  # from the future
        (_signed(SigningIdentity.generate(), body, now), body, "WH-1", now),  # another key
    ]
    for h, b, wid, at in broken:
        with pytest.raises(WebhookRejected):
            webhook.verify(h, b, cert, wid, at)


def test_a_certificate_past_its_validity_is_no_trust_root() -> None:
    short = SigningIdentity.generate(valid_days=1)
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    body = b"{}"
    cert = webhook.load_certificate(short.cert_pem)
    with pytest.raises(WebhookRejected, match="not valid"):
        webhook.verify(_signed(short, body, later), body, cert, "WH-1", later)


def test_the_crc_is_the_unsigned_decimal_of_the_raw_body() -> None:
    message = signed_message("t", "2026-01-01T00:00:00Z", "WH-1", b"hello")
    assert message == b"t|2026-01-01T00:00:00Z|WH-1|907060870"


def _event(event_type: str, resource: dict[str, Any]) -> bytes:
    return msgspec.json.encode(
        {
            "id": "WH-EVT",
            "event_version": "1.0",
            "create_time": "2026-11-23T19:00:00.123Z",
            "resource_type": "x",
            "event_type": event_type,
            "summary": "s",
            "resource": resource,
        }
    )


_RELATED = {"related_ids": {"order_id": ORDER}}


def translated(body: bytes) -> list[WebhookEvent]:
    """A body's events, its signature taken as checked: the template's steps after `verify`."""
    return webhook.PayPalWebhooks(None, "WH-1").translate({}, body, datetime.now(UTC))


def test_capture_events_become_outcomes() -> None:
    completed = {
        "id": "C1",
        "status": "COMPLETED",
        "amount": _money("25.00"),
        "custom_id": "pay_1",
        "supplementary_data": _RELATED,
    }
    [event] = translated(_event("PAYMENT.CAPTURE.COMPLETED", completed))
    assert (event.psp_event_id, event.payment_id, event.connector_payment_id) == (
        "WH-EVT",
        "pay_1",
        ORDER,
    )
    assert event.outcome is not None
    assert (event.outcome.status, event.outcome.amount_received) == (S.SUCCEEDED, 2500)
    assert event.created == datetime(2026, 11, 23, 19, 0, 0, 123000, tzinfo=UTC)
    denied = {**completed, "status": "DENIED"}
    [event] = translated(_event("PAYMENT.CAPTURE.DENIED", denied))
    assert event.outcome is not None and event.outcome.status == S.FAILED
    # A capture may be partial: only its currency speaks for the whole payment.
    assert (event.amount, event.currency) == (None, "usd")


def test_a_refund_event_names_our_refund() -> None:
    refund = {
        "id": "R1",
        "status": "COMPLETED",
        "amount": _money("15.00"),
        "custom_id": "re_1",
        "supplementary_data": _RELATED,
    }
    [event] = translated(_event("PAYMENT.CAPTURE.REFUNDED", refund))
    assert event.connector_payment_id == ORDER
    assert event.refund is not None
    assert (
        event.refund.refund_id,
        event.refund.connector_refund_id,
        event.refund.amount,
        event.refund.succeeded,
    ) == ("re_1", "R1", 1500, True)
    assert translated(_event("PAYMENT.CAPTURE.REFUNDED", {**refund, "status": "PENDING"})) == []
    [failed] = translated(_event("PAYMENT.REFUND.FAILED", {**refund, "status": "FAILED"}))
    assert failed.refund is not None and failed.refund.succeeded is False


def test_authorization_and_dispute_events() -> None:
    auth = {
        "id": "A1",
        "status": "CREATED",
        "amount": _money("40.00"),
        "custom_id": "pay_2",
        "supplementary_data": _RELATED,
    }
    [created] = translated(_event("PAYMENT.AUTHORIZATION.CREATED", auth))
    assert created.outcome is not None
    assert (created.outcome.status, created.outcome.amount_capturable) == (S.REQUIRES_CAPTURE, 4000)
    [voided] = translated(_event("PAYMENT.AUTHORIZATION.VOIDED", {**auth, "status": "VOIDED"}))
    assert voided.outcome is not None and voided.outcome.status == S.CANCELED
    dispute = {
        "dispute_id": "PP-D-1",
        "reason": "UNAUTHORISED",
        "dispute_amount": _money("40.00"),
        "disputed_transactions": [{"seller_transaction_id": "C1", "custom": "pay_2"}],
    }
    [opened] = translated(_event("CUSTOMER.DISPUTE.CREATED", dispute))
    assert (opened.payment_id, opened.dispute) == ("pay_2", ("PP-D-1", 4000, "fraudulent"))
    # The dispute names the capture, not the order: `confirm` finds the order from it.
    assert (opened.connector_payment_id, opened.psp_object_id, opened.currency) == (
        None,
        "C1",
        "usd",
    )
    assert (created.amount, created.currency) == (4000, "usd")


def test_a_payment_event_is_rebuilt_from_the_order_paypal_shows() -> None:
    # The body claims a completed capture of another payment; the order says otherwise.
    claim = {
        "id": "C1",
        "status": "COMPLETED",
        "amount": _money("25.00"),
        "custom_id": "pay_other",
        "supplementary_data": _RELATED,
    }
    [event] = translated(_event("PAYMENT.CAPTURE.COMPLETED", claim))
    authorized = {"id": "A1", "status": "CREATED", "amount": _money("50.00")}
    order = _order("COMPLETED", {"authorizations": [authorized]})
    order["purchase_units"][0]["custom_id"] = "pay_1"
    confirmed = webhook.confirmed_by_order(event, order)
    assert confirmed is not None and confirmed.outcome is not None
    assert (confirmed.outcome.status, confirmed.outcome.amount_received) == (
        S.REQUIRES_CAPTURE,
        None,
    )
    assert (
        confirmed.payment_id,
        confirmed.connector_payment_id,
        confirmed.amount,
        confirmed.currency,
        confirmed.psp_event_id,
    ) == ("pay_1", ORDER, 5000, "usd", "WH-EVT")
    assert webhook.confirmed_by_order(event, {"id": ORDER, "purchase_units": []}) is None


def test_a_refund_event_is_rebuilt_from_the_refund_paypal_shows() -> None:
    claim = {
        "id": "R1",
        "status": "COMPLETED",
        "amount": _money("15.00"),
        "custom_id": "re_1",
        "supplementary_data": _RELATED,
    }
    [event] = translated(_event("PAYMENT.CAPTURE.REFUNDED", claim))
    shown = {
        **claim,
        "status": "FAILED",
        "supplementary_data": {"related_ids": {"order_id": "ORDER-REAL"}},
    }
    confirmed = webhook.confirmed_by_refund(event, shown)
    assert confirmed is not None and confirmed.refund is not None
    assert (
        confirmed.connector_payment_id,
        confirmed.refund.succeeded,
        confirmed.refund.failure_reason,
    ) == ("ORDER-REAL", False, "failed")
    pending = webhook.confirmed_by_refund(event, {**claim, "status": "PENDING"})
    assert pending is not None and pending.refund is None  # no verdict yet: settles nothing
    assert webhook.confirmed_by_refund(event, {"id": "R1"}) is None


def test_a_dispute_is_tied_to_the_order_of_its_capture() -> None:
    dispute = {
        "dispute_id": "PP-D-1",
        "reason": "UNAUTHORISED",
        "dispute_amount": _money("40.00"),
        "disputed_transactions": [{"seller_transaction_id": "C1", "custom": "pay_x"}],
    }
    [event] = translated(_event("CUSTOMER.DISPUTE.CREATED", dispute))
    capture = {
        "id": "C1",
        "status": "COMPLETED",
        "amount": _money("40.00"),
        "custom_id": "pay_2",
        "supplementary_data": _RELATED,
    }
    confirmed = webhook.confirmed_by_capture(event, capture)
    assert confirmed is not None
    assert (confirmed.payment_id, confirmed.connector_payment_id, confirmed.dispute) == (
        "pay_2",
        ORDER,
        ("PP-D-1", 4000, "fraudulent"),
    )
    assert webhook.confirmed_by_capture(event, {"id": "C1"}) is None


def test_unknown_events_are_ignored_and_garbage_is_rejected() -> None:
    assert translated(_event("BILLING.PLAN.CREATED", {"id": "P-1"})) == []
    for body in [
        b"not json",
        b"[]",
        b'{"id": "WH-1"}',
        _event("PAYMENT.CAPTURE.REFUNDED", {"id": "R1"}),
    ]:
        with pytest.raises(WebhookRejected):
            translated(body)


# -- the token cache ------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_token_is_reused_until_shortly_before_it_expires() -> None:
    clock, fetched = _Clock(), []

    async def fetch() -> tuple[str, float]:
        fetched.append(clock.now)
        await asyncio.sleep(0)
        return f"t{len(fetched)}", 600.0

    cache = TokenCache(fetch, clock)
    assert await asyncio.gather(*(cache.get() for _ in range(5))) == ["t1"] * 5
    clock.now += 539  # 600 s token, refreshed 60 s early
    assert await cache.get() == "t1"
    clock.now += 1
    assert await cache.get() == "t2"
    assert len(fetched) == 2


async def test_a_refused_token_is_replaced_once_however_many_callers_saw_it() -> None:
    clock, fetched = _Clock(), []

    async def fetch() -> tuple[str, float]:
        fetched.append(1)
        return f"t{len(fetched)}", 32400.0

    cache = TokenCache(fetch, clock)
    stale = await cache.get()
    # gather answers a list; typeshed calls it a tuple.
    assert list(await asyncio.gather(cache.refresh(stale), cache.refresh(stale))) == ["t2", "t2"]
    assert len(fetched) == 2


# -- the sandbox's request ids --------------------------------------------------------------


def test_a_request_id_is_claimed_held_replayed_and_forgotten() -> None:
    clock = _Clock()
    ids: RequestIds[str] = RequestIds(ttl_seconds=60, clock=clock)
    assert ids.claim("orders.create", "r1") is None
    with pytest.raises(PayPalError) as info:
        ids.claim("orders.create", "r1")  # still executing
    assert (info.value.status, info.value.issue) == (409, "PREVIOUS_REQUEST_IN_PROGRESS")
    assert ids.claim("orders.capture", "r1") is None  # another call type: another request
    ids.save("orders.create", "r1", "ORDER-1")
    assert ids.claim("orders.create", "r1") == "ORDER-1"
    ids.release("orders.capture", "r1")
    assert ids.claim("orders.capture", "r1") is None  # released: free again
    clock.now += 61
    assert ids.claim("orders.create", "r1") is None  # past the retention


@pytest.mark.parametrize(
    ("code", "won"),
    [("RESOLVED_SELLER_FAVOUR", True), ("RESOLVED_BUYER_FAVOUR", False), ("ACCEPTED", False)],
)
def test_a_resolved_dispute_is_its_outcome(code: str, won: bool) -> None:
    resolved = {
        "dispute_id": "PP-D-1",
        "reason": "UNAUTHORISED",
        "status": "RESOLVED",
        "dispute_amount": _money("40.00"),
        "disputed_transactions": [{"seller_transaction_id": "C1", "custom": "pay_2"}],
        "dispute_outcome": {"outcome_code": code},
    }
    [event] = translated(_event("CUSTOMER.DISPUTE.RESOLVED", resolved))
    assert (event.payment_id, event.dispute_closed, event.dispute) == (
        "pay_2",
        ("PP-D-1", won),
        None,
    )
    # Tied to its order through the capture, by `confirm`, as the opening is.
    assert (event.psp_object_id, event.connector_payment_id, event.currency) == ("C1", None, "usd")


def test_a_resolution_that_moves_none_of_the_merchants_money_is_ignored() -> None:
    resolved = {
        "dispute_id": "PP-D-1",
        "dispute_amount": _money("40.00"),
        "dispute_outcome": {"outcome_code": "RESOLVED_WITH_PAYOUT"},
    }
    assert translated(_event("CUSTOMER.DISPUTE.RESOLVED", resolved)) == []
