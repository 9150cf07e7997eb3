"""After the authorisation, on fakes: refunds, the PSPs' signed webhooks through
`WebhookService`, and the `Reconciler` driving what a lost answer left unsettled. The world
(MemoryStore, two `FakePsp`s, a fixed clock, no socket) is `test_payment_use_cases`'s."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from paymesh.domain.errors import DomainError
from paymesh.domain.refund import RefundStatus
from paymesh.domain.status import PaymentStatus
from paymesh.ports.connector import WebhookRejected
from paymesh.service.errors import BadRequest, StateConflict
from tests.unit.test_payment_use_cases import (
    MERCHANT,
    TRIES,
    World,
    as_api_error,
    open_world,
)

S = PaymentStatus


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with open_world() as w:
        yield w


async def paid(world: World, amount: int = 4000) -> str:
    _, p = await world.create(amount)
    assert p["status"] == "succeeded"
    return str(p["id"])


async def refund(
    world: World, pid: str, amount: int | None, key: str | None = None
) -> tuple[int, dict[str, Any]]:
    reply = await world.payments.refund(MERCHANT, pid, amount, None, key)
    return reply.status, json.loads(reply.body)


def psp_refunds(world: World, pid: str) -> list[int]:
    """The refunds the PSP itself made for the payment, by amount."""
    [charge] = world.stripe.charges_for(pid)
    return [r.amount for r in charge.refunds]


# -- refunds --------------------------------------------------------------------------------


async def test_a_partial_refund_and_then_the_rest(world: World) -> None:
    pid = await paid(world, 4000)
    status, first = await refund(world, pid, 1500)
    assert (status, first["status"], first["amount"]) == (201, "succeeded", 1500)
    p = await world.payment(pid)
    assert (p.status, p.amount_refunded) == (S.PARTIALLY_REFUNDED, 1500)
    _, rest = await refund(world, pid, None)  # no amount: what is left
    assert (rest["status"], rest["amount"]) == ("succeeded", 2500)
    p = await world.payment(pid)
    assert (p.status, p.amount_refunded) == (S.REFUNDED, 4000)
    assert psp_refunds(world, pid) == [1500, 2500]


async def test_a_refund_beyond_what_is_left_is_refused_before_the_psp(world: World) -> None:
    pid = await paid(world, 4000)
    await refund(world, pid, 1500)
    with pytest.raises(DomainError) as info:
        await refund(world, pid, 2501)
    error = as_api_error(info.value)
    assert isinstance(error, BadRequest) and error.param == "amount"
    assert world.stripe.calls["refund"] == 1
    assert (await world.payment(pid)).amount_refunded == 1500
    assert psp_refunds(world, pid) == [1500]


async def test_a_refund_after_a_partial_capture_is_bounded_by_the_capture(world: World) -> None:
    _, p = await world.create(5000, capture="manual")
    await world.payments.capture(MERCHANT, p["id"], 3000, None)
    with pytest.raises(DomainError):
        await refund(world, p["id"], 3001)
    _, rest = await refund(world, p["id"], None)
    assert (rest["status"], rest["amount"]) == ("succeeded", 3000)
    payment = await world.payment(p["id"])
    assert (payment.status, payment.amount_captured, payment.amount_refunded) == (
        S.REFUNDED,
        3000,
        3000,
    )


async def test_a_refund_replayed_by_key_is_one_refund(world: World) -> None:
    pid = await paid(world)
    first = await world.payments.refund(MERCHANT, pid, 1000, None, "refund-1")
    again = await world.payments.refund(MERCHANT, pid, 1000, None, "refund-1")
    assert (again.replayed, again.body) == (True, first.body)
    assert world.stripe.calls["refund"] == 1
    assert psp_refunds(world, pid) == [1000]
    assert (await world.payment(pid)).amount_refunded == 1000


async def test_a_refund_whose_answer_was_lost_stays_pending_and_a_retry_completes_it_once(
    world: World,
) -> None:
    pid = await paid(world, 4000)
    world.stripe.fail_next("refund", "timeout", acted=True, times=TRIES)
    status, pending = await refund(world, pid, 1500, key="refund-2")
    assert (status, pending["status"]) == (201, "pending")
    p = await world.payment(pid)
    assert (p.status, p.amount_refunded, p.refundable) == (S.SUCCEEDED, 0, 2500)  # reserved
    assert psp_refunds(world, pid) == [1500]  # made at the PSP; we do not know yet

    status, done = await refund(world, pid, 1500, key="refund-2")
    assert (status, done["id"], done["status"]) == (201, pending["id"], "succeeded")
    p = await world.payment(pid)
    assert (p.status, p.amount_refunded) == (S.PARTIALLY_REFUNDED, 1500)
    assert psp_refunds(world, pid) == [1500]
    assert world.stripe.calls["refund"] == TRIES + 1
    [late] = [w for w in world.stripe.webhooks if b"refund.updated" in w.body]
    assert await world.deliver(world.stripe, late) == ["applied"]  # news we already have
    assert (await world.payment(pid)).amount_refunded == 1500


# -- webhooks -------------------------------------------------------------------------------


async def three_d_secure(world: World) -> tuple[str, str]:
    _, p = await world.create(2000, method="pm_card_threeDSecure2Required")
    assert p["status"] == "requires_action"
    return str(p["id"]), str(p["connector_payment_id"])


async def test_a_webhook_is_applied_once_and_its_second_delivery_is_a_duplicate(
    world: World,
) -> None:
    pid, ref = await three_d_secure(world)
    world.stripe.complete_authentication(ref)  # the customer passed 3-D Secure
    done = world.stripe.webhooks_about(ref)[-1]
    assert await world.deliver(world.stripe, done) == ["applied"]
    p = await world.payment(pid)
    assert (p.status, p.amount_captured, p.next_action) == (S.SUCCEEDED, 2000, None)
    version = p.version
    assert await world.deliver(world.stripe, done) == ["duplicate"]
    assert (await world.payment(pid)).version == version  # not written again


async def test_old_news_arriving_late_does_not_move_a_payment_back(world: World) -> None:
    pid, ref = await three_d_secure(world)
    world.stripe.complete_authentication(ref)
    old, new = world.stripe.webhooks_about(ref)  # requires_action, then succeeded
    await world.deliver(world.stripe, new)
    await world.deliver(world.stripe, old)
    p = await world.payment(pid)
    assert (p.status, p.amount_captured, p.next_action) == (S.SUCCEEDED, 2000, None)


async def test_a_late_authorisation_webhook_does_not_undo_a_partial_capture(world: World) -> None:
    _, p = await world.create(5000, capture="manual")
    await world.payments.capture(MERCHANT, p["id"], 3000, None)
    authorised, captured = world.stripe.webhooks_about(p["connector_payment_id"])
    assert await world.deliver(world.stripe, captured) == ["applied"]
    assert await world.deliver(world.stripe, authorised) == ["applied"]
    payment = await world.payment(p["id"])
    assert (payment.status, payment.amount_captured) == (S.SUCCEEDED, 3000)


async def test_a_refund_webhook_settles_a_refund_whose_answer_was_lost_once(world: World) -> None:
    pid = await paid(world, 4000)
    world.stripe.fail_next("refund", "timeout", acted=True, times=TRIES)
    _, pending = await refund(world, pid, 1500, key="refund-3")
    [refunded] = [w for w in world.stripe.webhooks if b"refund.updated" in w.body]
    assert await world.deliver(world.stripe, refunded) == ["applied"]
    p = await world.payment(pid)
    assert (p.refund(pending["id"]).status, p.amount_refunded) == (RefundStatus.SUCCEEDED, 1500)
    _, again = await refund(world, pid, 1500, key="refund-3")  # the client's retry
    assert again["status"] == "succeeded"
    p = await world.payment(pid)
    assert (p.status, p.amount_refunded) == (S.PARTIALLY_REFUNDED, 1500)  # counted once
    assert psp_refunds(world, pid) == [1500]


async def test_a_forged_or_foreign_webhook_is_rejected_and_changes_nothing(world: World) -> None:
    pid, ref = await three_d_secure(world)
    world.stripe.complete_authentication(ref)
    headers, body = world.stripe.webhooks_about(ref)[-1]
    with pytest.raises(WebhookRejected):
        await world.deliver(
            world.stripe, (headers, body.replace(b'"amount":2000', b'"amount":20', 1))
        )
    with pytest.raises(WebhookRejected):  # signed by Adyen's fake, posted as Stripe's
        await world.deliver(world.adyen, (headers, body))
    assert (await world.payment(pid)).status == S.REQUIRES_ACTION


async def test_a_webhook_cannot_bind_a_payment_whose_answer_was_lost(world: World) -> None:
    world.stripe.fail_next("authorize", "timeout", acted=True, times=TRIES)
    _, p = await world.create(2500)
    [charge] = world.stripe.charges_for(p["id"])
    [webhook] = world.stripe.webhooks_about(charge.id)
    with pytest.raises(StateConflict) as info:  # the PSP delivers it again later
        await world.deliver(world.stripe, webhook)
    assert info.value.code == "payment_not_ready"
    payment = await world.payment(p["id"])
    assert (payment.status, payment.connector_payment_id) == (S.PENDING, None)
    await world.payments.drive(payment)  # our own answer binds it
    assert await world.deliver(world.stripe, webhook) == ["applied"]
    assert (await world.payment(p["id"])).status == S.SUCCEEDED


# -- recovery -------------------------------------------------------------------------------


async def test_recovery_drives_a_payment_left_pending_to_its_one_charge(world: World) -> None:
    world.stripe.fail_next("authorize", "timeout", acted=True, times=TRIES)
    _, p = await world.create(2500)
    world.clock.advance(seconds=30)
    assert await world.recovery.run_once() == 0  # within the grace: a live request's
    assert (await world.payment(p["id"])).status == S.PENDING

    world.clock.advance(minutes=2)
    # Still not answering: two more timeouts, and the fifth in a row opens stripe's circuit,
    # which ends the call's retries (the PSP is known down; nothing more is spent on it).
    world.stripe.fail_next("authorize", "timeout", times=2)
    await world.recovery.run_once()
    assert world.stripe.pending_faults("authorize") == 0
    assert world.breakers.state("stripe") == "open"
    payment = await world.payment(p["id"])
    assert (payment.status, payment.connector) == (S.PENDING, "stripe")  # waits, no failover
    assert sum(world.adyen.calls.values()) == 0

    world.clock.advance(seconds=world.breakers.cooldown)
    assert await world.recovery.run_once() == 1
    payment = await world.payment(p["id"])
    assert (payment.status, payment.amount_captured) == (S.SUCCEEDED, 2500)
    assert world.ledger(p["id"]) == [("stripe", S.SUCCEEDED, 2500)]
    assert world.stripe.authorizations == 1


async def test_recovery_completes_a_refund_whose_answer_was_lost_once(world: World) -> None:
    pid = await paid(world, 4000)
    world.stripe.fail_next("refund", "5xx", acted=True, times=TRIES)
    _, pending = await refund(world, pid, 4000)
    assert pending["status"] == "pending"
    world.clock.advance(minutes=2)
    assert await world.recovery.run_once() == 1
    p = await world.payment(pid)
    assert (p.refund(pending["id"]).status, p.status, p.amount_refunded) == (
        RefundStatus.SUCCEEDED,
        S.REFUNDED,
        4000,
    )
    assert psp_refunds(world, pid) == [4000]
