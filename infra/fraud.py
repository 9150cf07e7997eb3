"""The fraud stream: every payment event, put on Kinesis by the `fraud-stream` rule and
partitioned by customer, so one customer's events reach the scorer in order (its windows
count per customer)."""

from __future__ import annotations

from aws_cdk import aws_kinesis as kinesis
from constructs import Construct

from infra.naming import Names

#: EventBridge's KinesisParameters: the record's partition key, from the event.
PARTITION_KEY_PATH = "$.detail.customer_id"


class FraudStream(Construct):
    def __init__(self, scope: Construct, id: str, *, names: Names) -> None:
        super().__init__(scope, id)
        self.stream = kinesis.Stream(
            self,
            "Stream",
            stream_name=names.fraud_stream,
            # Payment traffic is bursty; on-demand follows it without shard planning.
            stream_mode=kinesis.StreamMode.ON_DEMAND,
            # Encrypted with the AWS-managed Kinesis key rather than the stack's: records
            # live 24 hours, access is decided by IAM on the stream alone, and a
            # customer-managed key here would cost a KMS call per producer and consumer
            # batch (cdk-nag KDS3).
            encryption=kinesis.StreamEncryption.MANAGED,
        )
