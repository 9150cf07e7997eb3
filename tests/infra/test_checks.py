"""cfn-lint and cdk-nag (AWS Solutions) on the stack: nothing found, and every
acknowledgment in code answers a finding that would otherwise be reported."""

from __future__ import annotations

import copy
from typing import Any

import aws_cdk
import pytest
from cdk_nag import AwsSolutionsChecks

from infra import checks
from infra.synth import STACK_ID, build_app
from tests.infra.conftest import PREFIX, named, resources


def test_cfn_lint_finds_nothing_it_does_not_accept(template: dict[str, Any]) -> None:
    assert checks.cfn_lint(template) == []


def test_cfn_lint_reports_a_broken_template_and_a_redundancy_not_on_a_role(
    template: dict[str, Any],
) -> None:
    broken = copy.deepcopy(template)
    _, fn = named(broken, "AWS::Lambda::Function", "FunctionName", f"{PREFIX}-api")
    fn["Properties"]["Runtime"] = "python2.1"
    rule_id, rule = named(broken, "AWS::Events::Rule", "Name", f"{PREFIX}-payment-initiated")
    queue = rule["Properties"]["Targets"][0]["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    rule["DependsOn"] = [queue]
    found = checks.cfn_lint(broken)
    assert any(f.startswith("E") and "python2.1" in f for f in found), found
    assert any(f.startswith("W3005") and queue in f for f in found), found
    assert rule_id in "".join(found)


def test_cdk_nag_aws_solutions_finds_nothing_unacknowledged() -> None:
    assert checks.nag_findings(prefix=PREFIX) == []


class _Recorder:
    """Stands in for `Validations.of(scope)`: records acknowledgments, applies none."""

    made: list[tuple[str, str, str]] = []

    def __init__(self, scope: Any) -> None:
        self.path = scope.node.path

    def acknowledge(self, *rules: aws_cdk.Acknowledgment) -> None:
        self.made.extend((self.path, rule.id, rule.reason) for rule in rules)

    def add_plugins(self, *plugins: Any) -> None:
        pass


def test_every_acknowledgment_answers_a_finding_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _Recorder.made = []
    monkeypatch.setattr(aws_cdk.Validations, "of", staticmethod(_Recorder))
    stack = build_app(prefix=PREFIX).node.find_child(STACK_ID)
    report = AwsSolutionsChecks().validate_scope(stack)
    findings = [
        (v.rule_name, r.construct_path or "")
        for v in report.violations
        for r in v.violating_resources
    ]
    acknowledged = _Recorder.made

    def covers(ack: tuple[str, str, str], finding: tuple[str, str]) -> bool:
        path, rule_id, _ = ack
        return rule_id == finding[0] and (finding[1] == path or finding[1].startswith(path + "/"))

    assert findings, "without the acknowledgments cdk-nag must find what they excuse"
    unanswered = [f for f in findings if not any(covers(a, f) for a in acknowledged)]
    assert unanswered == []
    stale = [a for a in acknowledged if not any(covers(a, f) for f in findings)]
    assert stale == []
    assert all(len(reason) > 80 for _, _, reason in acknowledged)
    assert {rule_id for _, rule_id, _ in acknowledged} == {
        "AwsSolutions-L1",
        "AwsSolutions-IAM5[Resource::*]",
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:events:<AWS::Region>:"
        f"<AWS::AccountId>:rule/{PREFIX}-bus/{PREFIX}-m-*]",
        "AwsSolutions-SQS3",
        "AwsSolutions-APIG4",
    }


def test_the_template_has_no_bootstrap_rule_or_parameter(template: dict[str, Any]) -> None:
    # Deployable without a CDK bootstrap stack (moto has none).
    assert "Rules" not in template and "Parameters" not in template
    assert not resources(template, "AWS::CDK::Metadata")
