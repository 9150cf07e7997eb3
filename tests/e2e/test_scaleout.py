"""Scale-out end to end: 2 API processes and 2 workers on PostgreSQL + NATS JetStream (both
started by the run), twins of a tenth of the payments sent at once to the other API process,
one worker SIGKILLed halfway. `make scaleout` runs the same audit with 5,000 payments."""

from __future__ import annotations

import argparse
import asyncio

from benchmarks import scaleout


def test_two_apis_and_two_workers_charge_once_and_confirm_once_with_a_worker_killed() -> None:
    args = argparse.Namespace(
        payments=300,
        rate=40.0,
        apis=2,
        workers=2,
        duplicates=0.1,
        kill_worker=True,
        ack_wait=3.0,
        settle_timeout=120.0,
        seed=7,
        json=None,
    )
    assert asyncio.run(scaleout.run_audit(args)) == 0
