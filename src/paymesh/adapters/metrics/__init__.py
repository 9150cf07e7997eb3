"""Prometheus metrics of one paymesh process (prometheus-client, text exposition).

Scale-out: every process (`paymesh serve`, `paymesh worker`) keeps its own registry and is
scraped on its own; Prometheus adds the series of the processes up (`sum by (route)` …).
No multiprocess mode: a paymesh process is one interpreter, never forked workers. The one
helper process that serves no HTTP, an embedded server's deliverer, publishes its counts to
a file its server adds to its own scrape (`beside`).
"""

from paymesh.adapters.metrics.instruments import (
    MeteredConnector,
    MeteredRiskScorer,
    PaymeshMetrics,
    delivery_counter,
    observe_commits,
)

__all__ = [
    "MeteredConnector",
    "MeteredRiskScorer",
    "PaymeshMetrics",
    "delivery_counter",
    "observe_commits",
]
