"""The review workflow port: what else must hear of a manual review's decision.

Embedded and scaled out, nothing: the review lives in the store and that is all. On AWS a
Step Functions execution waits on each review with a task token (it rejects the payment
when no one decides in time) and must be told the decision, or it would time out and try
to reject a payment someone already approved.
"""

from __future__ import annotations

from typing import Protocol


class ReviewWorkflow(Protocol):
    async def decided(self, payment_id: str, decision: str) -> None:
        """The review of `payment_id` was decided (`approved` or `rejected`), and that is
        committed. Must not raise for a workflow that already ended."""
        ...


class NoWorkflow:
    async def decided(self, payment_id: str, decision: str) -> None:
        return None
