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

    Kept in columns (a position per observation: its time in an array of doubles, its
    entities, channel, score and status in lists and small arrays), with a dict from id to
    position, rather than a tuple and a float per record in an ordered dict: fewer bytes a
    record (by my count about 130, not measured alone), and nothing is allocated or freed
    per transaction but the id's own entry. At its cap of 200,000 records this was the fraud
    engine's biggest single structure.

    A transaction scored again (a retry) moves to the newest position; its old one stays in
    the columns as a hole. Forgotten positions in front are cut off once there are `cap` / 2
    of them (a memmove); holes behind the oldest record are compacted away if there are ever
    more than `cap` of them (transactions scored again and again, with no new ones to push
    the oldest out). So the columns hold at most 2.5 times `cap`.
    """

    __slots__ = (
        "_base",
        "_channel",
        "_entities",
        "_ids",
        "_oldest",
        "_positions",
        "_score",
        "_status",
        "_ts",
        "cap",
    )

    def __init__(self, cap: int = 200_000) -> None:
        if cap < 1:
            raise ValueError("max_remembered: must be at least 1")
        self.cap = cap
        self._positions: dict[str, int] = {}  # id -> position; insertion order is not used
        self._base = 0  # the position of the columns' first element
        self._oldest = 0  # no live record sits before this position
        self._ids: list[str | None] = []  # None: a hole (forgotten, or scored again later)
        self._ts = array("d")
        self._entities: tuple[list[str | None], ...] = ([], [], [], [], [])
        self._channel: list[str | None] = []
        self._score = array("i")
        self._status = array("b")

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
        positions = self._positions
        earlier = positions.get(transaction_id)
        if earlier is not None:  # scored again (a retry): it is as recent as it gets
            self._ids[earlier - self._base] = None
        positions[transaction_id] = self._base + len(self._ids)
        self._ids.append(transaction_id)
        self._ts.append(ts)
        for column, entity in zip(self._entities, entities, strict=True):
            column.append(entity)
        self._channel.append(channel)
        self._score.append(score)
        self._status.append(status)
        if len(positions) > self.cap:
            self._forget_oldest()
        forgotten = self._oldest - self._base  # the dead positions in front
        if forgotten >= max(1, self.cap // 2):
            self._cut(forgotten)
        elif len(self._ids) - len(positions) - forgotten > self.cap:
            self._compact()

    def _forget_oldest(self) -> None:
        ids, base = self._ids, self._base
        i = self._oldest - base
        while ids[i] is None:
            i += 1
        del self._positions[ids[i]]  # type: ignore[arg-type]
        ids[i] = None
        self._oldest = base + i + 1

    def _columns(self) -> list[Any]:
        return [self._ids, self._ts, *self._entities, self._channel, self._score, self._status]

    def _cut(self, forgotten: int) -> None:
        """Drop the dead positions in front of the oldest live record (a memmove)."""
        for column in self._columns():
            del column[:forgotten]
        self._base += forgotten

    def _compact(self) -> None:
        """Drop every hole: for a memory whose transactions are scored again and again,
        which leaves holes behind the oldest record that `_cut` never reaches. Rare (more
        holes than `cap`), and O(`cap`) when it comes."""
        ids = self._ids
        live = [i for i, transaction_id in enumerate(ids) if transaction_id is not None]
        base = self._base + len(ids)  # positions are never reused
        for column in self._columns():
            kept = [column[i] for i in live]
            column[:] = kept if isinstance(column, list) else array(column.typecode, kept)
        positions = self._positions
        for index, transaction_id in enumerate(self._ids):
            positions[transaction_id] = base + index  # type: ignore[index]
        self._base = self._oldest = base

    def _index(self, transaction_id: str) -> int | None:
        position = self._positions.get(transaction_id)
        return None if position is None else position - self._base

    def get(self, transaction_id: str) -> Remembered | None:
        i = self._index(transaction_id)
        if i is None:
            return None
        c0, c1, c2, c3, c4 = self._entities
        entities = (c0[i], c1[i], c2[i], c3[i], c4[i])
        return Remembered(self._ts[i], entities, self._channel[i], self._score[i], self._status[i])

    def set_status(self, transaction_id: str, status: int) -> None:
        i = self._index(transaction_id)
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
        ids, ts = self._ids[:], self._ts[:]
        c0, c1, c2, c3, c4 = (column[:] for column in self._entities)
        channel, score, status = self._channel[:], self._score[:], self._status[:]
        live = [i for i, transaction_id in enumerate(ids) if transaction_id is not None]
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
