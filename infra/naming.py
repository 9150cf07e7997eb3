"""The physical names of what the stack makes, from its prefix.

Deterministic on purpose: the functions find what they use through these names (the
environment they are given), and the tests against moto map an EventBridge target's ARN
back to its handler through them.
"""

from __future__ import annotations

from dataclasses import dataclass

from paymesh.adapters.dynamodb.tables import TableSpec

#: Stack outputs whose key starts with this are dead-letter queue URLs (one per queue).
QUEUE_OUTPUT_PREFIX = "Queue"


@dataclass(frozen=True, slots=True)
class Names:
    prefix: str

    def table(self, spec: TableSpec) -> str:
        return spec.name(self.prefix)

    def function(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def rule(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def dead_letters(self, rule: str, target_id: str) -> str:
        """The dead-letter queue of one target of one rule (`rule` without the prefix)."""
        return f"{self.prefix}-dlq-{rule}-{target_id}"

    def failed_batches(self, function: str) -> str:
        """Where a stream consumer's batches go when their retries are spent."""
        return f"{self.prefix}-failed-{function}"

    @property
    def bus(self) -> str:
        return f"{self.prefix}-bus"

    @property
    def fraud_stream(self) -> str:
        return f"{self.prefix}-fraud"

    @property
    def confirmations_topic(self) -> str:
        # FIFO (the `.fifo` suffix is SNS's rule for it): see infra.topics.
        return f"{self.prefix}-confirmations.fifo"

    @property
    def fraud_alerts_topic(self) -> str:
        return f"{self.prefix}-fraud-alerts"

    @property
    def review_state_machine(self) -> str:
        return f"{self.prefix}-review"

    @property
    def retry_state_machine(self) -> str:
        return f"{self.prefix}-retry"

    @property
    def api(self) -> str:
        return f"{self.prefix}-api"

    @property
    def key_alias(self) -> str:
        return f"alias/{self.prefix}"
