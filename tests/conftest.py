"""Project-wide test hooks."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from paymesh.adapters.sqlite import SqliteStore
from tests.support.conformance import MISSING_IDS, corpus_dir, missing, required
from tests.support.nats import NatsServer, running_nats
from tests.support.postgres import PostgresServer, running_postgres

# Loopback only: an AWS request made outside moto (`tests.support.aws.moto_aws`, which lifts
# this) goes to a closed loopback port and fails there, instead of going to AWS.
os.environ.setdefault("AWS_ENDPOINT_URL", "http://127.0.0.1:9")


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
    """How much of the shared EventBridge conformance corpus ran, in one line, every run that
    collected it; without the corpus, how many cases were not run and why. Under xdist this
    runs in the controller, which holds every worker's reports by node id."""

    def reports(outcome: str, test: str) -> list[Any]:
        return [
            report
            for report in terminalreporter.stats.get(outcome, [])
            if "test_eventbridge_conformance" in getattr(report, "nodeid", "")
            and f"::{test}[" in report.nodeid
        ]

    def count(outcome: str, test: str) -> int:
        return len(reports(outcome, test))

    outcomes = ("passed", "failed", "skipped")
    absent = [
        r
        for o in outcomes
        for t in ("test_corpus_case", "test_invalid_pattern_is_rejected")
        for r in reports(o, t)
        if any(f"[{i}]" in r.nodeid for i in MISSING_IDS)
    ]
    if absent:
        failed = any(r.outcome == "failed" for r in absent)
        terminalreporter.write_line(
            f"EventBridge conformance: {missing(corpus_dir())}"
            + (
                f" and this run requires it ({required()}): FAILED"
                if failed
                else "; CI fails without it (CI=true or PAYMESH_REQUIRE_CONFORMANCE=1)"
            ),
            red=failed,
            yellow=not failed,
            bold=True,
        )
        return
    cases = {o: count(o, "test_corpus_case") for o in outcomes}
    invalid = {o: count(o, "test_invalid_pattern_is_rejected") for o in ("passed", "failed")}
    if any(cases.values()) or any(invalid.values()):
        terminalreporter.write_line(
            f"EventBridge conformance: {cases['passed']} labelled cases passed, "
            f"{cases['failed']} failed, {cases['skipped']} skipped; "
            f"{invalid['passed']} invalid patterns rejected, {invalid['failed']} failed"
        )
