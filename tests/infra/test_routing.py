"""Where each rule's events go on AWS (infra.routing): no synthesis needed."""

from __future__ import annotations

import json
from importlib import resources

from infra import routing
from paymesh.entrypoints.aws.manifest import SERVICE_RULES, WORKFLOW_RULES
from paymesh.ports.bus import RetryPolicy


def _packaged_rules() -> dict[str, dict[str, object]]:
    raw = resources.files("paymesh.service").joinpath("default_rules.json").read_text()
    return {rule["name"]: rule for rule in json.loads(raw)}


def test_every_default_rule_keeps_its_pattern_verbatim_then_the_aws_only_rules() -> None:
    planned = {rule.name: rule for rule in routing.rules()}
    packaged = _packaged_rules()
    assert list(planned) == [*packaged, *WORKFLOW_RULES, *SERVICE_RULES]
    assert planned["fraud-alerts"].pattern == {
        "source": ["fraud.service"],
        "detail-type": ["fraud.alert"],
    }
    for name, rule in packaged.items():
        assert planned[name].pattern == rule["event_pattern"]
    for name, pattern in WORKFLOW_RULES.items():
        assert planned[name].pattern == pattern


def test_builtin_targets_resolve_to_the_manifest_function_or_a_service() -> None:
    targets = {
        (rule.name, t.id): (t.kind, t.function) for rule in routing.rules() for t in rule.targets
    }
    assert targets == {
        ("payment-initiated", "process"): ("function", "process_payment"),
        ("payment-succeeded", "confirmation"): ("function", "send_confirmation"),
        ("payment-failed", "retry"): ("states:retry", None),
        ("customer-confirmation", "confirmation"): ("function", "send_confirmation"),
        ("high-risk-transaction", "review"): ("states:review", None),
        ("fraud-stream", "fraud"): ("kinesis", None),
        ("payment-retry-due", "payment_retry"): ("function", "payment_retry"),
        ("review-opened", "review_opened"): ("function", "review_opened"),
        ("review-timed-out", "review_timed_out"): ("function", "review_timed_out"),
        ("fraud-alerts", "alerts"): ("sns:fraud-alerts", None),
    }


def test_inventory_and_analytics_get_no_aws_target() -> None:
    ids = {(rule.name, t.id) for rule in routing.rules() for t in rule.targets}
    assert ("payment-succeeded", "inventory") not in ids
    assert ("fraud-stream", "analytics") not in ids
    assert set(routing.NO_AWS_TARGET) == {"update_inventory", "analytics"}


def test_a_target_keeps_its_rules_retry_policy_or_paymeshs_default() -> None:
    policies = {(rule.name, t.id): t.retry for rule in routing.rules() for t in rule.targets}
    assert policies[("payment-failed", "retry")] == RetryPolicy(5, 7200)
    assert policies[("payment-initiated", "process")] == RetryPolicy(3, 3600)
    assert policies[("payment-succeeded", "confirmation")] == RetryPolicy(3, 3600)


def test_the_recovery_runs_on_its_manifest_schedule() -> None:
    assert routing.schedules() == (routing.Schedule("recover_in_flight", "rate(1 minute)"),)
