"""The paper model multiplies each component's measured CPU per payment by the target rate,
under its own column: a column mix-up would send capacity to the wrong tier."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from benchmarks.scaleout import paper_model


def _render(rows: list[dict[str, Any]]) -> str:
    console = Console(width=250, record=True)
    console.print(paper_model(rows, targets=(1_000,)))
    return console.export_text()


def test_each_component_costs_its_own_cores_at_the_highest_rate_served_in_full() -> None:
    measured = {"api ms": 5.0, "worker ms": 4.0, "sandbox ms": 1.0, "postgres ms": 3.0}
    rows = [
        {"mode": "2 API", "offered/s": 100.0, "achieved/s": 100.0, **measured, "nats ms": 2.0,
         "DB bytes/payment": 10_000},
        {"mode": "2 API", "offered/s": 200.0, "achieved/s": 150.0, "api ms": 99.0,
         "postgres ms": 99.0},  # not served in full: not a cost to build on
        {"mode": "embedded", "offered/s": 100.0, "achieved/s": 100.0, "api ms": 7.0},
    ]  # fmt: skip
    text = _render(rows)
    header = next(line for line in text.splitlines() if "API cores" in line)
    assert [c.strip() for c in header.strip("┃ ").split("┃")] == [
        "from", "payments/s", "API cores", "worker cores", "sandbox cores",
        "PostgreSQL cores", "NATS cores", "all cores", "DB growth/day",
    ]  # fmt: skip
    [row] = [line for line in text.splitlines() if "at 100/s" in line]
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    # 1,000 payments/s x ms per payment / 1,000 = cores; 10 kB x 1,000/s x 86,400 s = 0.86 TB.
    assert cells == [
        "2 API at 100/s",
        "1,000",
        "5.0",
        "4.0",
        "1.0",
        "3.0",
        "2.0",
        "15.0",
        "0.86 TB",
    ]
    assert "embedded" not in text
