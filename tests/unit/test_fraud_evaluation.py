"""The labelled generator has every attack and look-alike; the evaluation's figures are right."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from paymesh.fraud.evaluation import average_precision, evaluate
from paymesh.fraud.generator import (
    ATTACKS,
    LOOKALIKES,
    generate_episodes,
    outcomes,
    replay_records,
)


def test_average_precision_matches_the_textbook_cases() -> None:
    assert average_precision([0.9, 0.8, 0.1], [True, True, False]) == 1.0
    # scikit-learn's documented example: average_precision_score -> 0.8333...
    assert average_precision([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == pytest.approx(
        5 / 6
    )
    # Ties make one step: at score 1 precision 1/2 recall 1/2; at 0, 2/3 and 1.
    assert average_precision([1, 1, 0], [True, False, True]) == pytest.approx(0.25 + 0.5 * 2 / 3)
    assert math.isnan(average_precision([1, 2], [False, False]))


def test_evaluate_counts_per_attack_episode_and_legitimate_rates() -> None:
    labels = ["legit", "card_testing", "card_testing", "card_testing", "lookalike_travel", "legit"]
    episodes = ["", "ct1", "ct1", "ct1", "", ""]
    scores = [0, 10, 75, 90, 80, 0]
    decisions = ["allow", "allow", "review", "block", "review", "allow"]
    report = evaluate(labels, episodes, scores, decisions)
    testing = report["attacks"]["card_testing"]
    assert testing["recall"] == pytest.approx(2 / 3)
    assert testing["precision"] == pytest.approx(2 / 3)  # the travel look-alike was alerted
    assert testing["attempts_before_alert_mean"] == 1
    assert testing["episodes_caught"] == 1 and testing["blocked"] == pytest.approx(1 / 3)
    assert report["lookalikes"]["lookalike_travel"]["alerted"] == 1
    assert report["legitimate"]["alerted"] == pytest.approx(1 / 3)
    assert report["legit"]["alerted"] == 0


def test_the_generator_has_every_attack_and_look_alike_and_blocks_disputed_cards() -> None:
    stream, episodes = generate_episodes(20_000, seed=3)
    labels = Counter(label for _, label in stream)
    assert set(ATTACKS) | set(LOOKALIKES) | {"legit"} == set(labels)
    assert all(label in ATTACKS for txn, label in stream if txn.transaction_id in episodes)
    feedback = outcomes(stream, seed=3)
    assert feedback == outcomes(stream, seed=3) and feedback == sorted(feedback)
    assert {outcome for _, _, outcome in feedback} == {"disputed"}
    by_id = {txn.transaction_id: (txn, label) for txn, label in stream}
    blocked: dict[str, float] = {}
    for at, tid, _ in feedback:
        txn, label = by_id[tid]
        if label in ATTACKS and txn.card_fingerprint and txn.card_fingerprint.startswith("card-c"):
            blocked.setdefault(txn.card_fingerprint, at)
    assert blocked
    for txn, label in stream:  # after its fraud dispute a card only sees declined fraud
        if txn.card_fingerprint in blocked and txn.timestamp > blocked[txn.card_fingerprint]:
            assert label in ATTACKS and txn.approved is False


def test_live_records_carry_outcomes_as_feedback_in_time_order() -> None:
    stream, _ = generate_episodes(2000, seed=1)
    records = replay_records(stream, outcomes(stream, seed=1, live=True), live=True)
    times = [record["timestamp"] for record in records]
    assert times == sorted(times)
    txns = [r for r in records if "outcome" not in r]
    assert len(txns) == 2000 and all(r["approved"] is None for r in txns)
    assert sum(1 for r in records if r.get("outcome") in ("approved", "declined")) == 2000
