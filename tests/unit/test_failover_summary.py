"""`benchmarks/failover.py`'s summary: which payments the outage caught, which went elsewhere."""

from __future__ import annotations

from benchmarks.failover import Answer, summarise


def test_an_outage_is_summed_up_from_the_answers_and_where_each_payment_ended() -> None:
    answers = [
        Answer(1.0, 201, "pay_a", "stripe", 0.02),  # before the outage
        Answer(5.0, 201, "pay_b", "stripe", 0.30),  # caught: left with Stripe, recovered
        Answer(6.0, 201, "pay_c", "adyen", 0.28),  # failed over
        Answer(7.0, 201, "pay_d", "adyen", 0.01),  # circuit open: Adyen first
        Answer(12.0, 201, "pay_e", "adyen", 0.01),  # healed, circuit still open
        Answer(13.5, 201, "pay_f", "stripe", 0.02),  # Stripe again, 3.5 s after the heal
        Answer(14.0, 503, None, None, 0.5),  # never made
    ]
    state = {
        "pay_a": ("succeeded", "stripe", 0.1),
        "pay_b": ("succeeded", "stripe", 31.0),
        "pay_c": ("succeeded", "adyen", 0.3),
        "pay_d": ("succeeded", "adyen", 0.1),
        "pay_e": ("succeeded", "adyen", 0.1),
        "pay_f": ("succeeded", "stripe", 0.1),
    }
    marks = {"before": (10.0, 0.0), "during": (16.0, 6.0), "after": (19.0, 6.0)}
    row = summarise(2, "500", answers, state, marks, outage_start=5.0, outage_end=10.0)
    assert row["in outage"] == 3
    assert row["stripe calls in outage"] == 6 and row["of them failed"] == 6
    assert row["caught by stripe"] == 1 and row["caught settled within s"] == 31.0
    assert row["went elsewhere"] == 2
    assert row["stripe again after heal s"] == 3.5
    assert row["stripe calls after"] == 3
    assert row["final status"] == {"succeeded": 6, "missing": 1}
