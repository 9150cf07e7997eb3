"""The sandboxes never sit on the API port (issue 12, item 1).

An unauthenticated sandbox beside the API let anyone capture a payment held for review, fail
another merchant's payment or read the ledgers. They now have their own listener, loopback
only, and `paymesh serve` says per PSP whether it is live or sandbox, and where.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from paymesh.sandbox.suite import SandboxListener, SandboxSecrets, SandboxSuite
from tests.integration.conftest import Server
from tests.support.live_server import free_port


def clean_env() -> dict[str, str]:
    """This process's environment without any PAYMESH_* setting."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PAYMESH_")}


@pytest.mark.parametrize(
    "path",
    [
        "/sandbox/stripe/_ledger",
        "/sandbox/stripe/_config",
        "/sandbox/adyen/_ledger",
        "/sandbox/paypal/_ledger",
        "/sandbox/stripe/v1/payment_intents",
    ],
)
def test_the_api_port_serves_no_sandbox(server: Server, path: str) -> None:
    for method in ("GET", "PUT", "POST"):
        r = httpx.request(method, server.base + path, json={"error_rate": 1.0}, timeout=10)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"] == "route_not_found"


def test_the_sandboxes_have_their_own_loopback_port(server: Server) -> None:
    api, box = urlsplit(server.base), urlsplit(server.sandbox_url)
    assert box.hostname == "127.0.0.1" and box.port != api.port
    r = httpx.get(f"{server.sandbox_url}/sandbox/stripe/_config", timeout=10)
    assert r.status_code == 200
    # And payments still flow through them, end to end.
    with server.client() as http:
        p = http.post(
            "/v1/payments",
            json={
                "amount": 1500,
                "currency": "usd",
                "customer_id": "cus_l",
                "payment_method": "pm_card_visa",
            },
        ).json()
    assert (p["status"], p["connector"]) == ("succeeded", "stripe")
    ledger = httpx.get(f"{server.sandbox_url}/sandbox/stripe/_ledger", timeout=10).json()
    rows = [row for row in ledger["payments"] if row["reference"] == p["id"]]
    assert [(r["psp_reference"], r["amount_captured"]) for r in rows] == [
        (p["connector_payment_id"], 1500)
    ]


def test_a_sandbox_listener_refuses_a_non_loopback_host(tmp_path: Path) -> None:
    suite = SandboxSuite(SandboxSecrets.generate(tmp_path), None, ("stripe",))
    with pytest.raises(ValueError, match="loopback only"):
        SandboxListener(suite, host="0.0.0.0")


def test_paymesh_sandbox_refuses_a_non_loopback_host(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "paymesh",
            "sandbox",
            "--host",
            "0.0.0.0",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert done.returncode == 2 and "loopback only" in done.stderr


def _serve(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[str, int]:
    """Start `paymesh serve`, wait for /healthz, stop it; its stderr and the API port."""
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "paymesh",
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path),
                *args,
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert proc.poll() is None, log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return log.read_text(), port


def test_serve_states_one_line_per_psp_in_sandbox_mode(tmp_path: Path) -> None:
    out, port = _serve(tmp_path, clean_env())
    for psp in ("stripe", "adyen", "paypal"):
        line = next(x for x in out.splitlines() if x.startswith(f"{psp}: "))
        assert "sandbox" in line and "loopback only" in line
        url = urlsplit(line.split(" at ")[1].split()[0])
        assert url.hostname == "127.0.0.1" and url.port != port
    assert "whsec_" not in out and "sk_test_" not in out


def test_serve_in_live_mode_runs_no_sandbox_and_says_which_psps_are_live(tmp_path: Path) -> None:
    env = {
        **clean_env(),
        "PAYMESH_MODE": "live",
        "PAYMESH_STRIPE_SECRET_KEY": "sk_live_" + "a1B2" * 8,
        "PAYMESH_STRIPE_WEBHOOK_SECRET": "whsec_" + "Zx9y" * 8,
    }
    out, _ = _serve(tmp_path, env)
    lines = [x for x in out.splitlines() if x.split(":")[0] in ("stripe", "adyen", "paypal")]
    assert lines == [
        "stripe: LIVE at https://api.stripe.com",
        "adyen: disabled (live mode and no credentials configured)",
        "paypal: disabled (live mode and no credentials configured)",
    ]
    assert "a1B2a1B2" not in out and "Zx9y" not in out


def test_serve_in_live_mode_refuses_a_built_in_secret(tmp_path: Path) -> None:
    env = {
        **clean_env(),
        "PAYMESH_MODE": "live",
        "PAYMESH_STRIPE_SECRET_KEY": "sk_live_" + "a1B2" * 8,
        "PAYMESH_STRIPE_WEBHOOK_SECRET": "whsec_paymesh_sandbox",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "paymesh",
            "serve",
            "--port",
            str(free_port()),
            "--data-dir",
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "PAYMESH_STRIPE_WEBHOOK_SECRET is a built-in sandbox value" in done.stderr
