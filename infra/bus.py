"""The event bus and its rules: paymesh's default rules with their patterns exactly as
`default_rules.json` has them, the workflow rules, and the recovery schedule (`routing`).

Every target has the rule's retry policy and a dead-letter queue of its own. A Lambda
target is invoked asynchronously: EventBridge's retry policy covers getting the event to
Lambda, and the function's own asynchronous retries (EventInvokeConfig) cover the function
failing; both end in the same dead-letter queue, so one place holds what a target lost.
"""

from __future__ import annotations

from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import routing
from infra.fraud import PARTITION_KEY_PATH
from infra.naming import Names
from infra.queues import dead_letter_queue, send_to
from paymesh.ports.bus import RetryPolicy

#: Lambda's own asynchronous retries stop at two.
LAMBDA_ASYNC_RETRIES = 2


class Rules(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        names: Names,
        key: kms.IKey,
        bus: events.IEventBus,
        functions: dict[str, lambda_.Function],
        roles: dict[str, iam.Role],
        fraud_stream: kinesis.IStream,
        state_machines: dict[str, sfn.IStateMachine],
        topics: dict[str, sns.ITopic],
    ) -> None:
        super().__init__(scope, id)
        self.names = names
        self.key = key
        self.functions = functions
        self.roles = roles
        self.fraud_stream = fraud_stream
        self.state_machines = state_machines
        self.topics = topics
        #: Queue name -> queue, every target's.
        self.dead_letters: dict[str, sqs.Queue] = {}
        #: Rule name (without prefix) -> the rule.
        self.rules: dict[str, events.CfnRule] = {}
        self._invoke_configs: set[str] = set()
        for rule in routing.rules():
            self._rule(rule, bus)
        for schedule in routing.schedules():
            self._schedule(schedule)

    def _rule(self, rule: routing.Rule, bus: events.IEventBus) -> None:
        cfn = events.CfnRule(
            self,
            rule.name,
            name=self.names.rule(rule.name),
            description=rule.description,
            event_bus_name=bus.event_bus_name,
            # Verbatim: what paymesh matches in its other modes is what EventBridge matches.
            event_pattern=rule.pattern,
            state="ENABLED",
        )
        cfn.targets = [self._target(rule.name, cfn, target) for target in rule.targets]
        self.rules[rule.name] = cfn

    def _schedule(self, schedule: routing.Schedule) -> None:
        # Schedules run on the default bus (a custom bus takes no schedule expressions).
        name = f"{schedule.function.replace('_', '-')}-schedule"
        cfn = events.CfnRule(
            self,
            name,
            name=self.names.rule(name),
            description=f"Runs {schedule.function} on its schedule",
            schedule_expression=schedule.expression,
            state="ENABLED",
        )
        target = routing.Target(schedule.function, "function", RetryPolicy(), schedule.function)
        cfn.targets = [self._target(name, cfn, target)]
        self.rules[name] = cfn

    def _target(
        self, rule: str, cfn: events.CfnRule, target: routing.Target
    ) -> events.CfnRule.TargetProperty:
        queue_name = self.names.dead_letters(rule, target.id)
        queue = dead_letter_queue(
            self,
            f"{rule}-{target.id}-dlq",
            name=queue_name,
            key=self.key,
            holds=f"rule {rule}, target {target.id}",
        )
        # EventBridge delivers a dead letter as itself; only this rule may.
        queue.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["sqs:SendMessage"],
                resources=[queue.queue_arn],
                conditions={"ArnEquals": {"aws:SourceArn": cfn.attr_arn}},
            )
        )
        self.dead_letters[queue_name] = queue
        role_arn: str | None = None
        kinesis_parameters: events.CfnRule.KinesisParametersProperty | None = None
        if target.kind == "function":
            arn = self._lambda_target(rule, cfn, target, queue)
        elif target.kind == "kinesis":
            arn = self.fraud_stream.stream_arn
            role_arn = self._target_role(
                rule,
                target,
                iam.PolicyStatement(actions=["kinesis:PutRecord"], resources=[arn]),
            ).role_arn
            kinesis_parameters = events.CfnRule.KinesisParametersProperty(
                partition_key_path=PARTITION_KEY_PATH
            )
        elif target.kind in ("states:retry", "states:review"):
            arn = self.state_machines[target.kind.removeprefix("states:")].state_machine_arn
            role_arn = self._target_role(
                rule,
                target,
                iam.PolicyStatement(actions=["states:StartExecution"], resources=[arn]),
            ).role_arn
        elif target.kind.startswith("sns:"):
            topic = self.topics[target.kind.removeprefix("sns:")]
            arn = topic.topic_arn
            # EventBridge publishes with the topic's resource policy, for this rule only.
            topic.add_to_resource_policy(
                iam.PolicyStatement(
                    principals=[iam.ServicePrincipal("events.amazonaws.com")],
                    actions=["sns:Publish"],
                    resources=[arn],
                    conditions={"ArnEquals": {"aws:SourceArn": cfn.attr_arn}},
                )
            )
        else:
            raise ValueError(f"rule {rule}: unknown target kind {target.kind}")
        return events.CfnRule.TargetProperty(
            id=target.id,
            arn=arn,
            role_arn=role_arn,
            kinesis_parameters=kinesis_parameters,
            retry_policy=events.CfnRule.RetryPolicyProperty(
                maximum_retry_attempts=target.retry.maximum_retry_attempts,
                maximum_event_age_in_seconds=target.retry.maximum_event_age_seconds,
            ),
            dead_letter_config=events.CfnRule.DeadLetterConfigProperty(arn=queue.queue_arn),
        )

    def _lambda_target(
        self, rule: str, cfn: events.CfnRule, target: routing.Target, queue: sqs.Queue
    ) -> str:
        assert target.function is not None
        fn = self.functions[target.function]
        fn.add_permission(
            f"{rule}-{target.id}-invoke",
            principal=iam.ServicePrincipal("events.amazonaws.com"),
            source_arn=cfn.attr_arn,
        )
        # One asynchronous-invocation configuration per function: when several rules target
        # it (send_confirmation: payment-succeeded and customer-confirmation), what fails
        # inside Lambda after its own retries goes to the first rule's queue; what
        # EventBridge cannot deliver still goes to each rule's own.
        if target.function in self._invoke_configs:
            return fn.function_arn
        self._invoke_configs.add(target.function)
        for statement in send_to(queue, self.key):
            self.roles[target.function].add_to_policy(statement)
        config = lambda_.CfnEventInvokeConfig(
            self,
            f"{target.function}-async",
            function_name=fn.function_name,
            qualifier="$LATEST",
            maximum_retry_attempts=min(LAMBDA_ASYNC_RETRIES, target.retry.maximum_retry_attempts),
            maximum_event_age_in_seconds=target.retry.maximum_event_age_seconds,
            destination_config=lambda_.CfnEventInvokeConfig.DestinationConfigProperty(
                on_failure=lambda_.CfnEventInvokeConfig.OnFailureProperty(
                    destination=queue.queue_arn
                )
            ),
        )
        # Lambda checks the role may send to the destination when the config is made.
        config.node.add_dependency(self.roles[target.function])
        return fn.function_arn

    def _target_role(
        self, rule: str, target: routing.Target, *statements: iam.PolicyStatement
    ) -> iam.Role:
        """The role EventBridge assumes to deliver to one service target: that target only."""
        role = iam.Role(
            self,
            f"{rule}-{target.id}-role",
            assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
            description=f"EventBridge delivers rule {rule}'s target {target.id}",
        )
        for statement in statements:
            role.add_to_policy(statement)
        return role
