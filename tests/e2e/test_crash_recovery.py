"""kill -9 of a real `paymesh serve` process: what was acknowledged survives, and a payment
cut off before the PSP answered ends in its true state after the restart.

The Stripe sandbox runs in the test process, so it outlives the server and its records are
the truth we compare with.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from paymesh.sandbox.stripe import StripeSandbox, StripeSandboxSettings
from tests.support.live_server import free_port, live_server

SECRET = "sk_test_crash"
WEBHOOK_SECRET = "whsec_crash"


def paymesh(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "paymesh", *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )


@dataclass
class Node:
    data_dir: Path
    port: int
    env: dict[str, str]
    key: str
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "paymesh",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--log-level",
                "warning",
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("paymesh serve did not become ready")

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base, timeout=30, headers={"Authorization": f"Bearer {self.key}"}
        )


@pytest.fixture(params=["one process", "deliverer process"])
def node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Node, httpx.Client]]:
    """The server alone, or with its deliveries in a deliverer process (which must die with
    it: a kill -9 of the server alone must leave nothing delivering twice)."""
    port = free_port()
    sandbox = StripeSandbox(
        StripeSandboxSettings(
            webhook_url=f"http://127.0.0.1:{port}/webhooks/stripe", webhook_secret=WEBHOOK_SECRET
        )
    )
    with live_server(sandbox.app) as psp_base:
        env = {
            **os.environ,
            "PAYMESH_STRIPE_API_BASE": psp_base,
            "PAYMESH_RATE_LIMIT": "0",
            "PAYMESH_STRIPE_SECRET_KEY": SECRET,
            "PAYMESH_PSP_TIMEOUT": "5",
            "PAYMESH_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "PAYMESH_DELIVERER_PROCESS": "1" if request.param == "deliverer process" else "0",
        }
        key = (
            paymesh("keys", "create", "--merchant", "shop", "--data-dir", str(tmp_path), env=env)
            .stdout.strip()
            .splitlines()[-1]
        )
        n = Node(tmp_path, port, env, key)
        psp = httpx.Client(
            base_url=psp_base, timeout=10, headers={"Authorization": f"Bearer {SECRET}"}
        )
        try:
            yield n, psp
        finally:
            if n.proc and n.proc.poll() is None:
                n.kill9()
            psp.close()


def body(amount: int) -> dict[str, object]:
    return {
        "amount": amount,
        "currency": "usd",
        "customer_id": "cus_crash",
        "payment_method": "pm_card_visa",
    }


def test_an_acknowledged_payment_survives_kill_9(node: tuple[Node, httpx.Client]) -> None:
    n, _psp = node
    n.start()
    with n.client() as http:
        r = http.post("/v1/payments", json=body(1111))
        assert r.status_code == 201
        acknowledged = r.json()
    n.kill9()  # right after the 2xx
    n.start()
    with n.client() as http:
        after = http.get(f"/v1/payments/{acknowledged['id']}")
        assert after.status_code == 200
        assert after.json()["status"] == "succeeded"
        assert after.json()["amount_captured"] == 1111
        timeline = [
            e["detail-type"]
            for e in http.get(f"/v1/payments/{acknowledged['id']}/events").json()["data"]
        ]
        assert timeline == ["payment.initiated", "payment.succeeded"]


def test_a_payment_cut_off_before_the_psp_answered_ends_in_its_true_state(
    node: tuple[Node, httpx.Client],
) -> None:
    n, psp = node
    n.start()
    # Stripe takes the charge but its answer never comes back before we die.
    assert (
        psp.put("/_config", json={"timeout_rate": 1.0, "timeout_hold_ms": 60_000}).status_code
        == 200
    )
    key = str(uuid.uuid4())

    def doomed_request() -> None:
        try:
            with n.client() as http:
                http.post("/v1/payments", json=body(2323), headers={"Idempotency-Key": key})
        except httpx.HTTPError:
            pass  # the server is killed under it

    threading.Thread(target=doomed_request, daemon=True).start()
    # The sandbox charges within milliseconds and then holds its answer (every request is
    # held while the fault is on, reads too, so we cannot ask it yet).
    time.sleep(1.5)
    n.kill9()
    killed_at = time.time()
    assert psp.put("/_config", json={"timeout_rate": 0.0}).status_code == 200
    charged = [
        pi
        for pi in psp.get("/v1/payment_intents", params={"limit": 100}).json()["data"]
        if pi["amount"] == 2323
    ]
    assert len(charged) == 1, "the sandbox should have taken the charge before the kill"
    assert charged[0]["created"] <= killed_at

    n.start()  # recovery drives the pending payment with the same PSP idempotency key
    with n.client() as http:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            payments = http.get("/v1/payments", params={"customer_id": "cus_crash"}).json()
            if payments["data"] and payments["data"][0]["status"] != "pending":
                break
            time.sleep(0.1)
        [payment] = payments["data"]
        assert payment["status"] == "succeeded"
        assert payment["connector_payment_id"] == charged[0]["id"]
        # The client's retry with its key gets that payment, never a second charge: at once,
        # since a restart ends the dead request's claim (201: the first answer it sees).
        retry = http.post("/v1/payments", json=body(2323), headers={"Idempotency-Key": key})
        assert retry.status_code in (200, 201)
        assert retry.json()["id"] == payment["id"]
    intents = [
        pi
        for pi in psp.get("/v1/payment_intents", params={"limit": 100}).json()["data"]
        if pi["amount"] == 2323
    ]
    assert len(intents) == 1


def test_kill_9_during_delivery_delivers_everything_and_applies_nothing_twice(
    node: tuple[Node, httpx.Client],
) -> None:
    """An HTTP target slow enough that deliveries are in flight when the server dies."""
    import asyncio as aio

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    n, _psp = node
    n.env["PAYMESH_BUS_RETRY_BASE"] = "0.05"
    n.env["PAYMESH_TARGET_ALLOWLIST"] = "127.0.0.1"  # the test's endpoint is on loopback
    seen: dict[str, int] = {}

    async def hook(request: Request) -> Response:
        await aio.sleep(0.3)
        event_id = request.headers["paymesh-event-id"]
        seen[event_id] = seen.get(event_id, 0) + 1  # a real receiver dedupes on this id
        return Response(b"ok")

    with live_server(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as base:
        n.start()
        with n.client() as http:
            assert (
                http.put(
                    "/v1/rules/slow-hook",
                    json={
                        "event_pattern": {"detail-type": ["payment.succeeded"]},
                        "targets": [{"id": "hook", "type": "http", "url": base + "/hook"}],
                    },
                ).status_code
                == 200
            )
            paid = [http.post("/v1/payments", json=body(500 + i)).json()["id"] for i in range(20)]
        # Killed once the first deliveries got through: some delivered, some in flight (the
        # target takes 0.3 s), some not yet claimed.
        deadline = time.monotonic() + 20
        while not seen:
            assert time.monotonic() < deadline, "no delivery reached the target"
            time.sleep(0.02)
        n.kill9()
        n.start()
        with n.client() as http:
            deadline = time.monotonic() + 30
            while len(seen) < 20 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert len(seen) == 20, f"{len(seen)} of 20 events reached the target"
            events = http.get(
                "/v1/events", params={"type": "payment.succeeded", "limit": 100}
            ).json()["data"]
            assert set(seen) == {e["id"] for e in events}
            # Built-in effects happen once per event, redeliveries or not.
            for payment_id in paid:
                sent = http.get(f"/v1/payments/{payment_id}/notifications").json()["data"]
                assert len(sent) == 1, payment_id
