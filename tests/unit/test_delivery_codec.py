"""A delivery's stored form and bus message carry no signing secret (issue 12, item 10): the
sender looks the secret up in the rule. Rows written before keep decoding."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from paymesh.adapters.codec import (
    delivery_from_message,
    delivery_from_row,
    delivery_to_doc,
    delivery_to_message,
)
from paymesh.ports.bus import Delivery, Target

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
HOOK = Target(id="hook", type="http", url="https://hooks.example.com/paymesh")


def delivery(default_rule: bool) -> Delivery:
    return Delivery(
        id="dlv_1",
        event_id="evt_1",
        merchant_id="m1",
        rule="to-shop",
        target=HOOK,
        event_time=T0,
        created_at=T0,
        next_attempt_at=T0,
        default_rule=default_rule,
    )


def row(doc: bytes) -> tuple[object, ...]:
    return ("dlv_1", "evt_1", "m1", "to-shop", "pending", 0, 1_800_000_000_000_000, doc)


def test_a_delivery_row_has_no_secret_and_keeps_which_rule_routed_it() -> None:
    for default_rule in (False, True):
        doc = delivery_to_doc(delivery(default_rule))
        assert msgspec.json.decode(doc)["signing_secret"] is None
        assert delivery_from_row(row(doc)).default_rule is default_rule


def test_a_delivery_message_has_no_secret() -> None:
    raw = delivery_to_message(delivery(True), {"id": "evt_1"})
    assert msgspec.json.decode(raw)["doc"]["signing_secret"] is None
    decoded, event = delivery_from_message(raw)
    assert (decoded.default_rule, event) == (True, {"id": "evt_1"})


def test_rows_written_with_a_secret_decode_without_it() -> None:
    """Before: a merchant's rule's secret was copied in; a default rule's was null."""
    base = msgspec.json.decode(delivery_to_doc(delivery(False)))
    del base["default_rule"]
    own = delivery_from_row(row(msgspec.json.encode({**base, "signing_secret": "whsec_old"})))
    default = delivery_from_row(row(msgspec.json.encode({**base, "signing_secret": None})))
    assert (own.default_rule, default.default_rule) == (False, True)
    assert b"whsec_old" not in delivery_to_doc(own)  # saved again: the secret is gone
