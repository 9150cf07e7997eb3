"""Offline scoring of a transaction stream: JSON Lines or CSV in, one result per line out.

A record with an `outcome` (`approved`, `declined` or `disputed`), besides its
`transaction_id` and `timestamp`, is feedback about an earlier transaction, as the
live stream carries it: it is given to the engine and yields no result line.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

from paymesh.domain.payment import FraudAssessment
from paymesh.fraud.scorer import FraudEngine
from paymesh.fraud.transactions import TransactionError, parse_outcome, parse_transaction

if TYPE_CHECKING:
    from paymesh.fraud.model import Verdict
    from paymesh.fraud.model_process import ModelProcess

_decode = json.JSONDecoder().raw_decode
_BATCH = 512


def _json_object(line: str) -> Any:
    """`json.loads(line)` without its Python-level wrapper, a microsecond a line saved."""
    text = line.strip()
    value, end = _decode(text)
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return value


def read_records(lines: Iterable[str], fmt: str) -> Iterator[dict[str, Any]]:
    if fmt == "csv":
        yield from csv.DictReader(iter(lines))
    elif fmt == "jsonl":
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = _json_object(line)
            except json.JSONDecodeError as exc:
                raise TransactionError(f"line {number}: invalid JSON: {exc}") from exc
            if not isinstance(record, dict):
                raise TransactionError(f"line {number}: expected a JSON object")
            yield record
    else:
        raise ValueError(f"fmt: expected 'jsonl' or 'csv', got {fmt!r}")


def replay(
    lines: Iterable[str],
    fmt: Literal["jsonl", "csv"] = "jsonl",
    engine: FraudEngine | None = None,
    model_process: bool = False,
) -> Iterator[dict[str, Any]]:
    """Score each transaction in input order, before reading the next one; apply feedback.

    With a learned model, the model's half of the scoring runs on batches of `_BATCH`
    transactions (one call into LightGBM each): the features and rules still see each
    transaction before the next is read, and what the engine learns never reads the model's
    score, so the results are those of `engine.score` one by one. With `model_process`, the
    batches are scored in a second process (`paymesh.fraud.model_process`) while this one
    reads and learns the next: the same results, in the same order, on two cores.
    """
    engine = engine if engine is not None else FraudEngine()
    model = engine.model
    pending: list[tuple[str, list[float], FraudAssessment]] = []
    model_json = model.to_json() if model is not None and model_process else None
    with _ModelScoring(engine, model_json) as scoring:
        for record in read_records(lines, fmt):
            if record.get("outcome"):
                engine.feedback(*parse_outcome(record))
                continue
            txn = parse_transaction(record)
            if model is None:
                yield _result(txn.transaction_id, engine.score(txn))
                continue
            features, ruled = engine.evaluate(txn)
            pending.append((txn.transaction_id, model.vector(features), ruled))
            if len(pending) == _BATCH:
                yield from scoring.send(pending)
                pending = []
        if pending:
            yield from scoring.send(pending)
        yield from scoring.drain()


class _ModelScoring:
    """The model's half of a replay: here, batch by batch, or in a child process
    (`model_json` given) scoring one batch while the next is read here."""

    def __init__(self, engine: FraudEngine, model_json: str | None) -> None:
        self._engine = engine
        self._child: ModelProcess | None = None
        if model_json is not None:
            # Here, not at the top: the rules alone import neither numpy nor LightGBM.
            from paymesh.fraud.model_process import ModelProcess

            self._child = ModelProcess(model_json)
        self._in_flight: list[tuple[str, FraudAssessment]] | None = None

    def __enter__(self) -> _ModelScoring:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._child is not None:
            self._child.close()

    def send(
        self, pending: list[tuple[str, list[float], FraudAssessment]]
    ) -> Iterator[dict[str, Any]]:
        """Score `pending`; the results of the batches now done, in input order."""
        model = self._engine.model
        assert model is not None
        scored = [(transaction_id, ruled) for transaction_id, _, ruled in pending]
        if self._child is None:
            yield from self._results(scored, model.verdicts([row for _, row, _ in pending]))
            return
        import numpy as np

        rows = np.asarray([row for _, row, _ in pending], dtype=np.float64)
        # The batch before was scored there while this one was read here. Its verdicts are
        # read before this batch is written (so neither side waits on a full pipe), and
        # turned into results only after (so the child is not idle meanwhile).
        before = self._collect()
        self._child.send(rows)
        self._in_flight = scored
        if before is not None:
            yield from self._results(*before)

    def drain(self) -> Iterator[dict[str, Any]]:
        before = self._collect()
        if before is not None:
            yield from self._results(*before)

    def _collect(self) -> tuple[list[tuple[str, FraudAssessment]], list[Verdict]] | None:
        if self._child is None or self._in_flight is None:
            return None
        from paymesh.fraud.model import Verdict

        scored, self._in_flight = self._in_flight, None
        return scored, [Verdict(*v) for v in self._child.receive()]

    def _results(
        self, scored: list[tuple[str, FraudAssessment]], verdicts: list[Verdict]
    ) -> Iterator[dict[str, Any]]:
        combine = self._engine.combine
        for (transaction_id, ruled), verdict in zip(scored, verdicts, strict=True):
            yield _result(transaction_id, combine(ruled, verdict))


def _result(transaction_id: str, result: FraudAssessment) -> dict[str, Any]:
    return {
        "transaction_id": transaction_id,
        "risk_score": result.score,
        "risk_factors": list(result.factors),
        "decision": result.decision,
    }


def run_replay(
    path: str | Path, out: TextIO, engine: FraudEngine | None = None, model_process: bool = False
) -> int:
    """Replay a file (CSV when it ends in .csv, else JSON Lines) to `out`; returns the count."""
    fmt: Literal["jsonl", "csv"] = "csv" if str(path).endswith(".csv") else "jsonl"
    count = 0
    with open(path, encoding="utf-8", newline="") as lines:
        for result in replay(lines, fmt, engine, model_process):
            out.write(json.dumps(result) + "\n")
            count += 1
    return count
