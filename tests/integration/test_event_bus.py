"""Rules, targets, retries and dead letters through the real server and a real HTTP target."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paymesh.service.handlers import inline_grace
from tests.integration.conftest import Server, start
from tests.support.bus_state import wait_rule_settled
from tests.support.live_server import free_port, live_server

PAY = {
    "amount": 2500,
    "currency": "usd",
    "customer_id": "cus_bus",
    "payment_method": "pm_card_visa",
}


@dataclass
class Receiver:
    """A merchant's endpoint: fails the first `fail_first` calls (or all), can be slow."""

    fail_first: int = 0
    always_fail: bool = False
    delay: float = 0.0
    calls: list[tuple[dict[str, str], bytes, float]] = field(default_factory=list)
    ok: list[bytes] = field(default_factory=list)

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        self.calls.append((dict(request.headers), body, time.monotonic()))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.always_fail or len(self.calls) <= self.fail_first:
            return Response(b"down", status_code=503)
        self.ok.append(body)
        return Response(b"ok")


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    r = Receiver()
    with live_server(Starlette(routes=[Route("/hook", r.hook, methods=["POST"])])) as base:
        yield r, base + "/hook"


#: The receivers here are on loopback, which HTTP targets may reach only when allow-listed.
LOCAL = "127.0.0.1"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    yield from start(tmp_path, bus_retry_base=0.05, target_allowlist=LOCAL)


def http_rule(url: str, retries: int = 3, detail_type: str = "payment.succeeded") -> dict[str, Any]:
    return {
        "event_pattern": {"detail-type": [detail_type]},
        "targets": [
            {
                "id": "hook",
                "type": "http",
                "url": url,
                "retry_policy": {
                    "maximum_retry_attempts": retries,
                    "maximum_event_age_seconds": 3600,
                },
            }
        ],
    }


def wait_for(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_the_reference_rules_are_there_by_default(server: Server) -> None:
    with server.client() as http:
        rules = http.get("/v1/rules").json()["data"]
    assert [r["name"] for r in rules] == [
        "customer-confirmation",
        "fraud-stream",
        "high-risk-transaction",
        "payment-failed",
        "payment-initiated",
        "payment-succeeded",
    ]
    assert all(r["default"] for r in rules)
    failed = next(r for r in rules if r["name"] == "payment-failed")
    assert failed["event_pattern"]["detail"] == {"retryable": [True]}
    assert failed["targets"][0]["retry_policy"] == {
        "maximum_retry_attempts": 5,
        "maximum_event_age_seconds": 7200,
    }


@pytest.mark.parametrize(
    ("rule", "param"),
    [
        (
            {
                "event_pattern": {"detail": {"amount": [{"numeric": [">", "x"]}]}},
                "targets": [{"id": "t", "type": "builtin", "name": "analytics"}],
            },
            "event_pattern",
        ),
        (
            {
                "event_pattern": {"a": 1},
                "targets": [{"id": "t", "type": "builtin", "name": "analytics"}],
            },
            "event_pattern",
        ),
        (
            {"event_pattern": {}, "targets": [{"id": "t", "type": "builtin", "name": "nope"}]},
            "targets",
        ),
        ({"event_pattern": {}, "targets": [{"id": "t", "type": "http"}]}, "targets"),
        ({"event_pattern": {}, "targets": []}, "targets"),
        (
            {"event_pattern": {}, "targets": [{"id": "t", "type": "http", "url": "ftp://x"}]},
            "targets",
        ),
    ],
)
def test_invalid_rules_are_refused_and_not_stored(
    server: Server, rule: dict[str, Any], param: str
) -> None:
    with server.client() as http:
        r = http.put("/v1/rules/bad-one", json=rule)
        assert r.status_code == 400
        assert r.json()["error"]["param"] == param
        names = [x["name"] for x in http.get("/v1/rules").json()["data"]]
        assert "bad-one" not in names


@pytest.fixture
def outside_connections(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every connection this process tries to an address outside loopback, refused before
    the socket connects (the test client and server talk over loopback and pass)."""
    tried: list[str] = []
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def check(address: Any) -> None:
        host = str(address[0] if isinstance(address, tuple) else address)
        try:
            loopback = ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            loopback = False  # a path (AF_UNIX) or a name: not ours to allow
        if not loopback and not isinstance(address, str | bytes):
            tried.append(host)
            raise OSError(f"test refused a connection to {host}")

    def patched_connect(self: socket.socket, address: Any) -> None:
        check(address)
        connect(self, address)

    def patched_connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", patched_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", patched_connect_ex)
    yield tried


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://10.0.0.7/hook",
        "http://[::1]:8080/hook",
        "http://[::ffff:169.254.169.254]/",
        "http://2130706433/hook",
        "https://user:pw@hooks.example.com/hook",
        "gopher://x/",
    ],
)
def test_a_rule_naming_a_non_public_target_is_refused(
    server: Server, url: str, outside_connections: list[str]
) -> None:
    """An HTTP target would make paymesh send from inside its network (issue 12, item 5).
    Refused when the rule is created, without a connection to the address it names."""
    with server.client() as http:
        r = http.put("/v1/rules/ssrf", json=http_rule(url))
        assert r.status_code == 400
        assert r.json()["error"]["param"] == "targets"
        assert r.json()["error"]["code"] in ("target_url_not_allowed", "parameter_invalid")
        assert "ssrf" not in [x["name"] for x in http.get("/v1/rules").json()["data"]]
    assert outside_connections == []


def test_rules_test_is_test_event_pattern(server: Server) -> None:
    event = {"detail-type": "payment.succeeded", "detail": {"amount": 5000}}
    with server.client() as http:
        yes = http.post(
            "/v1/rules/test",
            json={
                "event_pattern": {"detail": {"amount": [{"numeric": [">=", 5000]}]}},
                "event": event,
            },
        )
        no = http.post(
            "/v1/rules/test",
            json={
                "event_pattern": {"detail": {"amount": [{"numeric": [">", 5000]}]}},
                "event": event,
            },
        )
        bad = http.post("/v1/rules/test", json={"event_pattern": {"detail": 5}, "event": event})
    assert (yes.json(), no.json()) == ({"result": True}, {"result": False})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "event_pattern_invalid"


def test_an_http_target_gets_the_event_signed_like_stripe(
    server: Server, receiver: tuple[Receiver, str]
) -> None:
    r, url = receiver
    with server.client() as http:
        rule = http.put("/v1/rules/to-inventory", json=http_rule(url)).json()
        secret = rule["signing_secret"]
        payment = http.post("/v1/payments", json=PAY).json()
    wait_for(lambda: len(r.ok) == 1)
    headers, body, _ = r.calls[0]
    event = stripe.Webhook.construct_event(body.decode(), headers["paymesh-signature"], secret)
    assert event["detail-type"] == "payment.succeeded"
    assert event["resources"] == [payment["id"]]
    assert headers["paymesh-event-id"] == event["id"]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body.decode(), headers["paymesh-signature"], "whsec_x")


def test_delivery_rows_hold_no_signing_secret(
    server: Server, receiver: tuple[Receiver, str]
) -> None:
    """The secret stays in the rule; the delivery is signed from it when sent."""
    r, url = receiver
    with server.client() as http:
        secret = http.put("/v1/rules/to-shop", json=http_rule(url)).json()["signing_secret"]
        http.post("/v1/payments", json=PAY)
    wait_for(lambda: len(r.ok) == 1)
    headers, body, _ = r.calls[0]
    stripe.Webhook.construct_event(body.decode(), headers["paymesh-signature"], secret)
    with contextlib.closing(sqlite3.connect(server.settings.sqlite_path)) as db:
        docs = [
            bytes(doc) for (doc,) in db.execute("SELECT doc FROM deliveries WHERE rule = 'to-shop'")
        ]
    assert len(docs) == 1
    assert secret.encode() not in docs[0]


def test_the_inventory_target_is_signed_with_the_deployments_secret(
    tmp_path: Path, receiver: tuple[Receiver, str]
) -> None:
    r, url = receiver
    for server in start(
        tmp_path,
        bus_retry_base=0.05,
        target_allowlist=LOCAL,
        inventory_url=url,
        delivery_signing_secret="whsec_inventory_test",
    ):
        with server.client() as http:
            payment = http.post("/v1/payments", json=PAY).json()
        wait_for(lambda: len(r.ok) == 1)
    headers, body, _ = r.calls[0]
    event = stripe.Webhook.construct_event(
        body.decode(), headers["paymesh-signature"], "whsec_inventory_test"
    )
    assert event["detail-type"] == "payment.succeeded"
    assert event["resources"] == [payment["id"]]


def test_dead_letters_do_not_say_why_a_target_did_not_answer(server: Server) -> None:
    """No OS error, no address: refused, timed out and unroutable all read the same (the
    sender's tests show each), so a rule is no port scanner."""
    closed = free_port()  # nothing listens there: connection refused
    with server.client() as http:
        http.put("/v1/rules/refused", json=http_rule(f"http://127.0.0.1:{closed}/hook", 0))
        http.post("/v1/payments", json=PAY)
        wait_for(lambda: bool(http.get("/v1/dead-letters").json()["data"]))
        [dead] = http.get("/v1/dead-letters").json()["data"]
    assert [e["error"] for e in dead["errors"]] == ["target unreachable"]


def test_a_merchants_rule_sees_only_its_own_events(
    server: Server, receiver: tuple[Receiver, str]
) -> None:
    r, url = receiver
    with server.client() as mine, server.client(server.other_key) as theirs:
        mine.put("/v1/rules/mine", json=http_rule(url))
        theirs.post("/v1/payments", json=PAY)
        mine.post("/v1/payments", json=PAY)
    wait_for(lambda: len(r.ok) == 1)
    wait_rule_settled(server.settings.sqlite_path, "mine")
    assert len(r.ok) == 1


def test_a_target_that_fails_three_times_is_delivered_once(
    server: Server, receiver: tuple[Receiver, str]
) -> None:
    r, url = receiver
    r.fail_first = 3
    with server.client() as http:
        http.put("/v1/rules/flaky", json=http_rule(url, retries=3))
        http.post("/v1/payments", json=PAY)
    wait_for(lambda: len(r.ok) == 1)
    wait_rule_settled(server.settings.sqlite_path, "flaky")
    assert (len(r.calls), len(r.ok)) == (4, 1)
    with server.client() as http:
        assert http.get("/v1/dead-letters").json()["data"] == []


def test_an_always_failing_target_dead_letters_and_a_redrive_delivers_once(
    server: Server, receiver: tuple[Receiver, str]
) -> None:
    r, url = receiver
    r.always_fail = True
    with server.client() as http:
        http.put("/v1/rules/broken", json=http_rule(url, retries=2))
        payment = http.post("/v1/payments", json=PAY).json()
        wait_for(lambda: bool(http.get("/v1/dead-letters").json()["data"]))
        [dead] = http.get("/v1/dead-letters").json()["data"]
        assert (dead["rule"], dead["target"]["id"], dead["attempts"]) == ("broken", "hook", 3)
        assert [e["error"] for e in dead["errors"]] == ["HTTP 503"] * 3
        assert dead["event"]["resources"] == [payment["id"]]
        assert len(r.calls) == 3
        r.always_fail = False
        assert http.post(f"/v1/dead-letters/{dead['id']}/redrive").status_code == 200
        wait_for(lambda: len(r.ok) == 1)
        again = http.post(f"/v1/dead-letters/{dead['id']}/redrive")
        assert again.status_code == 404
        wait_rule_settled(server.settings.sqlite_path, "broken")
        assert len(r.ok) == 1
        assert http.get("/v1/dead-letters").json()["data"] == []
    with server.client(server.other_key) as other:
        assert other.get("/v1/dead-letters").json()["data"] == []


def test_a_slow_target_does_not_hold_up_another(
    server: Server, receiver: tuple[Receiver, str]
) -> None:
    slow, slow_url = receiver
    slow.delay = 3.0
    fast = Receiver()
    with (
        live_server(Starlette(routes=[Route("/hook", fast.hook, methods=["POST"])])) as base,
        server.client() as http,
    ):
        http.put("/v1/rules/slow", json=http_rule(slow_url))
        http.put("/v1/rules/fast", json=http_rule(base + "/hook"))
        began = time.monotonic()
        for _ in range(3):
            assert http.post("/v1/payments", json=PAY).status_code == 201
        wait_for(lambda: len(fast.ok) == 3, seconds=2.5)
        assert time.monotonic() - began < 2.5
        wait_for(lambda: len(slow.ok) == 3)


def test_a_default_rule_can_be_disabled_and_restored_but_not_deleted(server: Server) -> None:
    with server.client() as http:
        default = next(
            r for r in http.get("/v1/rules").json()["data"] if r["name"] == "payment-succeeded"
        )
        off = {
            "event_pattern": default["event_pattern"],
            "state": "DISABLED",
            "targets": [{k: t[k] for k in ("id", "type", "name")} for t in default["targets"]],
        }
        assert http.put("/v1/rules/payment-succeeded", json=off).status_code == 200
        quiet = http.post("/v1/payments", json=PAY).json()
        wait_rule_settled(server.settings.sqlite_path, "payment-succeeded")
        assert http.get(f"/v1/payments/{quiet['id']}/notifications").json()["data"] == []
        assert http.delete("/v1/rules/payment-succeeded").status_code == 200
        loud = http.post("/v1/payments", json=PAY).json()
        wait_for(lambda: bool(http.get(f"/v1/payments/{loud['id']}/notifications").json()["data"]))
        r = http.delete("/v1/rules/payment-succeeded")
        assert r.status_code == 409 and r.json()["error"]["code"] == "rule_is_default"
        assert http.delete("/v1/rules/never-was").status_code == 404


def test_rules_survive_a_restart(tmp_path: Path, receiver: tuple[Receiver, str]) -> None:
    r, url = receiver
    servers = start(tmp_path, bus_retry_base=0.05, target_allowlist=LOCAL)
    server = next(servers)
    with server.client() as http:
        http.put("/v1/rules/kept", json=http_rule(url))
    servers.close()
    for again in start(tmp_path, bus_retry_base=0.05, target_allowlist=LOCAL):
        with again.client() as http:
            assert "kept" in [x["name"] for x in http.get("/v1/rules").json()["data"]]
            http.post("/v1/payments", json=PAY)
        wait_for(lambda: len(r.ok) == 1)


def test_unknown_merchant_keys_cannot_touch_rules(server: Server) -> None:
    r = httpx.get(server.base + "/v1/rules")
    assert r.status_code == 401


def test_payment_retry_turns_a_psp_outage_into_one_charge(server: Server) -> None:
    with server.sandbox() as psp:
        psp.put("/_config", json={"rate_limit_rate": 1.0})  # 429: Stripe did nothing
    with server.client() as http:
        # Named PSP: no failover to another, so the retry policy is what brings it through.
        r = http.post("/v1/payments", json={**PAY, "connector": "stripe"})
        assert r.status_code == 503
        payment_id = r.json()["error"]["payment_id"]
        with server.sandbox() as psp:
            psp.put("/_config", json={"rate_limit_rate": 0.0})  # Stripe is back
        wait_for(
            lambda: http.get(f"/v1/payments/{payment_id}").json()["status"] == "succeeded",
            seconds=15,
        )
        timeline = [
            e["detail-type"] for e in http.get(f"/v1/payments/{payment_id}/events").json()["data"]
        ]
        assert timeline[:3] == ["payment.initiated", "payment.failed", "payment.retrying"]
        assert timeline[-1] == "payment.succeeded"
    with server.sandbox() as psp:
        intents = psp.get("/v1/payment_intents", params={"limit": 100}).json()["data"]
        assert [pi["metadata"]["paymesh_payment_id"] for pi in intents] == [payment_id]


def test_a_hard_decline_is_never_retried(server: Server) -> None:
    with server.client() as http:
        r = http.post(
            "/v1/payments",
            json={**PAY, "payment_method": "pm_card_chargeDeclinedInsufficientFunds"},
        )
        payment_id = r.json()["error"]["payment_id"]
        wait_rule_settled(server.settings.sqlite_path, "payment-failed")  # payment_retry's
        p = http.get(f"/v1/payments/{payment_id}").json()
        assert p["status"] == "failed"
        timeline = [
            e["detail-type"] for e in http.get(f"/v1/payments/{payment_id}/events").json()["data"]
        ]
        assert "payment.retrying" not in timeline


def test_retries_stop_after_five_attempts(server: Server) -> None:
    with server.client() as http:
        r = http.post(
            "/v1/payments", json={**PAY, "payment_method": "pm_card_chargeDeclinedProcessingError"}
        )
        payment_id = r.json()["error"]["payment_id"]

        def attempts() -> int:
            events = http.get(f"/v1/payments/{payment_id}/events").json()["data"]
            return sum(e["detail-type"] == "payment.failed" for e in events)

        wait_for(lambda: attempts() == 5, seconds=20)
        wait_rule_settled(server.settings.sqlite_path, "payment-failed")  # payment_retry's
        assert attempts() == 5
        assert http.get(f"/v1/payments/{payment_id}").json()["status"] == "failed"
    with server.sandbox() as psp:
        intents = [
            pi
            for pi in psp.get("/v1/payment_intents", params={"limit": 100}).json()["data"]
            if pi["metadata"]["paymesh_payment_id"] == payment_id
        ]
        assert len(intents) == 5
        assert all(pi["status"] != "succeeded" and pi["amount_received"] == 0 for pi in intents)


def test_process_payment_is_first_tried_after_the_inline_attempts_grace(
    server: Server, receiver: tuple[Receiver, str]
) -> None:
    """The inline request settles a payment well within the grace: process_payment's delivery
    waits for it instead of being tried at once and told to come back (a wasted attempt)."""
    r, url = receiver
    with server.client() as http:
        http.put("/v1/rules/to-shop", json=http_rule(url))
        payment = http.post("/v1/payments", json=PAY).json()
    wait_for(lambda: len(r.ok) == 1)  # routed: payment.succeeded already reached the shop
    with contextlib.closing(sqlite3.connect(server.settings.sqlite_path)) as db:
        rows = db.execute(
            "SELECT d.status, d.attempts, d.next_attempt_us, e.time_us FROM deliveries d "
            "JOIN events e ON e.id = d.event_id WHERE d.rule = 'payment-initiated' "
            "AND d.target_id = 'process' AND e.payment_id = ?",
            (payment["id"],),
        ).fetchall()
    assert len(rows) == 1
    status, attempts, next_us, event_us = rows[0]
    assert (status, attempts) == ("pending", 0)
    grace = inline_grace(server.settings.psp_timeout)
    assert next_us - event_us == grace / timedelta(microseconds=1)  # after the grace, not at once
