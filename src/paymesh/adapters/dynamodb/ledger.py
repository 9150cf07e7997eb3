"""The ledger's reads on DynamoDB; its transactions are written by a commit (`changeset.py`).

The ledger table (`tables.LEDGER`) holds one item per transaction; its indexes give each read
one partition in `seq` (booking) order, or a PSP's shards by creation time:

- balances: every transaction of the merchant (MerchantIndex), summed in Python with the
  domain's `balances`, the same sums the SQL stores make in SQL. That reads all of the
  merchant's transactions on each call: fine while a merchant's ledger is thousands of
  items; a large one wants running totals kept per day beside it;
- balance transactions: the sparse BalanceIndex (or PaymentBalanceIndex for one payment),
  newest first, a page plus one item to tell whether there are more;
- a PSP's window: PspIndex's shards, each a range of creation times, in booking order.

The indexes are global, so eventually consistent: a transaction committed a moment ago may
be missing from a list for that moment, never for long.
"""

from __future__ import annotations

import itertools
from datetime import date, datetime

from paymesh.adapters.dynamodb import records
from paymesh.adapters.dynamodb.connection import Connection
from paymesh.adapters.dynamodb.items import Item, N, S, s, us
from paymesh.adapters.dynamodb.queries import Query, run
from paymesh.adapters.dynamodb.tables import LEDGER_SHARDS
from paymesh.domain.ledger import LedgerTransaction, balances
from paymesh.ports.store import Balances


class LedgerTables(Connection):
    """Implements `paymesh.ports.store.LedgerStore`."""

    def _balances(self, merchant_id: str, today: date) -> Balances:
        qq = Query(self.tables.ledger, "MerchantIndex").partition("merchantId", S(merchant_id))
        return balances((records.ledger_of(i) for i in run(self._db, qq)), today)

    async def ledger_balances(self, merchant_id: str, today: date) -> Balances:
        return await self._call(self._balances, merchant_id, today)

    def _balance_page(
        self, merchant_id: str, limit: int, starting_after: str | None, payment_id: str | None
    ) -> tuple[list[LedgerTransaction], bool]:
        if payment_id is None:
            qq = Query(self.tables.ledger, "BalanceIndex")
            qq.partition("balanceMerchant", S(merchant_id))
        else:
            qq = Query(self.tables.ledger, "PaymentBalanceIndex")
            qq.partition("balancePayment", S(payment_id))
        if starting_after is not None:
            cursor = self._get(self.tables.ledger, {"ledgerId": S(starting_after)})
            if cursor is None or cursor.get("merchantId") != S(merchant_id):
                return [], False
            qq.sort("seq", "<", cursor["seq"])
        if payment_id is not None:
            qq.where("merchantId", "=", S(merchant_id))
        found = run(self._db, qq, forward=False, page=limit + 1)
        rows = list(itertools.islice(found, limit + 1))
        return [records.ledger_of(i) for i in rows[:limit]], len(rows) > limit

    async def balance_transactions(
        self,
        merchant_id: str,
        limit: int,
        starting_after: str | None = None,
        payment_id: str | None = None,
    ) -> tuple[list[LedgerTransaction], bool]:
        return await self._call(self._balance_page, merchant_id, limit, starting_after, payment_id)

    def _psp_window(
        self, psp: str, created_gte: datetime, created_lt: datetime
    ) -> list[LedgerTransaction]:
        lo, hi = us(created_gte), us(created_lt) - 1
        if lo > hi:
            return []
        found: list[Item] = []
        for number in range(LEDGER_SHARDS):
            qq = Query(self.tables.ledger, "PspIndex")
            qq.partition("pspShard", S(records.psp_shard(psp, number)))
            found += run(self._db, qq.between("createdAt", N(lo), N(hi)))
        # The whole window is returned, so it is ordered here: by booking, as in SQL.
        found.sort(key=lambda i: s(i, "seq"))
        return [records.ledger_of(i) for i in found]

    async def ledger_transactions(
        self, psp: str, created_gte: datetime, created_lt: datetime
    ) -> list[LedgerTransaction]:
        return await self._call(self._psp_window, psp, created_gte, created_lt)
