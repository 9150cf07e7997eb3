"""The pieces of an embedded server's deliverer process on their own: the settings it may be
asked for with, what its settings become, its wake-up line, and the lock that keeps two from
delivering at once."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from paymesh.adapters.deliverer_process import DelivererLock, WakeLine
from paymesh.bootstrap import deliverer_settings
from paymesh.config import ConfigError, Settings
from paymesh.sandbox.suite import SandboxListener, SandboxSuite


@pytest.mark.parametrize(
    "shared",
    [
        {"database": "postgresql://paymesh@127.0.0.1/paymesh"},
        {"database": "postgresql://paymesh@127.0.0.1/paymesh", "bus": "nats://127.0.0.1:4222"},
    ],
)
def test_a_deliverer_process_is_refused_with_a_shared_database(
    tmp_path: Path, shared: dict[str, str]
) -> None:
    with pytest.raises(ConfigError, match="paymesh worker"):
        Settings.from_env(data_dir=tmp_path, deliverer_process=True, **shared)


def test_the_deliverer_reaches_the_servers_sandboxes_and_loads_no_model(tmp_path: Path) -> None:
    settings = Settings.from_env(data_dir=tmp_path, deliverer_process=True)
    listener = SandboxListener(
        SandboxSuite(settings.sandbox_secrets, settings.self_url, settings.sandboxed_psps, sms=True)
    )
    try:
        child = deliverer_settings(settings, listener)
    finally:
        listener._socket.close()
    assert child.deliverer_process is False  # it starts no deliverer of its own
    assert child.fraud_model == "none"
    assert child.stripe_api_base == f"{listener.url}/sandbox/stripe"
    assert child.paypal_api_base == f"{listener.url}/sandbox/paypal"
    assert child.twilio_api_base == f"{listener.url}/sandbox/twilio"
    assert child.psp_mode("stripe") == "sandbox"  # still test money only
    assert child.stripe_secret_key == settings.stripe_secret_key


async def test_the_line_wakes_the_other_side_and_tells_it_when_this_side_is_gone() -> None:
    a, b = socket.socketpair()
    ours, theirs = WakeLine(a), WakeLine(b)
    heard: list[bytes] = []
    gone = asyncio.Event()
    theirs.listen(heard.append, gone.set)
    for _ in range(3):
        ours.send(b"d")
    ours.send(b"r")
    await asyncio.sleep(0.05)
    assert set(heard) == {b"d", b"r"}  # wake-ups, not messages: repeats may be merged
    assert not theirs.gone()
    ours.send(b"d")
    theirs.catch_up()  # heard at once, without waiting for the loop's next turn
    assert heard[-1] == b"d"
    ours.close()
    assert theirs.gone()
    await asyncio.wait_for(gone.wait(), 2)
    theirs.close()


def test_a_full_line_does_not_block_the_sender() -> None:
    a, b = socket.socketpair()
    line = WakeLine(a)
    started = time.monotonic()
    for _ in range(200_000):  # far more than the socket buffers hold, nobody reading
        line.send(b"d")
    assert time.monotonic() - started < 5
    line.close()
    b.close()


HOLDER = """
import sys, time
from pathlib import Path
from paymesh.adapters.deliverer_process import DelivererLock
DelivererLock(Path(sys.argv[1]) / "paymesh.db").hold()
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock, as a deliverer whose server died would."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    try:
        assert process.stdout.readline().strip() == "held"
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
        process.stdout.close()


async def test_a_server_waits_out_a_deliverer_and_kills_one_that_outlives_it(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    lock = DelivererLock(tmp_path / "paymesh.db")
    assert not lock._free()
    started = time.monotonic()
    await lock.wait_free(patience=0.5)
    assert time.monotonic() - started >= 0.5  # it waited first
    assert holder.poll() == -9  # then killed the holder that would not go
    assert lock._free()
