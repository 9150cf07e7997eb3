"""The checks the template must pass: cfn-lint (with the one finding we accept, and why)
and cdk-nag's AWS Solutions pack (every acknowledgment is in code, beside what it excuses).

    python -m infra.checks     # synthesises (cached) and prints what the checks find
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

#: cfn-lint findings accepted, by rule, with the reason and the resource type they may name.
#: W3005: CDK makes a function and a state machine depend on their role *and* its default
#: policy (so the policy exists before the first invocation); the half naming the role
#: repeats the dependency its GetAtt already makes. Redundant, harmless, and CDK's to write.
CFN_LINT_ACCEPTED = {"W3005": "AWS::IAM::Role"}


def cfn_lint(template: dict[str, Any], region: str = "us-east-1") -> list[str]:
    """What cfn-lint finds in `template`, less the accepted findings."""
    from cfnlint.api import ManualArgs, lint

    matches = lint(json.dumps(template), config=ManualArgs(regions=[region]))
    found = []
    for match in matches:
        accepted = CFN_LINT_ACCEPTED.get(match.rule.id)
        if accepted is not None:
            named = re.match(r"'([A-Za-z0-9]+)'", match.message)
            resource = template["Resources"].get(named.group(1) if named else "", {})
            if resource.get("Type") == accepted:
                continue
        found.append(f"{match.rule.id} {match.message} ({'/'.join(map(str, match.path))})")
    return found


def nag_findings(**params: Any) -> list[str]:
    """cdk-nag's AWS Solutions findings (errors and warnings) not acknowledged in code."""
    from cdk_nag import AwsSolutionsChecks

    from infra.synth import STACK_ID, build_app

    stack = build_app(**params).node.find_child(STACK_ID)
    report = AwsSolutionsChecks().validate_scope(stack)
    return [
        f"{v.severity} {v.rule_name}: {r.construct_path}"
        for v in report.violations
        for r in v.violating_resources
    ]


def main() -> int:
    from infra.synth import template

    lint = cfn_lint(template())
    nag = nag_findings()
    for line in [*lint, *nag]:
        print(line)
    print(f"cfn-lint: {len(lint)} findings; cdk-nag AwsSolutions: {len(nag)} findings")
    return 1 if lint or nag else 0


if __name__ == "__main__":
    sys.exit(main())
