"""The Step Functions state machines of `paymesh.adapters.aws.workflows` (manual review,
PSP retry schedule), deployed with their Amazon States Language as that module builds it.

They reach paymesh only by putting events on the bus, so that is all their roles may do
(besides the log delivery and tracing every state machine needs).
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Acknowledgment, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.naming import Names
from paymesh.adapters.aws.workflows import retry_definition, review_definition


class Workflows(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        names: Names,
        bus_arn: str,
        review_timeout_seconds: int,
        retry_base_seconds: int,
    ) -> None:
        super().__init__(scope, id)
        # The definitions name the bus by its name, known before deployment: the ASL
        # deployed is exactly the one the module builds (and the tests run).
        self.review = self._state_machine(
            "Review",
            names.review_state_machine,
            review_definition(names.bus, review_timeout_seconds),
            bus_arn,
        )
        self.retry = self._state_machine(
            "Retry",
            names.retry_state_machine,
            retry_definition(names.bus, retry_base_seconds),
            bus_arn,
        )

    def _state_machine(
        self, id: str, name: str, definition: dict[str, Any], bus_arn: str
    ) -> sfn.StateMachine:
        role = iam.Role(
            self,
            f"{id}Role",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description=f"{name}: puts its events on the paymesh bus",
        )
        role.add_to_policy(iam.PolicyStatement(actions=["events:PutEvents"], resources=[bus_arn]))
        log_group = logs.LogGroup(
            self,
            f"{id}Logs",
            log_group_name=f"/aws/vendedlogs/states/{name}",
            retention=logs.RetentionDays.ONE_YEAR,
        )
        machine = sfn.StateMachine(
            self,
            id,
            state_machine_name=name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(json.dumps(definition)),
            role=role,
            logs=sfn.LogOptions(
                destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
            tracing_enabled=True,
        )
        Validations.of(role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="Only the log delivery and X-Ray actions have Resource *: CloudWatch"
                " Logs' log-delivery actions (CreateLogDelivery, PutResourcePolicy, ...) and"
                " X-Ray's PutTraceSegments, PutTelemetryRecords, GetSamplingRules and"
                " GetSamplingTargets support no resource-level"
                " permissions. The role's one business permission, events:PutEvents, is on"
                " the paymesh bus only.",
            )
        )
        return machine
