"""Confirmation settings: what paymesh refuses to run with, what it never shows, and what it
says when confirmations cannot leave; payments keep their receipt fields in every store."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from paymesh.adapters.codec import payment_from_doc, payment_to_doc
from paymesh.bootstrap import build_confirmations, confirmation_lines
from paymesh.config import ConfigError, Settings
from paymesh.domain.payment import Payment

T0 = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)


def test_secrets_stay_out_of_the_settings_repr(tmp_path: Path) -> None:
    settings = Settings.from_env(
        data_dir=tmp_path,
        smtp_host="smtp.shop.example",
        mail_from="receipts@shop.example",
        smtp_username="shop",
        smtp_password="smtp-hunter2",
        twilio_auth_token="twilio-hunter2",
    )
    assert "smtp-hunter2" not in repr(settings) and "twilio-hunter2" not in repr(settings)


@pytest.mark.parametrize(
    ("given", "complaint"),
    [
        ({"smtp_host": "smtp.shop.example"}, "PAYMESH_MAIL_FROM"),
        ({"smtp_security": "ssl"}, "PAYMESH_SMTP_SECURITY"),
        (
            {
                "smtp_host": "smtp.shop.example",
                "mail_from": "a@shop.example",
                "smtp_username": "shop",
                "smtp_security": "none",
            },
            "in the clear",
        ),
        ({"twilio_api_base": "https://api.twilio.com"}, "sandbox mode"),
    ],
)
def test_a_confirmation_setup_paymesh_refuses(
    tmp_path: Path, given: dict[str, str], complaint: str
) -> None:
    with pytest.raises(ConfigError, match=complaint):
        Settings.from_env(data_dir=tmp_path, **given)


def test_sandbox_mode_sends_sms_to_its_own_sandbox_account(tmp_path: Path) -> None:
    settings = Settings.from_env(data_dir=tmp_path)
    assert settings.sms_sandboxed
    assert settings.twilio_account_sid and settings.twilio_account_sid.startswith("AC")
    again = Settings.from_env(data_dir=tmp_path)  # the same data directory: the same account
    assert again.twilio_account_sid == settings.twilio_account_sid


def test_live_mode_without_smtp_says_so_once_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    live = replace(Settings(data_dir=tmp_path), mode="live")
    with caplog.at_level(logging.WARNING, logger="paymesh"):
        email, sms = build_confirmations(live, None)
    assert (email, sms) == (None, None)
    [warning] = [r for r in caplog.records if "SMTP" in r.getMessage()]
    assert "NOT sent" in warning.getMessage()
    assert confirmation_lines(live, None) == [
        "email: no PAYMESH_SMTP_HOST, confirmations recorded, not sent",
        "sms: no Twilio configured, confirmations recorded, not sent",
    ]


def payment(**receipt: str) -> Payment:
    return Payment(
        id="pay_1",
        merchant_id="shop",
        amount=2500,
        currency="usd",
        customer_id="cus_1",
        payment_method="pm_card_visa",
        capture_method="automatic",
        connector="stripe",
        created_at=T0,
        updated_at=T0,
        **receipt,  # type: ignore[arg-type]
    )


def test_the_payment_document_keeps_the_receipt_fields_and_reads_older_ones() -> None:
    kept = payment_from_doc(
        payment_to_doc(payment(receipt_email="jane@shop.example", receipt_phone="+14155550123")),
        1,
    )
    assert (kept.receipt_email, kept.receipt_phone) == ("jane@shop.example", "+14155550123")
    old = payment_to_doc(payment()).replace(b',"receipt_email":null,"receipt_phone":null', b"")
    assert b"receipt_" not in old  # as documents were written before confirmations
    read = payment_from_doc(old, 1)
    assert (read.receipt_email, read.receipt_phone) == (None, None)
