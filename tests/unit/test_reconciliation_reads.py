"""Reading a PSP's day for reconciliation: the PSP's references come with the ledger's
transactions, so a day of thousands of payments is one read, not one more per payment."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from paymesh.adapters.memory.store import MemoryStore
from paymesh.ports.store import Changeset
from paymesh.service.reconciliation import ledger_day
from tests.contract.store_contract import T0, _captured, save


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.payment_reads = 0

    async def get_payment(self, payment_id: str, merchant_id: str | None = None) -> Any:
        self.payment_reads += 1
        return await super().get_payment(payment_id, merchant_id)


async def test_a_days_references_come_with_its_transactions() -> None:
    store = CountingStore()
    await store.open()
    await save(store, *(_captured(f"pay_{n}") for n in range(50)))
    txns, refs = await ledger_day(store, "stripe", T0.date())
    assert len(txns) == 150  # hold, release, charge each
    assert refs == {f"pay_{n}": f"pi_pay_{n}" for n in range(50)}
    assert store.payment_reads == 0


async def test_a_payment_booked_without_its_reference_is_read_once() -> None:
    """Transactions booked before they carried the reference: their payment is read, once
    for all of its transactions."""
    store = CountingStore()
    await store.open()
    old = _captured("pay_old")
    changes = Changeset()
    changes.save(old)
    changes.ledger = [replace(t, psp_reference="") for t in changes.ledger]
    await store.commit(changes)
    txns, refs = await ledger_day(store, "stripe", T0.date())
    assert len(txns) == 3
    assert refs == {"pay_old": "pi_pay_old"}
    assert store.payment_reads == 1
