"""The SNS topics paymesh publishes to: a confirmation per payment outcome, and fraud
alerts. Encrypted with the stack's key; publishers must use TLS.

The confirmations topic is FIFO: the publisher gives each message the event's id as its
deduplication id (`paymesh.adapters.aws.confirmations`), so SNS drops a second publish of
the same outcome (a retried invocation) within its deduplication window.
"""

from __future__ import annotations

from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.naming import Names


class Topics(Construct):
    def __init__(self, scope: Construct, id: str, *, names: Names, key: kms.IKey) -> None:
        super().__init__(scope, id)
        self.confirmations = self._topic("Confirmations", names.confirmations_topic, key, fifo=True)
        self.fraud_alerts = self._topic("FraudAlerts", names.fraud_alerts_topic, key)

    def _topic(self, id: str, name: str, key: kms.IKey, fifo: bool = False) -> sns.Topic:
        return sns.Topic(
            self,
            id,
            topic_name=name,
            master_key=key,
            enforce_ssl=True,
            fifo=fifo or None,
            # Deduplication by the publisher's explicit id (the event's), not by content.
            content_based_deduplication=False if fifo else None,
        )
