"""`paymesh fraud drift` on a real SQLite store: payments made through the payment service on
earlier days, for two merchants, then the report as the operator reads it (every merchant's,
or one's), in JSON and as a table, and bounded by --limit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from unittest.mock import patch

import pytest
import typer
from typer.testing import CliRunner, Result

from paymesh.bootstrap import build_store
from paymesh.config import Settings
from paymesh.connectors.fake import FakePsp
from paymesh.domain.payment import FraudAssessment
from paymesh.entrypoints.cli_fraud_drift import register
from paymesh.ports.risk import RiskInput
from paymesh.service.apikeys import create_key
from paymesh.service.payments import CreatePayment, PaymentService

TODAY = datetime.now(UTC).date()
TWO_DAYS_AGO = TODAY - timedelta(days=2)
YESTERDAY = TODAY - timedelta(days=1)
LONG_AGO = TODAY - timedelta(days=20)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class ScriptedScorer:
    """Scores each payment as the test says (the next score, taken from the front)."""

    scores: list[int]
    model: str | None = None

    async def assess(self, subject: RiskInput) -> FraudAssessment:
        score = self.scores.pop(0)
        decision = "block" if score > 80 else "review" if score > 70 else "allow"
        return FraudAssessment(score, ("scripted",), decision, self.model)


async def _pay(
    service: PaymentService, clock: Clock, scorer: ScriptedScorer, merchant: str, day: date
) -> None:
    clock.now = datetime.combine(day, time(10), tzinfo=UTC)
    for _ in list(scorer.scores):
        clock.now += timedelta(minutes=1)
        await service.create(merchant, CreatePayment(1000, "usd", "cus_1", "pm_card_visa"), None)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Two merchants' payments: two days ago 0 and 10 (shop), 75 and 90 (other-shop);
    yesterday 10, 10, 10 (shop) and 95 (other-shop); and one of 20 days ago."""
    folder = tmp_path_factory.mktemp("drift")

    async def seed() -> None:
        store = build_store(Settings(data_dir=folder))
        await store.open()
        try:
            for merchant in ("shop", "other-shop", "quiet-shop"):
                await create_key(store, merchant, datetime.now(UTC))
            clock, scorer = Clock(), ScriptedScorer([])
            service = PaymentService(store, {"stripe": FakePsp("stripe")}, scorer, clock)
            for merchant, day, scores, model in [
                ("shop", LONG_AGO, [99], None),
                ("shop", TWO_DAYS_AGO, [0, 10], None),
                ("other-shop", TWO_DAYS_AGO, [75, 90], "gbm-7"),
                ("shop", YESTERDAY, [10, 10, 10], None),
                ("other-shop", YESTERDAY, [95], "gbm-7"),
            ]:
                scorer.scores, scorer.model = scores, model
                await _pay(service, clock, scorer, merchant, day)
        finally:
            await store.close()

    asyncio.run(seed())
    yield folder


class _OnTheSeedsDay(datetime):
    """The CLI's clock on the day the data was seeded: a run that crosses midnight UTC
    would otherwise count its days from the next one."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _OnTheSeedsDay:
        return cls.combine(TODAY, time(12), tzinfo=UTC)


def drift(data_dir: Path, *args: str) -> Result:
    fraud_app = typer.Typer()
    register(fraud_app)
    root = typer.Typer()
    root.add_typer(fraud_app, name="fraud")
    with patch("paymesh.entrypoints.cli_fraud_drift.datetime", _OnTheSeedsDay):
        return CliRunner().invoke(root, ["fraud", "drift", "--data-dir", str(data_dir), *args])


def test_every_merchants_scores_per_day_in_json(data_dir: Path) -> None:
    result = drift(data_dir, "--days", "14", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["merchant"], report["from"], report["to"]) == (
        None,
        (TODAY - timedelta(days=13)).isoformat(),
        TODAY.isoformat(),
    )
    assert (report["payments_read"], report["capped"], report["unscored"]) == (8, False, 0)
    first, second = report["days"]  # the payment of 20 days ago is outside the 14 days
    assert first["date"] == TWO_DAYS_AGO.isoformat()
    assert (first["payments"], first["mean_score"], first["p50"], first["p90"]) == (
        4,
        43.75,
        10,
        90,
    )
    assert (first["alerted"], first["review"], first["blocked"]) == (0.5, 0.25, 0.25)
    assert first["histogram"] == [1, 1, 0, 0, 0, 0, 0, 1, 0, 1]
    assert first["models"] == [
        {"model": "gbm-7", "payments": 2},
        {"model": None, "payments": 2},
    ]
    assert (first["psi"], first["drift"], first["alert_rate_change"]) == (None, False, None)
    assert second["date"] == YESTERDAY.isoformat()
    assert (second["payments"], second["alerted"], second["blocked"]) == (4, 0.25, 0.25)
    assert second["baseline_payments"] == 4
    assert second["alert_rate_change"] == pytest.approx(-0.25)
    # Three quarters now in 10-19, a quarter before: past the 0.2 rule of thumb, but four
    # payments against four is within what chance alone gives.
    assert 0.2 < second["psi"] < second["psi_noise"]
    assert second["drift"] is False


def test_one_merchants_scores(data_dir: Path) -> None:
    result = drift(data_dir, "--merchant", "shop", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["merchant"] == "shop"
    assert [(d["date"], d["payments"], d["alerted"]) for d in report["days"]] == [
        (TWO_DAYS_AGO.isoformat(), 2, 0.0),
        (YESTERDAY.isoformat(), 3, 0.0),
    ]


def test_the_limit_leaves_out_whole_days_and_says_so(data_dir: Path) -> None:
    result = drift(data_dir, "--json", "--limit", "6")  # yesterday's 4 fit, not 4 more
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["payments_read"], report["capped"]) == (4, True)
    assert report["complete_from"] == YESTERDAY.isoformat()
    assert [d["date"] for d in report["days"]] == [YESTERDAY.isoformat()]
    assert f"the days before {YESTERDAY.isoformat()} are left out" in result.stderr


def test_the_table_shows_each_day(data_dir: Path) -> None:
    result = drift(data_dir, "--days", "3")
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    [before] = [row for row in rows if TWO_DAYS_AGO.isoformat() in row]
    [after] = [row for row in rows if YESTERDAY.isoformat() in row]
    assert "50.0%" in before and "gbm-7 (2), rules (2)" in before
    assert "25.0%" in after and "-25.0 pts" in after
    assert "few payments" in after and "DRIFT" not in after
    assert "8 payments read" in result.stdout


@pytest.fixture(scope="module")
def attacked_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One merchant: 20 payments scored 5 two days ago, 20 scored 95 yesterday."""
    folder = tmp_path_factory.mktemp("attacked")

    async def seed() -> None:
        store = build_store(Settings(data_dir=folder))
        await store.open()
        try:
            await create_key(store, "shop", datetime.now(UTC))
            clock, scorer = Clock(), ScriptedScorer([])
            service = PaymentService(store, {"stripe": FakePsp("stripe")}, scorer, clock)
            for day, score in [(TWO_DAYS_AGO, 5), (YESTERDAY, 95)]:
                scorer.scores = [score] * 20
                await _pay(service, clock, scorer, "shop", day)
        finally:
            await store.close()

    asyncio.run(seed())
    yield folder


def test_a_day_shifted_beyond_chance_is_flagged(attacked_dir: Path) -> None:
    result = drift(attacked_dir, "--days", "3")
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    [before] = [row for row in rows if TWO_DAYS_AGO.isoformat() in row]
    [after] = [row for row in rows if YESTERDAY.isoformat() in row]
    assert "DRIFT" not in before
    assert "DRIFT" in after and "100.0%" in after
    report = json.loads(drift(attacked_dir, "--json").stdout)
    assert [d["drift"] for d in report["days"]] == [False, True]


def test_a_missing_database_is_an_error_not_an_empty_report(tmp_path: Path) -> None:
    result = drift(tmp_path / "nowhere")
    assert result.exit_code == 2
    assert "no paymesh database" in result.stderr
