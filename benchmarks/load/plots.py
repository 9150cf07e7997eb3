"""PNG plots (matplotlib, Agg backend: no display needed):

- `latency_vs_load.png`: API latency percentiles, end-to-end and overhead against the
  offered rate, with the `/healthz` floor; beside it, achieved payments/s and server CPU;
- `latency_over_time.png`: one panel per rate, p50/p99 per time bucket of the payments
  phase, the healthz phase's p99 as the floor, confirmations' p99, and server CPU;
- `throughput_over_time.png`: one panel per rate, creates answered and confirmations
  recorded per second as they happened, against the offered rate.

matplotlib is imported here only, so the generator runs without it unless `--plots`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .bench import RateResult

LATENCY_KEYS = (("p50", "-o"), ("p95", "-s"), ("p99", "-^"), ("p99.9", "-v"))


def write_plots(
    directory: Path, results: Sequence[RateResult], bucket: float, title: str
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    paths = [
        _latency_vs_load(plt, directory / "latency_vs_load.png", results, title),
        _latency_over_time(plt, directory / "latency_over_time.png", results, bucket, title),
        _throughput_over_time(plt, directory / "throughput_over_time.png", results, bucket, title),
    ]
    plt.close("all")
    return paths


def _latency_vs_load(plt: Any, path: Path, results: Sequence[RateResult], title: str) -> Path:
    rates = [r.rate for r in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2), width_ratios=(3, 2))
    api = [r.payments.api_ms() for r in results]
    for key, style in LATENCY_KEYS:
        left.plot(rates, [a[key] for a in api], style, label=f"API {key}")
    e2e = [r.payments.e2e_ms() for r in results]
    for key in ("p50", "p99"):
        left.plot(rates, [e[key] for e in e2e], "--", marker="x", label=f"end to end {key}")
    delivered = [r.payments.delivered_ms() for r in results]
    if any(d["count"] for d in delivered):
        left.plot(
            rates,
            [d["p99"] for d in delivered],
            "-.",
            marker="+",
            label="payment.succeeded delivered p99",
        )
    if results and results[0].payments.injected_ms is not None:
        over = [r.payments.overhead_ms() for r in results]
        injected = results[0].payments.injected_ms
        left.plot(
            rates,
            [o["p99"] for o in over],
            ":",
            marker=".",
            label=f"overhead p99 (create - {injected:g} ms PSP)",
        )
    floor = [r.healthz.api_ms() for r in results]
    for key, style in (("p50", "-"), ("p99", "--")):
        left.plot(
            rates,
            [f[key] for f in floor],
            style,
            color="grey",
            alpha=0.7,
            label=f"/healthz {key} (floor)",
        )
    left.set_yscale("log")
    left.set_xlabel("offered arrivals/s")
    left.set_ylabel("ms, from the scheduled send time (log)")
    left.set_title("Latency against load")
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8, loc="upper left")

    offered = [r.payments.offered_payments_rate for r in results]
    right.plot(rates, offered, ":", color="grey", label="offered payments/s")
    right.plot(rates, [r.payments.payments_rate for r in results], "-o", label="payments/s")
    right.plot(
        rates,
        [r.payments.succeeded / r.payments.elapsed if r.payments.elapsed else 0 for r in results],
        "-s",
        label="succeeded/s",
    )
    right.set_xlabel("offered arrivals/s")
    right.set_ylabel("per second")
    right.set_title("Throughput and CPU")
    right.grid(True, alpha=0.3)
    cpu = right.twinx()
    for tree, style in (("server", "-^"), ("sandbox", "-v")):
        usage = [getattr(r.payments, tree) for r in results]
        if all(u is not None for u in usage):
            cpu.plot(
                rates,
                [100 * u.cpu_s / r.payments.elapsed for u, r in zip(usage, results, strict=True)],
                style,
                color="tab:red" if tree == "server" else "tab:purple",
                alpha=0.6,
                label=f"{tree} CPU %",
            )
    cpu.set_ylabel("CPU % of one core")
    lines, labels = right.get_legend_handles_labels()
    more, more_labels = cpu.get_legend_handles_labels()
    right.legend(lines + more, labels + more_labels, fontsize=8, loc="upper left")
    fig.suptitle(_wrap(title), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _latency_over_time(
    plt: Any, path: Path, results: Sequence[RateResult], bucket: float, title: str
) -> Path:
    legend: tuple[list[Any], list[str]] = ([], [])
    fig, axes, height = _panels(plt, results, 2.6)
    for ax, result in zip(axes[:, 0], results, strict=True):
        timeline = result.payments.timeline(bucket)
        t = [row["t"] for row in timeline]
        ax.plot(t, [row["p50_ms"] for row in timeline], "-", label="API p50")
        ax.plot(t, [row["p99_ms"] for row in timeline], "-", label="API p99")
        ax.plot(t, [row["e2e_p50_ms"] for row in timeline], "--", label="end to end p50")
        ax.plot(t, [row["e2e_p99_ms"] for row in timeline], "--", label="end to end p99")
        floor = result.healthz.timeline(bucket)
        ax.plot(
            [row["t"] for row in floor],
            [row["p99_ms"] for row in floor],
            "-",
            color="grey",
            alpha=0.6,
            label="/healthz p99 (its own phase)",
        )
        ax.set_yscale("log")
        ax.set_ylabel("ms (log)")
        ax.grid(True, which="both", alpha=0.3)
        _rate_title(ax, result)
        samples = [s for s in result.payments.samples if s.get("server_cpu_pct") is not None]
        lines, labels = ax.get_legend_handles_labels()
        if samples:
            cpu = ax.twinx()
            cpu.plot(
                [s["t"] for s in samples],
                [s["server_cpu_pct"] for s in samples],
                ":",
                color="tab:red",
                alpha=0.6,
                label="server CPU % (right axis)",
            )
            cpu.set_ylabel("CPU %")
            cpu.set_ylim(bottom=0)
            more, more_labels = cpu.get_legend_handles_labels()
            lines, labels = lines + more, labels + more_labels
        legend = (lines, labels)
    axes[-1, 0].set_xlabel(
        "seconds since the phase's first scheduled arrival (each request under its arrival's "
        "due time)"
    )
    fig.suptitle(_wrap(f"Latency over time, per rate. {title}"), fontsize=8)
    fig.tight_layout(rect=(0, 0.45 / height, 1, 1))  # room for the legend below
    fig.legend(*legend, fontsize=8, loc="lower center", ncol=len(legend[1]), frameon=False)
    fig.savefig(path, dpi=110)
    return path


def _throughput_over_time(
    plt: Any, path: Path, results: Sequence[RateResult], bucket: float, title: str
) -> Path:
    fig, axes, height = _panels(plt, results, 2.3)
    for ax, result in zip(axes[:, 0], results, strict=True):
        series = result.payments.throughput(bucket)
        t = [row["t"] for row in series]
        ax.plot(t, [row["answered_per_s"] for row in series], "-", label="creates answered/s")
        ax.plot(
            t, [row["confirmed_per_s"] for row in series], "--", label="confirmations recorded/s"
        )
        ax.axhline(result.rate, color="grey", alpha=0.6, label="offered/s")
        ax.set_ylim(bottom=0)
        ax.set_ylabel("per s")
        ax.grid(True, alpha=0.3)
        _rate_title(ax, result)
    axes[-1, 0].set_xlabel(
        f"seconds since the phase's first scheduled arrival ({bucket:g} s buckets, by when "
        "each answer or confirmation came, so a backlog shows as a tail past the phase)"
    )
    lines, labels = axes[0, 0].get_legend_handles_labels()
    fig.suptitle(_wrap(f"Throughput over time, per rate. {title}"), fontsize=8)
    fig.tight_layout(rect=(0, 0.45 / height, 1, 1))
    fig.legend(lines, labels, fontsize=8, loc="lower center", ncol=len(labels), frameon=False)
    fig.savefig(path, dpi=110)
    return path


def _panels(plt: Any, results: Sequence[RateResult], row_height: float) -> tuple[Any, Any, float]:
    """One panel per rate, stacked, sharing the time axis; the figure's height too."""
    height = row_height * max(1, len(results)) + 1.0
    fig, axes = plt.subplots(
        max(1, len(results)), 1, figsize=(12, height), sharex=True, squeeze=False
    )
    return fig, axes, height


def _rate_title(ax: Any, result: RateResult) -> None:
    ax.set_title(
        f"offered {result.rate:g}/s: {result.payments.payments_rate:.0f} payments/s",
        fontsize=9,
        loc="left",
    )


def _wrap(text: str) -> str:
    return textwrap.fill(text, 170)
