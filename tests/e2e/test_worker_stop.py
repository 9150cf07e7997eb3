"""`paymesh worker` on SIGTERM: gone within 2 s, and nothing it held is lost. Payments are
made while the only worker is stopped mid-flow; a new worker then confirms every succeeded
payment exactly once (a message the stopped worker had taken but not acked goes back to
JetStream, and the confirmation is idempotent by event id)."""

from __future__ import annotations

import subprocess
import time
import uuid

import httpx

from benchmarks.cluster import Cluster


def test_a_worker_stops_within_2_s_of_sigterm_and_loses_no_message() -> None:
    with Cluster(apis=1, workers=1) as cluster:
        auth = {"Authorization": f"Bearer {cluster.api_key}"}
        with httpx.Client(base_url=cluster.api_urls[0], headers=auth, timeout=10) as api:
            ids = []
            for i in range(20):
                r = api.post(
                    "/v1/payments",
                    json={
                        "amount": 1_000 + i,
                        "currency": "usd",
                        "payment_method": "pm_card_visa",
                        "customer_id": f"cus_{uuid.uuid4().hex[:8]}",
                    },
                    headers={"Idempotency-Key": str(uuid.uuid4())},
                )
                assert r.status_code == 201, r.text
                ids.append(r.json()["id"])
                if i == 10:  # mid-flow: deliveries of the first payments are in its hands
                    worker = cluster.worker_procs[0]
                    assert worker.popen is not None
                    started = time.monotonic()
                    worker.popen.terminate()  # SIGTERM to the worker itself
                    try:
                        code = worker.popen.wait(timeout=10)
                    except subprocess.TimeoutExpired as exc:
                        raise AssertionError(
                            f"no exit 10 s after SIGTERM:\n{worker.tail()}"
                        ) from exc
                    stopped_in = time.monotonic() - started
            assert stopped_in < 2.0, f"the worker took {stopped_in:.2f} s to stop"
            assert code == 0, worker.tail()
            cluster.restart_worker(0)

            def confirmations(payment_id: str) -> int:
                notes = api.get(f"/v1/payments/{payment_id}/notifications").json()["data"]
                return sum(1 for n in notes if n["template"] == "payment_succeeded")

            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                counts = [confirmations(p) for p in ids]
                if all(c >= 1 for c in counts):
                    break
                time.sleep(0.5)
            time.sleep(2)  # any duplicate would land by now
            assert [confirmations(p) for p in ids] == [1] * len(ids)
