"""A real `paymesh serve` (embedded: SQLite, the built-in sandboxes on their own port) with a
merchant's payments in every state the dashboard shows, and Debian's chromium driven by
Playwright (never `playwright install`: the browser is the system's, `apt-get install
chromium`).

`PAYMESH_SCREENSHOTS=<dir>` (what `make screenshots` sets) saves each page the tests visit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from paymesh.entrypoints.demo import review_big_orders
from tests.support.live_server import free_port

CHROMIUM = os.environ.get("PAYMESH_CHROMIUM", "/usr/bin/chromium")
MERCHANT = "acme_shop"
#: The merchant's own fraud policy: orders of 900.00 and more wait for a human.
REVIEW_FROM = 90_000
PAYMESH = (sys.executable, "-m", "paymesh")


@dataclass
class Deployment:
    base: str
    key: str
    data_dir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    ids: dict[str, str] = field(default_factory=dict)
    #: A port nothing listens on yet: the dead-letter target, until a test opens it.
    dead_port: int = 0

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base, timeout=30, headers={"Authorization": f"Bearer {self.key}"}
        )

    def pay(self, http: httpx.Client, amount: int, **extra: Any) -> dict[str, Any]:
        body = {
            "amount": amount,
            "currency": "usd",
            "customer_id": "cus_ada",
            "payment_method": "pm_card_visa",
            **extra,
        }
        answer: dict[str, Any] = http.post("/v1/payments", json=body).json()
        return answer.get("error", {}).get("payment") or answer


def _wait_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"paymesh serve exited with {proc.returncode}")
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError("paymesh serve did not become ready")


def wait_for(check: Any, seconds: float = 15.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("dashboard")
    rules_file = review_big_orders(tmp, REVIEW_FROM)
    env = {
        **os.environ,
        "PAYMESH_RATE_LIMIT": "0",
        "PAYMESH_FRAUD_RULES": str(rules_file),
        "PAYMESH_TARGET_ALLOWLIST": "127.0.0.1",
        "PAYMESH_BUS_RETRY_BASE": "0.05",
    }
    data = tmp / "data"
    created = subprocess.run(
        [*PAYMESH, "keys", "create", "--merchant", MERCHANT, "--data-dir", str(data)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    key = created.stdout.strip().splitlines()[-1]
    port = free_port()
    proc = subprocess.Popen(
        [*PAYMESH, "serve", "--port", str(port), "--data-dir", str(data), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    d = Deployment(f"http://127.0.0.1:{port}", key, data, env, proc, dead_port=free_port())
    try:
        _wait_ready(d.base, proc)
        _seed(d)
        yield d
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _seed(d: Deployment) -> None:
    with d.http() as http:
        d.ids["succeeded"] = d.pay(http, 1250, description="two coffees")["id"]
        d.ids["declined"] = d.pay(http, 2000, payment_method="pm_card_chargeDeclined")["id"]
        d.ids["adyen"] = d.pay(http, 4500, connector="adyen", customer_id="cus_bob")["id"]
        d.ids["paypal"] = d.pay(http, 7000, connector="paypal", customer_id="cus_bob")["id"]
        refunded = d.pay(http, 3000)
        http.post(f"/v1/payments/{refunded['id']}/refunds", json={"amount": 1000})
        d.ids["refunded"] = refunded["id"]
        disputed = d.pay(http, 2500, payment_method="pm_card_createDispute", customer_id="cus_eve")
        d.ids["disputed"] = disputed["id"]
        d.ids["approve"] = d.pay(http, 95_000, customer_id="cus_big")["id"]
        d.ids["reject"] = d.pay(http, 120_000, customer_id="cus_big")["id"]
        # Deliveries to a port nothing listens on: dead after one try (no retries). Only this
        # customer's: other tests' payments must not add dead letters.
        rule = {
            "event_pattern": {
                "detail-type": ["payment.succeeded"],
                "detail": {"customer_id": ["cus_erp"]},
            },
            "targets": [
                {
                    "id": "erp",
                    "type": "http",
                    "url": f"http://127.0.0.1:{d.dead_port}/hooks",
                    "retry_policy": {"maximum_retry_attempts": 0},
                }
            ],
        }
        assert http.put("/v1/rules/to-erp", json=rule).status_code == 200
        d.ids["dead_1"] = d.pay(http, 1500, customer_id="cus_erp")["id"]
        d.ids["dead_2"] = d.pay(http, 1600, customer_id="cus_erp")["id"]
        dead = wait_for(lambda: len(http.get("/v1/dead-letters").json()["data"]) >= 2)
        assert dead, "the seeded deliveries never became dead letters"
        disputes = wait_for(
            lambda: any(
                e["detail-type"] == "payment.dispute.created"
                for e in http.get(f"/v1/payments/{disputed['id']}/events").json()["data"]
            )
        )
        assert disputes, "the sandbox's dispute webhook never arrived"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@dataclass
class Visit:
    """A signed-in browser tab that fails the test on any console error (a script the CSP
    blocked, a failed request) and can save what it shows."""

    page: Page
    base: str
    errors: list[str]

    def go(self, path: str) -> Page:
        self.page.goto(self.base + path)
        return self.page

    def shoot(self, name: str) -> None:
        folder = os.environ.get("PAYMESH_SCREENSHOTS")
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


@pytest.fixture
def visit(browser: Browser, deployment: Deployment) -> Iterator[Visit]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    # A failed load is reported with its URL (the console's message names none).
    page.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(deployment.base + "/dashboard/login")
    page.fill("#key", deployment.key)
    page.click("button[type=submit]")
    page.wait_for_url(deployment.base + "/dashboard")
    v = Visit(page, deployment.base, errors)
    yield v
    context.close()
    assert errors == [], errors
