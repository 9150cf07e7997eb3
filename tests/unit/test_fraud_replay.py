"""Replay scores a stream in order, each transaction on its past only."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paymesh.fraud.generator import generate, to_record
from paymesh.fraud.replay import replay, run_replay
from paymesh.fraud.transactions import TransactionError

T0 = 1_700_000_000


def record(n: int, ts: float, **kw: Any) -> dict[str, Any]:
    base = {
        "transaction_id": f"t{n}",
        "timestamp": ts,
        "customer_id": "c1",
        "amount": 1000,
        "currency": "EUR",
        "card_fingerprint": "card1",
        "device_id": "d1",
        "country": "GB",
    }
    return {**base, **kw}


def test_jsonl_replay_outputs_one_result_per_line() -> None:
    lines = [json.dumps(record(i, T0 + i * 86_400)) for i in range(3)]
    lines.append("")  # blank lines are skipped
    lines.append(json.dumps(record(3, T0 + 3 * 86_400, amount=5000, device_id="d2")))
    out = list(replay(lines, "jsonl"))
    assert out[-1] == {
        "transaction_id": "t3",
        "risk_score": 40,
        "risk_factors": ["amount_spike", "unknown_device"],
        "decision": "allow",
    }
    assert [r["transaction_id"] for r in out] == ["t0", "t1", "t2", "t3"]


def test_csv_replay_matches_jsonl() -> None:
    rows = [record(i, T0 + i * 20, amount=100, approved=False, customer_id="g") for i in range(6)]
    header = list(rows[0])
    csv_lines = [",".join(header)] + [",".join(str(r[h]) for h in header) for r in rows]
    from_csv = list(replay([line + "\n" for line in csv_lines], "csv"))
    from_json = list(replay([json.dumps(r) for r in rows], "jsonl"))
    assert from_csv == from_json
    assert [r["risk_score"] for r in from_csv] == [0, 0, 70, 100, 100, 100]


def test_bad_input_names_the_line_or_field() -> None:
    with pytest.raises(TransactionError, match="line 2: invalid JSON"):
        list(replay([json.dumps(record(1, T0)), "{oops"], "jsonl"))
    with pytest.raises(TransactionError, match="amount"):
        list(replay([json.dumps(record(1, T0, amount="lots"))], "jsonl"))
    with pytest.raises(ValueError, match="fmt"):
        list(replay([], "xml"))  # type: ignore[arg-type]


def test_run_replay_writes_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "stream.jsonl"
    path.write_text("\n".join(json.dumps(record(i, T0 + i)) for i in range(3)) + "\n")
    out = io.StringIO()
    assert run_replay(path, out) == 3
    assert [json.loads(line)["transaction_id"] for line in out.getvalue().splitlines()] == [
        "t0",
        "t1",
        "t2",
    ]


def test_generator_is_deterministic_and_labelled() -> None:
    first, second = generate(3000, seed=5), generate(3000, seed=5)
    assert [to_record(t) for t, _ in first] == [to_record(t) for t, _ in second]
    assert len(first) == 3000
    assert {"legit", "card_testing", "card_enumeration"} <= {label for _, label in first}
    times = [t.timestamp for t, _ in first]
    assert times == sorted(times)


_records = st.lists(
    st.fixed_dictionaries(
        {
            "customer_id": st.sampled_from(["a", "b", "c"]),
            "card_fingerprint": st.sampled_from(["k1", "k2", "k3", "k4", "k5", "k6"]),
            "device_id": st.sampled_from(["d1", "d2", "d3"]),
            "country": st.sampled_from(["GB", "FR", "US"]),
            "amount": st.integers(0, 10**7),
            "gap": st.floats(0, 7200),
            "approved": st.sampled_from([True, False, None]),
            "lat": st.floats(-80, 80),
            "lon": st.floats(-179, 179),
        }
    ),
    max_size=30,
)


def _lines(items: list[dict[str, Any]]) -> list[str]:
    ts, lines = float(T0), []
    for i, item in enumerate(items):
        ts += item["gap"]
        fields = {k: v for k, v in item.items() if k != "gap"}
        lines.append(
            json.dumps({"transaction_id": f"t{i}", "timestamp": ts, "currency": "EUR", **fields})
        )
    return lines


@settings(max_examples=60, deadline=None)
@given(_records)
def test_scores_are_bounded_and_order_is_kept(items: list[dict[str, Any]]) -> None:
    lines = _lines(items)
    out = list(replay(lines, "jsonl"))
    assert [r["transaction_id"] for r in out] == [f"t{i}" for i in range(len(lines))]
    for result in out:
        assert 0 <= result["risk_score"] <= 100
        expected = (
            "block"
            if result["risk_score"] > 80
            else "review"
            if result["risk_score"] > 70
            else "allow"
        )
        assert result["decision"] == expected


@settings(max_examples=40, deadline=None)
@given(_records, _records)
def test_a_prefix_scores_the_same_whatever_follows(
    head: list[dict[str, Any]], tail: list[dict[str, Any]]
) -> None:
    lines = _lines(head + tail)
    alone = list(replay(lines[: len(head)], "jsonl"))
    assert list(replay(lines, "jsonl"))[: len(head)] == alone


def test_feedback_records_reach_the_engine_and_yield_no_line() -> None:
    stolen = {"customer_id": "g1", "card_fingerprint": "k1", "device_id": "rig", "approved": True}
    lines = [
        json.dumps(record(1, T0, **stolen)),
        json.dumps({"transaction_id": "t1", "timestamp": T0 + 86_400, "outcome": "disputed"}),
        json.dumps(
            record(2, T0 + 2 * 86_400, customer_id="g2", card_fingerprint="k2", device_id="rig")
        ),
    ]
    out = list(replay(lines, "jsonl"))
    assert [r["transaction_id"] for r in out] == ["t1", "t2"]
    assert "device_disputed" in out[1]["risk_factors"]
    with pytest.raises(TransactionError, match="outcome"):
        list(replay([json.dumps({"transaction_id": "t1", "timestamp": T0, "outcome": "won"})]))
