"""What each recent transaction touched, so that its outcome can be charged when it arrives.

A decline comes seconds after the score, a dispute days or weeks after: by then only
the transaction id is at hand. The memory keeps, per id, the time, the five entities
(customer as its merchant knows it, see `features.customer_key`; card, device, IP,
merchant), the channel, the score we gave and the outcome so far, with a cap: the oldest
transaction is forgotten first.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Generator
from itertools import chain
from typing import Any, NamedTuple, TypeVar

from paymesh.fraud.capped import settle

PENDING, APPROVED, DECLINED, DISPUTED = 0, 1, 2, 3
T = TypeVar("T")
Entities = tuple[str | None, str | None, str | None, str | None, str | None]


class Remembered(NamedTuple):
    timestamp: float
    entities: Entities  # customer, card, device, IP, merchant
    channel: str | None
    score: int
    status: int


class FeedbackMemory:
    """The `cap` most recently observed transactions, by id, oldest forgotten first.

    A ring of columns (a slot per observation: its time in an array of doubles, its
    entities, channel, score and status in lists and small arrays) with a dict from id to
    slot. The columns are allocated once, at their full size, when the memory is made:
    a memory that grew as it filled, and cut what it forgot, reached its largest size only
    after one and a half times `cap` transactions and kept it, so a server's memory stepped
    up long after its caches had filled (`benchmarks/README.md`, the memory soak). Nothing
    is allocated or freed per transaction but the id's own entry in the dict.

    A transaction scored again (a retry) takes the newest slot; its old one stays as a
    hole until the ring's oldest end passes it. The ring has `cap` / 8 slots more than
    `cap` for those holes; should more of them than that sit in the ring at once (one
    transaction scored again and again, with no new ones to push the oldest out), the live
    records are moved together (O(`cap`), and only then).
    """

    __slots__ = (
        "_channel",
        "_entities",
        "_ids",
        "_positions",
        "_score",
        "_settled",
        "_start",
        "_status",
        "_ts",
        "_used",
        "cap",
        "slots",
    )

    def __init__(self, cap: int = 200_000) -> None:
        if cap < 1:
            raise ValueError("max_remembered: must be at least 1")
        self.cap = cap
        self.slots = slots = cap + max(1, cap // 8)
        self._positions: dict[str, int] = {}  # id -> slot
        self._settled = False  # `_positions` was full and settled (`capped.settle`)
        self._start = 0  # the oldest slot in use (a live record or a hole)
        self._used = 0  # slots in use from `_start` on, around the ring
        self._ids: list[str | None] = [None] * slots  # None: a hole, or a free slot
        self._ts = array("d", bytes(8 * slots))
        self._entities: tuple[list[str | None], ...] = tuple([None] * slots for _ in range(5))
        self._channel: list[str | None] = [None] * slots
        self._score = array("i", bytes(4 * slots))
        self._status = array("b", bytes(slots))

    def __len__(self) -> int:
        return len(self._positions)

    def remember(
        self,
        transaction_id: str,
        ts: float,
        entities: Entities,
        channel: str | None,
        score: int,
        status: int,
    ) -> None:
        positions, ids = self._positions, self._ids
        earlier = positions.pop(transaction_id, None)
        if earlier is not None:  # scored again (a retry): it is as recent as it gets
            ids[earlier] = None
        if self._used == self.slots:  # the ring is full: its oldest slot is to be reused
            oldest = ids[self._start]
            if oldest is not None and len(positions) < self.cap:
                self._compact()  # live records the cap keeps, among too many holes
            else:
                if oldest is not None:
                    del positions[oldest]
                self._advance()
        slot = (self._start + self._used) % self.slots
        self._used += 1
        positions[transaction_id] = slot
        ids[slot] = transaction_id
        self._ts[slot] = ts
        for column, entity in zip(self._entities, entities, strict=True):
            column[slot] = entity
        self._channel[slot] = channel
        self._score[slot] = score
        self._status[slot] = status
        if len(positions) > self.cap:
            self._forget_oldest()
        if len(positions) == self.cap and not self._settled:
            self._settled = True
            settle(positions)

    def _advance(self) -> None:
        self._ids[self._start] = None
        self._start = (self._start + 1) % self.slots
        self._used -= 1

    def _forget_oldest(self) -> None:
        ids = self._ids
        while ids[self._start] is None:  # holes in front: passed over
            self._advance()
        del self._positions[ids[self._start]]  # type: ignore[arg-type]
        self._advance()

    def _columns(self) -> list[Any]:
        return [self._ids, self._ts, *self._entities, self._channel, self._score, self._status]

    def _live(self) -> list[int]:
        """The slots of the live records, oldest first."""
        ids, start, slots = self._ids, self._start, self.slots
        order = (slot % slots for slot in range(start, start + self._used))
        return [slot for slot in order if ids[slot] is not None]

    def _compact(self) -> None:
        """Move the live records to the ring's first slots, oldest first, and free the rest:
        for a memory whose transactions are scored again and again, whose holes would
        otherwise fill the ring. Rare (more holes than the ring's spare slots), and O(`cap`)
        when it comes."""
        live = self._live()
        for column in self._columns():
            kept = [column[slot] for slot in live]
            column[: len(kept)] = kept if isinstance(column, list) else array(column.typecode, kept)
        ids = self._ids
        ids[len(live) :] = [None] * (self.slots - len(live))
        positions = self._positions
        for slot in range(len(live)):
            positions[ids[slot]] = slot  # type: ignore[index]
        self._start, self._used = 0, len(live)

    def get(self, transaction_id: str) -> Remembered | None:
        i = self._positions.get(transaction_id)
        if i is None:
            return None
        c0, c1, c2, c3, c4 = self._entities
        entities = (c0[i], c1[i], c2[i], c3[i], c4[i])
        return Remembered(self._ts[i], entities, self._channel[i], self._score[i], self._status[i])

    def set_status(self, transaction_id: str, status: int) -> None:
        i = self._positions.get(transaction_id)
        if i is None:
            raise KeyError(transaction_id)
        self._status[i] = status

    def forget_customers(self) -> None:
        """Blank every record's customer: an outcome then charges the other four only.

        For records keyed the way customers no longer are (see `FeatureStore.restore`).
        """
        customers = self._entities[0]
        customers[:] = [None] * len(customers)

    def to_dict(self) -> dict[str, Any]:
        return run_through(self.to_dict_steps())

    def to_dict_steps(
        self,
        part: Callable[[list[tuple[Any, ...]]], Any] = lambda step: step,
        whole: Callable[[list[Any], int], Any] = lambda parts, _: flattened(parts),
        per_step: int = 5_000,
    ) -> Generator[None, None, dict[str, Any]]:
        """`to_dict()`, yielding after each `per_step` records. `part` makes what is kept of
        one step's records, `whole` the records' list from those parts and their count: by
        default the records themselves. The memory as it is at the first step: the columns
        are copied then (a few ms of memcpy at the cap), so it may change between steps."""
        live = self._live()
        ids, ts = self._ids[:], self._ts[:]
        c0, c1, c2, c3, c4 = (column[:] for column in self._entities)
        channel, score, status = self._channel[:], self._score[:], self._status[:]
        parts: list[Any] = []
        for start in range(0, len(live), per_step):
            parts.append(
                part(
                    [
                        (ts[i], c0[i], c1[i], c2[i], c3[i], c4[i], channel[i], score[i], status[i])
                        for i in live[start : start + per_step]
                    ]
                )
            )
            yield
        records = whole(parts, len(live))
        return {"cap": self.cap, "ids": [ids[i] for i in live], "records": records}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeedbackMemory:
        memory = cls(int(data["cap"]))
        if len(data["ids"]) != len(data["records"]):
            raise ValueError("snapshot: feedback ids and records do not pair up")
        for key, record in zip(data["ids"], data["records"], strict=True):
            if len(record) != 9 or record[8] not in (PENDING, APPROVED, DECLINED, DISPUTED):
                raise ValueError(f"snapshot: bad feedback record for {key!r}")
            ts, c0, c1, c2, c3, c4, channel, score, status = record
            memory.remember(
                str(key), float(ts), (c0, c1, c2, c3, c4), channel, int(score), int(status)
            )
        return memory


def flattened(parts: list[list[T]]) -> list[T]:
    """The plain records' list from its steps' parts (lists of records)."""
    return list(chain.from_iterable(parts))


def run_through(steps: Generator[None, None, T]) -> T:
    """What a stepped computation (`FeatureStore.snapshot_steps`) returns, all at once."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            value: T = done.value
            return value
