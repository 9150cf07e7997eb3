"""What the CSV settlement reports (Stripe's, Adyen's) share: columns found by name, rows of
the kinds paymesh books turned into lines, anything else left out, and a bad row named by
its line number."""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping
from datetime import date

from paymesh.domain.ledger import Move
from paymesh.domain.settlement import MalformedReport, SettlementLine, SettlementReport


def read_csv_report(
    text: str,
    *,
    psp: str,
    day: date,
    needed: tuple[str, ...],
    kind_column: str,
    kinds: Mapping[str, Move],
    line: Callable[[dict[str, str], Move], SettlementLine],
    what: str,
) -> SettlementReport:
    """`what` names the report in the error a file of another shape gets."""
    rows = csv.DictReader(text.lstrip("\ufeff").splitlines())
    missing = [c for c in (*needed, kind_column) if c not in (rows.fieldnames or ())]
    if missing:
        raise MalformedReport(f"not {what}: no column {', '.join(missing)}")
    lines = []
    for number, row in enumerate(rows, start=2):
        kind = kinds.get(row[kind_column])
        if kind is None:
            continue
        try:
            lines.append(line(row, kind))
        except (MalformedReport, ValueError) as exc:
            raise MalformedReport(f"line {number}: {exc}") from exc
    return SettlementReport(psp, day, tuple(lines))
