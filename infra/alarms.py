"""The alarms an operator needs: anything in a dead-letter queue, any function error, and
the API's p99 latency."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

#: The API's p99 over five minutes, three periods in a row: a trend, not a spike. One
#: second is well above a payment's normal round trip to a PSP.
API_P99_MS = 1000


class Alarms(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        dead_letters: dict[str, sqs.IQueue],
        functions: dict[str, lambda_.IFunction],
        function_names: dict[str, str],
        api_id: str,
        api_name: str,
    ) -> None:
        super().__init__(scope, id)
        for name, queue in dead_letters.items():
            cloudwatch.Alarm(
                self,
                f"{name}-depth",
                alarm_name=f"{name}-depth",
                alarm_description=f"Messages are waiting in the dead-letter queue {name}",
                metric=queue.metric_approximate_number_of_messages_visible(
                    period=Duration.minutes(1), statistic="Maximum"
                ),
                threshold=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        for key, fn in functions.items():
            name = function_names[key]
            cloudwatch.Alarm(
                self,
                f"{key}-errors",
                alarm_name=f"{name}-errors",
                alarm_description=f"{name} raised (an invocation failed)",
                metric=fn.metric_errors(period=Duration.minutes(1), statistic="Sum"),
                threshold=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        cloudwatch.Alarm(
            self,
            "api-p99",
            alarm_name=f"{api_name}-p99-latency",
            alarm_description=f"The API's p99 latency is above {API_P99_MS} ms",
            metric=cloudwatch.Metric(
                namespace="AWS/ApiGateway",
                metric_name="Latency",
                dimensions_map={"ApiId": api_id},
                statistic="p99",
                period=Duration.minutes(5),
            ),
            threshold=API_P99_MS,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=3,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
