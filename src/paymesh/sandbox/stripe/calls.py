"""The two phases of every API endpoint, and what the second one may use.

An endpoint is `Endpoint = (Params) -> Execute`. Calling it validates the
parameters (Stripe's 400s; nothing saved, nothing changed); the `Execute` it
returns then runs under the request's idempotency claim with a `Call`, and
whatever it returns or raises is the saved answer. Keeping the phases apart is
what lets the HTTP layer apply Stripe's rule that only executed requests are
replayed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from paymesh.sandbox.stripe.accounts import Account, Accounts
from paymesh.sandbox.stripe.events import EventPublisher
from paymesh.sandbox.stripe.objects import EventRequest
from paymesh.sandbox.stripe.params import Params

__all__ = ["Call", "Endpoint", "Execute", "now"]


@dataclass(frozen=True, slots=True)
class Call:
    account: Account
    accounts: Accounts
    events: EventPublisher
    request: EventRequest
    sandbox_url: str  # absolute, including any mount prefix: for the 3DS redirect

    def emit(self, event_type: str, obj: Any) -> None:
        self.events.publish(self.account, event_type, obj, self.request)


Execute = Callable[[Call], Any]
Endpoint = Callable[[Params], Execute]


def now() -> int:
    return int(time.time())
