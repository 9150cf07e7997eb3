"""What one payment costs on AWS, counted from the requests the deployed flow really makes.

    .venv/bin/python benchmarks/aws_cost.py [--payments 100] [--declined 0.1] [--json FILE]

It deploys the CDK stack into moto (tests/aws/harness.py: the functions are invoked with real
event payloads, the plumbing moto cannot run is played by the harness), sends `--payments`
payments through the API Gateway handler (a `--declined` share of them declined by the card,
a `--reviewed` share held for manual review and approved through the API),
lets every event run its course (outbox stream -> EventBridge -> targets -> SNS, Kinesis ->
fraud scorer), and counts per payment:

- API Gateway requests: the `api` and `webhooks` invocations;
- Lambda invocations, and GB-seconds from each invocation's billed duration and the memory
  the manifest gives the function. The billed duration is the handler's own time measured
  here (its wall time less the time spent inside moto, whose DynamoDB copies every table on
  each transaction and so slows as it fills) plus each AWS request it made at a typical
  in-region latency (AWS_LATENCY, an assumption). Warm invocations only: each function's
  first one, its cold start, is reported apart;
- DynamoDB write and read request units, estimated from each request's items (1 KB per write
  unit, 4 KB per read unit, twice that in a transaction, plus one write per global secondary
  index the item is in);
- EventBridge events put (by the outbox relay and by the state machines);
- Kinesis PUT payload units (25 KB each) and SNS publishes;
- Step Functions state transitions (from each execution's history).

Prices are AWS's public on-demand list prices for us-east-1 (PRICES below, edit them for your
region); fixed monthly costs (Kinesis shard-hours) are spread over the reference's 90 million
payments a month. The result is compared with the reference's $0.00036 per transaction.

Also measured, in the same run: the cold start of the handlers module (its import time in a
fresh interpreter, median of 5) against the import of boto3 alone (the floor every Python
Lambda using the SDK pays).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: USD, us-east-1, on-demand list prices.
PRICES = {
    "apigw_http_request": 1.00 / 1e6,  # HTTP API, first 300 M requests a month
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second": 0.0000166667,  # x86
    "dynamodb_wru": 0.625 / 1e6,  # on-demand write request unit
    "dynamodb_rru": 0.125 / 1e6,  # on-demand read request unit
    "eventbridge_event": 1.00 / 1e6,  # custom events put (64 KB chunks)
    "kinesis_put_unit": 0.014 / 1e6,  # provisioned mode, 25 KB PUT payload unit
    "kinesis_shard_hour": 0.015,
    "sns_publish": 0.50 / 1e6,  # standard topic publish (FIFO: 0.30/M + payload, close)
    "sfn_transition": 0.025 / 1e3,  # standard workflows
    "sqs_request": 0.40 / 1e6,
}
#: Seconds an AWS request typically takes from a Lambda function in the same region (an
#: assumption: moto answers in-process, at a speed that says nothing about AWS's).
AWS_LATENCY = {"dynamodb": 0.008, "events": 0.025, "sns": 0.025, "stepfunctions": 0.025}
REFERENCE_PER_PAYMENT = 0.00036
REFERENCE_MONTHLY_PAYMENTS = 90e6
#: Kinesis shards the reference's peak of 1,500 payments/s needs, at the records per
#: payment measured here (1,000 records/s per shard).
PEAK_PAYMENTS_PER_SECOND = 1500


def _size(value: Any) -> int:
    return len(json.dumps(value, default=str).encode())


def _value_size(value: dict[str, Any]) -> int:
    """DynamoDB's size of one typed attribute value (its item-size rules, roughly)."""
    kind, v = next(iter(value.items()))
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        return len(str(v)) // 2 + 1
    if kind == "B":
        return len(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k) + _value_size(x) for k, x in v.items())
    if kind == "L":
        return 3 + sum(1 + _value_size(x) for x in v)
    return _size(v)  # sets: close enough


def _item_size(item: dict[str, Any] | None) -> int:
    return sum(len(k) + _value_size(v) for k, v in (item or {}).items())


def _dynamodb_units(calls: list[Any], indexes: dict[str, list[str]]) -> tuple[float, float]:
    """(write units, read units) of the DynamoDB requests, estimated from their items.
    `indexes`: table name -> the hash key attribute of each of its global secondary indexes
    (an item is written to an index only when it has that attribute; every index projects
    all attributes)."""
    wru = rru = 0.0

    def write(table: str, item: dict[str, Any] | None, factor: int) -> float:
        units = math.ceil(max(_item_size(item), 1) / 1024) * factor
        in_indexes = sum(1 for key in indexes.get(table, []) if item and key in item)
        return units * (1 + in_indexes)

    def read(items: list[dict[str, Any]], consistent: bool) -> float:
        size = sum(_item_size(i) for i in items)
        return math.ceil(max(size, 1) / 4096) * (1.0 if consistent else 0.5)

    for call in calls:
        op, p, r = call.operation, call.params, call.response or {}
        if op == "TransactWriteItems":
            for entry in p["TransactItems"]:
                kind, body = next(iter(entry.items()))
                if kind == "ConditionCheck":
                    rru += 2
                elif kind == "Update":
                    # The item after the update is not in the request: its key and new values.
                    values = body.get("ExpressionAttributeValues", {})
                    wru += write(body["TableName"], {**body["Key"], **values}, 2)
                else:
                    wru += write(body["TableName"], body.get("Item") or body.get("Key"), 2)
        elif op in ("PutItem", "UpdateItem", "DeleteItem"):
            item = p.get("Item") or r.get("Attributes") or p.get("Key")
            wru += write(p["TableName"], item, 1)
        elif op == "BatchWriteItem":
            for table, requests in p["RequestItems"].items():
                for request in requests:
                    body = request.get("PutRequest") or request.get("DeleteRequest")
                    wru += write(table, body.get("Item") or body.get("Key"), 1)
        elif op == "GetItem":
            rru += read([r.get("Item", {})], bool(p.get("ConsistentRead")))
        elif op in ("Query", "Scan"):
            rru += read(r.get("Items", []), bool(p.get("ConsistentRead")))
        elif op in ("TransactGetItems", "BatchGetItem"):
            rru += max(1, _size(r) // 4096) * 2
    return wru, rru


def cold_start(runs: int = 5) -> dict[str, float]:
    def median_import(statement: str) -> float:
        times = []
        for _ in range(runs):
            code = (
                f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
            )
            out = subprocess.run(
                [sys.executable, "-c", code], check=True, capture_output=True, text=True
            )
            times.append(float(out.stdout.strip()))
        return statistics.median(times)

    handlers = median_import("import paymesh.entrypoints.aws.handlers")
    boto3 = median_import("import boto3")
    return {"handlers_import_s": handlers, "boto3_import_s": boto3, "ratio": handlers / boto3}


def run(payments: int, declined: float, reviewed: float) -> dict[str, Any]:
    # Outside moto, any AWS request would go to AWS: send it to a closed loopback port.
    os.environ.setdefault("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    from infra.deploy_local import deploy
    from infra.synth import template
    from paymesh.entrypoints.aws import manifest
    from tests.aws.harness import REVIEW_AMOUNT, deployed

    stack = template(prefix="pmcost")
    with tempfile.TemporaryDirectory() as tmp, deployed(lambda: deploy(stack), Path(tmp)) as cloud:
        key = cloud.api_key("m_cost")
        ddb = cloud.ddb
        indexes = {
            name: [
                next(k["AttributeName"] for k in gsi["KeySchema"] if k["KeyType"] == "HASH")
                for gsi in ddb.describe_table(TableName=name)["Table"].get(
                    "GlobalSecondaryIndexes", []
                )
            ]
            for name in ddb.list_tables()["TableNames"]
        }
        # Warm every function once (its cold start is reported apart), then count.
        _pay(cloud, key, 999, "pm_card_visa")
        cloud.pump()
        cold = {}
        for inv in cloud.invocations:
            cold.setdefault(inv.function, inv.seconds)
        cloud.invocations.clear()
        kinesis_records: list[int] = []
        executions_before = _executions(cloud)
        original_deliver = cloud.deliver

        def deliver(rule: dict[str, Any], target: dict[str, Any], event: dict[str, Any]) -> None:
            if target["Arn"].split(":")[2] == "kinesis":
                kinesis_records.append(_size(event))
            original_deliver(rule, target, event)

        cloud.deliver = deliver  # type: ignore[method-assign]
        outcomes: Counter[str] = Counter()
        start = time.perf_counter()
        with cloud.counting_calls() as calls:
            n_declined = round(payments * declined)
            n_reviewed = round(payments * reviewed)
            for i in range(payments):
                if i < n_reviewed:  # held for review, then approved through the API
                    reply = _pay(cloud, key, REVIEW_AMOUNT, "pm_card_visa")
                    payment = reply.body
                    cloud.pump(until=lambda p=payment: cloud.review_waiting(p["id"]))
                    cloud.http(
                        "POST",
                        f"/v1/reviews/{payment['review']['id']}/approve",
                        headers={"authorization": f"Bearer {key}"},
                    )
                    outcomes["reviewed, approved"] += 1
                else:
                    method = (
                        "pm_card_chargeDeclined" if i < n_reviewed + n_declined else "pm_card_visa"
                    )
                    reply = _pay(cloud, key, 1000 + i, method)
                    outcomes[reply.body["status"] if reply.status == 201 else "declined"] += 1
                cloud.pump()
        wall = time.perf_counter() - start
        transitions = _transitions(cloud, executions_before)
        sfn_events = sum(t[1] for t in transitions)
        n_transitions = sum(t[0] for t in transitions)
        alerts = _alerts_published(cloud)
    # moto is gone from here on: nothing below may make an AWS request.

    memory = {f.name: f.memory_mb for f in manifest.FUNCTIONS}
    per_function: dict[str, list[float]] = defaultdict(list)
    for inv in cloud.invocations:
        per_function[inv.function].append(inv.seconds)
    # Billed duration as on AWS: the handler's own time (its measured time less the time
    # spent in moto, which grows with what moto holds) plus each AWS request at a typical
    # in-region latency (AWS_LATENCY).
    in_moto: dict[str, float] = defaultdict(float)
    aws_wait: dict[str, float] = defaultdict(float)
    for call in calls:
        in_moto[call.function] += call.seconds
        aws_wait[call.function] += AWS_LATENCY.get(call.service, 0.02)
    billed = {
        name: max(0.0, sum(times) - in_moto[name]) + aws_wait[name]
        for name, times in per_function.items()
    }
    gb_seconds = sum(seconds * memory[name] / 1024 for name, seconds in billed.items())
    invocations = sum(len(t) for t in per_function.values())
    http = len(per_function["api"]) + len(per_function["webhooks"])
    wru, rru = _dynamodb_units([c for c in calls if c.service == "dynamodb"], indexes)
    ops = Counter(f"{c.service}.{c.operation}" for c in calls)
    events_put = (
        sum(len(c.params["Entries"]) for c in calls if c.operation == "PutEvents") + sfn_events
    )
    sns = sum(1 for c in calls if c.operation == "Publish") + alerts
    put_units = sum(math.ceil(size / 25600) for size in kinesis_records)
    records_per_payment = len(kinesis_records) / payments
    shards = max(1, math.ceil(PEAK_PAYMENTS_PER_SECOND * records_per_payment / 1000))
    shard_cost = shards * 730 * PRICES["kinesis_shard_hour"] / REFERENCE_MONTHLY_PAYMENTS

    n = payments
    lines = {
        "API Gateway (HTTP API)": (http / n, "requests", http / n * PRICES["apigw_http_request"]),
        "Lambda invocations": (
            invocations / n,
            "invocations",
            invocations / n * PRICES["lambda_request"],
        ),
        "Lambda compute": (gb_seconds / n, "GB-s", gb_seconds / n * PRICES["lambda_gb_second"]),
        "DynamoDB writes": (wru / n, "WRU", wru / n * PRICES["dynamodb_wru"]),
        "DynamoDB reads": (rru / n, "RRU", rru / n * PRICES["dynamodb_rru"]),
        "EventBridge": (events_put / n, "events", events_put / n * PRICES["eventbridge_event"]),
        "Kinesis PUT units": (put_units / n, "units", put_units / n * PRICES["kinesis_put_unit"]),
        "Kinesis shard-hours": (shards, "shards", shard_cost),
        "SNS": (sns / n, "publishes", sns / n * PRICES["sns_publish"]),
        "Step Functions": (
            n_transitions / n,
            "transitions",
            n_transitions / n * PRICES["sfn_transition"],
        ),
    }
    total = sum(cost for _, _, cost in lines.values())
    return {
        "payments": n,
        "outcomes": dict(outcomes),
        "wall_seconds": wall,
        "lines": {k: {"quantity": q, "unit": u, "usd": c} for k, (q, u, c) in lines.items()},
        "total_usd": total,
        "reference_usd": REFERENCE_PER_PAYMENT,
        "ratio_to_reference": total / REFERENCE_PER_PAYMENT,
        "requests_by_operation_per_payment": {k: v / n for k, v in sorted(ops.items())},
        "billed_ms_per_invocation": {
            name: billed[name] * 1000 / len(times) for name, times in sorted(per_function.items())
        },
        "warm_ms_median": {
            name: statistics.median(times) * 1000 for name, times in sorted(per_function.items())
        },
        "first_invocation_ms": {name: s * 1000 for name, s in sorted(cold.items())},
    }


def _pay(cloud: Any, key: str, amount: int, method: str) -> Any:
    return cloud.http(
        "POST",
        "/v1/payments",
        {
            "amount": amount,
            "currency": "usd",
            "payment_method": method,
            "customer_id": f"cus_{uuid.uuid4().hex[:8]}",
        },
        {"authorization": f"Bearer {key}", "idempotency-key": str(uuid.uuid4())},
    )


def _executions(cloud: Any) -> set[str]:
    arns = set()
    for machine in cloud.sfn.list_state_machines()["stateMachines"]:
        for e in cloud.sfn.list_executions(stateMachineArn=machine["stateMachineArn"])[
            "executions"
        ]:
            arns.add(e["executionArn"])
    return arns


def _transitions(cloud: Any, before: set[str]) -> list[tuple[int, int]]:
    """(state transitions, events put) of each execution started since `before`."""
    out = []
    for arn in _executions(cloud) - before:
        history = cloud.sfn.get_execution_history(executionArn=arn)["events"]
        entered = sum(1 for h in history if h["type"].endswith("StateEntered"))
        puts = sum(
            1
            for h in history
            if h["type"] == "TaskScheduled"
            and h.get("taskScheduledEventDetails", {}).get("resource", "").startswith("putEvents")
        )
        out.append((entered, puts))
    return out


def _alerts_published(cloud: Any) -> int:
    """Alerts reach SNS through an EventBridge rule (no function publishes them)."""
    return len(cloud.drain(cloud.alerts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payments", type=int, default=100)
    parser.add_argument("--declined", type=float, default=0.1)
    parser.add_argument("--reviewed", type=float, default=0.02)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = run(args.payments, args.declined, args.reviewed)
    result["cold_start"] = cold_start()
    print(f"AWS cost per payment, {result['payments']} payments {result['outcomes']}")
    print(f"{'service':<24}{'per payment':>14}  {'unit':<12}{'USD':>12}")
    for name, line in result["lines"].items():
        print(f"{name:<24}{line['quantity']:>14.3f}  {line['unit']:<12}{line['usd']:>12.8f}")
    print(f"{'total':<24}{'':>14}  {'':<12}{result['total_usd']:>12.8f}")
    print(
        f"reference (the article): ${REFERENCE_PER_PAYMENT} per transaction; "
        f"ratio {result['ratio_to_reference']:.3f}"
    )
    print("requests per payment by operation:")
    for op, count in result["requests_by_operation_per_payment"].items():
        print(f"  {op:<40}{count:>8.2f}")
    print("billed duration per invocation, ms (own time + AWS requests at AWS_LATENCY):")
    for name, ms in result["billed_ms_per_invocation"].items():
        print(f"  {name:<24}{ms:>8.1f}")
    print("warm invocation, median ms (moto in-process, this machine):")
    for name, ms in result["warm_ms_median"].items():
        first = result["first_invocation_ms"].get(name)
        shown = f"{first:.1f}" if first is not None else "- (not in the warm-up)"
        print(f"  {name:<24}{ms:>8.1f}   first invocation {shown}")
    cs = result["cold_start"]
    print(
        "cold start: import paymesh.entrypoints.aws.handlers "
        f"{cs['handlers_import_s'] * 1000:.0f} ms vs import boto3 "
        f"{cs['boto3_import_s'] * 1000:.0f} ms (ratio {cs['ratio']:.2f})"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
