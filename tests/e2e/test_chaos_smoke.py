"""`benchmarks/chaos.py`, small: it starts its processes, kills `paymesh serve` with SIGKILL
under load, audits, and finds nothing wrong.

Small means quick, so the clients are impatient (10 s): a request cut by a kill holds its
idempotency key for the 60 s lease, and this run does not wait for it. Orders left that way
by a client that gave up are not acknowledged, so they prove nothing either way, except for
captures and refunds: a capture or refund cut by a kill is settled only by the client's own
retry, which needs the patience of the full run. Those kinds are left to `make chaos`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "chaos.py"


@pytest.mark.timeout(180)
def test_chaos_survives_three_kills_with_no_breach(tmp_path: Path) -> None:
    report = tmp_path / "chaos.json"
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--duration",
            "8",
            "--rate",
            "10",
            "--kills",
            "3",
            "--flows",
            "pay,pay_on_psp,decline,replay",
            "--patience",
            "10",
            "--drain-timeout",
            "15",
            "--seed",
            "7",
            "--json",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    result = json.loads(report.read_text())
    assert result["kills"] == 3
    assert all(r["serving_s"] is not None for r in result["restarts"])
    assert result["breaches"] == 0 and result["ok"] is True
    checks = {c["name"]: c for c in result["checks"] if c["kind"] == "invariant"}
    assert all(c["breaches"] == 0 for c in checks.values())
    assert checks["every acknowledged payment exists (id, amount, no step back)"]["checked"] > 50
    assert result["recovery"]["settled"] is True
