"""`paymesh fraud drift [--days 14] [--merchant M] [--json]`: the fraud scores per UTC day, and
whether a day's scores moved from the week before (issue 19).

Read from the store as `paymesh keys` and `paymesh reconcile` read it (`--data-dir`,
`--database`); every merchant's payments unless `--merchant`. At most `--limit` payments are
read; a day that does not fit is left out whole, with the days before it, and said so.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from paymesh.entrypoints.cli_keys import Database, DataDir, store_settings, with_store
from paymesh.fraud.drift import BASELINE_DAYS, DRIFT_PSI, DayDrift
from paymesh.service.fraud_drift import DEFAULT_LIMIT, DriftView, drift_view, fraud_drift

__all__ = ["fraud_drift_command", "register"]


def fraud_drift_command(
    days: Annotated[int, typer.Option("--days", min=1, help="UTC days back, today included")] = 14,
    merchant: Annotated[
        str | None, typer.Option("--merchant", help="only this merchant's (default: every one's)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="read at most this many payments")
    ] = DEFAULT_LIMIT,
    data_dir: DataDir = None,
    database: Database = None,
) -> None:
    """Fraud scores per UTC day: count, mean, p50/p90/p99, alerted/review/blocked shares,
    the models that scored them, and the PSI against the 7 days before (a drift above 0.2, and
    above what chance alone reaches at the day's volume)."""
    settings = store_settings(data_dir, database, read_only=True)
    today = datetime.now(UTC).date()

    async def run(store: Any) -> DriftView:
        return await fraud_drift(store, days=days, today=today, merchant=merchant, limit=limit)

    view = with_store(settings, run)
    if as_json:
        import json

        typer.echo(json.dumps(drift_view(view), indent=2))
    else:
        _print_table(view)
    if view.capped:
        typer.echo(
            f"warning: stopped at --limit {view.limit} payments; the days before "
            f"{view.complete_from} are left out",
            err=True,
        )


def _percent(share: float) -> str:
    return f"{share:.1%}"


def _flag(d: DayDrift) -> str:
    if d.drifted:
        return "[bold red]DRIFT[/]"
    if d.psi is not None and d.psi > DRIFT_PSI:
        return "few payments"  # above the rule of thumb, but within what chance gives
    return ""


def _models(models: tuple[tuple[str | None, int], ...]) -> str:
    return ", ".join(f"{m or 'rules'} ({n})" for m, n in models)


def _print_table(view: DriftView) -> None:
    from rich.console import Console
    from rich.table import Table

    whose = f"merchant {view.merchant}" if view.merchant else "every merchant"
    table = Table(title=f"fraud scores per day, {view.first_day} to {view.last_day}, {whose}")
    for column in ("date", "payments", "mean", "p50", "p90", "p99"):
        table.add_column(column, justify="left" if column == "date" else "right")
    for column in ("alerted", "alerted vs week", "review", "blocked", "PSI"):
        table.add_column(column, justify="right")
    table.add_column("drift")
    table.add_column("models")
    for d in view.report.days:
        table.add_row(
            d.day.isoformat(),
            str(d.payments),
            f"{d.mean:.1f}",
            str(d.p50),
            str(d.p90),
            str(d.p99),
            _percent(d.alerted),
            "-" if d.alert_rate_change is None else f"{d.alert_rate_change * 100:+.1f} pts",
            _percent(d.review),
            _percent(d.blocked),
            "-" if d.psi is None else f"{d.psi:.3f}",
            _flag(d),
            _models(d.models),
        )
    console = Console(width=200)
    console.print(table)
    line = f"{view.read} payments read"
    if view.report.unscored:
        line += f", {view.report.unscored} without a fraud assessment left out"
    console.print(
        f"{line}; PSI against the {BASELINE_DAYS} days before; DRIFT: above {DRIFT_PSI} and "
        "above what chance alone reaches at the day's volume"
    )


def register(fraud_app: typer.Typer) -> None:
    """Add `drift` to the `paymesh fraud` commands."""
    fraud_app.command("drift")(fraud_drift_command)
