"""`paymesh reconcile --psp P --date D`: a PSP's settlement report for a day against the ledger.

The report comes from the running sandbox (`--sandbox URL`, default `PAYMESH_{PSP}_API_BASE`,
the same base the connector uses: `GET {URL}/_reports/settlement?date=D`), or from a file
downloaded from the PSP in its documented format (`--report FILE`). The ledger is read from
the store, as `paymesh keys` and `paymesh dlq` read it (`--data-dir`, `--database`).

Prints a table of exceptions (each one's type, payment, amounts) and the reconciliation rate,
or `--json`. Exits 1 when an exception is left open, so a cron job can alert on it.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from paymesh.connectors.settlement_reports import PARSERS, file_source, sandbox_source
from paymesh.domain.money import to_major
from paymesh.domain.reconciliation import Reconciliation
from paymesh.domain.settlement import MalformedReport
from paymesh.entrypoints.cli_keys import Database, DataDir, store_settings, with_store

__all__ = ["reconcile_command"]


def reconcile_command(
    psp: Annotated[str, typer.Option("--psp", help="stripe, adyen or paypal")],
    day: Annotated[str, typer.Option("--date", help="the UTC day, YYYY-MM-DD")],
    report: Annotated[
        Path | None, typer.Option("--report", help="a report file in the PSP's format")
    ] = None,
    sandbox: Annotated[
        str | None,
        typer.Option("--sandbox", help="the PSP sandbox's URL (env PAYMESH_{PSP}_API_BASE)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    data_dir: DataDir = None,
    database: Database = None,
) -> None:
    """Match a PSP's settlement report for a day to the ledger; list the exceptions."""
    from paymesh.service.reconciliation import MissingReport, reconcile_day, reconciliation_view

    if psp not in PARSERS:
        _fail(f"--psp must be one of {', '.join(PARSERS)}")
    try:
        wanted = date.fromisoformat(day)
    except ValueError:
        _fail("--date must be a day, YYYY-MM-DD")
    if report is not None:
        if not report.is_file():
            _fail(f"no report file at {report}")
        source = file_source(report, psp, wanted)
    else:
        base = sandbox or os.environ.get(f"PAYMESH_{psp.upper()}_API_BASE")
        if not base:
            _fail(f"give --report FILE, or --sandbox URL (or PAYMESH_{psp.upper()}_API_BASE)")
        source = sandbox_source(base, psp)
    settings = store_settings(data_dir, database, read_only=True)

    async def run(store: Any) -> Reconciliation:
        return await reconcile_day(store, psp, wanted, source)

    try:
        result = with_store(settings, run)
    except MissingReport as exc:
        _fail(str(exc))
    except MalformedReport as exc:
        _fail(f"the {psp} report is malformed: {exc}")
    except OSError as exc:  # httpx's connection errors are OSErrors underneath
        _fail(f"cannot read the report: {exc}")
    if as_json:
        typer.echo(json.dumps(reconciliation_view(result), indent=2, default=str))
    else:
        _print_table(result)
    raise typer.Exit(1 if result.open else 0)


def _money(amount: int | None, currency: str) -> str:
    if amount is None:
        return "-"
    try:
        return f"{to_major(amount, currency)} {currency.upper()}"
    except KeyError:
        return f"{amount} {currency}"


def _print_table(result: Reconciliation) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=200)
    table = Table(title=f"{result.psp} settlement {result.day}: exceptions")
    for column in ("type", "status", "payment", "psp reference", "kind", "expected", "actual"):
        table.add_column(column)
    table.add_column("detail")
    for e in result.exceptions:
        table.add_row(
            str(e.type),
            "resolved" if e.resolved else "open",
            e.payment_id or "-",
            e.psp_reference or "-",
            str(e.kind),
            _money(e.expected, e.currency),
            _money(e.actual, e.currency),
            e.detail,
        )
    console.print(table)
    console.print(
        f"{result.lines} report lines, {result.transactions} ledger transactions: "
        f"{result.reconciled}/{result.items} reconciled ({result.rate:.2%}), "
        f"{len(result.resolved)} resolved, {len(result.open)} open"
    )


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)
