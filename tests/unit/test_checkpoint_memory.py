"""Memory a fraud checkpoint used is free again once it is saved: the C heap's free pages go
back to the system, and SQLite keeps no copy of the blob."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import os
import subprocess
import sys
from collections.abc import Callable, Generator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from paymesh.adapters.heap import heap_releaser, pin_mmap_threshold
from paymesh.adapters.sqlite import SqliteStore
from paymesh.fraud.scorer import FraudEngine
from paymesh.fraud.transactions import Transaction
from paymesh.ports.store import BlobPart
from paymesh.service.fraud_stream import CHECKPOINT, FeatureCheckpoint

CHUNK = 64 * 1024  # under glibc's mmap threshold: from the heap, kept there when freed
CHUNKS = 2_000  # 125 MiB


def _libc() -> ctypes.CDLL:
    """The C library with `malloc` and `free` typed, to hold and free blocks by hand."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    return libc


def _rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads RSS from /proc")
def test_the_releaser_returns_freed_heap_pages_to_the_system() -> None:
    libc = _libc()
    if not hasattr(libc, "malloc_trim"):
        pytest.skip("no glibc here: the releaser is a no-op by design")
    chunks = [libc.malloc(CHUNK) for _ in range(CHUNKS)]
    for chunk in chunks:
        ctypes.memset(chunk, 1, CHUNK)  # touched: resident
    pin = libc.malloc(CHUNK)  # above them all, so free() cannot shrink the heap's top
    for chunk in chunks:
        libc.free(chunk)
    held = _rss()
    heap_releaser()()
    released = held - _rss()
    libc.free(pin)
    assert released > CHUNK * CHUNKS // 2, f"only {released / 2**20:.1f} MiB went back"


def test_a_saved_checkpoint_releases_the_heap_and_a_failed_one_does_not(tmp_path: Path) -> None:
    async def run() -> tuple[list[str], bytes | None]:
        store = SqliteStore(tmp_path / "paymesh.db")
        await store.open()
        engine = FraudEngine()
        engine.score(Transaction("t1", 1_700_000_000.0, "cus_1", 1500, "EUR", card_fingerprint="c"))
        calls: list[str] = []
        checkpoint = FeatureCheckpoint(
            engine, store, lambda: datetime.now(UTC), after_save=lambda: calls.append("released")
        )
        await checkpoint.save()
        saved = await store.get_blob(CHECKPOINT)

        async def refuse(name: str, parts: Sequence[BlobPart], at: datetime) -> None:
            raise OSError("disk full")

        store.put_blob_parts = refuse  # type: ignore[method-assign]
        with pytest.raises(OSError, match="disk full"):
            await checkpoint.save()
        await store.close()
        return calls, saved

    calls, saved = asyncio.run(run())
    assert calls == ["released"]
    assert saved is not None
    restored = FraudEngine()
    restored.restore(saved)
    assert len(restored.store.memory) == 1


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads RSS from /proc")
@pytest.mark.parametrize("in_parts", [False, True])
def test_sqlite_keeps_no_copy_of_a_saved_blob(tmp_path: Path, in_parts: bool) -> None:
    size = 64 * 2**20

    async def run() -> tuple[int, int, bytes | None]:
        store = SqliteStore(tmp_path / "paymesh.db")
        await store.open()
        data = os.urandom(size)
        before = _rss()  # with the blob itself
        if in_parts:  # as the checkpoint writes it, through incremental blob I/O
            view = memoryview(data)
            parts = [view[: size // 3], view[size // 3 :]]
            await store.put_blob_parts(CHECKPOINT, parts, datetime.now(UTC))
            del view, parts
        else:
            await store.put_blob(CHECKPOINT, data, datetime.now(UTC))
        del data
        gc.collect()
        heap_releaser()()
        after = _rss()
        saved = await store.get_blob(CHECKPOINT)
        await store.close()
        return before, after, saved

    before, after, saved = asyncio.run(run())
    assert saved is not None and len(saved) == size
    # Neither the statement's copy of the blob (SQLite keeps a bound value until it is bound
    # again) nor the writer's last job (whose closure holds it) outlives the write: without
    # either fix `after` is about `before` instead of about `before` - 64 MiB.
    assert after < before - size // 2, f"{(after - before) / 2**20:+.1f} MiB"


def test_the_snapshot_is_let_go_before_the_heap_is_trimmed(tmp_path: Path) -> None:
    # The trim gives back only what is free: called while `save` still held the snapshot, it
    # found nothing, and the snapshot's tens of MB stayed in the heap.
    blob = bytes(4096) + os.urandom(16)
    held_by_the_test = sys.getrefcount(blob)

    def steps(
        keep: Callable[[bytearray], BlobPart] = bytes,
    ) -> Generator[None, None, list[BlobPart]]:
        yield
        return [memoryview(blob)[:10], memoryview(blob)[10:]]

    async def run() -> list[int]:
        store = SqliteStore(tmp_path / "paymesh.db")
        await store.open()
        engine = FraudEngine()
        engine.snapshot_parts_steps = steps  # type: ignore[method-assign]
        seen: list[int] = []
        checkpoint = FeatureCheckpoint(
            engine,
            store,
            lambda: datetime.now(UTC),
            after_save=lambda: seen.append(sys.getrefcount(blob)),
        )
        await checkpoint.save()
        await store.close()
        return seen

    assert asyncio.run(run()) == [held_by_the_test]


def big_block_released(pinned: bool) -> int | None:
    """Bytes of RSS that freeing a 16 MiB block gives back, after a first one was freed
    (None where the threshold cannot be pinned). Run by the test below in a fresh
    interpreter, not in the test's own process: glibc serves a big block from free space
    already in the heap, whatever the mmap threshold, and a test process's heap holds what
    earlier tests freed (a fraud engine's feedback memory alone is 17 MiB of 2 MiB blocks)."""
    if pinned and not pin_mmap_threshold():
        return None
    libc = _libc()
    big = 16 * 2**20
    # Unpinned, freeing this first mapped block raises glibc's threshold to 16 MiB...
    first = libc.malloc(big)
    ctypes.memset(first, 1, big)
    libc.free(first)
    # ...so this one comes from the heap, and stays resident once freed under `pin`.
    second = libc.malloc(big)
    ctypes.memset(second, 1, big)
    pin = libc.malloc(CHUNK)
    held = _rss()
    libc.free(second)
    released = held - _rss()
    libc.free(pin)
    return released


def _released_in_a_fresh_process(pinned: bool) -> str:
    run = (
        "import sys; from tests.unit.test_checkpoint_memory import big_block_released;"
        " print(big_block_released(sys.argv[1] == 'pin'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", run, "pin" if pinned else "as-is"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    return done.stdout.strip()


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads RSS from /proc")
def test_a_freed_big_block_goes_back_to_the_system_without_a_trim() -> None:
    released = _released_in_a_fresh_process(pinned=True)
    if released == "None":
        pytest.skip("no glibc mallopt here: nothing is pinned by design")
    big = 16 * 2**20
    assert int(released) > big // 2, f"only {int(released) / 2**20:.1f} MiB went back"
    # And it is the pin that gives it back: glibc left to itself keeps it.
    assert int(_released_in_a_fresh_process(pinned=False)) < big // 2
