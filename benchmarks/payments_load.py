"""Open-loop load test of the paymesh payment API, next to a same-run `/healthz` floor.

Arrivals leave on a fixed schedule (arrival ``i`` is due at ``t0 + i / rate``), each as its
own task, whether or not earlier ones have answered, and latency runs from the *scheduled*
time: a server (or client) that queues cannot hide it.

Each arrival is a flow of the mix (default ``realistic``: successes, declines, 3-D Secure,
manual captures, refunds, replays of idempotency keys) by synthetic customers realistic
enough for the inline fraud scoring, spread over Stripe, Adyen and PayPal by a routing table.
The sandboxes' webhooks flow back, and a rule sends each ``payment.succeeded`` to a receiver
in this process: end-to-end latency, without polling. Per rate it reports API latency
p50/p95/p99/p99.9, end to end, the platform's overhead (latency minus the sandbox's injected
latency), outcomes and errors by type, CPU and RSS, each against ``/healthz`` in the same run.

By default it starts its own ``paymesh serve`` in a temporary data dir; ``--base-url`` and
``--api-key`` point it at a running server (the scale-out mode) instead.

    python benchmarks/payments_load.py --rate 100 --duration 5
    python benchmarks/payments_load.py --sweep 50,100,200 --json out.json --plots out/
    python benchmarks/payments_load.py --mix success --sandbox-process

The code is in ``benchmarks/load/`` (see its ``__init__``).
"""

from __future__ import annotations

import sys

if __package__:  # python -m benchmarks.payments_load
    from .load.cli import main
else:  # python benchmarks/payments_load.py: benchmarks/ is on sys.path
    from load.cli import main

if __name__ == "__main__":
    sys.exit(main())
