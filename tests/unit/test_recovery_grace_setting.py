"""Recovery's grace with a shared store covers another process's longest inline PSP turn."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from paymesh.bootstrap import recovery_grace
from paymesh.config import Settings


def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, grace: str, **where: str) -> Settings:
    monkeypatch.setenv("PAYMESH_RECOVERY_GRACE", grace)
    monkeypatch.setenv("PAYMESH_PSP_TIMEOUT", "10")
    return Settings.from_env(data_dir=tmp_path, **where)


def test_with_postgresql_the_grace_is_at_least_three_psp_timeouts_and_5_s(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    shared = {"database": "postgresql://u:p@127.0.0.1:9/db"}  # nothing connects here
    # 3 tries of 10 s, 0.05 + 0.2 s between them, 5 s more: a setting of 20 s is raised.
    assert recovery_grace(settings(monkeypatch, tmp_path, "20", **shared)) == timedelta(
        seconds=35.25
    )
    assert recovery_grace(settings(monkeypatch, tmp_path, "90", **shared)) == timedelta(seconds=90)


def test_alone_with_its_sqlite_file_the_server_keeps_the_grace_it_is_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # One process: its driver's turns already keep recovery off a send in progress.
    assert recovery_grace(settings(monkeypatch, tmp_path, "1")) == timedelta(seconds=1)
