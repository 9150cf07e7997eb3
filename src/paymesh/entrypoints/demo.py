"""`paymesh demo`: real payments through a real server and the three PSP sandboxes, end to end.

Without PAYMESH_SMTP_HOST the demo runs its own mail server on loopback (aiosmtpd), so the
customer's confirmation emails are really sent, and prints one as the customer receives it.

Each scenario states what it expects; the demo exits 1 if any expectation fails, so
`make demo` is a check, not a show.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import msgspec
from rich.console import Console
from rich.table import Table

from paymesh.config import Settings

REVIEW_FROM = 90_000  # the demo merchant reviews orders of 900.00 and more
CUSTOMER_EMAIL = "customer@demo-shop.example"


@dataclass
class Row:
    scenario: str
    http: str
    payment_id: str
    status: str
    detail: str
    ok: bool


def review_big_orders(folder: Path, from_amount: int) -> Path:
    """A fraud rules file: the packaged rules, and the merchant's own policy on top of them,
    which holds orders of `from_amount` and more for a person to review. (The demo's, and
    the dashboard tests'.)"""
    rules = msgspec.json.decode(
        resources.files("paymesh.fraud").joinpath("default_fraud_rules.json").read_bytes()
    )
    rules["rules"].append(
        {
            "name": f"orders of {from_amount / 100:.2f} or more",
            "factor": "large_order",
            "weight": 75,
            # A policy, not a signal: it holds the order whatever the learned model scores.
            "override": True,
            "when": ["amount", ">=", from_amount],
        }
    )
    path = folder / "fraud-rules.json"
    path.write_bytes(msgspec.json.encode(rules))
    return path


def _wait_for(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def run_demo() -> int:
    import asyncio

    from paymesh.adapters.sqlite import SqliteStore
    from paymesh.entrypoints.http.asgi import build_app
    from paymesh.entrypoints.server_thread import free_port, serving
    from paymesh.service.apikeys import create_key

    console = Console()
    with (
        tempfile.TemporaryDirectory(prefix="paymesh-demo-") as tmp,
        _mail_server() as (mail, inbox),
    ):
        rules_file = review_big_orders(Path(tmp), REVIEW_FROM)
        settings = Settings.from_env(
            data_dir=Path(tmp),
            port=free_port(),
            rate_limit=0.0,
            stripe_api_base=None,
            adyen_api_base=None,
            paypal_api_base=None,
            fraud_rules=rules_file,
            mode="sandbox",
            target_allowlist="127.0.0.1",
            **mail,
        )

        # One key for the demo merchant, made as `paymesh keys create` makes it.
        async def make_key() -> str:
            store = SqliteStore(settings.sqlite_path)
            await store.open()
            try:
                return await create_key(store, "demo-shop", datetime.now(UTC))
            finally:
                await store.close()

        key = asyncio.run(make_key())
        console.print(f"[bold]paymesh demo[/] — data in {tmp}, server on {settings.self_url}")
        app = build_app(settings)
        for line in app.state.psp_lines:
            console.print(line)
        with (
            serving(app, settings.port) as base,
            httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=15
            ) as http,
        ):
            rows = _scenarios(http, app.state.sandbox_url)
            table = Table(title="What happened")
            for col in ("scenario", "HTTP", "payment", "final status", "detail", "as expected"):
                table.add_column(col)
            for r in rows:
                table.add_row(
                    r.scenario,
                    r.http,
                    r.payment_id,
                    r.status,
                    r.detail,
                    "[green]yes[/]" if r.ok else "[red]NO[/]",
                )
            console.print(table)
            events = http.get("/v1/events", params={"limit": 100}).json()["data"]
            kinds: dict[str, int] = {}
            for e in events:
                kinds[e["detail-type"]] = kinds.get(e["detail-type"], 0) + 1
            console.print(
                "events published: " + ", ".join(f"{k} x{v}" for k, v in sorted(kinds.items()))
            )
            if inbox is not None:
                rows.append(_show_confirmation(console, inbox))
        failed = [r.scenario for r in rows if not r.ok]
        if failed:
            console.print(f"[red]unexpected outcome in: {', '.join(failed)}[/]")
            return 1
        console.print("[green]every scenario ended as expected[/]")
        return 0


def _pay(
    http: httpx.Client, method: str, amount: int = 2000, key: str | None = None, **extra: Any
) -> httpx.Response:
    body = {
        "amount": amount,
        "currency": "usd",
        "customer_id": "cus_demo",
        "payment_method": method,
        "metadata": {"order_id": f"ord-{uuid.uuid4().hex[:8]}"},
        "receipt_email": CUSTOMER_EMAIL,
        **extra,
    }
    return http.post(
        "/v1/payments", json=body, headers={"Idempotency-Key": key or str(uuid.uuid4())}
    )


def _payment(http: httpx.Client, payment_id: str) -> dict[str, Any]:
    data: dict[str, Any] = http.get(f"/v1/payments/{payment_id}").json()
    return data


def _scenarios(http: httpx.Client, sandbox_url: str) -> list[Row]:
    rows: list[Row] = []

    r = _pay(http, "pm_card_visa")
    p = r.json()
    notified = _wait_for(
        lambda: bool(http.get(f"/v1/payments/{p['id']}/notifications").json()["data"])
    )
    rows.append(
        Row(
            "card payment",
            str(r.status_code),
            p["id"],
            p["status"],
            f"captured {p['amount_captured']}, confirmation "
            f"{'recorded' if notified else 'MISSING'}",
            r.status_code == 201 and p["status"] == "succeeded" and notified,
        )
    )

    r = _pay(http, "pm_card_chargeDeclinedInsufficientFunds")
    err = r.json()["error"]
    rows.append(
        Row(
            "declined card",
            str(r.status_code),
            err.get("payment_id", "-"),
            err["payment"]["status"],
            f"{err['code']}/{err.get('decline_code')}",
            r.status_code == 402 and err.get("decline_code") == "insufficient_funds",
        )
    )

    r = _pay(http, "pm_card_threeDSecure2Required")
    p = r.json()
    first = p["status"]
    url = (p.get("next_action") or {}).get("redirect_url")
    if url:
        httpx.post(url, params={"outcome": "succeed"}, timeout=10)
        _wait_for(lambda: _payment(http, p["id"])["status"] == "succeeded")
    final = _payment(http, p["id"])["status"]
    rows.append(
        Row(
            "3-D Secure",
            str(r.status_code),
            p["id"],
            final,
            f"{first} -> customer authenticated -> {final} (by webhook)",
            first == "requires_action" and final == "succeeded",
        )
    )

    r = _pay(http, "pm_card_mastercard", amount=5000, capture_method="manual")
    p = r.json()
    c = http.post(f"/v1/payments/{p['id']}/capture", json={"amount": 4000})
    cp = c.json()
    rows.append(
        Row(
            "manual capture",
            f"{r.status_code}, {c.status_code}",
            p["id"],
            cp.get("status", "?"),
            f"authorised 5000, captured {cp.get('amount_captured')}",
            p["status"] == "requires_capture"
            and cp.get("status") == "succeeded"
            and cp.get("amount_captured") == 4000,
        )
    )

    r = _pay(http, "pm_card_visa", amount=3000)
    p = r.json()
    r1 = http.post(f"/v1/payments/{p['id']}/refunds", json={"amount": 1000})
    r2 = http.post(f"/v1/payments/{p['id']}/refunds", json={})
    final_p = _payment(http, p["id"])
    rows.append(
        Row(
            "refund",
            f"{r1.status_code}, {r2.status_code}",
            p["id"],
            final_p["status"],
            f"refunded {final_p['amount_refunded']} of 3000 in 2 refunds",
            final_p["status"] == "refunded" and final_p["amount_refunded"] == 3000,
        )
    )

    rows.append(_rule_to_http_target(http))
    rows.extend(_fraud(http))
    rows.append(_failover(http, sandbox_url))

    key = f"demo-{uuid.uuid4()}"
    first_r = _pay(http, "pm_card_visa", amount=1234, key=key)
    body = {
        "amount": 1234,
        "currency": "usd",
        "customer_id": "cus_demo",
        "payment_method": "pm_card_visa",
        "metadata": first_r.json()["metadata"],
        "receipt_email": CUSTOMER_EMAIL,
    }
    again = http.post("/v1/payments", json=body, headers={"Idempotency-Key": key})
    same = again.json().get("id") == first_r.json()["id"]
    rows.append(
        Row(
            "idempotent replay",
            f"{first_r.status_code}, {again.status_code}",
            first_r.json()["id"],
            again.json().get("status", "?"),
            f"same payment: {same}, Idempotent-Replayed: "
            f"{again.headers.get('idempotent-replayed')}",
            same and again.headers.get("idempotent-replayed") == "true",
        )
    )
    return rows


def _fraud(http: httpx.Client) -> list[Row]:
    rows: list[Row] = []
    r = _pay(http, "pm_card_visa", amount=REVIEW_FROM + 5000, customer_id="cus_big_spender")
    p = r.json()
    review = p.get("review") or {}
    approved = http.post(f"/v1/reviews/{review.get('id')}/approve")
    final = _payment(http, p["id"])
    rows.append(
        Row(
            "held for review",
            f"{r.status_code}, {approved.status_code}",
            p["id"],
            final["status"],
            f"score {p['fraud']['score']} -> {p['status']}, "
            f"review approved -> captured {final['amount_captured']}",
            p["status"] == "requires_capture"
            and approved.status_code == 200
            and final["status"] == "succeeded"
            and final["amount_captured"] == REVIEW_FROM + 5000,
        )
    )

    # Card enumeration: one device tries card after card.
    cards = [
        "pm_card_visa",
        "pm_card_mastercard",
        "pm_card_amex",
        "pm_card_discover",
        "pm_card_visa_debit",
    ]
    replies = [
        _pay(
            http,
            card,
            amount=900,
            customer_id=f"cus_enum_{i}",
            device_id="dev-enumerator",
            ip_address="203.0.113.9",
        )
        for i, card in enumerate(cards)
    ]
    last = replies[-1]
    err = last.json().get("error", {})
    blocked = err.get("payment", {})
    rows.append(
        Row(
            "card enumeration",
            ", ".join(str(x.status_code) for x in replies),
            err.get("payment_id", "-"),
            blocked.get("status", "?"),
            f"5th card on one device: score {blocked.get('fraud', {}).get('score')}, "
            "PSP never called",
            last.status_code == 402
            and err.get("type") == "fraud_error"
            and blocked.get("connector_payment_id") is None,
        )
    )
    return rows


def _failover(http: httpx.Client, sandbox_url: str) -> Row:
    """Stripe refuses every call (429): the payment is taken by the next PSP instead."""
    base = sandbox_url  # the sandboxes' own loopback listener, not the API's port
    httpx.put(f"{base}/sandbox/stripe/_config", json={"rate_limit_rate": 1.0}, timeout=10)
    try:
        r = _pay(http, "pm_card_visa", amount=4200)
    finally:
        httpx.put(f"{base}/sandbox/stripe/_config", json={"rate_limit_rate": 0.0}, timeout=10)
    p = r.json()
    attempts = (p.get("routing") or {}).get("attempts") or []
    return Row(
        "PSP failover",
        str(r.status_code),
        p["id"],
        p["status"],
        f"stripe refused -> taken by {p['connector']}",
        p["status"] == "succeeded"
        and p["connector"] == "adyen"
        and [a["connector"] for a in attempts] == ["stripe"],
    )


def _rule_to_http_target(http: httpx.Client) -> Row:
    """A merchant's rule sends big payments to its own HTTP endpoint, signed like Stripe."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from paymesh.connectors.stripe.webhook import verify
    from paymesh.entrypoints.server_thread import serving

    received: list[tuple[bytes, str]] = []

    async def hook(request: Request) -> Response:
        received.append((await request.body(), request.headers.get("paymesh-signature", "")))
        return Response(b"ok")

    with serving(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as base:
        rule = http.put(
            "/v1/rules/big-payments",
            json={
                "event_pattern": {
                    "detail-type": ["payment.succeeded"],
                    "detail": {"amount": [{"numeric": [">=", 10000]}]},
                },
                "targets": [{"id": "crm", "type": "http", "url": base + "/hook"}],
            },
        ).json()
        small = _pay(http, "pm_card_visa", amount=500).json()
        big = _pay(http, "pm_card_visa", amount=25000).json()
        _wait_for(lambda: bool(received))
        time.sleep(0.3)
    verified = False
    if len(received) == 1:
        body, signature = received[0]
        try:
            verify(body, signature, rule["signing_secret"], datetime.now(UTC))
            verified = big["id"] in body.decode() and small["id"] not in body.decode()
        except Exception:
            verified = False
    return Row(
        "event rule -> HTTP",
        "201, 201",
        big["id"],
        big["status"],
        f"{len(received)} signed event(s) for amount >= 10000; signature "
        f"{'verified' if verified else 'NOT verified'}",
        verified,
    )


@contextlib.contextmanager
def _mail_server() -> Iterator[tuple[dict[str, object], Any]]:
    """The configured mail server, or a local one on loopback that keeps what it receives
    (aiosmtpd): the settings for it, and its inbox (None: the configured one, not ours)."""
    if os.environ.get("PAYMESH_SMTP_HOST"):
        yield {}, None
        return
    from paymesh.sandbox.mailbox import smtp_inbox

    with smtp_inbox() as inbox:
        yield (
            {
                "smtp_host": "127.0.0.1",
                "smtp_port": inbox.port,
                "smtp_security": "none",
                "mail_from": "receipts@demo-shop.example",
            },
            inbox,
        )


def _show_confirmation(console: Console, inbox: Any) -> Row:
    """Print the first confirmation email the customer received, as received."""
    _wait_for(lambda: bool(inbox.messages))
    if not inbox.messages:
        return Row("confirmation email", "-", "-", "-", "no email arrived", False)
    mail = inbox.messages[0]
    console.print("\n[bold]a confirmation email, as the local mail server received it[/]")
    for header in ("From", "To", "Subject", "Date", "Message-ID"):
        console.print(f"{header}: {mail[header]}", markup=False, highlight=False)
    console.print("")
    console.print(mail.get_content().rstrip(), markup=False, highlight=False)
    console.print("")
    return Row(
        "confirmation email",
        "SMTP 250",
        "-",
        "received",
        f"{len(inbox.messages)} emails to {CUSTOMER_EMAIL}; first: {mail['Subject']}",
        mail["To"] == CUSTOMER_EMAIL and str(mail["Message-ID"]).endswith("@paymesh>"),
    )
