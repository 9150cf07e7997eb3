"""Ids and lease tokens draw on a pool of kernel randomness read a block at a time: every
byte handed out once, in one process or after a fork, and few reads of the kernel."""

from __future__ import annotations

import itertools
import os
import threading
import time
import uuid
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paymesh import entropy
from paymesh.entropy import EntropyPool, random_bits, token_hex, uuid7
from paymesh.service.ids import new_id


def counting_urandom(monkeypatch: pytest.MonkeyPatch) -> Counter[int]:
    """os.urandom made to hand out 0, 1, 2, ... (mod 256) and count its calls by size."""
    calls: Counter[int] = Counter()
    state = {"next": 0}

    def fake(n: int) -> bytes:
        calls[n] += 1
        start = state["next"]
        state["next"] += n
        return bytes((start + i) % 256 for i in range(n))

    monkeypatch.setattr(os, "urandom", fake)
    return calls


def test_takes_cut_the_kernels_bytes_in_order_none_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = counting_urandom(monkeypatch)
    pool = EntropyPool(block=10)
    taken = [pool.take(4), pool.take(4), pool.take(4), pool.take(25), pool.take(1)]
    # 4 + 4 fit the first block; the third would overrun it: a new block (bytes 10-19), of
    # which 2 bytes are left when 25 are asked: one read of 25; then a fresh block.
    assert taken == [
        bytes([0, 1, 2, 3]),
        bytes([4, 5, 6, 7]),
        bytes([10, 11, 12, 13]),
        bytes(range(20, 45)),
        bytes([45]),
    ]
    assert calls == Counter({10: 3, 25: 1})


def test_threads_are_never_handed_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    counting_urandom(monkeypatch)
    pool = EntropyPool(block=64)
    got: list[bytes] = []
    lock = threading.Lock()

    def work() -> None:
        mine = [pool.take(1) for _ in range(2000)]
        with lock:
            got.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 8,000 single bytes from blocks of 64 counting up (mod 256): each value exactly as
    # often as the 125 blocks' bytes give it, which a byte handed out twice would break.
    assert sorted(got) == sorted(bytes([(64 * b + i) % 256]) for b in range(125) for i in range(64))


def counting_real_urandom(monkeypatch: pytest.MonkeyPatch) -> Counter[int]:
    """The kernel's own bytes, its reads counted by size, from a fresh pool."""
    calls: Counter[int] = Counter()
    real = os.urandom

    def counted(n: int) -> bytes:
        calls[n] += 1
        return real(n)

    monkeypatch.setattr(os, "urandom", counted)
    monkeypatch.setattr(entropy, "_POOL", EntropyPool())
    return calls


def test_a_thousand_ids_read_the_kernel_a_few_times_not_a_thousand(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = counting_real_urandom(monkeypatch)
    ids = {new_id("dlv") for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.startswith("dlv_") and len(i) == 4 + 25 for i in ids)
    assert sum(calls.values()) == 3  # 1000 x 10 bytes from blocks of 4096


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_does_not_repeat_its_parents_bytes() -> None:
    token_hex(1)  # the pool holds a block now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next 16 bytes, to the parent
        try:
            os.write(write, bytes.fromhex(token_hex(16)))
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 16)
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 16
    assert bytes.fromhex(token_hex(16)) != child


@given(st.integers(min_value=1, max_value=256))
def test_random_bits_fit_in_their_width(n: int) -> None:
    assert 0 <= random_bits(n) < 2**n


def test_random_bits_use_every_bit() -> None:
    seen = 0
    for _ in range(64):
        seen |= random_bits(80)
    assert seen == 2**80 - 1  # a bit never set in 64 draws: chance 80 x 2^-64


def test_event_ids_are_time_ordered_uuids_from_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server's events take their ids from the pool too (build_core says so), as uuid7 text:
    made later, sorted later (within a millisecond, in any order)."""
    from datetime import UTC, datetime

    from paymesh.domain import events
    from paymesh.domain.events import DomainEvent

    calls = counting_real_urandom(monkeypatch)
    monkeypatch.setattr(events, "_new_event_id", events._new_event_id)  # restored after
    events.draw_event_ids_from(entropy.uuid7)  # as build_core does
    now = datetime.now(UTC)
    ids = []
    for _ in range(5):
        ids += [DomainEvent("payment.succeeded", "pay_1", "m", now, {}).id for _ in range(100)]
        time.sleep(0.002)
    assert len(set(ids)) == 500
    parsed = [uuid.UUID(i) for i in ids]
    assert all(u.version == 7 and str(u) == i for u, i in zip(parsed, ids, strict=True))
    assert all(u.variant == uuid.RFC_4122 for u in parsed)
    batches = [ids[k : k + 100] for k in range(0, 500, 100)]
    assert all(max(a) < min(b) for a, b in itertools.pairwise(batches))  # 2 ms apart: in order
    ms = uuid.UUID(ids[0]).int >> 80
    assert abs(ms - time.time() * 1000) < 60_000  # its first 48 bits: Unix milliseconds
    assert sum(calls.values()) == 2  # 500 x 10 bytes from blocks of 4096


@given(
    st.integers(min_value=0, max_value=2**48 - 2).map(lambda ms: ms * 1_000_000),
    st.integers(min_value=1_000_000, max_value=10**12),
)
def test_uuid7_text_sorts_as_its_time(earlier_ns: int, gap_ns: int) -> None:
    """Version 7, RFC 9562's variant, the millisecond in the first 48 bits: an id made in a
    later millisecond sorts after, as text too (what an index compares)."""
    later_ns = min(earlier_ns + gap_ns, (2**48 - 1) * 1_000_000)
    first, second = uuid7(earlier_ns), uuid7(later_ns)
    for text, ns in ((first, earlier_ns), (second, later_ns)):
        u = uuid.UUID(text)
        assert (u.version, u.variant, str(u)) == (7, uuid.RFC_4122, text)
        assert u.int >> 80 == ns // 1_000_000
    assert first < second


def test_uuid7_keeps_74_random_bits() -> None:
    seen = 0
    for _ in range(64):
        seen |= uuid.UUID(uuid7(0)).int
    assert seen == (1 << 80) - 1 & ~(0xF << 76) & ~(0x3 << 62) | 0x7 << 76 | 0x2 << 62


def test_paypal_sandbox_ids_come_from_the_pool_in_paypal_s_shapes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PayPal's ids are 17 characters drawn one by one from 36; `secrets.choice` read the
    kernel once a character (34 reads an event id). Now a few blocks serve them all."""
    import re

    from paymesh.sandbox.paypal import ids as paypal

    calls = counting_real_urandom(monkeypatch)
    made = {
        r"[A-Z0-9]{17}": [paypal.resource_id() for _ in range(200)],
        r"WH-[A-Z0-9]{17}-[A-Z0-9]{17}": [paypal.event_id() for _ in range(200)],
        r"[A-Z0-9]{13}": [paypal.payer_id() for _ in range(200)],
        r"PP-D-[0-9]{8}": [paypal.dispute_id() for _ in range(200)],
    }
    for shape, ids in made.items():
        assert all(re.fullmatch(shape, i) for i in ids), shape
        if not shape.startswith("PP-D-"):  # 8 digits: a repeat in 200 is 1 in 5,000
            assert len(set(ids)) == 200, shape
    # 200 x (17 + 34 + 13 + 8) = 14,400 bytes: 4 blocks of 4,096.
    assert sum(calls.values()) == 4
