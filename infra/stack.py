"""`PaymeshStack`: paymesh on AWS (issue 15), composed of one construct per concern.

Parameters (CDK context in `app.py`, keyword arguments here):
  prefix                  every physical name starts with it (`naming.Names`)
  review_timeout_seconds  a manual review not decided in time rejects the payment
  retry_base_seconds      the PSP retry schedule's first wait (then doubling)
"""

from __future__ import annotations

import re
from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.alarms import Alarms
from infra.api import Api
from infra.bus import Rules
from infra.data import Data
from infra.encryption import Encryption
from infra.fraud import FraudStream
from infra.functions import Functions, Services
from infra.naming import QUEUE_OUTPUT_PREFIX, Names
from infra.parameters import (
    DEFAULT_PREFIX,
    DEFAULT_RETRY_BASE_SECONDS,
    DEFAULT_REVIEW_TIMEOUT_SECONDS,
)
from infra.topics import Topics
from infra.workflows import Workflows


class PaymeshStack(Stack):
    def __init__(
        self,
        scope: Construct | None,
        id: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        review_timeout_seconds: int = DEFAULT_REVIEW_TIMEOUT_SECONDS,
        retry_base_seconds: int = DEFAULT_RETRY_BASE_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        names = Names(prefix)
        key = Encryption(self, "Encryption", names=names).key
        data = Data(self, "Data", names=names, key=key)
        bus = events.EventBus(self, "Bus", event_bus_name=names.bus)
        fraud = FraudStream(self, "Fraud", names=names)
        topics = Topics(self, "Topics", names=names, key=key)
        workflows = Workflows(
            self,
            "Workflows",
            names=names,
            bus_arn=bus.event_bus_arn,
            review_timeout_seconds=review_timeout_seconds,
            retry_base_seconds=retry_base_seconds,
        )
        functions = Functions(
            self,
            "Functions",
            names=names,
            services=Services(
                data=data,
                key=key,
                bus=bus,
                fraud_stream=fraud.stream,
                confirmations=topics.confirmations,
                fraud_alerts=topics.fraud_alerts,
                review=workflows.review,
                retry=workflows.retry,
            ),
        )
        api = Api(self, "Api", names=names, functions=functions.functions)
        rules = Rules(
            self,
            "Rules",
            names=names,
            key=key,
            bus=bus,
            functions=functions.functions,
            roles=functions.roles,
            fraud_stream=fraud.stream,
            state_machines={"review": workflows.review, "retry": workflows.retry},
            topics={"fraud-alerts": topics.fraud_alerts},
        )
        dead_letters: dict[str, sqs.IQueue] = {
            **rules.dead_letters,
            names.dead_letters("merchant", "rules"): functions.merchant_dead_letters,
            **{
                names.failed_batches(name): queue
                for name, queue in functions.failed_batches.items()
            },
        }
        Alarms(
            self,
            "Alarms",
            dead_letters=dead_letters,
            functions=dict(functions.functions),
            function_names={name: names.function(name) for name in functions.functions},
            api_id=api.http.api_id,
            api_name=names.api,
        )

        outputs = {
            "TablePrefix": prefix,
            "BusName": bus.event_bus_name,
            "FraudStreamName": fraud.stream.stream_name,
            "ConfirmationsTopicArn": topics.confirmations.topic_arn,
            "FraudAlertsTopicArn": topics.fraud_alerts.topic_arn,
            "ReviewStateMachineArn": workflows.review.state_machine_arn,
            "RetryStateMachineArn": workflows.retry.state_machine_arn,
            "ApiEndpoint": api.endpoint,
        }
        for key_name, value in outputs.items():
            CfnOutput(self, key_name, value=value)
        for queue_name, queue in dead_letters.items():
            CfnOutput(
                self,
                QUEUE_OUTPUT_PREFIX + _camel(queue_name.removeprefix(f"{prefix}-")),
                value=queue.queue_url,
                description=queue_name,
            )


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name))
