"""Every PSP call of the payment use cases goes through here: the same key on every retry,
short retries for answers that allow them, and the PSP's circuit breaker fed with the result.

Timeouts are the transport's (one HTTP client per process); failover is the authorisation's
(`paymesh.service.payments.authorization`), decided by `paymesh.domain.failover`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from paymesh.domain.payment import Payment, PspOutcome
from paymesh.ports.connector import Connector, PspError
from paymesh.service.circuit import CircuitBreakers
from paymesh.service.errors import PspUnavailable, StateConflict

T = TypeVar("T")

#: Retries of one PSP call with the same key, for answers that say nothing was done (429,
#: refused connection) or may have been done (timeout, 5xx): both are safe with the same key.
RETRY_DELAYS = (0.05, 0.2)


def longest_call(timeout_seconds: float, retry_delays: tuple[float, ...] = RETRY_DELAYS) -> float:
    """The longest one `PspCaller.call` can take: every try running to the PSP's timeout."""
    return (len(retry_delays) + 1) * timeout_seconds + sum(retry_delays)


def psp_key(resource_id: str, operation: str, attempt: int = 1) -> str:
    """The PSP idempotency key: the same for every retry of one operation, forever."""
    return f"paymesh:{resource_id}:{operation}:{attempt}"


class PspCaller:
    def __init__(
        self,
        connectors: dict[str, Connector],
        breakers: CircuitBreakers,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
    ) -> None:
        self.connectors = connectors
        self.breakers = breakers
        self.retry_delays = retry_delays

    def connector_for(self, payment: Payment) -> Connector:
        return self.connectors[payment.connector]

    def allows(self, psp: str) -> bool:
        """False while the PSP's circuit is open: a new payment goes elsewhere."""
        return self.breakers.allows(psp)

    async def call(self, psp: str, call: Callable[[], Awaitable[T]]) -> T:
        """`call`, retried while the PSP's answer allows; raises the last PspError, marked
        `outcome_unknown` if any try may have reached the PSP."""
        unknown = False
        for delay in (*self.retry_delays, None):
            try:
                outcome = await call()
            except PspError as exc:
                if exc.retryable:  # the PSP not answering; a 4xx is our mistake, not its
                    self.breakers.failed(exc.psp)
                else:
                    self.breakers.succeeded(exc.psp)
                # Once any try may have reached the PSP, the whole call's outcome is unknown.
                unknown = unknown or exc.outcome_unknown
                exc.outcome_unknown = unknown
                if not exc.retryable or delay is None:
                    raise
                # A failure that opened the circuit (or found it opened meanwhile, by another
                # call or process): the PSP is down, not blinking. Trying again would spend
                # the retries on it that a failover could give another PSP (a capture or
                # refund tells its client to retry later, as after the last try).
                if self.breakers.state(exc.psp) == "open":
                    raise
                await asyncio.sleep(delay)
            else:
                self.breakers.succeeded(psp)
                return outcome
        raise AssertionError("unreachable")

    async def answer_or_error(
        self, psp: str, call: Callable[[], Awaitable[PspOutcome]]
    ) -> PspOutcome:
        """For a request a client waits on: the PSP's answer, or the error the client gets
        (409 when the PSP refused, 503 when it did not answer: retrying is safe)."""
        try:
            return await self.call(psp, call)
        except PspError as exc:
            if not exc.retryable:  # the PSP answered no: asking again will not change that
                raise StateConflict(
                    f"{exc.psp} refused the request: {exc.message}", code="psp_refused"
                ) from exc
            raise PspUnavailable(
                f"{exc.psp} did not complete the request: {exc.message}; "
                "retrying with the same idempotency key is safe",
                code="psp_unavailable",
            ) from exc
