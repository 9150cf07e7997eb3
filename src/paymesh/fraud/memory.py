"""What each recent transaction touched, so that its outcome can be charged when it arrives.

A decline comes seconds after the score, a dispute days or weeks after: by then only
the transaction id is at hand. The memory keeps, per id, the time, the five entities
(customer as its merchant knows it, see `features.customer_key`; card, device, IP,
merchant), the channel, the score we gave and the outcome so far, in insertion order with
a cap: the oldest transaction is forgotten first. One record is a flat tuple of strings
and numbers, which the cyclic GC stops tracking.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, NamedTuple

PENDING, APPROVED, DECLINED, DISPUTED = 0, 1, 2, 3
Entities = tuple[str | None, str | None, str | None, str | None, str | None]
# (timestamp, customer, card, device, ip, merchant, channel, score, status)
_Record = tuple[
    float, str | None, str | None, str | None, str | None, str | None, str | None, int, int
]


class Remembered(NamedTuple):
    timestamp: float
    entities: Entities  # customer, card, device, IP, merchant
    channel: str | None
    score: int
    status: int


class FeedbackMemory:
    __slots__ = ("cap", "records")

    def __init__(self, cap: int = 200_000) -> None:
        if cap < 1:
            raise ValueError("max_remembered: must be at least 1")
        self.cap = cap
        self.records: OrderedDict[str, _Record] = OrderedDict()

    def __len__(self) -> int:
        return len(self.records)

    def remember(
        self,
        transaction_id: str,
        ts: float,
        entities: Entities,
        channel: str | None,
        score: int,
        status: int,
    ) -> None:
        records = self.records
        if transaction_id in records:  # scored again (a retry): it is as recent as it gets
            records.move_to_end(transaction_id)
        records[transaction_id] = (ts, *entities, channel, score, status)
        if len(records) > self.cap:
            records.popitem(last=False)

    def get(self, transaction_id: str) -> Remembered | None:
        record = self.records.get(transaction_id)
        if record is None:
            return None
        return Remembered(record[0], record[1:6], record[6], record[7], record[8])

    def set_status(self, transaction_id: str, status: int) -> None:
        record = self.records[transaction_id]
        self.records[transaction_id] = (*record[:8], status)

    def forget_customers(self) -> None:
        """Blank every record's customer: an outcome then charges the other four only.

        For records keyed the way customers no longer are (see `FeatureStore.restore`).
        """
        records = self.records
        for transaction_id, record in list(records.items()):
            records[transaction_id] = (record[0], None, *record[2:])

    def to_dict(self) -> dict[str, Any]:
        # Records are immutable tuples: shared, not copied.
        return {"cap": self.cap, "ids": list(self.records), "records": list(self.records.values())}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeedbackMemory:
        memory = cls(int(data["cap"]))
        if len(data["ids"]) != len(data["records"]):
            raise ValueError("snapshot: feedback ids and records do not pair up")
        for key, (ts, *entities, channel, score, status) in zip(
            data["ids"], data["records"], strict=True
        ):
            if len(entities) != 5 or status not in (PENDING, APPROVED, DECLINED, DISPUTED):
                raise ValueError(f"snapshot: bad feedback record for {key!r}")
            memory.records[str(key)] = (float(ts), *entities, channel, int(score), int(status))
        return memory
