"""The memory soak's verdict: growth is judged after the warm-up, at its peak, and the data
dir is charged per payment from the same baseline."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.memory_soak import data_files, sample_marks
from benchmarks.memory_soak_report import (
    Sample,
    baseline_index,
    summarise,
    table_rows,
    verdict_lines,
)

MIB = 2**20


def sample(payments: int, rss: float, data_mib: float = 0.0) -> Sample:
    return Sample(payments, payments / 100, rss, round(data_mib * MIB), payments * 0.01)


def test_growth_during_the_warm_up_is_not_counted() -> None:
    samples = [sample(0, 50), sample(1000, 90), sample(2000, 100), sample(3000, 104)]

    summary = summarise(samples, warmup=2000, projected_payments=3000)

    assert summary.baseline.payments == 2000
    assert summary.peak_growth_pct == pytest.approx(4.0)
    assert summary.within_target() is True


def test_a_peak_over_the_target_fails_even_when_the_last_sample_is_back_down() -> None:
    samples = [sample(0, 100), sample(1000, 100), sample(2000, 115), sample(3000, 101)]

    summary = summarise(samples, warmup=1000, projected_payments=3000)

    assert summary.peak_growth_pct == pytest.approx(15.0)
    assert summary.final_growth_pct == pytest.approx(1.0)
    assert summary.within_target() is False
    assert "NOT met" in verdict_lines(summary)[0]


def test_the_baseline_is_the_first_sample_past_the_warm_up() -> None:
    samples = [sample(0, 1), sample(900, 1), sample(1100, 1), sample(2000, 1)]

    assert baseline_index(samples, 1000) == 2
    assert baseline_index(samples, 5000) == 3  # never reached: the last one


def test_data_dir_growth_is_per_payment_from_the_baseline() -> None:
    samples = [sample(0, 100, 0), sample(1000, 100, 20), sample(3000, 100, 40)]

    summary = summarise(samples, warmup=1000, projected_payments=3000)

    assert summary.bytes_per_payment == pytest.approx(20 * MIB / 2000)
    assert summary.bytes_per_payment_all == pytest.approx(40 * MIB / 3000)
    assert f"data dir growth: {20 * MIB / 2000:,.0f} bytes/payment" in verdict_lines(summary)[1]


def test_a_steady_slope_is_carried_on_to_the_full_run() -> None:
    # 1 MiB per 1,000 payments from a 100 MiB baseline at 1,000 payments.
    samples = [sample(n, 100 + (n - 1000) / 1000) for n in (0, 1000, 2000, 3000, 4000)]

    summary = summarise(samples, warmup=1000, projected_payments=101_000)

    assert summary.kib_per_1000_payments == pytest.approx(1024)
    assert summary.projected_growth_pct == pytest.approx(100.0)
    assert summary.within_target() is True  # measured: 3 %; only the projection is over


def test_a_run_that_ends_at_its_warm_up_has_no_verdict() -> None:
    summary = summarise([sample(0, 80), sample(1000, 90)], warmup=1000, projected_payments=10)

    assert summary.within_target() is None
    assert "no sample after the warm-up" in verdict_lines(summary)[0]


def test_the_table_marks_the_baseline_and_charges_each_interval_its_own_bytes() -> None:
    samples = [sample(0, 80, 0), sample(1000, 90, 10), sample(2000, 99, 12)]

    rows = table_rows(samples, warmup=1000)

    assert [row[4] for row in rows] == ["-", "baseline", "+10.0%"]
    assert rows[2][6] == f"{2 * MIB / 1000:,.0f}"


def test_samples_are_taken_at_the_end_of_the_warm_up_and_at_the_last_payment() -> None:
    assert sample_marks(2500, 1000, 300) == [300, 1000, 2000, 2500]


def test_the_benchmarks_own_files_are_not_counted_as_data(tmp_path: Path) -> None:
    (tmp_path / "paymesh.db").write_bytes(b"x" * 4096)
    (tmp_path / "server.log").write_bytes(b"log" * 1000)
    (tmp_path / "sandbox").mkdir()
    (tmp_path / "sandbox" / "ledger.db").write_bytes(b"y" * 100)

    assert data_files(tmp_path) == {"paymesh.db": 4096}
