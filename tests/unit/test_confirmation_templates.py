"""Confirmation templates: the packaged ones, a merchant's own over them, and what a broken or
hostile one can and cannot do."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from paymesh.adapters.notify import JinjaTemplates
from paymesh.ports.notifier import TemplateBroken

FACTS: dict[str, Any] = {
    "payment_id": "pay_1",
    "merchant_id": "shop",
    "amount": "1500 JPY",
    "order_id": "o-9",
    "description": None,
    "failure_message": None,
    "refund_id": None,
    "refund_amount": None,
}


def test_the_packaged_templates_say_the_amount_and_the_order() -> None:
    rendered = JinjaTemplates().render("shop", "payment_succeeded", FACTS)
    assert rendered.subject == "Payment of 1500 JPY received"
    assert "we received your payment of 1500 JPY for order o-9." in rendered.text
    assert rendered.sms == "Payment of 1500 JPY received for order o-9. Ref pay_1"


def test_a_merchant_overrides_only_what_it_has(tmp_path: Path) -> None:
    own = tmp_path / "shop"
    own.mkdir()
    (own / "payment_succeeded.sms").write_text("Thanks! {{ amount }} paid, order {{ order_id }}")
    templates = JinjaTemplates(tmp_path)
    mine = templates.render("shop", "payment_succeeded", FACTS)
    assert mine.sms == "Thanks! 1500 JPY paid, order o-9"
    assert mine.subject == "Payment of 1500 JPY received"  # packaged: the shop has none
    other = templates.render("other-shop", "payment_succeeded", FACTS)
    assert other.sms.startswith("Payment of 1500 JPY received")


def test_a_merchant_id_cannot_reach_outside_the_templates_directory(tmp_path: Path) -> None:
    (tmp_path / "payment_succeeded.sms").write_text("not the merchant's")
    rendered = JinjaTemplates(tmp_path / "merchants").render("..", "payment_succeeded", FACTS)
    assert rendered.sms.startswith("Payment of 1500 JPY received")


@pytest.mark.parametrize(
    "text", ["{{ amount ", "{{ no_such_fact }}", "{{ amount.__class__.__mro__ }}"]
)
def test_a_broken_template_is_an_error_not_a_message_with_a_hole(tmp_path: Path, text: str) -> None:
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "payment_succeeded.subject").write_text(text)
    with pytest.raises(TemplateBroken):
        JinjaTemplates(tmp_path).render("shop", "payment_succeeded", FACTS)


def test_a_subject_is_one_line_whatever_the_template_makes(tmp_path: Path) -> None:
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "payment_succeeded.subject").write_text(
        "Paid {{ amount }}\nBcc: everyone@else.example\n"
    )
    rendered = JinjaTemplates(tmp_path).render("shop", "payment_succeeded", FACTS)
    assert rendered.subject == "Paid 1500 JPY Bcc: everyone@else.example"


def test_a_merchant_template_changed_on_disk_is_used_at_the_next_render(tmp_path: Path) -> None:
    """The packaged templates are read once; a merchant's own are still checked at each
    render, so an edit needs no restart."""
    (tmp_path / "shop").mkdir()
    subject = tmp_path / "shop" / "payment_succeeded.subject"
    subject.write_text("Paid {{ amount }}")
    templates = JinjaTemplates(tmp_path)
    assert templates.render("shop", "payment_succeeded", FACTS).subject == "Paid 1500 JPY"
    subject.write_text("Thank you: {{ amount }}")
    later = subject.stat().st_mtime_ns + 2_000_000_000  # Jinja compares whole seconds
    os.utime(subject, ns=(later, later))
    assert templates.render("shop", "payment_succeeded", FACTS).subject == "Thank you: 1500 JPY"
