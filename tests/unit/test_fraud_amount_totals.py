"""`AmountStats` keeps integer totals, so subtracting the days that fall out never drifts,
compiled (`make test-fraud-compiled`: a `float` attribute there is a C double, which stops
being exact past 2**53) as interpreted."""

from __future__ import annotations

from paymesh.fraud.windows import AMOUNT_CAP, DAY, AmountStats


def test_the_totals_stay_exact_past_two_to_the_53() -> None:
    stats = AmountStats(days=3)
    amounts = [AMOUNT_CAP, AMOUNT_CAP - 1, 7, AMOUNT_CAP - 12_345, 1, AMOUNT_CAP]
    for day, amount in enumerate(amounts):  # a day each: the oldest fall out as it goes
        stats.add(day * DAY + 10.0, amount)
        stats.add(day * DAY + 20.0, amount - 1 if amount > 1 else amount)
    kept = [(a, a - 1 if a > 1 else a) for a in amounts[-3:]]
    squares = sum(x * x for pair in kept for x in pair)
    assert squares > 2**53
    assert (stats.n, stats.s, stats.ss) == (6, sum(sum(pair) for pair in kept), squares)
    assert all(type(total) is int for total in (stats.n, stats.s, stats.ss))
    restored = AmountStats.from_dict(stats.to_dict())
    assert (restored.n, restored.s, restored.ss) == (stats.n, stats.s, stats.ss)
