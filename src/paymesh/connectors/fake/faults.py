"""How the fake PSP fails, and the `PspError` each failure is, as a real connector raises it.

    fault        PspError                               the PSP may have acted
    timeout      code timeout, retryable, unknown       if scripted with acted=True
    5xx          HTTP 500, retryable, unknown           if scripted with acted=True
    429          HTTP 429, retryable                    never
    unreachable  code connection_error, retryable       never
    rejected     HTTP 400, not retryable                never

"Unknown" is what the caller sees; `acted` is the truth only the fake knows: the PSP did the
work (a charge, a refund) and the answer was lost on the way back. That case is the one a
payment platform charges twice on, so tests script it exactly.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

from paymesh.ports.connector import PspError

__all__ = ["FAULTS", "OPERATIONS", "FaultRates", "Faults", "ScriptedFault", "error_for"]

OPERATIONS = frozenset({"authorize", "capture", "cancel", "refund", "retrieve"})
FAULTS = frozenset({"timeout", "5xx", "429", "unreachable", "rejected"})
#: Faults that can hide work done: the request reached the PSP before the answer failed.
_MAY_ACT = frozenset({"timeout", "5xx"})


def error_for(psp: str, fault: str) -> PspError:
    if fault == "timeout":
        return PspError(
            psp, f"no answer from {psp}: timed out", code="timeout", outcome_unknown=True
        )
    if fault == "5xx":
        return PspError(
            psp,
            f"{psp} had an internal error",
            http_status=500,
            code="api_error",
            outcome_unknown=True,
        )
    if fault == "429":
        return PspError(psp, f"{psp}: too many requests", http_status=429, code="rate_limit")
    if fault == "unreachable":
        return PspError(psp, f"cannot reach {psp}: connection refused", code="connection_error")
    if fault == "rejected":
        return PspError(
            psp,
            f"{psp} rejected the request",
            http_status=400,
            code="invalid_request",
            retryable=False,
        )
    raise ValueError(f"unknown fault {fault!r}; one of {sorted(FAULTS)}")


@dataclass(frozen=True, slots=True)
class ScriptedFault:
    fault: str
    acted: bool  # the PSP did the work before the answer failed


@dataclass(frozen=True, slots=True)
class FaultRates:
    """Probabilities per call, as the sandboxes' `_config` names them. A random error answers
    before anything happens (the sandboxes' 5xx rejection); a random timeout holds back the
    answer of work done (the sandboxes' held response)."""

    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    timeout_rate: float = 0.0


class Faults:
    """The next fault for a call: scripted ones first, in order, then the random rates."""

    def __init__(self, seed: int | None) -> None:
        self.rates = FaultRates()
        self._random = random.Random(seed)  # a seed makes the random faults repeatable
        self._scripted: dict[str, deque[ScriptedFault]] = {op: deque() for op in OPERATIONS}

    def script(self, operation: str, fault: str, acted: bool, times: int) -> None:
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; one of {sorted(OPERATIONS)}")
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {sorted(FAULTS)}")
        if acted and fault not in _MAY_ACT:
            # A 429, a refused connection or a 4xx is an answer given before any work.
            raise ValueError(f"a {fault} fault never follows work done")
        self._scripted[operation].extend(ScriptedFault(fault, acted) for _ in range(times))

    def pending(self, operation: str) -> int:
        return len(self._scripted[operation])

    def draw(self, operation: str) -> ScriptedFault | None:
        if self._scripted[operation]:
            return self._scripted[operation].popleft()
        r = self.rates
        # A rate of 0 draws nothing, so a seeded sequence does not depend on unused faults.
        if r.error_rate and self._random.random() < r.error_rate:
            return ScriptedFault("5xx", acted=False)
        if r.rate_limit_rate and self._random.random() < r.rate_limit_rate:
            return ScriptedFault("429", acted=False)
        if r.timeout_rate and self._random.random() < r.timeout_rate:
            return ScriptedFault("timeout", acted=True)
        return None
