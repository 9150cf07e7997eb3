"""PAYMESH_SQLITE_COMMIT_DELAY_MS reaches the SQLite writer, and a value no caller should wait
is refused at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from paymesh.adapters.sqlite import SqliteStore
from paymesh.bootstrap import build_store
from paymesh.config import ConfigError, Settings


async def _writer_delay(tmp_path: Path) -> float:
    """The delay the opened store's writer got, in seconds."""
    store = build_store(Settings.from_env(data_dir=tmp_path))
    assert isinstance(store, SqliteStore)
    await store.open()
    try:
        assert store._writer is not None
        return store._writer._commit_delay
    finally:
        await store.close()


async def test_the_commit_delay_is_off_by_default_and_reaches_the_writer_in_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PAYMESH_SQLITE_COMMIT_DELAY_MS", raising=False)
    assert await _writer_delay(tmp_path) == 0
    monkeypatch.setenv("PAYMESH_SQLITE_COMMIT_DELAY_MS", "2")
    assert await _writer_delay(tmp_path) == pytest.approx(0.002)
    monkeypatch.setenv("PAYMESH_SQLITE_COMMIT_DELAY_MS", "0.5")
    assert await _writer_delay(tmp_path) == pytest.approx(0.0005)


@pytest.mark.parametrize("value", ["-1", "100.5", "5000"])
def test_a_commit_delay_outside_0_to_100_ms_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("PAYMESH_SQLITE_COMMIT_DELAY_MS", value)
    with pytest.raises(
        ConfigError, match=f"PAYMESH_SQLITE_COMMIT_DELAY_MS {float(value):g}: use 0 to 100"
    ):
        Settings.from_env(data_dir=tmp_path)
