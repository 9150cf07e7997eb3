"""The command line as a user runs it."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import stripe

from tests.support.live_server import free_port


def test_paymesh_sandbox_runs_alone_and_the_stripe_library_drives_it():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "paymesh", "sandbox", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}/sandbox/stripe"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(base + "/_config", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        client = stripe.StripeClient("sk_test_cli", base_addresses={"api": base})
        pi = client.v1.payment_intents.create(params={
            "amount": 999, "currency": "eur", "payment_method": "pm_card_visa",
            "confirm": True, "payment_method_types": ["card"]})
        assert (pi.status, pi.amount_received) == ("succeeded", 999)
    finally:
        proc.kill()
        proc.wait()


def test_paymesh_demo_runs_every_scenario_and_exits_0():
    done = subprocess.run([sys.executable, "-m", "paymesh", "demo"], capture_output=True,
                          text=True, timeout=120, env={"COLUMNS": "200", "PATH": ""})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every scenario ended as expected" in done.stdout
    for scenario in ("card payment", "declined card", "3-D Secure", "manual capture", "refund",
                     "idempotent replay"):
        assert scenario in done.stdout
