"""A second process's counts in this process's `/metrics`: the embedded server's deliverer
process (`PAYMESH_DELIVERER_PROCESS`) serves no HTTP, so its server's scrape carries them.

The deliverer writes its exposition to a file beside the database every `PUBLISH_SECONDS`
(`publish`, replaced whole, never seen half written). The server's scrape reads it and adds
its counters and histograms to its own, series by series (`merged_exposition`): a delivery
attempt, a PSP call or a payment outcome happened in exactly one of the two processes, so
the sum is the server's count, as an operator reads it. What describes a process rather
than the work (its event loop's lag, its collector's pauses) and every gauge (circuits are
per process; the outbox and dead letters are read from the shared database at the scrape)
stay the server's own.

The deliverer's share is up to `PUBLISH_SECONDS` old at a scrape. A deliverer that dies
and is started again counts from zero, and the sum drops: Prometheus takes a drop as a
counter reset, as it does when a whole server restarts.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

#: How often the deliverer writes its counts: a scrape every 15-60 s sees them this fresh.
PUBLISH_SECONDS = 2.0
#: The file beside the database (`DATABASE.deliverer.prom`).
SUFFIX = ".deliverer.prom"
#: Families about the process that measured them, not about the work: never summed.
PER_PROCESS = frozenset({"paymesh_event_loop_lag_seconds", "paymesh_gc_pause_seconds"})
_SUMMED = ("counter", "histogram")

log = logging.getLogger(__name__)


def exposition_file(database: Path) -> Path:
    return database.with_name(database.name + SUFFIX)


def publish(registry: CollectorRegistry, path: Path) -> None:
    """Writes `registry`'s exposition to `path` whole: a reader sees the last file or this."""
    part = path.with_name(path.name + ".part")
    # Readable by the server's user only, as `/metrics` is behind a token.
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(generate_latest(registry))
    os.replace(part, path)


def read_published(path: Path) -> str | None:
    with contextlib.suppress(FileNotFoundError):
        return path.read_text()
    return None


def merged_exposition(registry: CollectorRegistry, beside: str | None) -> bytes:
    """`registry`'s exposition with the counters and histograms of `beside` (another
    process's exposition text, or None) added to it, series by series."""
    if not beside:
        return generate_latest(registry)
    try:
        theirs = {
            family.name: family
            for family in text_string_to_metric_families(beside)
            if family.type in _SUMMED and family.name not in PER_PROCESS
        }
    except ValueError:  # not an exposition (never written so, but a scrape must not fail)
        log.warning("the deliverer's published metrics could not be read; left out")
        return generate_latest(registry)
    merged = CollectorRegistry(auto_describe=False)
    merged.register(_Sum(registry, theirs))
    return generate_latest(merged)


class _Sum(Collector):
    def __init__(self, own: CollectorRegistry, theirs: dict[str, Metric]) -> None:
        self.own = own
        self.theirs = theirs

    def collect(self) -> Iterator[Metric]:
        theirs = dict(self.theirs)
        for family in self.own.collect():
            other = theirs.pop(family.name, None)
            if other is not None and other.type == family.type:
                family.samples = _added(family.samples, other.samples)
            yield family
        yield from theirs.values()


def _added(own: list[Sample], other: Iterable[Sample]) -> list[Sample]:
    """`own` with `other`'s values added where name and labels match, and `other`'s other
    series after them (a series the server has not counted yet), each in its order. A
    counter's `_created` time stays the server's: it is when a series began, not a count."""
    index = {(s.name, _key(s)): i for i, s in enumerate(own)}
    out = list(own)
    for sample in other:
        at = index.get((sample.name, _key(sample)))
        if at is None:
            out.append(sample)
        elif not sample.name.endswith("_created"):
            out[at] = out[at]._replace(value=out[at].value + sample.value)
    return out


def _key(sample: Sample) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(sample.labels.items()))
