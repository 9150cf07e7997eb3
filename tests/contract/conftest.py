"""Fixtures every connector's contract module shares: each module defines `sandbox_url`
(its sandbox, sending webhooks to `inbox`), `connector` and `unreachable`."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.support.webhook_inbox import WebhookInbox, webhook_inbox

CLEAN_FAULTS: dict[str, object] = {
    "error_rate": 0.0,
    "rate_limit_rate": 0.0,
    "timeout_rate": 0.0,
    "latency_ms": 0,
}


@pytest.fixture(scope="module")
def inbox() -> Iterator[WebhookInbox]:
    with webhook_inbox() as box:
        yield box


@pytest.fixture
def set_faults(sandbox_url: str) -> Iterator[Callable[[dict[str, object]], None]]:
    def apply(config: dict[str, object]) -> None:
        assert httpx.put(f"{sandbox_url}/_config", json=config).status_code == 200

    yield apply
    apply(CLEAN_FAULTS)
