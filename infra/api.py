"""The HTTP API (API Gateway v2, payload format 2.0): the routes of the manifest's `http`
triggers, each to its function (the payments API, the PSP webhooks), with access logs."""

from __future__ import annotations

import json

from aws_cdk import Acknowledgment, Validations
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.naming import Names
from paymesh.entrypoints.aws.manifest import FUNCTIONS

#: Stage-wide ceiling, above paymesh's own per-API-key rate limit: it protects the account
#: (Lambda concurrency, the PSPs) from a flood no single key could make.
THROTTLE_RATE = 500
THROTTLE_BURST = 1000

_ACCESS_LOG = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "time": "$context.requestTime",
    "method": "$context.httpMethod",
    "route": "$context.routeKey",
    "status": "$context.status",
    "latencyMs": "$context.responseLatency",
    "integrationLatencyMs": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
}


class Api(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        names: Names,
        functions: dict[str, lambda_.Function],
    ) -> None:
        super().__init__(scope, id)
        self.http = apigw.HttpApi(
            self,
            "Http",
            api_name=names.api,
            description="paymesh: the payments API and the PSP webhooks",
            create_default_stage=False,
        )
        access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            log_group_name=f"/aws/apigateway/{names.api}",
            retention=logs.RetentionDays.ONE_YEAR,
        )
        apigw.CfnStage(
            self,
            "Stage",
            api_id=self.http.api_id,
            stage_name="$default",
            auto_deploy=True,
            access_log_settings=apigw.CfnStage.AccessLogSettingsProperty(
                destination_arn=access_logs.log_group_arn, format=json.dumps(_ACCESS_LOG)
            ),
            default_route_settings=apigw.CfnStage.RouteSettingsProperty(
                throttling_rate_limit=THROTTLE_RATE,
                throttling_burst_limit=THROTTLE_BURST,
                detailed_metrics_enabled=True,
            ),
        )
        self.endpoint = self.http.api_endpoint
        for function in FUNCTIONS:
            routes = [t.detail for t in function.triggers if t.kind == "http"]
            if not routes:
                continue
            integration = integrations.HttpLambdaIntegration(
                f"{function.name}-integration",
                functions[function.name],
                payload_format_version=apigw.PayloadFormatVersion.VERSION_2_0,
            )
            for route in routes:
                method, path = route.split(" ", 1)
                for made in self.http.add_routes(
                    path=path, methods=[apigw.HttpMethod[method]], integration=integration
                ):
                    Validations.of(made).acknowledge(
                        Acknowledgment(
                            id="AwsSolutions-APIG4",
                            reason=f"{route} authenticates in {function.name} itself, as"
                            " `paymesh serve` does: the API by the merchant's API key"
                            " (hashed, per-merchant, rate-limited), a webhook by its PSP's"
                            " signature. An API Gateway authorizer cannot check either, and"
                            " PSPs cannot send AWS credentials or JWTs.",
                        )
                    )
