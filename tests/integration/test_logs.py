"""Logs of a real server: JSON lines, each request's lines carry its id (the one in the
`Request-Id` header) and its payment id, and no secret, key, signature or card number."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from paymesh.entrypoints.http.logs import handler_for, log_format
from tests.integration.conftest import Server, start
from tests.integration.test_payments_api import pay, wait_status

CARD = "4242424242424242"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every line the process logs at DEBUG, as `--log-format json` writes them."""
    stream = io.StringIO()
    handler = handler_for("json", stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
def server(tmp_path: Path, captured: io.StringIO) -> Iterator[Server]:
    yield from start(tmp_path)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [msgspec.json.decode(line) for line in stream.getvalue().splitlines() if line]


def test_every_response_has_a_fresh_request_id_that_its_log_lines_carry(
    server: Server, captured: io.StringIO
) -> None:
    with server.client() as http:
        created = pay(http)
        payment_id = created.json()["id"]
        fetched = http.get(f"/v1/payments/{payment_id}", headers={"Request-Id": "req_mine"})
        missing = http.get("/no/such/path")
    ids = [r.headers["Request-Id"] for r in (created, fetched, missing)]
    assert all(re.fullmatch(r"req_[0-9a-f]{24}", i) for i in ids), ids
    assert len(set(ids)) == 3 and "req_mine" not in ids  # generated, never the client's
    logged = lines(captured)
    assert set(logged[0]) >= {"time", "level", "logger", "message", "request_id", "payment_id"}
    [get_line] = [line for line in logged if line["request_id"] == ids[1]]
    assert get_line["message"].startswith("GET /v1/payments/{payment_id} 200")
    assert get_line["payment_id"] == payment_id
    # The request that creates the payment: its id is made by the service, and known after.
    [post_line] = [line for line in logged if line["request_id"] == ids[0]]
    assert post_line["message"].startswith("POST /v1/payments 201")
    assert post_line["payment_id"] == payment_id
    [missing_line] = [line for line in logged if line["request_id"] == ids[2]]
    assert missing_line["message"].startswith("GET unmatched 404")
    assert missing_line["payment_id"] is None


def test_the_json_formatter_writes_exceptions_on_one_line() -> None:
    stream = io.StringIO()
    log = logging.getLogger("paymesh.test_logs")
    handler = handler_for("json", stream)
    log.addHandler(handler)
    try:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.error("it failed", exc_info=True)
    finally:
        log.removeHandler(handler)
    [line] = stream.getvalue().splitlines()
    record = msgspec.json.decode(line)
    assert (record["level"], record["message"], record["request_id"]) == (
        "ERROR",
        "it failed",
        None,
    )
    assert "RuntimeError: boom" in record["exc"]


def test_the_log_format_comes_from_the_option_then_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PAYMESH_LOG_FORMAT", raising=False)
    assert log_format(None) == "text"
    monkeypatch.setenv("PAYMESH_LOG_FORMAT", "json")
    assert log_format(None) == "json"
    assert log_format("text") == "text"
    with pytest.raises(ValueError, match="log format"):
        log_format("xml")


def test_no_secret_key_signature_or_card_number_is_logged(
    server: Server, captured: io.StringIO
) -> None:
    with server.client() as http:
        # Payments on two PSPs, a manual capture, a refund: the sandboxes' signed webhooks
        # come back to the server on the way.
        paid = pay(http).json()
        assert paid["status"] == "succeeded"
        adyen = pay(http, connector="adyen").json()
        held = pay(http, capture_method="manual").json()
        assert http.post(f"/v1/payments/{held['id']}/capture").status_code == 200
        assert http.post(f"/v1/payments/{paid['id']}/refunds", json={"amount": 500}).status_code
        wait_status(http, adyen["id"], "succeeded")
        # Card data sent where it must not be, and a wrong key.
        assert pay(http, method=CARD).status_code == 400
        assert pay(http, description=f"card {CARD}").status_code == 400
    with server.client(key=server.key + "x") as http:
        assert http.get("/v1/payments").status_code == 401
    text = captured.getvalue()
    assert len(text.splitlines()) > 10  # the flow was logged
    s = server.settings
    secrets = {
        "merchant key": server.key,
        "other key": server.other_key,
        "stripe secret key": s.stripe_secret_key,
        "stripe webhook secret": s.stripe_webhook_secret,
        "adyen api key": s.adyen_api_key,
        "adyen hmac key": s.adyen_hmac_key,
        "paypal client secret": s.paypal_client_secret,
        "delivery signing secret": s.delivery_signing_secret,
        "card number": CARD,
    }
    for name, secret in secrets.items():
        assert secret is None or secret not in text, name
    assert not re.search(r"v1=[0-9a-f]{32}", text)  # Stripe-Signature, Paymesh-Signature
    assert not re.search(r"(?i)(stripe-signature|paymesh-signature|authorization)", text)
