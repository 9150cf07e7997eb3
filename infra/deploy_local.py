"""The synthesised template, deployed into moto (the caller has entered a moto mock, e.g.
`tests.support.aws.moto_aws()`): the tests then run against what the stack really makes.

How: moto's own CloudFormation (`create_stack`) creates what it models, after the functions'
code asset is put where the template says (a moto S3 bucket named as the CDK bootstrap's).
What moto's CloudFormation cannot take is handled here, from the same template:

- Resource types it does not model are taken out of the stack and created through their
  service APIs after it, their properties resolved against the stack's own values (Ref and
  GetAtt of stack resources are read back as extra stack outputs, so moto resolves them):
  the HTTP API (`AWS::ApiGatewayV2::Api`, `Integration`, `Route`, `Stage`), the queue and
  topic policies (`SetQueueAttributes`, `SetTopicAttributes`), the alarms
  (`PutMetricAlarm`), the Lambda asynchronous-invocation configs
  (`PutFunctionEventInvokeConfig`), and the Lambda permissions that name the HTTP API
  (`AddPermission`).
- Properties its CloudFormation ignores are applied through the service APIs: the tables'
  TTL and point-in-time recovery, the fraud stream's capacity mode and encryption, the state
  machines' logging and tracing.
- State machines: with executions on (`tests.support.aws.MOTO_CONFIG`), moto serves the
  Step Functions API from another backend than the one its CloudFormation writes to, so
  they are created again through the API, with the template's name, ASL, role, type,
  logging and tracing (same ARN: what refers to them is unchanged).
- A Ref to an event bus is written as the bus's name (what CloudFormation's Ref gives):
  moto's CloudFormation resolves it to its internal object instead.
- A table's `SSESpecification` is also given in the API's spelling (`Enabled` beside
  CloudFormation's `SSEEnabled`): moto's CloudFormation hands it to the API model as is.
- `AWS::Lambda::EventSourceMapping` is not deployed: moto would run the mapped function on
  every table-stream write (in a container, which these tests have not) and drop the
  stream's records it handed over; the tests play Lambda's pollers themselves, reading the
  stream and calling the handler (tests/aws/harness.py). The mappings are listed in
  `Deployment.not_deployed`.

Nothing else is left out: the key and alias, the tables, the bus and its rules with their
targets (RetryPolicy, DeadLetterConfig, KinesisParameters, roles), the queues, the topics,
the stream, the roles and policies, the log groups and the functions are moto's
CloudFormation's own work. Lambda functions exist in moto (configuration, code, permissions,
async configs) but never run: moto cannot
start their containers here, and no deployed trigger invokes them (EventBridge in moto
delivers to SQS and the log targets only).
"""

from __future__ import annotations

import copy
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from infra.naming import QUEUE_OUTPUT_PREFIX
from infra.paths import SOURCE

#: Created through the service APIs, after the stack.
BY_API = (
    "AWS::ApiGatewayV2::Api",
    "AWS::ApiGatewayV2::Integration",
    "AWS::ApiGatewayV2::Route",
    "AWS::ApiGatewayV2::Stage",
    "AWS::Lambda::Permission",  # only those naming a resource created here
    "AWS::SQS::QueuePolicy",
    "AWS::SNS::TopicPolicy",
    "AWS::CloudWatch::Alarm",
    "AWS::Lambda::EventInvokeConfig",
)
NOT_DEPLOYED = {
    "AWS::Lambda::EventSourceMapping": "moto would invoke the function on each stream write"
    " and drop the records it handed over; the tests play Lambda's poller"
}
_PROBE = "DeployLocalValue"
#: Resources the stack creates whose properties are applied again afterwards (resolved).
_RESOLVED_AFTER = ("AWS::StepFunctions::StateMachine", "AWS::Kinesis::Stream")


@dataclass(frozen=True)
class Deployment:
    stack_name: str
    table_prefix: str
    #: Table suffix ("transactions", ...) -> table name.
    tables: dict[str, str]
    bus_name: str
    fraud_stream_name: str
    confirmations_topic_arn: str
    fraud_alerts_topic_arn: str
    review_state_machine_arn: str
    retry_state_machine_arn: str
    api_endpoint: str
    #: Queue name -> URL: every target's dead-letter queue and the stream consumers'
    #: failure queues.
    dead_letter_urls: dict[str, str]
    #: Deployed function name -> its handler's name in paymesh.entrypoints.aws.handlers.
    functions: dict[str, str]
    #: Logical id -> why it is not in moto.
    not_deployed: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)


def deploy(template: dict[str, Any], *, stack_name: str = "paymesh") -> Deployment:
    """Deploy `template` into the moto mock the caller is in."""
    session = boto3.session.Session()
    account = session.client("sts").get_caller_identity()["Account"]
    pseudo = {
        "AWS::AccountId": account,
        "AWS::Region": session.region_name,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackName": stack_name,
        "AWS::NoValue": None,
    }
    plan = _Plan(copy.deepcopy(template))
    _upload_code(session, plan.stack, pseudo)
    cfn = session.client("cloudformation")
    cfn.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(plan.stack),
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
    )
    stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise RuntimeError(f"moto did not create the stack: {stack.get('StackStatusReason')}")
    values = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    resolver = _Resolver(pseudo, {k: values.pop(p) for k, p in plan.probes.items()})
    _apply_ignored_properties(session, plan.stack["Resources"], resolver)
    for logical_id, resource in plan.by_api.items():
        _CREATE[resource["Type"]](session, logical_id, resource, resolver)
    for key, value in plan.outputs.items():
        values[key] = str(resolver.resolve(value))
    return _deployment(stack_name, template, values, plan.not_deployed)


class _Plan:
    """The template split into what moto's CloudFormation creates (`stack`) and what is
    created here (`by_api`, each after what it names)."""

    def __init__(self, template: dict[str, Any]) -> None:
        from moto.cloudformation.parsing import get_model_map

        modelled = set(get_model_map())
        resources: dict[str, Any] = template["Resources"]
        _name_refs(template, "AWS::Events::EventBus", "Name")
        for resource in resources.values():
            sse = resource.get("Properties", {}).get("SSESpecification")
            if resource["Type"] == "AWS::DynamoDB::Table" and sse:
                sse["Enabled"] = sse["SSEEnabled"]
        self.not_deployed: dict[str, str] = {}
        self.by_api: dict[str, Any] = {}
        for logical_id, resource in list(resources.items()):
            kind = resource["Type"]
            if kind in NOT_DEPLOYED:
                self.not_deployed[logical_id] = NOT_DEPLOYED[kind]
                del resources[logical_id]
            elif kind not in modelled:
                if kind not in BY_API:
                    raise NotImplementedError(f"{logical_id}: moto cannot deploy {kind}")
                self.by_api[logical_id] = resources.pop(logical_id)
        # A modelled resource naming one created here (a permission for the HTTP API) is
        # created here too, after it.
        moved = True
        while moved:
            moved = False
            for logical_id, resource in list(resources.items()):
                if _references(resource.get("Properties", {})) & set(self.by_api):
                    if resource["Type"] not in BY_API:
                        raise NotImplementedError(
                            f"{logical_id} ({resource['Type']}) needs a resource moto's"
                            " CloudFormation cannot create"
                        )
                    self.by_api[logical_id] = resources.pop(logical_id)
                    moved = True
        self.by_api = _dependencies_first(self.by_api)
        gone = set(self.by_api) | set(self.not_deployed)
        for resource in resources.values():
            depends = resource.get("DependsOn")
            if isinstance(depends, list):
                resource["DependsOn"] = [d for d in depends if d not in gone]
            elif depends in gone:
                del resource["DependsOn"]
        # Outputs naming a resource created here are resolved here.
        self.outputs: dict[str, Any] = {}
        outputs: dict[str, Any] = template.setdefault("Outputs", {})
        for key, output in list(outputs.items()):
            if _references(output["Value"]) & gone:
                self.outputs[key] = outputs.pop(key)["Value"]
        # Every stack value those need, read back as an output: moto resolves it.
        self.probes: dict[str, str] = {}
        needed = [
            *self.by_api.values(),
            *self.outputs.values(),
            *(r for r in resources.values() if r["Type"] in _RESOLVED_AFTER),
        ]
        for expression in _expressions(needed, set(resources)):
            key = json.dumps(expression, sort_keys=True)
            if key not in self.probes:
                probe = f"{_PROBE}{len(self.probes)}"
                self.probes[key] = probe
                outputs[probe] = {"Value": expression}
        self.stack = template


def _dependencies_first(resources: dict[str, Any]) -> dict[str, Any]:
    ordered: dict[str, Any] = {}

    def visit(logical_id: str, path: tuple[str, ...]) -> None:
        if logical_id in ordered:
            return
        if logical_id in path:
            raise ValueError(f"circular references: {' -> '.join(path)}")
        resource = resources[logical_id]
        depends = resource.get("DependsOn", [])
        named = _references(resource.get("Properties", {})) | set(
            [depends] if isinstance(depends, str) else depends
        )
        for other in sorted(named & set(resources)):
            visit(other, (*path, logical_id))
        ordered[logical_id] = resource

    for logical_id in resources:
        visit(logical_id, ())
    return ordered


def _name_refs(template: dict[str, Any], kind: str, name_property: str) -> None:
    """Replace each Ref to a `kind` resource by its literal name (`name_property`); the
    referrer depends on it explicitly instead."""
    resources: dict[str, Any] = template["Resources"]
    names = {
        logical_id: r["Properties"][name_property]
        for logical_id, r in resources.items()
        if r["Type"] == kind and isinstance(r.get("Properties", {}).get(name_property), str)
    }

    def replace(value: Any) -> Any:
        if isinstance(value, list):
            return [replace(v) for v in value]
        if isinstance(value, dict):
            if len(value) == 1 and value.get("Ref") in names:
                return names[value["Ref"]]
            return {k: replace(v) for k, v in value.items()}
        return value

    for resource in resources.values():
        if "Properties" not in resource:
            continue
        referenced = _references(resource["Properties"]) & set(names)
        if referenced:
            resource["Properties"] = replace(resource["Properties"])
            depends = resource.get("DependsOn", [])
            depends = [depends] if isinstance(depends, str) else depends
            resource["DependsOn"] = sorted({*depends, *referenced})
    for output in template.get("Outputs", {}).values():
        output["Value"] = replace(output["Value"])


class _Resolver:
    """CloudFormation's intrinsic functions, over known values: the pseudo parameters,
    the stack's values (by the JSON of the Ref or GetAtt), and what was created here."""

    def __init__(self, pseudo: dict[str, Any], stack_values: dict[str, str]) -> None:
        self.pseudo = pseudo
        self.stack_values = stack_values
        self.refs: dict[str, str] = {}
        self.attributes: dict[tuple[str, str], str] = {}

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((name, argument),) = value.items()
            if name in ("Ref", "Fn::GetAtt"):
                return self._lookup(value)
            if name == "Fn::Join":
                separator, parts = argument
                return separator.join(str(self.resolve(p)) for p in self.resolve(parts))
            if name == "Fn::Sub":
                return self._sub(argument)
            if name == "Fn::Select":
                index, items = argument
                return self.resolve(items)[int(self.resolve(index))]
            if name == "Fn::Split":
                separator, text = argument
                return str(self.resolve(text)).split(separator)
        return {k: self.resolve(v) for k, v in value.items()}

    def _lookup(self, expression: dict[str, Any]) -> Any:
        if "Ref" in expression:
            name = expression["Ref"]
            if name in self.pseudo:
                return self.pseudo[name]
            if name in self.refs:
                return self.refs[name]
        else:
            target, attribute = _get_att(expression["Fn::GetAtt"])
            if (target, attribute) in self.attributes:
                return self.attributes[(target, attribute)]
        return self.stack_values[json.dumps(expression, sort_keys=True)]

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument

        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name and name not in self.pseudo:
                return str(self._lookup({"Fn::GetAtt": name.split(".", 1)}))
            return str(self._lookup({"Ref": name}))

        return re.sub(r"\$\{([^!}][^}]*)\}", value, text)


def _get_att(argument: Any) -> tuple[str, str]:
    if isinstance(argument, str):
        target, attribute = argument.split(".", 1)
        return target, attribute
    return argument[0], argument[1]


def _references(value: Any) -> set[str]:
    """Logical ids a value names through Ref, GetAtt or Sub."""
    found: set[str] = set()
    for expression in _expressions([value], None):
        if "Ref" in expression:
            found.add(expression["Ref"])
        else:
            found.add(_get_att(expression["Fn::GetAtt"])[0])
    if isinstance(value, dict | list):
        for text in _sub_templates(value):
            found.update(n.split(".", 1)[0] for n in re.findall(r"\$\{([^!}][^}]*)\}", text))
    return found


def _expressions(values: list[Any], among: set[str] | None) -> Iterator[dict[str, Any]]:
    """The Ref and GetAtt expressions in `values` (of resources in `among`, if given)."""
    for value in values:
        if isinstance(value, list):
            yield from _expressions(value, among)
        elif isinstance(value, dict):
            if len(value) == 1 and "Ref" in value:
                if among is None or value["Ref"] in among:
                    yield value
            elif len(value) == 1 and "Fn::GetAtt" in value:
                if among is None or _get_att(value["Fn::GetAtt"])[0] in among:
                    yield value
            else:
                yield from _expressions(list(value.values()), among)


def _sub_templates(value: Any) -> Iterator[str]:
    if isinstance(value, list):
        for item in value:
            yield from _sub_templates(item)
    elif isinstance(value, dict):
        for name, argument in value.items():
            if name == "Fn::Sub":
                yield argument if isinstance(argument, str) else argument[0]
            else:
                yield from _sub_templates(argument)


# -- the functions' code ----------------------------------------------------------------------


def _upload_code(session: Any, template: dict[str, Any], pseudo: dict[str, Any]) -> None:
    """Put the code asset where each function's `Code` says (the CDK bootstrap's bucket
    and the asset's hash as key): paymesh's source, as `cdk deploy` would upload it."""
    resolver = _Resolver(pseudo, {})
    s3 = session.client("s3")
    made: set[str] = set()
    archive: bytes | None = None
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        code = resource["Properties"]["Code"]
        bucket, key = resolver.resolve(code["S3Bucket"]), resolver.resolve(code["S3Key"])
        if bucket not in made:
            s3.create_bucket(Bucket=bucket)
            made.add(bucket)
        archive = archive or _zip(SOURCE)
        s3.put_object(Bucket=bucket, Key=key, Body=archive)


def _zip(root: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted((root / "paymesh").rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(root).as_posix())
    return buffer.getvalue()


# -- properties moto's CloudFormation ignores -------------------------------------------------


def _apply_ignored_properties(session: Any, resources: dict[str, Any], resolver: _Resolver) -> None:
    for resource in resources.values():
        props = resource.get("Properties", {})
        kind = resource["Type"]
        if kind == "AWS::DynamoDB::Table":
            ddb = session.client("dynamodb")
            name = props["TableName"]
            ttl = props.get("TimeToLiveSpecification")
            if ttl:
                ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
            pitr = props.get("PointInTimeRecoverySpecification")
            if pitr:
                ddb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification=pitr)
        elif kind == "AWS::Kinesis::Stream":
            kinesis = session.client("kinesis")
            name = props["Name"]
            arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"][
                "StreamARN"
            ]
            mode = props.get("StreamModeDetails")
            if mode:
                kinesis.update_stream_mode(StreamARN=arn, StreamModeDetails=mode)
            encryption = props.get("StreamEncryption")
            if encryption:
                kinesis.start_stream_encryption(
                    StreamName=name,
                    EncryptionType=encryption["EncryptionType"],
                    KeyId=resolver.resolve(encryption["KeyId"]),
                )
        elif kind == "AWS::StepFunctions::StateMachine":
            _state_machine(session, resolver.resolve(props))


def _state_machine(session: Any, props: dict[str, Any]) -> None:
    """With executions on (`stepfunctions.execute_state_machine`), moto answers the Step
    Functions API from another backend than the one its CloudFormation creates in: there
    the state machine is created again, the same (name, ASL, role, type, logging,
    tracing); elsewhere only the logging and tracing moto's CloudFormation ignores are set."""
    sfn = session.client("stepfunctions")
    account = session.client("sts").get_caller_identity()["Account"]
    arn = f"arn:aws:states:{session.region_name}:{account}:stateMachine:{props['StateMachineName']}"
    settings = {
        "loggingConfiguration": _camel_keys(props.get("LoggingConfiguration", {})),
        "tracingConfiguration": _camel_keys(props.get("TracingConfiguration", {})),
    }
    try:
        sfn.describe_state_machine(stateMachineArn=arn)
    except sfn.exceptions.StateMachineDoesNotExist:
        sfn.create_state_machine(
            name=props["StateMachineName"],
            definition=props["DefinitionString"],
            roleArn=props["RoleArn"],
            type=props.get("StateMachineType", "STANDARD"),
            **settings,
        )
    else:
        sfn.update_state_machine(stateMachineArn=arn, **settings)


def _camel_keys(value: Any) -> Any:
    """CloudFormation's PascalCase property names as the Step Functions API spells them."""
    if isinstance(value, list):
        return [_camel_keys(v) for v in value]
    if isinstance(value, dict):
        return {k[:1].lower() + k[1:]: _camel_keys(v) for k, v in value.items()}
    return value


# -- resources created through their service APIs ---------------------------------------------

_Create = Callable[[Any, str, dict[str, Any], _Resolver], None]


def _http_api(session: Any, logical_id: str, resource: dict[str, Any], r: _Resolver) -> None:
    props = r.resolve(resource["Properties"])
    api = session.client("apigatewayv2").create_api(
        Name=props["Name"],
        ProtocolType=props["ProtocolType"],
        Description=props.get("Description", ""),
    )
    r.refs[logical_id] = api["ApiId"]
    r.attributes[(logical_id, "ApiId")] = api["ApiId"]
    r.attributes[(logical_id, "ApiEndpoint")] = api["ApiEndpoint"]


def _integration(session: Any, logical_id: str, resource: dict[str, Any], r: _Resolver) -> None:
    props = r.resolve(resource["Properties"])
    made = session.client("apigatewayv2").create_integration(**props)
    r.refs[logical_id] = made["IntegrationId"]


def _route(session: Any, logical_id: str, resource: dict[str, Any], r: _Resolver) -> None:
    props = r.resolve(resource["Properties"])
    made = session.client("apigatewayv2").create_route(**props)
    r.refs[logical_id] = made["RouteId"]


def _stage(session: Any, logical_id: str, resource: dict[str, Any], r: _Resolver) -> None:
    props = r.resolve(resource["Properties"])
    session.client("apigatewayv2").create_stage(**props)
    r.refs[logical_id] = props["StageName"]


def _permission(session: Any, logical_id: str, resource: dict[str, Any], r: _Resolver) -> None:
    props = r.resolve(resource["Properties"])
    session.client("lambda").add_permission(StatementId=logical_id, **props)


def _queue_policy(session: Any, logical_id: str, resource: dict[str, Any], r: _Resolver) -> None:
    props = r.resolve(resource["Properties"])
    for url in props["Queues"]:
        session.client("sqs").set_queue_attributes(
            QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])}
        )


def _topic_policy(session: Any, logical_id: str, resource: dict[str, Any], r: _Resolver) -> None:
    props = r.resolve(resource["Properties"])
    for arn in props["Topics"]:
        session.client("sns").set_topic_attributes(
            TopicArn=arn,
            AttributeName="Policy",
            AttributeValue=json.dumps(props["PolicyDocument"]),
        )


def _alarm(session: Any, logical_id: str, resource: dict[str, Any], r: _Resolver) -> None:
    session.client("cloudwatch").put_metric_alarm(**r.resolve(resource["Properties"]))


def _invoke_config(session: Any, logical_id: str, resource: dict[str, Any], r: _Resolver) -> None:
    session.client("lambda").put_function_event_invoke_config(**r.resolve(resource["Properties"]))


_CREATE: dict[str, _Create] = {
    "AWS::ApiGatewayV2::Api": _http_api,
    "AWS::ApiGatewayV2::Integration": _integration,
    "AWS::ApiGatewayV2::Route": _route,
    "AWS::ApiGatewayV2::Stage": _stage,
    "AWS::Lambda::Permission": _permission,
    "AWS::SQS::QueuePolicy": _queue_policy,
    "AWS::SNS::TopicPolicy": _topic_policy,
    "AWS::CloudWatch::Alarm": _alarm,
    "AWS::Lambda::EventInvokeConfig": _invoke_config,
}


# -- the outputs, as the harness reads them ---------------------------------------------------


def _deployment(
    stack_name: str,
    template: dict[str, Any],
    outputs: dict[str, str],
    not_deployed: dict[str, str],
) -> Deployment:
    from paymesh.adapters.dynamodb.tables import TABLES
    from paymesh.entrypoints.aws.manifest import HANDLERS

    prefix = outputs["TablePrefix"]
    functions = {
        r["Properties"]["FunctionName"]: r["Properties"]["Handler"].removeprefix(f"{HANDLERS}.")
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
    }
    dead_letters = {
        url.rsplit("/", 1)[-1]: url
        for key, url in outputs.items()
        if key.startswith(QUEUE_OUTPUT_PREFIX)
    }
    return Deployment(
        stack_name=stack_name,
        table_prefix=prefix,
        tables={spec.suffix: spec.name(prefix) for spec in TABLES},
        bus_name=outputs["BusName"],
        fraud_stream_name=outputs["FraudStreamName"],
        confirmations_topic_arn=outputs["ConfirmationsTopicArn"],
        fraud_alerts_topic_arn=outputs["FraudAlertsTopicArn"],
        review_state_machine_arn=outputs["ReviewStateMachineArn"],
        retry_state_machine_arn=outputs["RetryStateMachineArn"],
        api_endpoint=outputs["ApiEndpoint"],
        dead_letter_urls=dead_letters,
        functions=functions,
        not_deployed=not_deployed,
        outputs=outputs,
    )
