"""The Adyen connector's translations, as tables, and its notification signature against the
official Adyen package's."""

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from Adyen.util import generate_notification_sig, is_valid_hmac_notification

from paymesh.connectors.adyen import AdyenConnector, AdyenSettings, refusals, translate, webhook
from paymesh.connectors.adyen.connector import _error_for
from paymesh.domain.status import PaymentStatus
from paymesh.ports.connector import AuthorizeRequest, WebhookEvent, WebhookRejected

S = PaymentStatus
HEX_KEY = "9A3F1C2B7D0E4F5A6B8C9D0E1F2A3B4C5D6E7F8091A2B3C4D5E6F708192A3B4C"
KEY = bytes.fromhex(HEX_KEY)
NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


# -- resultCode -> status ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result_code", "manual", "ours"),
    [
        ("Authorised", False, S.SUCCEEDED),
        ("Authorised", True, S.REQUIRES_CAPTURE),
        ("Refused", False, S.FAILED),
        ("Error", False, S.FAILED),
        ("Cancelled", False, S.FAILED),
        ("RedirectShopper", False, S.REQUIRES_ACTION),
        ("IdentifyShopper", False, S.REQUIRES_ACTION),
        ("ChallengeShopper", False, S.REQUIRES_ACTION),
        ("PresentToShopper", False, S.REQUIRES_ACTION),
        ("Pending", False, S.PROCESSING),
        ("Received", False, S.PROCESSING),
        ("SomethingNew", False, S.PROCESSING),
    ],
)
def test_every_result_code_maps(result_code: str, manual: bool, ours: PaymentStatus) -> None:
    answer = {
        "pspReference": "PSP0000000000001",
        "resultCode": result_code,
        "amount": {"value": 1500, "currency": "EUR"},
    }
    outcome = translate.outcome_from_payment(answer, manual=manual)
    assert outcome.status == ours
    assert outcome.connector_payment_id == "PSP0000000000001"


def test_the_table_covers_every_checkout_result_code() -> None:
    assert set(translate.RESULT_CODES) == {
        "Authorised",
        "Refused",
        "Error",
        "Cancelled",
        "RedirectShopper",
        "IdentifyShopper",
        "ChallengeShopper",
        "PresentToShopper",
        "Pending",
        "Received",
    }


def test_an_automatic_authorisation_received_the_amount_a_manual_one_holds_it() -> None:
    answer = {
        "pspReference": "P",
        "resultCode": "Authorised",
        "amount": {"value": 1500, "currency": "EUR"},
    }
    auto = translate.outcome_from_payment(answer, manual=False)
    held = translate.outcome_from_payment(answer, manual=True)
    assert (auto.amount_received, auto.amount_capturable) == (1500, None)
    assert (held.amount_received, held.amount_capturable) == (None, 1500)


def test_a_redirect_becomes_a_redirect_to_url() -> None:
    answer = {
        "pspReference": "P",
        "resultCode": "RedirectShopper",
        "action": {"type": "redirect", "method": "GET", "url": "https://x/3ds"},
    }
    assert translate.outcome_from_payment(answer, manual=False).next_action == {
        "type": "redirect_to_url",
        "redirect_url": "https://x/3ds",
    }


def test_a_native_three_ds_action_is_kept_whole() -> None:
    action = {"type": "threeDS2", "token": "tok"}
    answer = {"pspReference": "P", "resultCode": "IdentifyShopper", "action": action}
    assert translate.outcome_from_payment(answer, manual=False).next_action == {
        "type": "threeDS2",
        "adyen_action": action,
    }


# -- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result_code", "reason", "code", "raw", "expected"),
    [
        (
            "Refused",
            "Not enough balance",
            "12",
            None,
            ("card_declined", "insufficient_funds", False),
        ),
        ("Refused", "Expired Card", "6", None, ("expired_card", "expired_card", False)),
        ("Refused", "Blocked Card", "5", "41 : Lost card", ("card_declined", "lost_card", False)),
        (
            "Refused",
            "Blocked Card",
            "5",
            "43 : Stolen card",
            ("card_declined", "stolen_card", False),
        ),
        ("Refused", "Blocked Card", "5", None, ("card_declined", "restricted_card", False)),
        ("Refused", "Issuer Suspected Fraud", "31", None, ("card_declined", "fraudulent", False)),
        ("Refused", "FRAUD", "20", None, ("card_declined", "fraudulent", False)),
        ("Refused", "Acquirer Fraud", "14", None, ("card_declined", "fraudulent", False)),
        ("Refused", "Refused", "2", None, ("card_declined", "generic_decline", False)),
        ("Refused", "Referral", "3", None, ("card_declined", "call_issuer", False)),
        ("Refused", "CVC Declined", "24", None, ("incorrect_cvc", "incorrect_cvc", False)),
        (
            "Refused",
            "Issuer Unavailable",
            "9",
            None,
            ("card_declined", "issuer_not_available", True),
        ),
        ("Error", "Acquirer Error", "4", None, ("processing_error", "processing_error", True)),
        ("Error", "Unknown", "0", None, ("processing_error", "processing_error", True)),
        (
            "Refused",
            "3D Not Authenticated",
            "11",
            None,
            ("payment_intent_authentication_failure", None, False),
        ),
        # A notification has the reason's text only.
        (
            "Refused",
            "Not enough balance",
            None,
            None,
            ("card_declined", "insufficient_funds", False),
        ),
        (
            "Refused",
            "not ENOUGH balance ",
            None,
            None,
            ("card_declined", "insufficient_funds", False),
        ),
        # What the table does not know is a generic decline, or a processing error for Error.
        ("Refused", "Something new", "99", None, ("card_declined", "generic_decline", False)),
        ("Error", None, None, None, ("processing_error", "processing_error", True)),
    ],
)
def test_refusals_map_to_our_decline_codes(
    result_code: str,
    reason: str | None,
    code: str | None,
    raw: str | None,
    expected: tuple[str, str, bool],
) -> None:
    failure = refusals.failure_for(result_code, reason, code, raw)
    assert (failure.code, failure.decline_code, failure.retryable) == expected


def test_only_technical_failures_are_retryable() -> None:
    retryable = {code for code, refusal in refusals.REFUSALS.items() if refusal.retryable}
    assert retryable == {"0", "4", "9", "21"}


def test_a_refused_answer_is_failed_with_its_reason() -> None:
    answer = {
        "pspReference": "P",
        "resultCode": "Refused",
        "refusalReason": "Blocked Card",
        "refusalReasonCode": "5",
        "additionalData": {"refusalReasonRaw": "43 : Stolen card"},
    }
    outcome = translate.outcome_from_payment(answer, manual=False)
    assert outcome.status == S.FAILED
    assert outcome.failure is not None
    assert (outcome.failure.decline_code, outcome.failure.message) == (
        "stolen_card",
        "Blocked Card",
    )


# -- our requests ---------------------------------------------------------------------------


def _request(capture: str) -> AuthorizeRequest:
    return AuthorizeRequest(
        payment_id="pay_1",
        amount=1234,
        currency="eur",
        payment_method="pm_card_visa",
        capture_method=capture,
        customer_id="cus_1",
        idempotency_key="k",
        metadata={"order_id": "o-1"},
    )


def test_an_automatic_payment_asks_for_capture_at_once() -> None:
    body = translate.payment_request(_request("automatic"), "Shop", "https://r")
    assert body["captureDelayHours"] == 0
    assert "additionalData" not in body
    assert body["amount"] == {"value": 1234, "currency": "EUR"}
    assert body["reference"] == "pay_1"
    assert body["merchantAccount"] == "Shop"
    assert body["returnUrl"] == "https://r"
    assert body["paymentMethod"] == {"type": "scheme", "storedPaymentMethodId": "pm_card_visa"}
    assert body["metadata"] == {"order_id": "o-1"}


def test_a_manual_payment_asks_for_manual_capture() -> None:
    body = translate.payment_request(_request("manual"), "Shop", None)
    assert body["additionalData"] == {"manualCapture": "true"}
    assert "captureDelayHours" not in body and "returnUrl" not in body


@pytest.mark.parametrize(
    ("reason", "adyen"),
    [
        (None, None),
        ("duplicate", "DUPLICATE"),
        ("fraudulent", "FRAUD"),
        ("requested_by_customer", "CUSTOMER REQUEST"),
        ("anything else", "OTHER"),
    ],
)
def test_refund_reasons(reason: str | None, adyen: str | None) -> None:
    body = translate.refund_request("Shop", 500, "usd", "re_1", reason)
    assert body.get("merchantRefundReason") == adyen
    assert body["reference"] == "re_1"
    assert body["amount"] == {"value": 500, "currency": "USD"}


# -- the sandbox's status lookup ------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "ours", "received", "capturable"),
    [
        ({"status": "Captured", "amountCaptured": 3000}, S.SUCCEEDED, 3000, None),
        ({"status": "Authorised", "amountCaptured": 0}, S.REQUIRES_CAPTURE, None, 5000),
        ({"status": "Cancelled"}, S.CANCELED, None, None),
        ({"status": "Received"}, S.PROCESSING, None, None),
        (
            {"status": "Refused", "resultCode": "Refused", "refusalReasonCode": "12"},
            S.FAILED,
            None,
            None,
        ),
        (
            {
                "status": "RedirectShopper",
                "resultCode": "RedirectShopper",
                "action": {"url": "http://x"},
            },
            S.REQUIRES_ACTION,
            None,
            None,
        ),
    ],
)
def test_the_status_lookup_maps(
    state: dict[str, Any], ours: PaymentStatus, received: int | None, capturable: int | None
) -> None:
    outcome = translate.outcome_from_state(
        {"pspReference": "P", "amount": {"value": 5000, "currency": "USD"}, **state}
    )
    assert (outcome.status, outcome.amount_received, outcome.amount_capturable) == (
        ours,
        received,
        capturable,
    )


def test_the_status_table_covers_every_sandbox_status() -> None:
    assert set(translate.STATES) == {
        "Captured",
        "Authorised",
        "Cancelled",
        "Refused",
        "Error",
        "RedirectShopper",
        "Received",
    }


def test_a_received_capture_is_the_captured_amount() -> None:
    outcome = translate.outcome_from_capture(
        {
            "paymentPspReference": "P",
            "pspReference": "C",
            "status": "received",
            "amount": {"value": 3000, "currency": "USD"},
        },
        "P",
    )
    assert (outcome.status, outcome.amount_received, outcome.connector_payment_id) == (
        S.SUCCEEDED,
        3000,
        "P",
    )


# -- transport errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "transient", "retryable", "unknown"),
    [
        (500, "000", None, True, True),
        (503, None, None, True, True),
        (429, "000", None, True, False),
        (409, "704", "true", True, True),
        (422, "704", "true", True, True),
        (422, "704", "false", False, False),
        (422, "167", None, False, False),
        (401, "000", None, False, False),
        (403, "901", None, False, False),
        (404, "000", None, False, False),
    ],
)
def test_error_answers_say_whether_to_retry_and_whether_adyen_acted(
    status: int, code: str | None, transient: str | None, retryable: bool, unknown: bool
) -> None:
    headers = {"transient-error": transient} if transient else {}
    error = _error_for(status, {"errorCode": code, "message": "m"}, headers)
    assert (error.retryable, error.outcome_unknown, error.http_status) == (
        retryable,
        unknown,
        status,
    )


# -- notifications --------------------------------------------------------------------------


def _item(event_code: str = "AUTHORISATION", success: str = "true", **extra: Any) -> dict[str, Any]:
    item = {
        "additionalData": {},
        "amount": {"currency": "EUR", "value": 2500},
        "eventCode": event_code,
        "eventDate": "2030-01-02T03:04:05+01:00",
        "merchantAccountCode": "Shop",
        "merchantReference": "pay_1",
        "paymentMethod": "visa",
        "pspReference": "PSP0000000000001",
        "success": success,
    }
    item.update(extra)
    return item


def _signed(item: dict[str, Any]) -> dict[str, Any]:
    item["additionalData"]["hmacSignature"] = generate_notification_sig(
        {k: v for k, v in item.items() if k != "additionalData"}, HEX_KEY
    ).decode()
    return item


def _body(*found: dict[str, Any]) -> bytes:
    return msgspec.json.encode(
        {"live": "false", "notificationItems": [{"NotificationRequestItem": i} for i in found]}
    )


def verify(body: bytes, key: bytes = KEY) -> None:
    webhook.AdyenWebhooks(key).verify({}, body, NOW)


def translated(*found: dict[str, Any]) -> list[WebhookEvent]:
    """The items' events, their signatures taken as checked: the steps after `verify`."""
    return webhook.AdyenWebhooks(KEY).translate({}, _body(*found), NOW)


@pytest.mark.parametrize(
    "extra",
    [{}, {"originalReference": "ORIG000000000001"}, {"amount": {"currency": "JPY", "value": 0}}],
)
def test_our_signature_is_the_official_librarys(extra: dict[str, Any]) -> None:
    item = _item(**extra)
    official = generate_notification_sig(item, HEX_KEY).decode()
    assert webhook.sign(item, KEY) == official


def test_a_genuine_notification_verifies() -> None:
    item = _signed(_item())
    verify(_body(item))
    [event] = webhook.AdyenWebhooks(KEY).parse({}, _body(item), NOW)
    assert event.psp_event_id == "AUTHORISATION:PSP0000000000001:true"
    assert is_valid_hmac_notification(msgspec.json.decode(_body(item)), HEX_KEY)


def test_every_item_is_verified_not_only_the_first() -> None:
    genuine = _signed(_item())
    forged = _item("REFUND", originalReference="PSP0000000000001")
    forged["additionalData"]["hmacSignature"] = genuine["additionalData"]["hmacSignature"]
    with pytest.raises(WebhookRejected):
        verify(_body(genuine, forged))


@pytest.mark.parametrize(
    "change",
    [
        {"amount": {"currency": "EUR", "value": 2600}},
        {"success": "false"},
        {"merchantReference": "pay_2"},
        {"eventCode": "CAPTURE"},
    ],
)
def test_a_changed_item_is_rejected(change: dict[str, Any]) -> None:
    item = _signed(_item())
    item.update(change)
    with pytest.raises(WebhookRejected):
        verify(_body(item))


def test_another_key_is_rejected() -> None:
    item = _signed(_item())
    with pytest.raises(WebhookRejected):
        verify(_body(item), bytes(32))


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"id": "evt_x"}',
        b'{"notificationItems": []}',
        b'{"notificationItems": [{"Other": {}}]}',
        b'{"notificationItems": [{"NotificationRequestItem": {"pspReference": "P"}}]}',
    ],
)
def test_a_body_that_is_not_adyens_is_rejected(payload: bytes) -> None:
    with pytest.raises(WebhookRejected):
        verify(payload)


def test_an_unsigned_item_is_rejected() -> None:
    with pytest.raises(WebhookRejected):
        verify(_body(_item()))


@pytest.mark.parametrize(
    "unsigned",
    [
        {},
        {"metadata.paymesh_capture": "automatic"},
        {"metadata.paymesh_capture": "manual"},
        {"manualCapture": "false", "captureDelayHours": "0"},
    ],
)
def test_a_successful_authorisation_is_held_until_the_payment_says_how_it_captures(
    unsigned: dict[str, str],
) -> None:
    # additionalData is outside the HMAC: whatever it says, the notification only says
    # "authorised", and the payment's own capture mode decides (`capture_as_requested`).
    item = _item()
    item["additionalData"].update(unsigned)
    [event] = translated(item)
    assert event.outcome is not None
    assert (
        event.outcome.status,
        event.outcome.amount_received,
        event.outcome.amount_capturable,
    ) == (S.REQUIRES_CAPTURE, None, 2500)
    assert event.capture_as_requested is True
    assert (event.payment_id, event.connector_payment_id) == ("pay_1", "PSP0000000000001")
    assert (event.amount, event.currency) == (2500, "EUR")
    assert event.psp_event_id == "AUTHORISATION:PSP0000000000001:true"
    assert event.created == datetime(2030, 1, 2, 2, 4, 5, tzinfo=UTC)


def test_a_notification_differing_only_in_unsigned_fields_translates_the_same() -> None:
    plain = _signed(_item())
    dressed = _signed(_item(reason="anything"))
    dressed["additionalData"].update(
        {"metadata.paymesh_capture": "automatic", "refusalReasonRaw": "43 : Stolen card"}
    )
    # Both verify: the signature does not cover what differs ...
    verify(_body(dressed))
    # ... so what differs must not change what we act on.
    [a] = translated(plain)
    [b] = translated(dressed)
    assert (a.outcome, a.capture_as_requested, a.amount, a.currency) == (
        b.outcome,
        b.capture_as_requested,
        b.amount,
        b.currency,
    )


def test_a_refused_authorisation_is_failed() -> None:
    item = _item(success="false", reason="Not enough balance")
    [event] = translated(item)
    assert event.outcome is not None and event.outcome.failure is not None
    assert event.outcome.status == S.FAILED
    assert (event.outcome.failure.decline_code, event.outcome.failure.retryable) == (
        "insufficient_funds",
        False,
    )
    assert event.psp_event_id == "AUTHORISATION:PSP0000000000001:false"


def test_an_unsigned_reason_describes_a_refusal_but_never_makes_it_retried() -> None:
    # "Acquirer Error" is a soft decline from Adyen's API answer; in a notification the
    # reason is not signed, so it must not start an automatic retry of the card.
    item = _item(success="false", reason="Acquirer Error")
    item["additionalData"]["refusalReasonRaw"] = "43 : Stolen card"
    [event] = translated(item)
    assert event.outcome is not None and event.outcome.failure is not None
    assert (event.outcome.failure.code, event.outcome.failure.retryable) == (
        "processing_error",
        False,
    )
    assert event.outcome.failure.decline_code == "processing_error"  # not the raw "stolen"


def test_capture_and_cancellation_are_about_the_original_payment() -> None:
    capture = _item(
        "CAPTURE", pspReference="CAP0000000000001", originalReference="PSP0000000000001"
    )
    cancel = _item(
        "CANCELLATION", pspReference="CAN0000000000001", originalReference="PSP0000000000001"
    )
    captured, canceled = translated(capture, cancel)
    assert captured.outcome is not None and canceled.outcome is not None
    assert (captured.outcome.status, captured.outcome.amount_received) == (S.SUCCEEDED, 2500)
    assert canceled.outcome.status == S.CANCELED
    # A capture may be partial: only the currency speaks for the whole payment.
    assert (captured.amount, captured.currency) == (None, "EUR")
    assert not captured.capture_as_requested
    assert {captured.connector_payment_id, canceled.connector_payment_id} == {"PSP0000000000001"}
    assert captured.payment_id == "pay_1"


def test_a_failed_capture_or_cancellation_changes_nothing() -> None:
    found = [
        _item("CAPTURE", success="false", originalReference="P"),
        _item("CANCELLATION", success="false", originalReference="P"),
    ]
    assert translated(*found) == []


@pytest.mark.parametrize(
    ("event_code", "success", "succeeded"),
    [("REFUND", "true", True), ("REFUND", "false", False), ("REFUND_FAILED", "true", False)],
)
def test_a_refund_is_reported_one_at_a_time(event_code: str, success: str, succeeded: bool) -> None:
    item = _item(
        event_code,
        success=success,
        pspReference="REF0000000000001",
        originalReference="PSP0000000000001",
        merchantReference="re_1",
        reason="" if succeeded else "Insufficient balance on payment",
    )
    [event] = translated(item)
    assert event.refund is not None
    assert (
        event.refund.refund_id,
        event.refund.connector_refund_id,
        event.refund.amount,
        event.refund.succeeded,
    ) == ("re_1", "REF0000000000001", 2500, succeeded)
    assert (event.payment_id, event.connector_payment_id) == (None, "PSP0000000000001")
    assert event.refund.failure_reason == (None if succeeded else "Insufficient balance on payment")


def test_a_chargeback_is_a_dispute() -> None:
    item = _item(
        "CHARGEBACK",
        pspReference="DIS0000000000001",
        originalReference="PSP0000000000001",
        reason="Fraud",
    )
    [event] = translated(item)
    assert event.dispute == ("DIS0000000000001", 2500, "Fraud")
    assert (event.payment_id, event.connector_payment_id) == ("pay_1", "PSP0000000000001")


def test_other_event_codes_are_acknowledged_and_ignored() -> None:
    assert translated(_item("REPORT_AVAILABLE"), _item("OFFER_CLOSED")) == []


def test_the_event_id_is_the_same_on_every_delivery() -> None:
    item = _item()
    first = translated(item)[0]
    again = translated(dict(item, eventDate="2030-01-03T00:00:00+00:00"))[0]
    assert first.psp_event_id == again.psp_event_id


def test_a_missing_event_date_is_now() -> None:
    item = _item()
    del item["eventDate"]
    assert translated(item)[0].created == NOW


# -- settings -------------------------------------------------------------------------------


def test_the_hmac_key_must_be_hex_and_secrets_stay_out_of_repr() -> None:
    with pytest.raises(ValueError, match="hex"):
        AdyenConnector(
            AdyenSettings(
                api_base="http://x", api_key="k", merchant_account="m", hmac_key="not-hex"
            )
        )
    settings = AdyenSettings(
        api_base="http://x", api_key="AQE_secret", merchant_account="m", hmac_key=HEX_KEY
    )
    assert "AQE_secret" not in repr(settings) and HEX_KEY not in repr(settings)


@pytest.mark.parametrize(
    ("code", "won"), [("CHARGEBACK_REVERSED", True), ("SECOND_CHARGEBACK", False)]
)
def test_a_chargeback_reversed_is_won_and_a_second_chargeback_lost(code: str, won: bool) -> None:
    item = _item(code, pspReference="DIS0000000000001", originalReference="PSP0000000000001")
    [event] = translated(item)
    assert (event.dispute_closed, event.dispute, event.currency) == (
        ("DIS0000000000001", won),
        None,
        "EUR",
    )
    assert (event.payment_id, event.connector_payment_id) == ("pay_1", "PSP0000000000001")
    assert event.psp_event_id == f"{code}:DIS0000000000001:true"


def test_an_unsuccessful_dispute_verdict_decides_nothing() -> None:
    item = _item("CHARGEBACK_REVERSED", "false", originalReference="PSP0000000000001")
    assert translated(item) == []
