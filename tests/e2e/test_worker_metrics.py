"""`paymesh worker --metrics-port` (as `make cluster` starts its workers): the worker's own
`/metrics`, behind the metrics token, counts the deliveries it ran; with it on, the worker
still stops within 2 s of SIGTERM (the listener leaves the signals to the worker)."""

from __future__ import annotations

import re
import subprocess
import time
import uuid

import httpx

from benchmarks.cluster import Cluster

TOKEN = "worker-metrics-token-for-tests"
CONFIRMED = re.compile(
    r'^paymesh_delivery_attempts_total\{result="delivered",target="send_confirmation"\} '
    r"(\d+)\.0$",
    re.M,
)


def test_a_worker_serves_its_delivery_metrics_behind_the_token_and_still_stops_fast() -> None:
    env = {"PAYMESH_METRICS_TOKEN": TOKEN}
    with Cluster(apis=1, workers=1, env=env) as cluster:
        (metrics,) = cluster.worker_metrics_urls
        auth = {"Authorization": f"Bearer {cluster.api_key}"}
        with httpx.Client(base_url=cluster.api_urls[0], headers=auth, timeout=10) as api:
            r = api.post(
                "/v1/payments",
                json={
                    "amount": 1_500,
                    "currency": "usd",
                    "payment_method": "pm_card_visa",
                    "customer_id": f"cus_{uuid.uuid4().hex[:8]}",
                },
                headers={"Idempotency-Key": str(uuid.uuid4())},
            )
            assert r.status_code == 201, r.text

        deadline, text = time.monotonic() + 60, ""
        while time.monotonic() < deadline:
            try:
                scrape = httpx.get(metrics, headers={"Authorization": f"Bearer {TOKEN}"})
            except httpx.ConnectError:  # the worker opens its listener once its core is open
                time.sleep(0.2)
                continue
            assert scrape.status_code == 200, scrape.text
            text = scrape.text
            if CONFIRMED.search(text):
                break
            time.sleep(0.5)
        found = CONFIRMED.search(text)
        assert found and int(found.group(1)) >= 1, text
        assert "# TYPE paymesh_dead_letter_depth gauge" in text
        assert re.search(r"^paymesh_outbox_backlog \d+\.\d+$", text, re.M), text

        assert httpx.get(metrics).status_code == 401
        wrong = httpx.get(metrics, headers={"Authorization": f"Bearer {cluster.api_key}"})
        assert wrong.status_code == 401

        worker = cluster.worker_procs[0]
        assert worker.popen is not None
        started = time.monotonic()
        worker.popen.terminate()
        try:
            code = worker.popen.wait(timeout=10)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"no exit 10 s after SIGTERM:\n{worker.tail()}") from exc
        assert time.monotonic() - started < 2.0, worker.tail()
        assert code == 0, worker.tail()
