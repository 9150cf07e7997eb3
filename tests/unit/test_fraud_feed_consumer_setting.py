"""A process's place in the fraud feed is named by the operator, so a restart resumes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from paymesh.adapters.memory.store import MemoryStore
from paymesh.bootstrap import build_core
from paymesh.config import Settings


@pytest.mark.parametrize(("named", "expected"), [("fraud-api7", "fraud-api7"), ("", None)])
def test_the_feed_takes_the_consumer_name_the_process_is_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, named: str, expected: str | None
) -> None:
    monkeypatch.setenv("PAYMESH_FRAUD_FEED_CONSUMER", named)
    for psp in ("STRIPE", "ADYEN", "PAYPAL"):  # a `paymesh sandbox` elsewhere: never called here
        monkeypatch.setenv(f"PAYMESH_{psp}_API_BASE", f"http://127.0.0.1:9/sandbox/{psp.lower()}")
    settings = Settings.from_env(
        data_dir=tmp_path, database="postgresql://u:p@127.0.0.1:9/db", bus="nats://127.0.0.1:9"
    )
    assert settings.fraud_feed_consumer == expected
    core = build_core(settings, with_sandbox=False, store=MemoryStore())  # nothing connects yet
    assert core.feed is not None
    if expected is None:
        assert core.feed.consumer.startswith("fraud-")  # a fresh name of its own
    else:
        assert core.feed.consumer == expected
