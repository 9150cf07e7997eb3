"""When a server's event bus is done with a rule, read from its SQLite file.

A test that asserts something did *not* happen (no second delivery, no retry, no
confirmation) first waits for this positive condition: every committed event has been
routed (its deliveries made in the same commit) and none of the rule's deliveries is still
pending, leased or waiting to retry. Past that point the bus has nothing left that could
still do the thing, so the assertion holds for good, not just for the moment a sleep ended.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path


def rule_settled(database: Path, rule: str) -> bool:
    with contextlib.closing(sqlite3.connect(database, timeout=10)) as db:
        (left,) = db.execute(
            "SELECT (SELECT count(*) FROM events WHERE delivered = 0)"
            " + (SELECT count(*) FROM deliveries WHERE status = 'pending' AND rule = ?)",
            (rule,),
        ).fetchone()
    return bool(left == 0)


def wait_rule_settled(database: Path, rule: str, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not rule_settled(database, rule):
        if time.monotonic() > deadline:
            raise AssertionError(f"rule {rule!r} still had deliveries to run after {seconds} s")
        time.sleep(0.02)
