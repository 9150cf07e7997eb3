"""A card's spending profile and a terminal's delayed fraud record (`paymesh.fraud.profiles`)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paymesh.fraud.profiles import SpendingProfile, TerminalRisk
from paymesh.fraud.windows import DAY

T0 = 1_700_006_400.0  # a midnight, UTC
HOUR = 3_600.0


def habit(profile: SpendingProfile, amounts: list[int], hour: float = 19) -> None:
    for day, amount in enumerate(amounts):
        profile.add(amount, T0 + day * DAY + hour * HOUR, 48.86, 2.35)


def test_a_new_card_has_no_amount_z_or_hours_until_it_has_a_habit() -> None:
    profile = SpendingProfile()
    habit(profile, [2_000, 2_100])
    assert profile.amount_z(2_000) is None and profile.hour_share(T0) is None
    habit(profile, [1_900, 2_000, 2_050])
    assert profile.amount_z(2_000) is not None and profile.hour_share(T0) is not None


def test_an_order_five_times_the_habit_stands_out_and_the_habit_does_not() -> None:
    profile = SpendingProfile()
    habit(profile, [1_800, 2_200, 2_000, 1_900, 2_100, 2_000, 2_050, 1_950])
    usual, big = profile.amount_z(2_000), profile.amount_z(10_000)
    assert usual is not None and big is not None
    assert abs(usual) < 0.5 and big > 10


def test_hours_read_the_share_of_payments_within_an_hour_of_this_time_of_day() -> None:
    profile = SpendingProfile()
    habit(profile, [2_000] * 8, hour=19.5)  # always around half past seven in the evening
    assert profile.hour_share(T0 + 20 * HOUR) == 1.0  # 20:00: the hour after 19:xx
    assert profile.hour_share(T0 + 3 * HOUR) == 0.0  # three in the morning


def test_the_centroid_is_where_the_card_is_used() -> None:
    profile = SpendingProfile()
    habit(profile, [2_000] * 5)
    assert (profile.lat, profile.lon) == pytest.approx((48.86, 2.35))


def test_the_count_is_capped_so_the_profile_follows_a_changed_habit() -> None:
    profile = SpendingProfile(memory=10)
    habit(profile, [1_000] * 50)
    habit(profile, [4_000] * 30)
    assert profile.n == 10
    assert math.expm1(profile.mean) == pytest.approx(4_000, rel=0.1)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 10**7), min_size=1, max_size=120), st.integers(1, 60))
def test_a_profile_survives_its_snapshot(amounts: list[int], memory: int) -> None:
    profile = SpendingProfile(memory)
    habit(profile, amounts)
    back = SpendingProfile.from_dict(profile.to_dict())
    assert back.to_dict() == profile.to_dict()
    assert back.amount_z(5_000) == profile.amount_z(5_000)
    assert sum(back.hours) <= 4 * memory + 1  # halved when large: constant memory


def test_a_dispute_counts_on_its_payment_day_and_the_delayed_window_waits_for_it() -> None:
    risk = TerminalRisk()
    for day in range(20):
        for _ in range(10):
            risk.add_payment(T0 + day * DAY + 12 * HOUR)
    now = T0 + 19 * DAY + 13 * HOUR
    risk.add_fraud(T0 + 18 * DAY)  # paid yesterday, disputed today
    risk.add_fraud(T0 + 10 * DAY)  # paid nine days ago
    # The window that ended three days ago: days 9..15, the dispute of day 10 only.
    [(payments, frauds)] = risk.windows(now, ((3, 7),))
    assert (payments, frauds) == (70, 1)
    # The last seven days, today included: days 13..19, yesterday's.
    [(payments, frauds)] = risk.windows(now, ((0, 7),))
    assert (payments, frauds) == (70, 1)


def test_days_older_than_kept_are_forgotten_and_their_late_disputes_ignored() -> None:
    risk = TerminalRisk(keep_days=5)
    for day in range(12):
        risk.add_payment(T0 + day * DAY)
    assert len(risk.days) <= 5
    risk.add_fraud(T0)  # a payment whose day is gone: nothing to credit
    assert all(f == 0 for _, f in risk.days.values())
    assert TerminalRisk.from_dict(risk.to_dict()).days == risk.days


def _windows_summed_afresh(
    risk: TerminalRisk, ts: float, spans: tuple[tuple[int, int], ...]
) -> list[tuple[int, int]]:
    """What `windows` answers, from the days alone (as it was computed before it kept sums)."""
    today = int(ts // DAY)
    out = []
    for delay, length in spans:
        end = today - delay + (1 if delay == 0 else 0)
        days = [c for d, c in risk.days.items() if end - length <= d < end]
        out.append((sum(c[0] for c in days), sum(c[1] for c in days)))
    return out


SPANS = ((7, 7), (7, 28), (0, 7))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["pay", "fraud"]),
            st.floats(0, 60 * DAY, allow_nan=False),
            # Reads from a few days only: the same day read again after a change to an
            # earlier day (a late payment, a fraud) must see it.
            st.integers(25, 28),
        ),
        max_size=150,
    ),
    st.integers(3, 45),
)
def test_the_kept_sums_answer_as_the_days_summed_afresh(
    steps: list[tuple[str, float, int]], keep_days: int
) -> None:
    """Payments and frauds on any day in any order, reads on a few days: the windows always
    equal the sums over the days as they are."""
    risk = TerminalRisk(keep_days)
    for what, offset, read_day in steps:
        if what == "pay":
            risk.add_payment(T0 + offset)
        else:
            risk.add_fraud(T0 + offset)
        now = T0 + read_day * DAY + 12 * HOUR
        assert risk.windows(now, SPANS) == _windows_summed_afresh(risk, now, SPANS)
