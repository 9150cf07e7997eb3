"""Where each rule's events go on AWS, as data: paymesh's default rules (the packaged
`default_rules.json`, patterns untouched) and the workflow rules only the AWS deployment
has, each target resolved to a Lambda function, the fraud stream or a state machine.

Pure: no CDK here, so the routing is checked without a synth, and the stack only renders it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from paymesh.entrypoints.aws.manifest import (
    FUNCTIONS,
    SERVICE_RULES,
    SERVICE_TARGETS,
    WORKFLOW_RULES,
    Function,
)
from paymesh.ports.bus import RetryPolicy

#: Default-rule targets deliberately left without an AWS target, and why.
NO_AWS_TARGET = {
    # In paymesh itself a placeholder until a deployment names its inventory service
    # (PAYMESH_INVENTORY_URL): then it is a signed HTTP target, which on AWS is an EventBridge
    # API destination with its connection and secret, configuration of one deployment and
    # not of this stack.
    "update_inventory": "the merchant's inventory service is per-deployment configuration",
    # An in-memory counter of one long-lived process, read by its /metrics; Lambda keeps no
    # such process, and EventBridge's own per-rule metrics (MatchedEvents, Invocations)
    # already count what it counts.
    "analytics": "EventBridge's per-rule metrics count what the in-process counter does",
}


@dataclass(frozen=True, slots=True)
class Target:
    id: str
    #: "function" (then `function` names it), "kinesis", "states:retry", "states:review" or
    #: "sns:fraud-alerts".
    kind: str
    retry: RetryPolicy
    function: str | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    name: str  # without the deployment's prefix
    description: str
    pattern: dict[str, Any]
    targets: tuple[Target, ...]


@dataclass(frozen=True, slots=True)
class Schedule:
    function: str
    expression: str


def default_rules() -> list[dict[str, Any]]:
    raw = resources.files("paymesh.service").joinpath("default_rules.json").read_text()
    rules: list[dict[str, Any]] = json.loads(raw)
    return rules


def _retry_policy(target: dict[str, Any]) -> RetryPolicy:
    given = target.get("retry_policy") or {}
    default = RetryPolicy()
    return RetryPolicy(
        maximum_retry_attempts=given.get("maximum_retry_attempts", default.maximum_retry_attempts),
        maximum_event_age_seconds=given.get(
            "maximum_event_age_seconds", default.maximum_event_age_seconds
        ),
    )


def _triggered_by(rule: str) -> list[Function]:
    return [f for f in FUNCTIONS if any(t.kind == "rule" and t.detail == rule for t in f.triggers)]


def _function_for(rule: str, target_id: str) -> Function | None:
    """The manifest function whose trigger is `rule` and whose target_id is `target_id`."""
    return next((f for f in _triggered_by(rule) if f.target_id == target_id), None)


def _default_target(rule: str, target: dict[str, Any]) -> Target | None:
    retry = _retry_policy(target)
    function = _function_for(rule, target["id"])
    if function is not None:
        return Target(target["id"], "function", retry, function.name)
    name = target.get("name")
    if name in SERVICE_TARGETS:
        return Target(target["id"], SERVICE_TARGETS[name], retry)
    if name in NO_AWS_TARGET:
        return None
    raise ValueError(f"rule {rule}: no AWS target for {target['id']} ({name})")


def rules() -> tuple[Rule, ...]:
    """Every rule the bus gets: the default rules, then the workflow rules."""
    planned = []
    for rule in default_rules():
        targets = tuple(
            t
            for t in (_default_target(rule["name"], target) for target in rule["targets"])
            if t is not None
        )
        planned.append(
            Rule(rule["name"], rule.get("description", ""), rule["event_pattern"], targets)
        )
    for name, pattern in WORKFLOW_RULES.items():
        functions = _triggered_by(name)
        if not functions:
            raise ValueError(f"workflow rule {name}: no function has it as its trigger")
        planned.append(
            Rule(
                name,
                f"paymesh workflow event: {', '.join(pattern['detail-type'])}",
                dict(pattern),
                tuple(
                    Target(f.target_id or f.name, "function", RetryPolicy(), f.name)
                    for f in functions
                ),
            )
        )
    for name, (pattern, kind) in SERVICE_RULES.items():
        planned.append(
            Rule(
                name,
                f"paymesh events to {kind}: {', '.join(pattern['detail-type'])}",
                dict(pattern),
                (Target(name.split("-")[-1], kind, RetryPolicy()),),
            )
        )
    targeted = {t.function for rule in planned for t in rule.targets}
    for function in FUNCTIONS:
        if any(t.kind == "rule" for t in function.triggers) and function.name not in targeted:
            raise ValueError(f"{function.name}: its rule trigger matches no rule's target")
    return tuple(planned)


def schedules() -> tuple[Schedule, ...]:
    return tuple(
        Schedule(f.name, t.detail) for f in FUNCTIONS for t in f.triggers if t.kind == "schedule"
    )
