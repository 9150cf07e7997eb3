"""`make profile` files each sample under the part of paymesh that started the work: a
misfiled frame would move a payment's CPU from one row of its report to another."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.load.stats import PhaseStats
from benchmarks.profile_payments import (
    BUS,
    HTTP,
    PAYMENTS,
    WEBHOOKS,
    WRITER,
    category_ms,
    classify_loop,
    plot_categories,
)

LOOP = ("run (asyncio/runners.py:118)", "_run_once (asyncio/base_events.py:1922)")
HTTP_IN = (
    "run_asgi (uvicorn/protocols/http/httptools_impl.py:401)",
    "app (starlette/routing.py:73)",
    "create_payment (paymesh/entrypoints/http/payments_api.py:88)",
)


def test_a_payment_created_through_the_api_is_the_payment_services() -> None:
    # The use cases are a package (service/payments/); a pattern for the old module
    # payments.py filed these under the HTTP server.
    stack = (
        *LOOP,
        *HTTP_IN,
        "create (paymesh/service/payments/service.py:70)",
        "handle (paymesh/service/payments/create.py:112)",
        "drive (paymesh/service/payments/authorization.py:88)",
        "post (aiohttp/client.py:500)",
    )
    assert classify_loop(stack) == (PAYMENTS, True)


def test_the_outermost_service_frame_decides_and_plumbing_comes_last() -> None:
    delivery_that_drives = (
        *LOOP,
        "_attempt (paymesh/service/bus.py:400)",
        "handle (paymesh/service/handlers.py:64)",
        "drive (paymesh/service/payments/authorization.py:88)",
    )
    assert classify_loop(delivery_that_drives) == (BUS, True)
    webhook = (*LOOP, *HTTP_IN[:2], "receive (paymesh/service/webhooks.py:120)")
    assert classify_loop(webhook) == (WEBHOOKS, True)
    assert classify_loop((*LOOP, *HTTP_IN)) == (HTTP, True)
    # Read without the loop's entry: the category, but not rooted (shared out later).
    assert classify_loop(("handle (paymesh/service/payments/create.py:112)",)) == (
        PAYMENTS,
        False,
    )


def run_doc(ms: dict[str, tuple[float | None, float | None]]) -> dict[str, Any]:
    return {
        "categories": {k: {"ms": v[0], "ms_by_thread_cpu": v[1]} for k, v in ms.items()},
        "figures": {"payments_per_s": 171.6},
    }


def test_the_plot_weighs_by_thread_cpu_where_the_run_had_it(tmp_path: Path) -> None:
    after = run_doc({WRITER: (0.9, 1.73), BUS: (1.16, None)})
    ms = category_ms(after)
    assert ms[WRITER] == 1.73
    assert ms[BUS] == 1.16
    assert ms[PAYMENTS] == 0.0  # absent from the run: no bar, not an error
    before = run_doc({BUS: (2.0, 2.5)})
    path = plot_categories(tmp_path / "cpu.png", after, before)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_throughput_counts_what_finished_when_it_finished() -> None:
    stats = PhaseStats(name="payments", target_rate=10, duration=3, t0=100.0)
    for done in (100.2, 100.7, 101.1, 103.4):
        stats.answered("create", done - 0.05, done, done - 0.05)
    stats.answered("capture", 100.5, 100.6, 100.1)  # a follow-up: not a create
    stats.recorded("success", 0.1, 2.0)  # due 0.1 s in, confirmed at 2.1 s
    rows = stats.throughput(1.0)
    assert [(r["t"], r["answered_per_s"], r["confirmed_per_s"]) for r in rows] == [
        (0.0, 2.0, 0.0),
        (1.0, 1.0, 0.0),
        (2.0, 0.0, 1.0),
        (3.0, 1.0, 0.0),
    ]
