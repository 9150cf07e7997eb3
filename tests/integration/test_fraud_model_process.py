"""The replay's model in a process of its own: the same verdicts as in this one, and an
error, not a hang, when that process is gone."""

from __future__ import annotations

import json
from collections.abc import Generator

import numpy as np
import pytest

from paymesh.fraud.generator import generate_episodes, outcomes, replay_records
from paymesh.fraud.model import FraudModel
from paymesh.fraud.model_process import ModelProcess, ModelProcessError
from paymesh.fraud.replay import replay
from paymesh.fraud.scorer import FraudEngine

PACKAGED = FraudModel.packaged()


def test_the_child_gives_the_verdicts_this_process_gives_batch_after_batch() -> None:
    rng = np.random.default_rng(5)
    batches = [rng.normal(0, 50, (n, len(PACKAGED.features))) for n in (512, 3, 1)]
    batches[1][0, :10] = np.nan  # missing features go through as NaN
    child = ModelProcess(PACKAGED.to_json())
    try:
        for rows in batches:
            child.send(rows)
            got = child.receive()
            assert got == [(v.score, v.margin, v.factors) for v in PACKAGED.verdicts(rows)]
    finally:
        child.close()


def test_a_child_that_is_gone_is_an_error_not_a_wait() -> None:
    child = ModelProcess(PACKAGED.to_json())
    child._child.kill()
    child._child.wait()
    with pytest.raises(ModelProcessError):
        child.send(np.zeros((512, len(PACKAGED.features))))
        child.receive()
    child.close()


@pytest.mark.parametrize("n", [0, 10])
def test_a_stream_of_less_than_a_batch_is_scored_whole(n: int) -> None:
    stream, _ = generate_episodes(max(n, 1), 3)
    records = [r for r in replay_records(stream, outcomes(stream, 3)) if not r.get("outcome")][:n]
    lines = [json.dumps(r) for r in records]
    alone = list(replay(lines, "jsonl", FraudEngine(model=PACKAGED)))
    beside = list(replay(lines, "jsonl", FraudEngine(model=PACKAGED), model_process=True))
    assert beside == alone and len(beside) == n


def test_a_replay_stopped_with_a_batch_in_flight_ends_its_child() -> None:
    stream, _ = generate_episodes(1_200, 3)
    lines = [json.dumps(r) for r in replay_records(stream, outcomes(stream, 3))]
    results = replay(lines, "jsonl", FraudEngine(model=PACKAGED), model_process=True)
    assert isinstance(results, Generator)
    first = next(results)  # the first batch's: the second is in flight in the child
    assert first["transaction_id"] == next(
        json.loads(line)["transaction_id"] for line in lines if '"outcome"' not in line
    )
    results.close()  # returns once the child has ended (it would hang on an unread answer)
