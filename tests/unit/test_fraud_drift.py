"""The fraud drift report's figures, per UTC day, on hand-made assessments: what an operator
reads to tell whether the scorer still sees the payments it saw last week."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from paymesh.domain.payment import FraudAssessment
from paymesh.fraud.drift import ALERT, EPSILON, NOISE_CHI2, daily_drift, population_stability
from paymesh.service.fraud_stream import ALERT_THRESHOLD

DAY_1 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _decision(score: int) -> str:
    # As the default rule set decides: review above 70, block above 80.
    return "block" if score > 80 else "review" if score > 70 else "allow"


def scored(
    at: datetime, *scores: int, model: str | None = None
) -> list[tuple[datetime, FraudAssessment | None]]:
    return [
        (at + timedelta(seconds=i), FraudAssessment(s, (), _decision(s), model))
        for i, s in enumerate(scores)
    ]


def test_a_days_count_mean_percentiles_shares_and_histogram() -> None:
    report = daily_drift(scored(DAY_1, 0, 10, 75, 90))
    (day,) = report.days
    assert (day.day, day.payments, day.mean) == (date(2026, 3, 2), 4, 43.75)
    # Nearest rank: p50 is the 2nd of 4 scores, p90 and p99 the 4th.
    assert (day.p50, day.p90, day.p99) == (10, 90, 90)
    assert (day.alerted, day.review, day.blocked) == (0.5, 0.25, 0.25)
    assert day.histogram == (1, 1, 0, 0, 0, 0, 0, 1, 0, 1)
    assert day.models == ((None, 4),)
    assert (day.psi, day.drifted, day.alert_rate_change, day.baseline_payments) == (
        None,
        False,
        None,
        0,
    )


def test_percentiles_take_a_score_some_payment_got() -> None:
    (day,) = daily_drift(scored(DAY_1, *range(1, 101))).days  # scores 1..100
    assert (day.p50, day.p90, day.p99) == (50, 90, 99)
    assert day.histogram == (9, 10, 10, 10, 10, 10, 10, 10, 10, 11)  # 100 joins 90-99


def test_an_alert_is_what_the_fraud_stream_alerts_on() -> None:
    assert ALERT == ALERT_THRESHOLD


def test_an_alert_is_a_score_of_70_and_up_whatever_was_decided() -> None:
    # 70 raises fraud.alert but is not above the review threshold; 69 is no alert.
    (day,) = daily_drift(scored(DAY_1, 69, 70)).days
    assert (day.alerted, day.review, day.blocked) == (0.5, 0.0, 0.0)


def test_a_shifted_day_is_flagged_by_its_psi_against_the_week_before() -> None:
    # 100 payments a day: enough that chance alone stays below the 0.2 rule of thumb.
    week = [
        row for n in range(7) for row in scored(DAY_1 + timedelta(days=n), *[5, 5, 15, 15] * 25)
    ]
    same = scored(DAY_1 + timedelta(days=7), *[1, 8, 12, 19] * 25)  # half 0-9, half 10-19
    shifted = scored(DAY_1 + timedelta(days=8), *[5, 15, 15, 15] * 25)  # 1/4 and 3/4
    report = daily_drift([*shifted, *week, *same])  # in any order
    days = report.days
    assert [d.day for d in days] == [date(2026, 3, 2) + timedelta(days=n) for n in range(9)]
    assert (days[0].psi, days[0].psi_noise, days[0].drifted) == (None, None, False)
    assert days[1].psi == pytest.approx(0.0)
    assert days[7].psi == pytest.approx(0.0)
    assert (days[7].drifted, days[7].baseline_payments) == (False, 700)
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5) = 0.25 ln 3 = 0.275; the
    # empty buckets, empty on both sides, add nothing.
    assert days[8].psi == pytest.approx(0.25 * math.log(3))
    assert days[8].baseline_payments == 700  # the 7 days before: day 1 is out of its week
    assert days[8].psi_noise == pytest.approx(NOISE_CHI2 * (1 / 100 + 1 / 700))  # 0.248
    assert days[8].drifted


def test_the_same_shift_on_a_few_payments_is_not_told_from_chance() -> None:
    week = [row for n in range(7) for row in scored(DAY_1 + timedelta(days=n), 5, 5, 15, 15)]
    shifted = scored(DAY_1 + timedelta(days=7), 5, 15, 15, 15)
    day = daily_drift([*week, *shifted]).days[-1]
    assert day.psi == pytest.approx(0.25 * math.log(3))  # above 0.2 ...
    assert day.psi_noise == pytest.approx(NOISE_CHI2 * (1 / 4 + 1 / 28))  # ... but chance: 6.2
    assert not day.drifted


def test_a_shift_far_beyond_chance_is_flagged_even_on_a_few_payments() -> None:
    week = [row for n in range(7) for row in scored(DAY_1 + timedelta(days=n), *[5] * 40)]
    attack = scored(DAY_1 + timedelta(days=7), *[5] * 20, *[95] * 20)
    day = daily_drift([*week, *attack]).days[-1]
    assert day.psi is not None and day.psi_noise is not None
    assert day.psi > day.psi_noise > 0.2
    assert day.drifted


def test_a_small_move_is_not_a_drift() -> None:
    before = scored(DAY_1, *([5] * 500), *([15] * 500))
    after = scored(DAY_1 + timedelta(days=1), *([5] * 450), *([15] * 550))
    (_, day) = daily_drift([*before, *after]).days
    assert day.psi == pytest.approx(-0.05 * math.log(0.9) + 0.05 * math.log(1.1))
    assert day.psi is not None and day.psi < 0.1  # "has not moved"
    assert not day.drifted


def test_a_bucket_empty_on_one_side_counts_with_a_small_share_not_infinity() -> None:
    # Every score moved from 0-9 to 90-100: two buckets of (1 - EPSILON) ln(1 / EPSILON).
    assert population_stability([0] * 9 + [4], [4] + [0] * 9) == pytest.approx(
        2 * (1 - EPSILON) * math.log(1 / EPSILON)
    )


def test_the_alert_rate_change_is_against_the_week_before_pooled() -> None:
    rows = [
        *scored(DAY_1, 10, 10, 10, 75),  # 1 of 4 alerted
        *scored(DAY_1 + timedelta(days=1), 10, 75, 75, 75, 75, 75),  # 5 of 6
        *scored(DAY_1 + timedelta(days=2), 10, 10, 75, 75),  # half; the two days before: 6/10
    ]
    days = daily_drift(rows).days
    assert days[2].alerted == 0.5
    assert days[2].alert_rate_change == pytest.approx(0.5 - 0.6)


def test_a_day_with_no_scores_in_its_week_before_has_no_psi() -> None:
    old = scored(DAY_1, 10, 20)
    later = scored(DAY_1 + timedelta(days=8), 90, 95)  # 8 days on: past the week
    days = daily_drift([*old, *later]).days
    assert [(d.day, d.psi, d.alert_rate_change) for d in days] == [
        (date(2026, 3, 2), None, None),
        (date(2026, 3, 10), None, None),
    ]


def test_days_are_utc_days_and_the_models_are_counted_most_used_first() -> None:
    paris = timezone(timedelta(hours=1))
    rows = [
        *scored(datetime(2026, 3, 3, 0, 30, tzinfo=paris), 10, model="gbm-2"),  # 2 March UTC
        *scored(DAY_1, 20, 30, model="gbm-1"),
        *scored(DAY_1, 40),
        (DAY_1, None),  # a payment made before assessments were recorded
    ]
    report = daily_drift(rows)
    (day,) = report.days
    assert day.payments == 4
    assert day.models == (("gbm-1", 2), ("gbm-2", 1), (None, 1))
    assert report.unscored == 1


def test_a_time_without_a_zone_is_refused_rather_than_guessed() -> None:
    with pytest.raises(ValueError, match="time zone"):
        daily_drift(scored(datetime(2026, 3, 2, 9, 0), 10))


def test_no_payments_no_days() -> None:
    report = daily_drift([])
    assert (report.days, report.unscored) == ((), 0)
