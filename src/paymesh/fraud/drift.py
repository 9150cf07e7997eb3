"""Fraud score drift, day by day (issue 19): is the scorer still seeing the payments it saw?

From the (created at, assessment) of recent payments, per UTC day: how many were scored,
their mean and percentile scores, the shares alerted, held for review and blocked, a
10-bucket histogram, the models that scored them, and how far that day's histogram has
moved from the 7 days before it (population stability index), flagged as a drift when it
is past the usual 0.2 and past what chance alone gives at that day's volume. A drift with
the same model is a change in the traffic (or an attack); one that comes with a new model is
the model's. Pure: the caller reads the payments.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from paymesh.domain.payment import FraudAssessment

__all__ = [
    "ALERT",
    "BASELINE_DAYS",
    "BUCKETS",
    "DRIFT_PSI",
    "NOISE_CHI2",
    "DayDrift",
    "DriftReport",
    "bucket_of",
    "daily_drift",
    "population_stability",
]

#: A score that raises `fraud.alert` (the stream's `ALERT_THRESHOLD`, which this layer cannot
#: import; a test keeps them equal).
ALERT = 70
#: Histogram buckets: 0-9, 10-19, ..., 80-89, and 90-100 (a score of 100 joins the last).
BUCKETS = 10
#: A day is compared with the scored payments of the 7 calendar days before it, pooled: a
#: week, so a weekday is not measured against a weekend alone.
BASELINE_DAYS = 7
#: The usual rule of thumb for PSI: below 0.1 the population has not moved, 0.1 to 0.2 it
#: has moved a little, above 0.2 it has shifted enough to look at (and to re-check a model).
DRIFT_PSI = 0.2
#: Two samples of one unchanged population still differ: their PSI is about a chi-square
#: variable with BUCKETS - 1 degrees of freedom times (1/n + 1/m), n and m their sizes. This
#: is its 99th percentile (9 degrees), so `NOISE_CHI2 * (1/n + 1/m)` is a PSI that chance
#: alone passes one day in a hundred. At 40 payments a day against a week of them that is
#: 0.62: without it, most quiet days would be flagged (simulated: 2 in 3). The approximation
#: is a little optimistic for the smallest samples, where empty buckets weigh most.
NOISE_CHI2 = 21.666
#: Stands in for a bucket's share when no payment fell in it: PSI takes the log of a ratio
#: of shares, which an empty bucket would make infinite. A bucket empty on both sides still
#: adds nothing (equal stand-ins); one empty on one side only weighs heavily, as it should.
EPSILON = 1e-4


@dataclass(frozen=True, slots=True)
class DayDrift:
    """One UTC day's scores. Shares are fractions of `payments` (0.25, not 25)."""

    day: date
    payments: int
    mean: float
    #: Percentiles by nearest rank: each is a score some payment of the day got.
    p50: int
    p90: int
    p99: int
    alerted: float  # score >= ALERT: what raises fraud.alert
    review: float  # decision review: authorised, held for a person
    blocked: float  # decision block: never sent to a PSP
    histogram: tuple[int, ...]  # payments per bucket, BUCKETS of them
    #: (model version, payments it scored), most used first; None is the rules alone.
    models: tuple[tuple[str | None, int], ...]
    #: Scored payments in the BASELINE_DAYS before this day, the PSI's reference.
    baseline_payments: int
    #: None when no payment was scored in the days before (nothing to compare with).
    psi: float | None
    #: The PSI chance alone would pass one day in a hundred with this day's and the
    #: baseline's numbers of payments (see NOISE_CHI2); None with `psi`.
    psi_noise: float | None
    #: psi > DRIFT_PSI, and beyond `psi_noise`: a shift, not the luck of a small sample.
    drifted: bool
    #: This day's alerted share less the baseline's (0.05: five points more alerts).
    alert_rate_change: float | None


@dataclass(frozen=True, slots=True)
class DriftReport:
    days: tuple[DayDrift, ...]  # oldest first; only days with a scored payment
    #: Payments with no assessment (made before scoring was recorded), left out of every day.
    unscored: int


def bucket_of(score: int) -> int:
    return min(max(score, 0) // 10, BUCKETS - 1)


def population_stability(actual: Sequence[int], expected: Sequence[int]) -> float:
    """PSI of a histogram `actual` against `expected` (counts, same buckets):
    sum over buckets of (a - e) * ln(a / e), a and e each bucket's share of its side."""
    a_total, e_total = sum(actual), sum(expected)
    if a_total == 0 or e_total == 0:
        raise ValueError("PSI needs payments on both sides")
    psi = 0.0
    for a_count, e_count in zip(actual, expected, strict=True):
        a = a_count / a_total or EPSILON
        e = e_count / e_total or EPSILON
        psi += (a - e) * math.log(a / e)
    return psi


def _nearest_rank(ordered: Sequence[int], percent: int) -> int:
    """The smallest score with at least `percent` % of the scores at or below it."""
    rank = math.ceil(percent * len(ordered) / 100)
    return ordered[max(rank, 1) - 1]


@dataclass(slots=True)
class _Day:
    scores: list[int]
    decisions: Counter[str]
    models: Counter[str | None]
    histogram: list[int]

    @property
    def alerted(self) -> int:
        return sum(1 for s in self.scores if s >= ALERT)


def _utc_day(at: datetime) -> date:
    if at.tzinfo is None:
        raise ValueError(f"a payment's creation time must say its time zone: {at!r}")
    return at.astimezone(UTC).date()


def daily_drift(scored: Iterable[tuple[datetime, FraudAssessment | None]]) -> DriftReport:
    """Per UTC day, oldest first, the scores of the payments made that day (see DayDrift)."""
    days: defaultdict[date, _Day] = defaultdict(
        lambda: _Day([], Counter(), Counter(), [0] * BUCKETS)
    )
    unscored = 0
    for at, assessment in scored:
        if assessment is None:
            unscored += 1
            continue
        d = days[_utc_day(at)]
        d.scores.append(assessment.score)
        d.decisions[assessment.decision] += 1
        d.models[assessment.model] += 1
        d.histogram[bucket_of(assessment.score)] += 1
    return DriftReport(
        days=tuple(_drift(day, days) for day in sorted(days)),
        unscored=unscored,
    )


def _drift(day: date, days: dict[date, _Day]) -> DayDrift:
    d = days[day]
    n = len(d.scores)
    ordered = sorted(d.scores)
    before = [
        days[earlier]
        for offset in range(1, BASELINE_DAYS + 1)
        if (earlier := day - timedelta(days=offset)) in days
    ]
    baseline = [sum(column) for column in zip(*(b.histogram for b in before), strict=True)]
    baseline_n = sum(len(b.scores) for b in before)
    alerted = d.alerted / n
    psi = population_stability(d.histogram, baseline) if baseline_n else None
    noise = NOISE_CHI2 * (1 / n + 1 / baseline_n) if baseline_n else None
    return DayDrift(
        day=day,
        payments=n,
        mean=sum(ordered) / n,
        p50=_nearest_rank(ordered, 50),
        p90=_nearest_rank(ordered, 90),
        p99=_nearest_rank(ordered, 99),
        alerted=alerted,
        review=d.decisions["review"] / n,
        blocked=d.decisions["block"] / n,
        histogram=tuple(d.histogram),
        models=tuple(
            sorted(d.models.items(), key=lambda item: (-item[1], item[0] is None, item[0] or ""))
        ),
        baseline_payments=baseline_n,
        psi=psi,
        psi_noise=noise,
        drifted=psi is not None and noise is not None and psi > max(DRIFT_PSI, noise),
        alert_rate_change=(
            alerted - sum(b.alerted for b in before) / baseline_n if baseline_n else None
        ),
    )
