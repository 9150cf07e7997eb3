"""The figures of the memory soak (`memory_soak.py`), from its samples alone: no I/O here.

A sample is taken every `--every` payments: the server's RSS and the data dir's size. The
baseline is the first sample at or past the warm-up; what the target judges is growth over
it. A bounded cache still filling (the fraud memory keeps 200,000 transactions, the built-in
sandboxes 100,000 objects per kind) grows RSS like a leak until it is full, so a short run
cannot tell them apart: the slope and its projection to the full run say how far off the
target the growth would be *if* it went on, and the peak says what was measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

MIB = 2**20
TARGET_GROWTH_PCT = 10.0


@dataclass(frozen=True, slots=True)
class Sample:
    payments: int  # succeeded so far
    elapsed_s: float  # since the first payment was due
    rss_mib: float  # the server process tree's resident set
    data_bytes: int  # the data dir, the benchmark's own files left out
    cpu_s: float  # the server's CPU since it started


@dataclass(frozen=True, slots=True)
class Summary:
    baseline: Sample  # the first sample at or past the warm-up
    peak_growth_pct: float | None  # highest RSS after the baseline, over it
    final_growth_pct: float | None
    kib_per_1000_payments: float | None  # least-squares RSS slope after the baseline
    projected_payments: int
    projected_growth_pct: float | None  # the slope carried on to `projected_payments`
    bytes_per_payment: float | None  # data dir, from the baseline to the last sample
    bytes_per_payment_all: float | None  # data dir, from the first sample to the last

    def within_target(self) -> bool | None:
        if self.peak_growth_pct is None:
            return None
        return self.peak_growth_pct <= TARGET_GROWTH_PCT

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "within_target": self.within_target()}


def baseline_index(samples: Sequence[Sample], warmup: int) -> int:
    """The first sample taken once `warmup` payments were done (the last one if none was)."""
    for index, sample in enumerate(samples):
        if sample.payments >= warmup:
            return index
    return len(samples) - 1


def _growth_pct(rss: float, base: float) -> float:
    return 100 * (rss - base) / base


def _slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of y over x; None under two distinct x."""
    if len(points) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def _per_payment(first: Sample, last: Sample) -> float | None:
    done = last.payments - first.payments
    return (last.data_bytes - first.data_bytes) / done if done > 0 else None


def summarise(samples: Sequence[Sample], warmup: int, projected_payments: int) -> Summary:
    if not samples:
        raise ValueError("no samples")
    base_at = baseline_index(samples, warmup)
    base, after = samples[base_at], samples[base_at + 1 :]
    growth = [_growth_pct(s.rss_mib, base.rss_mib) for s in after]
    slope = _slope([(s.payments, s.rss_mib) for s in samples[base_at:]])
    projected = None
    if slope is not None:
        extra_mib = slope * (projected_payments - base.payments)
        projected = _growth_pct(base.rss_mib + extra_mib, base.rss_mib)
    return Summary(
        baseline=base,
        peak_growth_pct=max(growth) if growth else None,
        final_growth_pct=growth[-1] if growth else None,
        kib_per_1000_payments=None if slope is None else slope * 1000 * 1024,
        projected_payments=projected_payments,
        projected_growth_pct=projected,
        bytes_per_payment=_per_payment(base, samples[-1]),
        bytes_per_payment_all=_per_payment(samples[0], samples[-1]),
    )


def table_rows(samples: Sequence[Sample], warmup: int) -> list[tuple[str, ...]]:
    """One row per sample: payments, payments/s and server CPU ms per payment over the
    interval, RSS MiB, RSS against the baseline (blank before it), data dir MiB, data dir
    bytes per payment over the interval."""
    base = samples[baseline_index(samples, warmup)] if samples else None
    rows = []
    for index, sample in enumerate(samples):
        previous = samples[index - 1] if index else None
        rate = cpu_ms = per_payment = "-"
        if previous is not None and sample.payments > previous.payments:
            done = sample.payments - previous.payments
            seconds = sample.elapsed_s - previous.elapsed_s
            rate = f"{done / seconds:.1f}" if seconds > 0 else "-"
            cpu_ms = f"{1000 * (sample.cpu_s - previous.cpu_s) / done:.2f}"
            per_payment = f"{(sample.data_bytes - previous.data_bytes) / done:,.0f}"
        versus = "-"
        if base is not None and sample.payments >= base.payments:
            versus = (
                "baseline"
                if sample is base
                else f"{_growth_pct(sample.rss_mib, base.rss_mib):+.1f}%"
            )
        rows.append(
            (
                f"{sample.payments:,}",
                rate,
                cpu_ms,
                f"{sample.rss_mib:.1f}",
                versus,
                f"{sample.data_bytes / MIB:.1f}",
                per_payment,
            )
        )
    return rows


def verdict_lines(summary: Summary) -> list[str]:
    """The two lines issue 18 asks for, then how the growth would carry on."""
    if summary.peak_growth_pct is None:
        rss = "RSS growth after warm-up: - (no sample after the warm-up; run longer)"
    else:
        verdict = "met" if summary.within_target() else "NOT met"
        rss = (
            f"RSS growth after warm-up: {summary.peak_growth_pct:.1f}% "
            f"(target <= {TARGET_GROWTH_PCT:g}%: {verdict}; "
            f"peak over {summary.baseline.rss_mib:.1f} MiB at "
            f"{summary.baseline.payments:,} payments, last sample "
            f"{summary.final_growth_pct:+.1f}%)"
        )
    per = summary.bytes_per_payment
    data = (
        "data dir growth: - bytes/payment (no sample after the warm-up)"
        if per is None
        else f"data dir growth: {per:,.0f} bytes/payment after warm-up "
        f"({_or_dash(summary.bytes_per_payment_all)} bytes/payment from the start)"
    )
    lines = [rss, data]
    if summary.kib_per_1000_payments is not None and summary.projected_growth_pct is not None:
        lines.append(
            f"RSS slope after warm-up: {summary.kib_per_1000_payments:,.1f} KiB per 1,000 "
            f"payments; carried on linearly to {summary.projected_payments:,} payments: "
            f"{summary.projected_growth_pct:+.1f}% (an upper bound while caches still fill)"
        )
    return lines


def _or_dash(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"
