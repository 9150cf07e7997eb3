"""Merchants' rules on EventBridge: each rule a merchant puts through the API becomes a rule
on the bus, with the merchant's pattern and one target per rule target.

- Name: `<prefix>-m-<hash of merchant and rule name>` (EventBridge allows 64 characters of a
  small alphabet; the description keeps the readable names).
- Pattern: the merchant's, verbatim, and `detail.paymesh.merchant_id` = the merchant, so a
  merchant's rule only ever sees its own events (as the router scopes it in the other modes).
- Targets: the `deliver_rule_target` function, handed the event and which rule and target it
  is for (an input transformer); it signs and posts with the rule's secret, which so never
  leaves paymesh's store. Each target keeps its retry policy; dead letters go to the
  merchant rules' SQS queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
from typing import Any

from paymesh.adapters.aws.envelopes import CARRIED
from paymesh.ports.bus import Rule

PREFIX_MARK = "-m-"


def bus_rule_name(prefix: str, merchant_id: str, name: str) -> str:
    digest = hashlib.sha256(f"{merchant_id}/{name}".encode()).hexdigest()[:32]
    return f"{prefix}{PREFIX_MARK}{digest}"


def scoped_pattern(rule: Rule) -> dict[str, Any]:
    pattern = copy.deepcopy(rule.event_pattern)
    detail = pattern.setdefault("detail", {})
    detail[CARRIED] = {"merchant_id": [rule.merchant_id]}
    return pattern


def input_template(rule: Rule, target_id: str) -> str:
    """What the function gets: which rule and target, and the event (`<aws.events.event>`,
    EventBridge's whole event)."""
    fields = {"merchant_id": rule.merchant_id, "rule": rule.name, "target": target_id}
    head = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in fields.items())
    return "{" + head + ', "event": <aws.events.event>}'


class EventBridgeRules:
    """The `RuleMirror` port on EventBridge."""

    def __init__(
        self, client: Any, bus: str, prefix: str, deliver_arn: str, dead_letters_arn: str
    ) -> None:
        self.client = client
        self.bus = bus
        self.prefix = prefix
        self.deliver_arn = deliver_arn
        self.dead_letters_arn = dead_letters_arn

    async def put(self, rule: Rule) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._put, rule)

    async def delete(self, merchant_id: str, name: str) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._delete, merchant_id, name)

    def _put(self, rule: Rule) -> None:
        name = bus_rule_name(self.prefix, rule.merchant_id, rule.name)
        self.client.put_rule(
            Name=name,
            EventBusName=self.bus,
            EventPattern=json.dumps(scoped_pattern(rule)),
            State=rule.state,
            Description=f"merchant {rule.merchant_id}: rule {rule.name}"[:512],
        )
        wanted = {t.id for t in rule.targets}
        stale = [t["Id"] for t in self._targets(name) if t["Id"] not in wanted]
        if stale:
            self.client.remove_targets(Rule=name, EventBusName=self.bus, Ids=stale)
        self.client.put_targets(
            Rule=name,
            EventBusName=self.bus,
            Targets=[
                {
                    "Id": target.id,
                    "Arn": self.deliver_arn,
                    "InputTransformer": {
                        "InputPathsMap": {},
                        "InputTemplate": input_template(rule, target.id),
                    },
                    "RetryPolicy": {
                        "MaximumRetryAttempts": target.retry_policy.maximum_retry_attempts,
                        "MaximumEventAgeInSeconds": target.retry_policy.maximum_event_age_seconds,
                    },
                    "DeadLetterConfig": {"Arn": self.dead_letters_arn},
                }
                for target in rule.targets
            ],
        )

    def _delete(self, merchant_id: str, name: str) -> None:
        bus_name = bus_rule_name(self.prefix, merchant_id, name)
        ids = [t["Id"] for t in self._targets(bus_name)]
        if ids:
            self.client.remove_targets(Rule=bus_name, EventBusName=self.bus, Ids=ids)
        # Deleted already: nothing left to do.
        with contextlib.suppress(self.client.exceptions.ResourceNotFoundException):
            self.client.delete_rule(Name=bus_name, EventBusName=self.bus)

    def _targets(self, name: str) -> list[dict[str, Any]]:
        try:
            answer = self.client.list_targets_by_rule(Rule=name, EventBusName=self.bus)
        except self.client.exceptions.ResourceNotFoundException:
            return []
        targets: list[dict[str, Any]] = answer.get("Targets", [])
        return targets
