"""Where a PSP's settlement reports come from, parsed into `SettlementReport`s.

- a sandbox (or any service serving the same route): `GET {base}/_reports/settlement?date=D`,
  where `base` is the PSP's API base the connector uses (`PAYMESH_{PSP}_API_BASE`, or the
  built-in sandbox's); a day not over yet has no report out;
- a file downloaded from the PSP in its documented format (`paymesh reconcile --report`).

A real PSP's reporting API (Stripe's report runs, Adyen's report download, PayPal's SFTP) is not
read yet: in live mode, reports come as files.
"""

from __future__ import annotations

import asyncio
import importlib
import ssl
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path

import httpx

from paymesh.connectors.adyen.settlement import parse_report as parse_adyen
from paymesh.connectors.paypal.settlement import parse_report as parse_paypal
from paymesh.connectors.stripe.settlement import parse_report as parse_stripe
from paymesh.domain.settlement import SettlementReport

__all__ = ["PARSERS", "ReportSource", "file_source", "sandbox_source"]

PARSERS: dict[str, Callable[[str, date], SettlementReport]] = {
    "stripe": parse_stripe,
    "adyen": parse_adyen,
    "paypal": parse_paypal,
}

ReportSource = Callable[[date], Awaitable[SettlementReport | None]]

_tls: ssl.SSLContext | None = None


async def tls_context() -> ssl.SSLContext:
    """The TLS context of every report fetch in this process, made once and off the event
    loop. httpx made one per client, and making one reads the CA bundle: 25-90 ms of the
    loop held each time on the 2-core machine, six to nine times a pass, while the server
    answered payments (issue 18's loop-stall hunt; `LoopWatch` now reports such stalls)."""
    global _tls
    if _tls is None:
        _tls = await asyncio.to_thread(_first_fetch_ready)
    return _tls


def _first_fetch_ready() -> ssl.SSLContext:
    # What httpx imports at its first request (httpcore, h11, anyio's asyncio backend) is
    # imported here too, in the worker thread: on the loop it held it for 50 ms more.
    for module in ("httpcore", "h11", "anyio._backends._asyncio"):
        importlib.import_module(module)
    return httpx.create_ssl_context()


def sandbox_source(base: str, psp: str) -> ReportSource:
    """Reports served beside the PSP's API at `base`; none for a day still to come (the
    day in progress has the report of what settled so far)."""

    async def fetch(day: date) -> SettlementReport | None:
        if day > datetime.now(UTC).date():
            return None
        async with httpx.AsyncClient(timeout=30, verify=await tls_context()) as client:
            answer = await client.get(
                f"{base.rstrip('/')}/_reports/settlement", params={"date": day.isoformat()}
            )
        answer.raise_for_status()
        # A day's report is parsed in a worker thread: the loop gets the interpreter back
        # every switch interval (5 ms) instead of waiting for a whole day's lines.
        return await asyncio.to_thread(PARSERS[psp], answer.text, day)

    return fetch


def file_source(path: Path, psp: str, wanted: date) -> ReportSource:
    """The report of `wanted` from a file; no other day's."""
    text = path.read_text(encoding="utf-8")

    async def read(day: date) -> SettlementReport | None:
        return PARSERS[psp](text, day) if day == wanted else None

    return read
