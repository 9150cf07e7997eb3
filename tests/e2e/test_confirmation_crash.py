"""kill between sending a confirmation and recording it: a real `paymesh serve` dies right after
the mail server took the mail (the test-only hook PAYMESH_FAULT_CRASH_AFTER_SEND, sandbox mode
only, exits the process as SIGKILL would), then restarts. The customer gets the mail at most
twice, both with the same Message-ID, so a mail client shows it once; it is recorded once."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_crash_recovery import Node, paymesh
from tests.support.live_server import free_port
from tests.support.smtp_inbox import Inbox, smtp_inbox

EMAIL = "jane.doe@shop.example"


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[Node, Inbox]]:
    with smtp_inbox() as inbox:
        env = {
            **os.environ,
            "PAYMESH_MODE": "sandbox",
            "PAYMESH_RATE_LIMIT": "0",
            "PAYMESH_SMTP_HOST": "127.0.0.1",
            "PAYMESH_SMTP_PORT": str(inbox.port),
            "PAYMESH_SMTP_SECURITY": "none",
            "PAYMESH_MAIL_FROM": "receipts@shop.example",
        }
        key = (
            paymesh("keys", "create", "--merchant", "shop", "--data-dir", str(tmp_path), env=env)
            .stdout.strip()
            .splitlines()[-1]
        )
        n = Node(tmp_path, free_port(), env, key)
        try:
            yield n, inbox
        finally:
            if n.proc and n.proc.poll() is None:
                n.kill9()


def test_a_crash_between_sending_and_recording_repeats_the_mail_once_with_its_message_id(
    node: tuple[Node, Inbox],
) -> None:
    n, inbox = node
    n.env = {**n.env, "PAYMESH_FAULT_CRASH_AFTER_SEND": "1"}
    n.start()
    with n.client() as http:
        created = http.post(
            "/v1/payments",
            json={
                "amount": 4200,
                "currency": "eur",
                "customer_id": "cus_crash",
                "payment_method": "pm_card_visa",
                "receipt_email": EMAIL,
            },
        )
        assert created.status_code == 201, created.text
        payment_id = created.json()["id"]
    assert n.proc is not None
    assert n.proc.wait(timeout=30) == 137  # died right after the mail server took the mail
    [first] = inbox.wait_for(1)

    n.env = {k: v for k, v in n.env.items() if k != "PAYMESH_FAULT_CRASH_AFTER_SEND"}
    n.start()  # the bus redelivers the unrecorded confirmation
    with n.client() as http:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            sent = http.get(f"/v1/payments/{payment_id}/notifications").json()["data"]
            if sent:
                break
            time.sleep(0.1)
        time.sleep(1.0)  # nothing more may come: no delivery of it is left (it is recorded)
        sent = http.get(f"/v1/payments/{payment_id}/notifications").json()["data"]
        succeeded = next(
            e
            for e in http.get(f"/v1/payments/{payment_id}/events").json()["data"]
            if e["detail-type"] == "payment.succeeded"
        )
    assert [(s["channel"], s["recipient"]) for s in sent] == [("email", EMAIL)]
    mails = inbox.messages
    assert len(mails) == 2, "sent before the crash, and once more after it: never a third"
    assert {m["Message-ID"] for m in mails} == {f"<{succeeded['id']}@paymesh>"}
    assert first["Subject"] == "Payment of 42.00 EUR received"
