"""Card numbers never get in: 400 card_data_not_allowed wherever one is, nothing stored,
echoed or logged (issue 12, item 6). Real server, real HTTP."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest

from paymesh.connectors.stripe.webhook import sign
from tests.integration.conftest import Server, start

CARD = "4242424242424242"
GOOD = {
    "amount": 2000,
    "currency": "usd",
    "customer_id": "cus_card_data",
    "payment_method": "pm_card_visa",
}
RULE = {
    "event_pattern": {"source": ["paymesh"]},
    "targets": [{"id": "t", "type": "builtin", "name": "analytics"}],
}


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start(tmp_path_factory.mktemp("card-data"))


def stored(server: Server) -> tuple[int, int, int, list[Any]]:
    """What the merchant has: payments, events, own rules, refunds. Must not move."""
    with server.client() as http:
        payments = http.get("/v1/payments", params={"limit": 100}).json()["data"]
        events = http.get("/v1/events", params={"limit": 100}).json()["data"]
        rules = [r for r in http.get("/v1/rules").json()["data"] if not r["default"]]
    return len(payments), len(events), len(rules), [p["refunds"] for p in payments]


def digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def assert_refused(r: httpx.Response, param: str | None) -> None:
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["type"], error["code"], error.get("param")) == (
        "invalid_request_error",
        "card_data_not_allowed",
        param,
    )
    assert CARD not in digits(r.text)  # not echoed, however it was written


@pytest.fixture
def no_card_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    for record in caplog.records:
        text = record.getMessage() + (
            logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
        )
        assert CARD not in digits(text), f"logged: {record.name}: {text[:300]}"


def test_the_refusal_names_the_field_never_the_number(
    shared: Server, no_card_in_logs: None
) -> None:
    with shared.client() as http:
        r = http.post(
            "/v1/payments",
            json={**GOOD, "metadata": {"note": "card 4242 4242 4242 4242 exp 12/30"}},
        )
    assert r.status_code == 400
    assert r.json() == {
        "error": {
            "type": "invalid_request_error",
            "code": "card_data_not_allowed",
            "message": "the request holds what looks like a card number (in metadata.note); "
            "paymesh never takes card numbers: send the PSP's payment-method token, "
            "and keep card data out of descriptions, metadata and ids",
            "param": "metadata.note",
        }
    }
    assert r.headers["content-type"] == "application/json"


PAYMENT_FIELDS = [
    ({"payment_method": CARD}, "payment_method"),
    ({"payment_method": "4242-4242-4242-4242"}, "payment_method"),
    ({"description": f"order 7 paid with {CARD} exp 12/30"}, "description"),
    ({"customer_id": "4242 4242 4242 4242"}, "customer_id"),
    ({"metadata": {"order_id": "o-1", "pan": CARD}}, "metadata.pan"),
    ({"metadata": {CARD: "x"}}, "metadata"),  # a key: its object is named, not the key
    ({"device_id": f"dev:{CARD}"}, "device_id"),
    ({"city": f"{CARD}"}, "city"),
    ({"ip_address": CARD}, "ip_address"),
    ({"connector": CARD}, "connector"),
    ({"card_number": CARD}, "card_number"),  # an unknown field too: card data comes first
]


@pytest.mark.parametrize(("fields", "param"), PAYMENT_FIELDS)
def test_a_card_number_in_any_payment_field_is_refused_and_nothing_is_stored(
    shared: Server, no_card_in_logs: None, fields: dict[str, Any], param: str | None
) -> None:
    before = stored(shared)
    with shared.client() as http:
        r = http.post(
            "/v1/payments", json={**GOOD, **fields}, headers={"Idempotency-Key": str(uuid.uuid4())}
        )
    assert_refused(r, param)
    assert stored(shared) == before


def test_a_card_number_in_a_refund_reason_is_refused(shared: Server, no_card_in_logs: None) -> None:
    with shared.client() as http:
        pid = http.post("/v1/payments", json=GOOD).json()["id"]
        before = stored(shared)
        r = http.post(
            f"/v1/payments/{pid}/refunds",
            json={"amount": 500, "reason": f"customer asked; card {CARD}"},
        )
        assert_refused(r, "reason")
        assert stored(shared) == before
        assert http.get(f"/v1/payments/{pid}").json()["amount_refunded"] == 0


@pytest.mark.parametrize(
    ("name", "body", "param"),
    [
        ("r-desc", {**RULE, "description": f"for card {CARD}"}, "description"),
        (
            "r-pattern",
            {**RULE, "event_pattern": {"detail": {"note": [CARD]}}},
            "event_pattern.detail.note[0]",
        ),
        (
            "r-url",
            {
                **RULE,
                "targets": [
                    {"id": "h", "type": "http", "url": f"https://example.com/hook?pan={CARD}"}
                ],
            },
            "targets[0].url",
        ),
        (CARD, RULE, "path"),  # the rule's name is stored too
    ],
)
def test_a_card_number_in_a_rule_is_refused(
    shared: Server, no_card_in_logs: None, name: str, body: dict[str, Any], param: str
) -> None:
    before = stored(shared)
    with shared.client() as http:
        r = http.put(f"/v1/rules/{name}", json=body)
    assert_refused(r, param)
    assert stored(shared) == before


def test_a_card_number_in_a_pattern_test_or_a_routing_table_is_refused(
    shared: Server, no_card_in_logs: None
) -> None:
    with shared.client() as http:
        r = http.post(
            "/v1/rules/test",
            json={"event_pattern": {"source": ["x"]}, "event": {"detail": {"n": f"x {CARD}"}}},
        )
        assert_refused(r, "event.detail.n")
        before = http.get("/v1/routing").json()
        r = http.put("/v1/routing", json={"routes": [{"match": {"pan": CARD}}]})
        assert_refused(r, "routes[0].match.pan")
        assert http.get("/v1/routing").json() == before


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"customer_id": CARD}, "customer_id"),
        ({"starting_after": f"pay_{CARD}"}, "starting_after"),
        ({"limit": "10", CARD: "1"}, None),  # a parameter's name: not echoed either
    ],
)
def test_a_card_number_in_a_query_string_is_refused(
    shared: Server, no_card_in_logs: None, params: dict[str, str], param: str | None
) -> None:
    with shared.client() as http:
        assert_refused(http.get("/v1/payments", params=params), param)


def test_a_card_number_as_an_idempotency_key_is_refused(
    shared: Server, no_card_in_logs: None
) -> None:
    before = stored(shared)
    with shared.client() as http:
        r = http.post("/v1/payments", json=GOOD, headers={"Idempotency-Key": CARD})
    assert_refused(r, "Idempotency-Key")
    assert stored(shared) == before


def test_a_card_number_in_a_body_that_is_not_json_is_still_refused(
    shared: Server, no_card_in_logs: None
) -> None:
    with shared.client() as http:
        r = http.post(
            "/v1/payments",
            content=f'{{"payment_method": "{CARD}", '.encode(),
            headers={"Content-Type": "application/json"},
        )
    assert_refused(r, None)


@pytest.mark.parametrize(
    "fields",
    [
        {"description": "4242424242424241"},  # fails Luhn
        {
            "metadata": {
                "order": "550e8400-e29b-41d4-a716-446655440000",
                "phone": "+44 20 7946 0958",
                "iban": "DE89 3704 0044 0532 0130 00",
                "at": "2026-01-01 12:00:00",
                "sha": "da39a3ee5e6b4b0d3255bfef95601890afd8",
            }
        },
        {"amount": 4242},
    ],
)
def test_what_only_resembles_a_card_number_is_accepted_as_sent(
    shared: Server, fields: dict[str, Any]
) -> None:
    with shared.client() as http:
        r = http.post("/v1/payments", json={**GOOD, **fields})
        assert r.status_code == 201, r.text
        payment = http.get(f"/v1/payments/{r.json()['id']}").json()
    for name, value in fields.items():
        assert payment[name] == value


def test_a_huge_integer_amount_is_an_invalid_amount_not_card_data(shared: Server) -> None:
    # Integers are amounts and counts, never card fields: the amount's own check answers.
    with shared.client() as http:
        r = http.post("/v1/payments", json={**GOOD, "amount": int(CARD)})
    assert r.status_code == 400
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == (
        "parameter_invalid",
        "amount",
    )


def test_a_psp_webhook_is_not_scanned_and_its_body_is_not_logged(
    shared: Server, no_card_in_logs: None
) -> None:
    """A signed PSP body is the PSP's; a card-like string in it changes nothing here."""
    body = msgspec.json.encode(
        {
            "id": "evt_card_data",
            "object": "event",
            "type": "payment_intent.succeeded",
            "created": int(time.time()),
            "data": {
                "object": {
                    "id": "pi_unknown",
                    "object": "payment_intent",
                    "status": "succeeded",
                    "amount": 2000,
                    "currency": "usd",
                    "metadata": {"note": CARD},
                }
            },
        }
    )
    assert shared.settings.stripe_webhook_secret is not None
    r = httpx.post(
        f"{shared.base}/webhooks/stripe",
        content=body,
        headers={
            "Content-Type": "application/json",
            "Stripe-Signature": sign(body, shared.settings.stripe_webhook_secret, int(time.time())),
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["results"] == ["unknown"]


def test_a_card_number_in_a_dashboard_form_or_query_is_refused(
    shared: Server, no_card_in_logs: None
) -> None:
    """The dashboard's forms (a reviewer's note, a search) are screened as the API is."""
    with httpx.Client(base_url=shared.base, timeout=10) as http:
        r = http.post("/dashboard/reviews/rev_x/approve", data={"note": f"card {CARD}"})
        assert_refused(r, "note")
        r = http.get("/dashboard/payments", params={"customer": CARD})
        assert_refused(r, "customer")
