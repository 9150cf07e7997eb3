"""A webhook waits for the PSP answer this process is recording, and only for that."""

from __future__ import annotations

import asyncio

from paymesh.service.payments.answers import AnswersInFlight


async def test_nothing_awaited_here_is_not_waited_for() -> None:
    assert await AnswersInFlight().recorded("pay_1", within=5.0) is False


async def test_the_wait_ends_when_the_last_holder_has_recorded_its_answer() -> None:
    answers = AnswersInFlight()
    waiter: asyncio.Task[bool] | None = None
    with answers.awaiting("pay_1"):
        with answers.awaiting("pay_1"):  # a second task on the same payment
            waiter = asyncio.create_task(answers.recorded("pay_1", within=5.0))
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)
        assert not waiter.done()  # one holder is still waiting for its answer
    assert await waiter is True
    assert await answers.recorded("pay_1", within=5.0) is False  # nothing left awaited


async def test_an_answer_slower_than_the_wait_is_not_waited_out() -> None:
    answers = AnswersInFlight()
    with answers.awaiting("pay_1"):
        assert await answers.recorded("pay_1", within=0.02) is False
        assert await answers.recorded("pay_2", within=5.0) is False


async def test_an_answer_recorded_between_the_webhooks_read_and_its_wait_still_counts() -> None:
    answers = AnswersInFlight()
    with answers.awaiting("pay_1"):
        seen = answers.seen("pay_1")  # the webhook, before it reads the payment (unbound)
    # The answer commits and leaves the registry before the webhook asks to wait.
    assert await answers.recorded("pay_1", within=5.0) is False  # the race, without `seen`
    assert await answers.recorded("pay_1", within=5.0, seen=seen) is True
    assert answers.seen("pay_1") is None
