"""The email and SMS senders against real servers on loopback: what each answer means (sent,
try later, never), and the SMS sandbox taking a repeated idempotency token as one message."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from paymesh.adapters.notify import SmtpEmailSender, SmtpSettings, TwilioSmsSender
from paymesh.ports.notifier import EmailMessage, SendLater, SmsMessage, Undeliverable
from paymesh.sandbox.twilio import TwilioSandbox, TwilioSandboxSettings
from tests.support.live_server import free_port, live_server
from tests.support.smtp_inbox import Inbox, smtp_inbox

SID, TOKEN = "AC" + "1" * 32, "token-1"
PHONE = "+14155550199"


@pytest.fixture
def twilio() -> Iterator[tuple[TwilioSandbox, str]]:
    sandbox = TwilioSandbox(TwilioSandboxSettings(account_sid=SID, auth_token=TOKEN))
    with live_server(sandbox.app) as base:
        yield sandbox, base


async def sandbox_config(base: str, **faults: float) -> None:
    async with httpx.AsyncClient() as http:
        assert (await http.put(f"{base}/_config", json=faults)).status_code == 200


def sms(token: str = "evt-1", to: str = PHONE) -> SmsMessage:
    return SmsMessage(to=to, body="Payment of 25.00 USD received", idempotency_token=token)


async def test_one_idempotency_token_is_one_message(twilio: tuple[TwilioSandbox, str]) -> None:
    sandbox, base = twilio
    sender = TwilioSmsSender(base, SID, TOKEN, "+15005550006")
    try:
        await sender.send(sms("evt-1"))
        await sender.send(sms("evt-1"))  # a crash before it was recorded: sent again
        await sender.send(sms("evt-2"))
    finally:
        await sender.aclose()
    assert [m["body"] for m in sandbox.sent_to(PHONE)] == ["Payment of 25.00 USD received"] * 2
    async with httpx.AsyncClient(base_url=base, auth=(SID, TOKEN)) as http:
        answer = await http.get(f"/2010-04-01/Accounts/{SID}/Messages.json", params={"To": PHONE})
    listed = answer.json()
    assert len(listed["messages"]) == 2
    assert all(m["sid"].startswith("SM") and m["status"] == "queued" for m in listed["messages"])


async def test_twilio_answers_decide_retry_or_dead_letter(
    twilio: tuple[TwilioSandbox, str],
) -> None:
    _, base = twilio
    good = TwilioSmsSender(base, SID, TOKEN, "+15005550006")
    bad_token = TwilioSmsSender(base, SID, "wrong", "+15005550006")
    try:
        with pytest.raises(Undeliverable) as invalid:
            await good.send(sms(to="+15005550001"))
        assert invalid.value.code == 21211
        with pytest.raises(Undeliverable) as unauthenticated:
            await bad_token.send(sms())
        assert unauthenticated.value.code == 20003
        await sandbox_config(base, error_rate=1.0)
        with pytest.raises(SendLater) as down:
            await good.send(sms())
        assert down.value.code == 20500
        await sandbox_config(base, error_rate=0.0, rate_limit_rate=1.0)
        with pytest.raises(SendLater) as throttled:
            await good.send(sms())
        assert throttled.value.code == 20429
    finally:
        await good.aclose()
        await bad_token.aclose()


async def test_an_unreachable_sms_provider_is_a_try_later() -> None:
    sender = TwilioSmsSender(f"http://127.0.0.1:{free_port()}", SID, TOKEN, "+15005550006")
    try:
        with pytest.raises(SendLater):
            await sender.send(sms())
    finally:
        await sender.aclose()


def mail(message_id: str = "<evt-1@paymesh>") -> EmailMessage:
    return EmailMessage(
        to="jane@shop.example", subject="Paid", text="25.00 USD\n", message_id=message_id
    )


def smtp(port: int) -> SmtpEmailSender:
    return SmtpEmailSender(
        SmtpSettings(host="127.0.0.1", port=port, mail_from="shop@paymesh.test", security="none")
    )


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with smtp_inbox() as box:
        yield box


async def test_smtp_replies_decide_retry_or_dead_letter(inbox: Inbox) -> None:
    sender = smtp(inbox.port)
    inbox.defer_next(1)
    with pytest.raises(SendLater) as deferred:
        await sender.send(mail())
    assert deferred.value.code == 451
    await sender.send(mail())
    [received] = inbox.messages
    assert (received["Message-ID"], received["Auto-Submitted"]) == (
        "<evt-1@paymesh>",
        "auto-generated",
    )
    inbox.refuse_all()
    with pytest.raises(Undeliverable) as refused:
        await sender.send(mail())
    assert refused.value.code == 550


async def test_an_unreachable_mail_server_is_a_try_later_that_names_no_address() -> None:
    with pytest.raises(SendLater) as unreachable:
        await smtp(free_port()).send(mail())
    assert "127.0.0.1" not in unreachable.value.reason


def test_the_smtp_password_is_never_in_a_repr() -> None:
    settings = SmtpSettings(
        host="smtp.example", port=587, mail_from="a@b.example", username="u", password="hunter2"
    )
    assert "hunter2" not in repr(settings)
    sender = TwilioSmsSender("http://127.0.0.1:1", SID, "twilio-secret", "+15005550006")
    assert "twilio-secret" not in repr(sender)
