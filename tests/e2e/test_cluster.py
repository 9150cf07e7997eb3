"""The scale-out cluster `make cluster` starts: one payment, three API servers. Created on
the first, its 3-D Secure webhook lands on the third (the only one the PSP sandboxes send
webhooks to), captured and refunded through the second, and read through the front port."""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any

import httpx

from benchmarks.cluster import Cluster


def wait_status(client: httpx.Client, payment_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        payment: dict[str, Any] = client.get(f"/v1/payments/{payment_id}").json()
        if payment["status"] == status or time.monotonic() > deadline:
            return payment
        time.sleep(0.1)


def test_a_payment_moves_through_three_api_servers_and_the_front_port() -> None:
    # Recovery left out of the way: only the webhook can move the payment on.
    env = {"PAYMESH_RECOVERY_GRACE": "600"}
    with (
        Cluster(apis=3, workers=1, webhook_api=2, env=env) as cluster,
        contextlib.ExitStack() as clients,
    ):
        auth = {"Authorization": f"Bearer {cluster.api_key}"}
        first, second = (
            clients.enter_context(httpx.Client(base_url=url, headers=auth, timeout=10))
            for url in cluster.api_urls[:2]
        )
        assert cluster.front is not None
        front = clients.enter_context(
            httpx.Client(base_url=cluster.front.url, headers=auth, timeout=10)
        )
        created = first.post(
            "/v1/payments",
            json={
                "amount": 5_000,
                "currency": "usd",
                "payment_method": "pm_card_threeDSecure2Required",
                "capture_method": "manual",
                "connector": "stripe",
                "customer_id": f"cus_{uuid.uuid4().hex[:8]}",
            },
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        assert created.status_code == 201, created.text
        payment = created.json()
        assert payment["status"] == "requires_action"
        done = httpx.post(payment["next_action"]["redirect_url"], params={"outcome": "succeed"})
        assert done.status_code < 400
        held = wait_status(second, payment["id"], "requires_capture")
        assert held["status"] == "requires_capture"  # the webhook, through the third

        captured = second.post(f"/v1/payments/{payment['id']}/capture")
        assert captured.status_code == 200, captured.text
        assert (captured.json()["status"], captured.json()["amount_captured"]) == (
            "succeeded",
            5_000,
        )
        refund = second.post(f"/v1/payments/{payment['id']}/refunds", json={"amount": 2_000})
        assert refund.status_code in (200, 201), refund.text
        assert refund.json()["amount"] == 2_000
        # Through the one port, each connection to the next server: all agree.
        for _ in range(3):
            with httpx.Client(base_url=cluster.front.url, headers=auth, timeout=10) as fresh:
                got = fresh.get(f"/v1/payments/{payment['id']}").json()
                assert (got["amount_captured"], got["amount_refunded"]) == (5_000, 2_000)
        assert front.get("/healthz").status_code == 200

        # The dashboard through the front port: a session made on one server is good on the
        # next (the cookie is the key, checked against the shared database).
        with httpx.Client(base_url=cluster.front.url, timeout=10) as browser:
            login = browser.post(
                "/dashboard/login",
                data={"key": cluster.api_key},
                headers={"Origin": cluster.front.url},
            )
            assert login.status_code == 303, login.text
            for _ in range(3):
                with httpx.Client(
                    base_url=cluster.front.url, cookies=browser.cookies, timeout=10
                ) as tab:
                    page = tab.get(f"/dashboard/payments/{payment['id']}")
                    assert page.status_code == 200 and "20.00 USD" in page.text
        # Every server's own /metrics, behind the cluster's token.
        token = {"Authorization": f"Bearer {cluster.env['PAYMESH_METRICS_TOKEN']}"}
        for url in cluster.api_urls:
            scraped = httpx.get(f"{url}/metrics", headers=token, timeout=10)
            assert scraped.status_code == 200
            assert "paymesh_http_requests_total" in scraped.text
        assert len(cluster.worker_metrics_urls) == 1
        for url in cluster.worker_metrics_urls:
            scraped = httpx.get(url, headers=token, timeout=10)
            assert scraped.status_code == 200
            assert "paymesh_dead_letter_depth" in scraped.text
