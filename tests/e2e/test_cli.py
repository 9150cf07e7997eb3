"""The command line as a user runs it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import stripe

from tests.support.live_server import free_port


def test_paymesh_sandbox_runs_alone_and_the_stripe_library_drives_it(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "paymesh",
            "sandbox",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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
        # Deliberately the sandbox's API version's field (2024-06-20): the stripe package's
        # types name only its successor, allowed_payment_method_types.
        pi = client.v1.payment_intents.create(
            params={  # type: ignore[typeddict-unknown-key]
                "amount": 999,
                "currency": "eur",
                "payment_method": "pm_card_visa",
                "confirm": True,
                "payment_method_types": ["card"],
            }
        )
        assert (pi.status, pi.amount_received) == ("succeeded", 999)
        # The other two answer beside it, and PayPal's certificate is where the CLI says.
        adyen = httpx.get(f"http://127.0.0.1:{port}/sandbox/adyen/_config", timeout=5)
        paypal = httpx.get(f"http://127.0.0.1:{port}/sandbox/paypal/_config", timeout=5)
        assert (adyen.status_code, paypal.status_code) == (200, 200)
        assert (
            (tmp_path / "sandbox" / "paypal-webhook-cert.pem")
            .read_bytes()
            .startswith(b"-----BEGIN CERTIFICATE-----")
        )
    finally:
        proc.kill()
        proc.wait()


def test_paymesh_demo_runs_every_scenario_and_exits_0() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "paymesh", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "200", "PATH": ""},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every scenario ended as expected" in done.stdout
    for scenario in (
        "card payment",
        "declined card",
        "3-D Secure",
        "manual capture",
        "refund",
        "event rule -> HTTP",
        "idempotent replay",
    ):
        assert scenario in done.stdout


def paymesh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "paymesh", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": ""},
    )


def test_paymesh_rules_test_answers_like_test_event_pattern(tmp_path: Path) -> None:
    pattern = '{"detail": {"amount": [{"numeric": [">", 10]}]}}'
    yes = paymesh("rules", "test", "--pattern", pattern, "--event", '{"detail": {"amount": 11}}')
    assert (yes.returncode, yes.stdout.strip()) == (0, "true")
    event_file = tmp_path / "event.json"
    event_file.write_text('{"detail": {"amount": 10}}')
    no = paymesh("rules", "test", "--pattern", pattern, "--event", f"@{event_file}")
    assert (no.returncode, no.stdout.strip()) == (1, "false")
    bad = paymesh("rules", "test", "--pattern", '{"detail": 5}', "--event", "{}")
    assert bad.returncode == 2 and "invalid pattern" in bad.stderr


def test_paymesh_dlq_lists_and_redrives_once(tmp_path: Path) -> None:
    import asyncio
    from datetime import UTC, datetime

    from paymesh.adapters.sqlite import SqliteStore
    from paymesh.ports.bus import Attempt
    from tests.contract.bus_store_contract import delivery, route

    async def leave_a_dead_letter() -> None:
        store = SqliteStore(tmp_path / "paymesh.db")
        await store.open()
        await route(store, "evt_dead", delivery("dlv_dead"))
        [d] = await store.claim_deliveries(datetime.now(UTC), 30, 10)
        d.status, d.attempts = "dead", 4
        d.history = [Attempt(datetime.now(UTC), "HTTP 500")]
        await store.save_delivery(d)
        await store.close()

    asyncio.run(leave_a_dead_letter())
    listed = paymesh("dlq", "list", "--merchant", "m1", "--data-dir", str(tmp_path))
    assert listed.returncode == 0
    assert "dlv_dead" in listed.stdout and "HTTP 500" in listed.stdout
    first = paymesh("dlq", "redrive", "dlv_dead", "--merchant", "m1", "--data-dir", str(tmp_path))
    assert first.returncode == 0, first.stderr
    second = paymesh("dlq", "redrive", "dlv_dead", "--merchant", "m1", "--data-dir", str(tmp_path))
    assert second.returncode == 1
    assert (
        "dlv_dead"
        not in paymesh("dlq", "list", "--merchant", "m1", "--data-dir", str(tmp_path)).stdout
    )


def test_paymesh_fraud_replay_scores_each_line_in_order(tmp_path: Path) -> None:
    lines = [
        '{"transaction_id": "t1", "timestamp": "2026-11-24T10:00:00Z", "customer_id": "c1",'
        ' "amount": 1200, "currency": "usd", "device_id": "d1"}',
        '{"transaction_id": "t2", "timestamp": 1795000000, "customer_id": "c1",'
        ' "amount": 1300, "currency": "usd", "device_id": "d9"}',
    ]
    stream = tmp_path / "stream.jsonl"
    stream.write_text("\n".join(lines) + "\n")
    done = paymesh("fraud", "replay", str(stream))
    assert done.returncode == 0, done.stderr
    import json

    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert [o["transaction_id"] for o in out] == ["t1", "t2"]
    assert all(set(o) == {"transaction_id", "risk_score", "risk_factors", "decision"} for o in out)
    assert "unknown_device" in out[1]["risk_factors"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"transaction_id": "x"}\n')
    failed = paymesh("fraud", "replay", str(bad))
    assert failed.returncode == 2 and "timestamp" in failed.stderr
