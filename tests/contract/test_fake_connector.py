"""The in-memory fake PSP passes the connector contract, as the three real connectors do, and
its test controls (scripted faults, the ledger) do what the use-case tests rely on."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from paymesh.connectors.fake import FakePsp
from paymesh.connectors.registry import REGISTRY
from paymesh.domain.status import PaymentStatus
from paymesh.ports.connector import PspError, WebhookRejected
from tests.contract.connector_contract import ConnectorContract, request
from tests.support.fake_inbox import FakeInbox

S = PaymentStatus
APPROVED = "pm_card_visa"


@pytest.fixture
def connector() -> FakePsp:
    return FakePsp("fake")


@pytest.fixture
def unreachable() -> FakePsp:
    return FakePsp("fake", unreachable=True)


@pytest.fixture
def inbox(connector: FakePsp) -> FakeInbox:
    return FakeInbox(connector)


@pytest.fixture
def set_faults(connector: FakePsp) -> Iterator[Callable[[dict[str, float]], None]]:
    yield lambda config: connector.set_fault_rates(**config)
    connector.set_fault_rates()


class TestFakePsp(ConnectorContract):
    approved = APPROVED
    declined_insufficient_funds = "pm_card_chargeDeclinedInsufficientFunds"
    needs_authentication = "pm_card_threeDSecure2Required"
    registered = False

    def test_the_fake_is_never_a_configurable_psp(self, connector: FakePsp) -> None:
        assert connector.name not in REGISTRY
        assert not any(entry.name == "fake" for entry in REGISTRY.values())


# -- the controls the use-case tests rely on ------------------------------------------------


async def test_an_answer_lost_after_the_work_is_one_charge_found_by_its_key() -> None:
    psp = FakePsp("stripe")
    req = request(APPROVED, 1200)
    psp.fail_next("authorize", "timeout", acted=True)
    with pytest.raises(PspError) as info:
        await psp.authorize(req)
    assert (info.value.retryable, info.value.outcome_unknown) == (True, True)
    [charge] = psp.charges.values()
    assert (charge.status, charge.amount_received) == (S.SUCCEEDED, 1200)
    again = await psp.authorize(req)
    assert again.connector_payment_id == charge.id
    assert (psp.authorizations, psp.calls["authorize"], len(psp.webhooks)) == (1, 2, 1)


@pytest.mark.parametrize(
    ("fault", "retryable", "unknown"),
    [
        ("timeout", True, True),
        ("5xx", True, True),
        ("429", True, False),
        ("unreachable", True, False),
        ("rejected", False, False),
    ],
)
async def test_a_fault_before_the_work_does_nothing(
    fault: str, retryable: bool, unknown: bool
) -> None:
    psp = FakePsp()
    psp.fail_next("authorize", fault)
    with pytest.raises(PspError) as info:
        await psp.authorize(request(APPROVED))
    assert (info.value.retryable, info.value.outcome_unknown) == (retryable, unknown)
    assert (psp.charges, psp.authorizations, psp.webhooks) == ({}, 0, [])
    assert (await psp.authorize(request(APPROVED))).status == S.SUCCEEDED  # used up


def test_only_a_timeout_or_a_5xx_can_follow_work_done() -> None:
    with pytest.raises(ValueError, match="never follows work done"):
        FakePsp().fail_next("authorize", "429", acted=True)
    with pytest.raises(ValueError, match="unknown operation"):
        FakePsp().fail_next("charge", "timeout")


async def test_the_same_key_with_another_request_is_refused() -> None:
    psp = FakePsp()
    first = request(APPROVED, 1000, key="k-1")
    await psp.authorize(first)
    with pytest.raises(PspError) as info:
        await psp.authorize(request(APPROVED, 1001, key="k-1"))
    assert (info.value.http_status, info.value.retryable) == (400, False)
    assert psp.authorizations == 1


async def test_a_capture_beyond_the_authorisation_is_refused_and_moves_nothing() -> None:
    psp = FakePsp()
    auth = await psp.authorize(request(APPROVED, 5000, "manual"))
    ref = auth.connector_payment_id
    assert ref is not None
    with pytest.raises(PspError) as info:
        await psp.capture(ref, 5001, "cap-1")
    assert (info.value.code, info.value.retryable) == ("amount_too_large", False)
    assert (await psp.retrieve(ref)).status == S.REQUIRES_CAPTURE
    assert (await psp.capture(ref, 5000, "cap-2")).amount_received == 5000


async def test_a_soft_decline_is_retryable_and_a_hard_one_is_not() -> None:
    psp = FakePsp()
    soft = await psp.authorize(request("pm_card_chargeDeclinedProcessingError"))
    hard = await psp.authorize(request("pm_card_chargeDeclined"))
    assert soft.status == hard.status == S.FAILED
    assert soft.failure is not None and hard.failure is not None
    assert (soft.failure.retryable, hard.failure.retryable) == (True, False)


async def test_three_d_secure_completes_by_webhook() -> None:
    psp = FakePsp()
    auth = await psp.authorize(request("pm_card_threeDSecure2Required", 900))
    assert auth.connector_payment_id is not None
    psp.complete_authentication(auth.connector_payment_id)
    headers, body = psp.webhooks[-1]
    [event] = psp.parse_webhook(headers, body, datetime.now(UTC))
    assert event.outcome is not None
    assert (event.outcome.status, event.outcome.amount_received) == (S.SUCCEEDED, 900)


async def test_a_webhook_signed_with_another_secret_or_too_old_is_rejected() -> None:
    psp = FakePsp(webhook_secret="whsec_one")
    await psp.authorize(request(APPROVED))
    headers, body = psp.webhooks[0]
    with pytest.raises(WebhookRejected, match="does not match"):
        FakePsp(webhook_secret="whsec_two").parse_webhook(headers, body, datetime.now(UTC))
    late = datetime.fromtimestamp(datetime.now(UTC).timestamp() + 301, UTC)
    with pytest.raises(WebhookRejected, match="tolerance"):
        psp.parse_webhook(headers, body, late)


async def test_random_faults_follow_the_seed() -> None:
    async def run(seed: int) -> list[bool]:
        psp = FakePsp(seed=seed)
        psp.set_fault_rates(error_rate=0.5)
        outcomes = []
        for _ in range(20):
            try:
                await psp.authorize(request(APPROVED))
                outcomes.append(True)
            except PspError:
                outcomes.append(False)
        return outcomes

    first = await run(7)
    assert first == await run(7)
    assert True in first and False in first
