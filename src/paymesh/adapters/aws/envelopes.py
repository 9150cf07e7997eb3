"""paymesh's event envelope on EventBridge, and back.

paymesh's envelope is EventBridge's shape already (DESIGN.md, Events), with two fields that
EventBridge will not carry: it gives every event it receives a fresh `id`, and its `account`
is the AWS account, not the merchant. Both travel in `detail.paymesh`; a target gets the
envelope back with paymesh's own id, which every consumer de-duplicates by, so an event put
twice (a retried batch) still takes effect once. So does the envelope's W3C `traceparent`
(when the event has one): PutEvents takes no top-level field of ours.
"""

from __future__ import annotations

import json
from typing import Any

#: The detail key that carries what EventBridge would overwrite.
CARRIED = "paymesh"


def entry(envelope: dict[str, Any], bus: str) -> dict[str, Any]:
    """The PutEvents entry for `envelope` on `bus`."""
    detail = dict(envelope["detail"])
    carried = {"event_id": envelope["id"], "merchant_id": envelope["account"]}
    if isinstance(envelope.get("traceparent"), str):
        carried["traceparent"] = envelope["traceparent"]
    detail[CARRIED] = carried
    return {
        "EventBusName": bus,
        "Source": envelope["source"],
        "DetailType": envelope["detail-type"],
        "Resources": list(envelope.get("resources", [])),
        "Detail": json.dumps(detail, separators=(",", ":")),
        # EventBridge keeps whole seconds, as the envelope's own `time` does.
        "Time": envelope["time"],
    }


def envelope(event: dict[str, Any]) -> dict[str, Any]:
    """The paymesh envelope of an event EventBridge delivered (to a Lambda function, a
    Kinesis record, a state machine's input). An event with no carried fields (put by
    paymesh's own state machines) keeps EventBridge's id and account."""
    detail = dict(event.get("detail") or {})
    carried = detail.pop(CARRIED, None) or {}
    restored = {
        "version": event.get("version", "0"),
        "id": carried.get("event_id", event.get("id")),
        "source": event.get("source"),
        "detail-type": event.get("detail-type"),
        "account": carried.get("merchant_id", detail.get("merchant_id", event.get("account"))),
        "time": event.get("time"),
        "region": event.get("region", "local"),
        "resources": event.get("resources", []),
        "detail": detail,
    }
    if isinstance(carried.get("traceparent"), str):
        restored["traceparent"] = carried["traceparent"]
    return restored
