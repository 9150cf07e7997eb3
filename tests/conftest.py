"""Project-wide test hooks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from paymesh.adapters.sqlite import SqliteStore
from tests.support.nats import NatsServer, running_nats
from tests.support.postgres import PostgresServer, running_postgres


@pytest.fixture
async def sqlite_store(tmp_path: Any) -> AsyncIterator[SqliteStore]:
    """A fresh SQLite store in the test's own directory, opened and closed around it."""
    store = SqliteStore(tmp_path / "paymesh.db")
    await store.open()
    yield store
    await store.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL cluster for the run (per xdist worker); a server that cannot
    start fails the tests that need it, with the reason, never skips them."""
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    """One throwaway nats-server with JetStream for the run (per xdist worker); fails, never
    skips, the tests that need it when it cannot start."""
    with running_nats() as server:
        yield server


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print how much of the shared EventBridge conformance corpus passed, every run."""
    def count(outcome: str, test: str) -> int:
        return sum(1 for report in terminalreporter.stats.get(outcome, [])
                   if "test_eventbridge_conformance" in getattr(report, "nodeid", "")
                   and f"::{test}[" in report.nodeid)

    cases = {o: count(o, "test_corpus_case") for o in ("passed", "failed", "skipped")}
    invalid = {o: count(o, "test_invalid_pattern_is_rejected") for o in ("passed", "failed")}
    if any(cases.values()) or any(invalid.values()):
        terminalreporter.write_line(
            f"EventBridge conformance: {cases['passed']} labelled cases passed, "
            f"{cases['failed']} failed, {cases['skipped']} skipped; "
            f"{invalid['passed']} invalid patterns rejected, {invalid['failed']} failed")
