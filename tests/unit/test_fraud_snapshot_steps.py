"""The fraud checkpoint is taken in steps, so the server answers requests meanwhile."""

from __future__ import annotations

import asyncio
import gc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from paymesh.adapters.sqlite.store import SqliteStore
from paymesh.fraud.features import SNAPSHOT_STEP, customer_key
from paymesh.fraud.memory import APPROVED, PENDING, FeedbackMemory, run_through
from paymesh.fraud.scorer import SNAPSHOT_FORMAT, FraudEngine, _msgpack_header
from paymesh.fraud.transactions import Transaction
from paymesh.ports.store import BlobPart, KeptAsTheyAre, Spilled
from paymesh.service.fraud_stream import CHECKPOINT, FeatureCheckpoint

T0 = 1_700_000_000.0


def txn(n: int, ts: float) -> Transaction:
    return Transaction(
        f"t{n}",
        ts,
        f"cus_{n}",
        1_000 + n,
        "EUR",
        card_fingerprint=f"card_{n % 7}",
        device_id=f"dev_{n}",
        ip_address=f"10.0.{n // 250}.{n % 250}",
        merchant_id="shop",
        approved=True,
    )


def learned(n: int) -> FraudEngine:
    engine = FraudEngine()
    for i in range(n):
        engine.score(txn(i, T0 + i))
    return engine


def test_the_stepped_snapshot_is_the_plain_one_byte_for_byte() -> None:
    engine = learned(300)
    plain = msgspec.msgpack.encode({"format": SNAPSHOT_FORMAT, "store": engine.store.snapshot()})
    assert engine.snapshot() == plain
    again = FraudEngine()
    again.restore(plain)
    assert again.snapshot() == plain


def test_learning_between_steps_leaves_a_snapshot_that_restores() -> None:
    customers = 2 * SNAPSHOT_STEP + 500
    engine = learned(customers)
    steps = engine.snapshot_steps()
    yielded = 0
    late = customers + 10
    while True:
        try:
            next(steps)
        except StopIteration as done:
            blob: bytes = done.value
            break
        yielded += 1
        # Between steps: a new customer, more of an old one, and an outcome.
        engine.score(txn(late, T0 + late))
        engine.score(txn(0, T0 + late))
        engine.feedback("t1", "disputed", T0 + late)
        late += 1
    assert yielded >= 3  # the customers alone take three steps
    restored = FraudEngine()
    restored.restore(blob)
    kept: dict[str, Any] = restored.store.kinds["customer"]
    assert len(kept) == customers  # those of the first step; the later ones wait
    assert customer_key(txn(customers, 0.0)) not in kept
    assert restored.store.memory.get("t1") is not None


def test_a_checkpoint_lets_the_loop_run_while_it_is_taken() -> None:
    engine = learned(3 * SNAPSHOT_STEP)

    class Blobs:
        def __init__(self) -> None:
            self.saved: dict[str, bytes] = {}

        async def put_blob_parts(self, name: str, parts: list[memoryview], at: datetime) -> None:
            self.saved[name] = b"".join(parts)

        def spill(self) -> KeptAsTheyAre:
            return KeptAsTheyAre()

    async def run() -> tuple[int, Blobs]:
        blobs = Blobs()
        checkpoint = FeatureCheckpoint(engine, blobs, lambda: datetime.now(UTC))  # type: ignore[arg-type]
        turns = 0

        async def other_requests() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        other = asyncio.create_task(other_requests())
        await asyncio.sleep(0)
        turns = 0
        await checkpoint.save()
        other.cancel()
        return turns, blobs

    turns, blobs = asyncio.run(run())
    assert turns >= 5  # the customers, devices and IPs took their turns with the loop
    assert blobs.saved[CHECKPOINT] == engine.snapshot()


def test_the_feedback_memory_is_taken_as_it_was_at_the_first_step() -> None:
    memory = FeedbackMemory(cap=10)
    entities = ("c", "card", "dev", "ip", "shop")
    for n in range(15):  # five forgotten
        memory.remember(f"t{n}", T0 + n, entities, "web", n, PENDING)
    memory.remember("t7", T0 + 15, entities, "web", 99, PENDING)  # scored again: a hole
    before = memory.to_dict()
    steps = memory.to_dict_steps(per_step=3)
    taken = None
    n = 100
    while taken is None:
        try:
            next(steps)
        except StopIteration as done:
            taken = done.value
        # Enough new records between steps that the old ones are forgotten and cut off.
        for _ in range(8):
            memory.remember(f"t{n}", T0 + n, entities, "web", 1, PENDING)
            n += 1
        memory.set_status(f"t{n - 1}", APPROVED)
    assert taken == before
    assert [r[7] for r in before["records"]] == [5, 6, 8, 9, 10, 11, 12, 13, 14, 99]
    assert len(memory) == 10 and memory.get("t5") is None


@pytest.mark.parametrize("count", [0, 1, 15, 16, 65_535, 65_536, 70_000])
def test_the_heads_of_the_stepped_lists_and_maps_are_msgspecs_own(count: int) -> None:
    # The snapshot's maps and lists are written as a head and the items' bytes; the head
    # must be the one msgspec writes, in each of msgpack's three sizes, or the snapshot
    # would not read back (a byte-for-byte snapshot of a few hundred covers only one).
    items = [0] * count
    assert msgspec.msgpack.encode(items).startswith(_msgpack_header(0x90, 0xDC, count))
    mapping = {str(i): 0 for i in range(count)}
    assert msgspec.msgpack.encode(mapping).startswith(_msgpack_header(0x80, 0xDE, count))
    assert len(_msgpack_header(0x90, 0xDC, count)) == (
        1 if count < 16 else 3 if count < 65_536 else 5
    )


def test_a_snapshot_in_parts_is_the_snapshot_and_leaves_no_cycle_behind() -> None:
    """The checkpoint's parts join into the snapshot's bytes, and are freed the moment they
    are let go: a reference cycle would keep them (tens of MB) until the cycle collector
    ran, after the heap's trim had come and gone."""
    engine = learned(300)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        parts = run_through(engine.snapshot_parts_steps())
        assert b"".join(p for p in parts if not isinstance(p, Spilled)) == engine.snapshot()
        del parts
        gc.collect()
        assert gc.garbage == []
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def test_a_checkpoint_on_sqlite_spills_each_step_and_saves_the_snapshots_bytes(
    tmp_path: Path,
) -> None:
    """Saved through SQLite's spill, each step's buffer goes to the spill file as it is
    made: what stays in memory is the frame (the formats, the maps' heads, the feedback
    memory's transaction ids), not the entities and records. The blob read back is the
    snapshot, byte for byte, and the spill file is closed after."""
    engine = learned(3 * SNAPSHOT_STEP)

    async def run() -> tuple[list[BlobPart], bytes | None, bool]:
        store = SqliteStore(tmp_path / "paymesh.db")
        await store.open()
        try:
            spill = store.spill()
            parts = run_through(engine.snapshot_parts_steps(spill.keep))
            spill.close()
            closed = all(p.source.closed for p in parts if isinstance(p, Spilled))
            await FeatureCheckpoint(engine, store, lambda: datetime.now(UTC)).save()
            return parts, await store.get_blob(CHECKPOINT), closed
        finally:
            await store.close()

    parts, saved, closed = asyncio.run(run())
    snapshot = engine.snapshot()
    assert saved == snapshot
    spilled = sum(p.nbytes for p in parts if isinstance(p, Spilled))
    in_memory = sum(memoryview(p).nbytes for p in parts if not isinstance(p, Spilled))
    assert spilled + in_memory == len(snapshot)
    # 3 steps of entities of each kind and of records: all of them in the file.
    assert spilled > 0.95 * len(snapshot), (spilled, len(snapshot))
    assert closed
    # Unnamed: nothing beside the database and its own files.
    assert all(p.name.startswith("paymesh.db") for p in tmp_path.iterdir())
