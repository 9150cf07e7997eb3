"""What an endpoint gets (`Call`) and gives back (`Answer`).

An endpoint is `(Call) -> Answer`: it validates, changes state and lists the notifications
its change causes, or raises `AdyenError` having changed nothing. The HTTP layer decides when
the notifications leave (after the answer) and what is saved under an Idempotency-Key.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from paymesh.sandbox.adyen.fields import Body
from paymesh.sandbox.adyen.ledger import Ledger
from paymesh.sandbox.adyen.notifications import Item

__all__ = ["Answer", "Call", "Endpoint"]


@dataclass(frozen=True, slots=True)
class Call:
    body: Body
    path: Mapping[str, str]
    ledger: Ledger
    merchant_accounts: Collection[str]
    manual_capture_default: bool
    sandbox_url: str  # absolute, including any mount prefix: for the 3DS redirect


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Any
    notifications: list[Item] = field(default_factory=list)


Endpoint = Callable[[Call], Answer]
