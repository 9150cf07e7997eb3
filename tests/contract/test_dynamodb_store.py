"""The DynamoDB store runs every store and bus-store contract SQLite and PostgreSQL run,
against moto's DynamoDB in this process; the tests below them are what only DynamoDB needs
saying: the reference's table, the sharded status index, all-or-nothing transactions, and
items DynamoDB cannot hold in one, and the ledger's replays."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import boto3
import pytest

from paymesh.adapters.dynamodb import DynamoStore, envelope_from_image, records
from paymesh.adapters.dynamodb.store import BLOB_CHUNK
from paymesh.domain.events import DomainEvent
from paymesh.domain.ledger import LedgerTransaction, payout
from paymesh.domain.payment import Payment, PspOutcome
from paymesh.domain.status import PaymentStatus
from paymesh.ports.bus import Attempt, Target
from paymesh.ports.bus_backend import BusBackend
from paymesh.ports.store import (
    Changeset,
    IdempotencyConflict,
    Notification,
    PaymentQuery,
    VersionConflict,
)
from tests.contract.bus_store_contract import BusStoreContract, delivery, route
from tests.contract.store_contract import T0, StoreContract, claim, payment, save
from tests.support.aws import REGION, moto_aws

S = PaymentStatus


@pytest.fixture
def aws() -> Iterator[None]:
    with moto_aws():
        yield


@pytest.fixture
async def store(aws: None) -> AsyncIterator[DynamoStore]:
    s = DynamoStore(f"t{uuid.uuid4().hex[:10]}", region=REGION, create_tables=True)
    backend: BusBackend = s  # mypy checks here that it implements the whole port
    await backend.open()
    yield s
    await s.close()


@pytest.fixture
def dynamodb(aws: None) -> Any:
    """A client of the test's own, to look at the tables as DynamoDB holds them. Used only
    between the store's calls, so moto still sees one call at a time."""
    return boto3.client("dynamodb", region_name=REGION)


class TestDynamoStore(StoreContract):
    pass


class TestDynamoBusStore(BusStoreContract):
    # DynamoDB's TTL deletes delivered deliveries, not the purge: the test below says so.
    test_delivered_deliveries_past_retention_go_and_nothing_else = None  # type: ignore[assignment]


async def test_a_delivered_delivery_expires_by_ttl_and_a_dead_letter_never(
    store: DynamoStore, dynamodb: Any
) -> None:
    store.mark_ttl = timedelta(days=120)  # the operator's marks' TTL: deliveries follow it
    hooks = [Target(id=f"hook{i}", type="http", url="http://127.0.0.1:9/x") for i in range(2)]
    await route(store, "e1", delivery("d0", target=hooks[0]), delivery("d1", target=hooks[1]))
    done, dead = sorted(await store.claim_deliveries(T0, 30, 10), key=lambda d: d.id)
    done.status, dead.status = "delivered", "dead"
    for d in (done, dead):
        d.history.append(Attempt(T0, "" if d is done else "HTTP 500"))
        await store.save_delivery(d)
    items = {item["pk"]["S"]: item for item in _scan(dynamodb, store.tables.state)}
    ttl = {d.id: items[records.delivery_key(d.id)["pk"]["S"]].get("ttl") for d in (done, dead)}
    # As long as a consumer mark lives: a delivery is routing's once-only record.
    assert ttl == {"d0": {"N": str(int((T0 + timedelta(days=120)).timestamp()))}, "d1": None}


def _scan(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]
    return items


async def test_the_transactions_table_is_the_references(store: DynamoStore, dynamodb: Any) -> None:
    name = store.tables.transactions
    table = dynamodb.describe_table(TableName=name)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "transactionId", "KeyType": "HASH"}]
    indexes = {
        i["IndexName"]: [(k["AttributeName"], k["KeyType"]) for k in i["KeySchema"]]
        for i in table["GlobalSecondaryIndexes"]
    }
    assert indexes["CustomerIdIndex"] == [("customerId", "HASH"), ("createdAt", "RANGE")]
    assert indexes["StatusIndex"] == [("statusShard", "HASH"), ("createdAt", "RANGE")]
    assert table["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "ttl")
    backups = dynamodb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
    pitr = backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"]
    assert pitr == "ENABLED"


async def test_a_payment_is_kept_with_its_index_keys_and_no_expiry(
    store: DynamoStore, dynamodb: Any
) -> None:
    await save(store, payment("pay_1", customer="cus_9", amount=2500))
    [item] = _scan(dynamodb, store.tables.transactions)
    assert item["transactionId"] == {"S": "pay_1"}
    assert item["customerId"] == {"S": "cus_9"}
    assert item["merchantId"] == {"S": "m1"}
    assert int(item["createdAt"]["N"]) == int(T0.timestamp()) * 1_000_000
    assert (item["amount"], item["currency"]) == ({"N": "2500"}, {"S": "usd"})
    assert "ttl" not in item  # a financial record: kept, never expired by DynamoDB


async def test_status_writes_spread_over_the_status_shards(
    store: DynamoStore, dynamodb: Any
) -> None:
    # Every new payment is pending: on a bare status key they would all write one
    # partition of StatusIndex.
    payments = [payment(f"pay_{i:02d}", at=T0 + timedelta(seconds=i)) for i in range(40)]
    await save(store, *payments)
    items = _scan(dynamodb, store.tables.transactions)
    shards = {i["statusShard"]["S"] for i in items}
    assert all(s.startswith("pending#") for s in shards)
    assert len(shards) >= 10  # of 16
    # A query by status asks every shard and merges them, newest first, across pages.
    page, more = await store.list_payments(
        PaymentQuery(merchant_id="m1", status=S.PENDING, limit=25)
    )
    assert [p.id for p in page] == [f"pay_{i:02d}" for i in range(39, 14, -1)] and more
    page, more = await store.list_payments(
        PaymentQuery(merchant_id="m1", status=S.PENDING, limit=25, starting_after="pay_15")
    )
    assert [p.id for p in page] == [f"pay_{i:02d}" for i in range(14, -1, -1)] and not more
    # A payment's status change moves it to that status's partition, same shard number.
    p = payments[0]
    before = next(i for i in items if i["transactionId"] == {"S": p.id})["statusShard"]["S"]
    p.apply_psp_outcome(PspOutcome(S.SUCCEEDED, "pi_0", amount_received=2000), T0)
    await save(store, p)
    [after] = [
        i["statusShard"]["S"]
        for i in _scan(dynamodb, store.tables.transactions)
        if i["transactionId"] == {"S": p.id}
    ]
    assert after == "succeeded#" + before.split("#")[1]
    page, _ = await store.list_payments(PaymentQuery(merchant_id="m1", status=S.SUCCEEDED))
    assert [x.id for x in page] == ["pay_00"]


@pytest.mark.parametrize("status", [None, S.PENDING])
async def test_payments_with_equal_creation_times_page_without_gaps_or_repeats(
    store: DynamoStore, status: PaymentStatus | None
) -> None:
    # DynamoDB returns equal sort keys in no defined order, and merged shards interleave
    # them in shard order: the pages must still cut the list at one place, ordered by id as
    # the SQL stores order ties.
    order = [7, 2, 11, 0, 5, 9, 1, 10, 3, 6, 8, 4]
    await save(store, *(payment(f"pay_{i:02d}") for i in order))
    seen: list[str] = []
    cursor = None
    while True:
        page, more = await store.list_payments(
            PaymentQuery(merchant_id="m1", status=status, limit=5, starting_after=cursor)
        )
        seen += [p.id for p in page]
        if not more:
            break
        cursor = page[-1].id
    assert seen == [f"pay_{i:02d}" for i in range(11, -1, -1)]


async def test_a_failed_condition_writes_nothing_in_any_table(
    store: DynamoStore, dynamodb: Any
) -> None:
    await store.commit(Changeset(idempotency=claim(token="a")))
    changes = Changeset(
        idempotency=claim(token="b", resource="pay_2"),
        processed=[("send_confirmation", "e1")],
        notifications=[Notification("ntf_1", "m1", "pay_2", "e1", "email", "c1", "t", T0)],
    )
    changes.save(payment("pay_2"))  # and its event
    with pytest.raises(IdempotencyConflict):
        await store.commit(changes)
    for table in (store.tables.transactions, store.tables.events, store.tables.state):
        assert _scan(dynamodb, table) == []
    [record] = _scan(dynamodb, store.tables.idempotency)
    assert record["leaseToken"] == {"S": "a"}


async def test_a_version_conflict_names_the_payment_and_writes_nothing(
    store: DynamoStore, dynamodb: Any
) -> None:
    await save(store, payment("pay_1"))
    stale = await store.get_payment("pay_1")
    assert stale is not None
    stale.version = 0  # read before the first write
    stale.apply_psp_outcome(PspOutcome(S.SUCCEEDED, "pi_1", amount_received=2000), T0)
    changes = Changeset()
    changes.save(stale)
    changes.save(payment("pay_new"))
    with pytest.raises(VersionConflict, match="pay_1"):
        await store.commit(changes)
    assert await store.get_payment("pay_new") is None
    assert len(_scan(dynamodb, store.tables.events)) == 1  # pay_1's first event alone


async def test_a_changeset_larger_than_one_transaction_is_refused_whole(
    store: DynamoStore, dynamodb: Any
) -> None:
    events = [DomainEvent("payment.succeeded", "pay_1", "m1", T0, {}) for _ in range(101)]
    with pytest.raises(ValueError, match="100"):
        await store.commit(Changeset(events=events))
    assert _scan(dynamodb, store.tables.events) == []
    await store.commit(Changeset(events=events[:100]))  # the most one commit can take
    assert len(await store.undelivered_events(1000)) == 100


async def test_routing_an_unknown_event_creates_nothing(store: DynamoStore, dynamodb: Any) -> None:
    await store.commit(Changeset(routed=["e_unknown"]))
    assert _scan(dynamodb, store.tables.events) == []
    assert await store.get_event("e_unknown") is None


async def test_idempotency_records_and_consumer_marks_carry_a_ttl_after_they_expire(
    store: DynamoStore, dynamodb: Any
) -> None:
    write = claim()
    await store.commit(Changeset(idempotency=write, processed=[("send_confirmation", "e1")]))
    [record] = _scan(dynamodb, store.tables.idempotency)
    # DynamoDB's own cleanup starts no earlier than the purge would: expired, lease over.
    assert int(record["ttl"]["N"]) == int(write.record.expires_at.timestamp())
    [mark] = _scan(dynamodb, store.tables.state)
    assert int(mark["ttl"]["N"]) > int(mark["markedAt"]["N"]) // 1_000_000 + 89 * 86400


async def test_a_blob_larger_than_an_item_is_kept_in_chunks_and_replaced_whole(
    store: DynamoStore, dynamodb: Any
) -> None:
    big = bytes(range(256)) * (2 * BLOB_CHUNK // 256 + 7)  # three chunks
    await store.put_blob("fraud", big, T0)
    assert await store.get_blob("fraud") == big
    bigger = b"\x01" * (BLOB_CHUNK + 1)
    await store.put_blob("fraud", bigger, T0 + timedelta(seconds=1))
    assert await store.get_blob("fraud") == bigger
    # The first document's chunks are gone: only the head and the new two chunks remain.
    assert len(_scan(dynamodb, store.tables.state)) == 3
    await store.put_blob("fraud", b"small", T0 + timedelta(seconds=2))
    assert await store.get_blob("fraud") == b"small"
    assert len(_scan(dynamodb, store.tables.state)) == 1


async def test_committed_events_reach_the_events_tables_stream_once(
    store: DynamoStore, dynamodb: Any
) -> None:
    # The outbox relay (a Lambda on this stream) publishes what `envelope_from_image` reads
    # from each INSERT; routing the event later is a MODIFY, which it does not publish.
    p = payment("pay_1")
    p.apply_psp_outcome(PspOutcome(S.SUCCEEDED, "pi_1", amount_received=2000), T0)
    await save(store, p)
    [first, second] = await store.undelivered_events(10)
    await store.commit(Changeset(routed=[first.id]))
    streams = boto3.client("dynamodbstreams", region_name=REGION)
    arn = dynamodb.describe_table(TableName=store.tables.events)["Table"]["LatestStreamArn"]
    [shard] = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    stream = streams.get_records(ShardIterator=iterator)["Records"]
    assert [r["eventName"] for r in stream] == ["INSERT", "INSERT", "MODIFY"]
    inserted = [envelope_from_image(r["dynamodb"]["NewImage"]) for r in stream[:2]]
    assert inserted == [first.envelope, second.envelope]
    assert [e["detail-type"] for e in inserted if e is not None] == [
        "payment.initiated",
        "payment.succeeded",
    ]
    # As Lambda delivers it: binary attributes base64-encoded in the JSON event.
    image = stream[1]["dynamodb"]["NewImage"]
    lambda_image = {**image, "envelope": {"B": base64.b64encode(image["envelope"]["B"]).decode()}}
    assert envelope_from_image(lambda_image) == second.envelope
    assert envelope_from_image({"eventId": {"S": "e1"}}) is None


async def test_a_closed_store_refuses_work_and_a_store_without_tables_will_not_open(
    aws: None,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    missing = DynamoStore(prefix, region=REGION)
    with pytest.raises(RuntimeError, match="does not exist"):
        await missing.open()
    created = DynamoStore(prefix, region=REGION, create_tables=True)
    await created.open()
    await save(created, payment("pay_1"))
    await created.close()
    assert not await created.ping()
    with pytest.raises(RuntimeError, match="not open"):
        await created.get_payment("pay_1")
    again = DynamoStore(prefix, region=REGION)  # the tables exist now
    await again.open()
    assert await again.ping()
    stored = await again.get_payment("pay_1")
    assert stored is not None and stored.amount == 2000
    await again.close()


def _captured(payment_id: str) -> Payment:
    p = payment(payment_id)
    p.apply_psp_outcome(PspOutcome(S.REQUIRES_CAPTURE, "pi_" + payment_id), T0)
    p.apply_psp_outcome(PspOutcome(S.SUCCEEDED, "pi_" + payment_id, amount_received=2000), T0)
    return p


def _payout(txn_id: str, amount: int) -> LedgerTransaction:
    """A payout is booked on its own: it belongs to no payment."""
    txn = payout(
        event_id=txn_id,
        merchant_id="m1",
        psp="stripe",
        currency="usd",
        at=T0 + timedelta(days=2),
        amount=amount,
    )
    return replace(txn, id=txn_id)


async def test_a_replayed_booking_keeps_its_first_copy_and_the_rest_of_the_commit_is_written(
    store: DynamoStore, dynamodb: Any
) -> None:
    first = Changeset()
    first.save(_captured("pay_1"))
    await store.commit(first)
    stored = {i["ledgerId"]["S"]: i for i in _scan(dynamodb, store.tables.ledger)}
    assert len(stored) == 3
    # Redelivered beside a new payment's booking: the stored three are skipped, not written
    # again (a rewrite would give them a later place in the booking order).
    again = Changeset(ledger=list(first.ledger))
    again.save(_captured("pay_2"))
    await store.commit(again)
    after = {i["ledgerId"]["S"]: i for i in _scan(dynamodb, store.tables.ledger)}
    assert len(after) == 6
    assert {k: after[k] for k in stored} == stored
    assert await store.get_payment("pay_2") is not None
    page, _ = await store.balance_transactions("m1", 10)
    assert [t.payment_id for t in page] == ["pay_2", "pay_1"]


async def test_a_payout_without_a_payment_is_listed_with_the_merchants_balance_transactions(
    store: DynamoStore, dynamodb: Any
) -> None:
    await save(store, _captured("pay_1"))
    await store.commit(Changeset(ledger=[_payout("txn_po_1", 1_000)]))
    items = {i["kind"]["S"]: i for i in _scan(dynamodb, store.tables.ledger)}
    # Only what moves the PSP's debt is in the balance indexes; nothing expires.
    assert "balanceMerchant" not in items["authorization"]
    assert items["charge"]["balancePayment"] == {"S": "pay_1"}
    assert "balancePayment" not in items["payout"]  # an empty index key would be refused
    assert all("ttl" not in i for i in items.values())
    page, _ = await store.balance_transactions("m1", 10)
    assert [(t.kind.value, t.net) for t in page] == [("payout", -1_000), ("charge", 1_912)]
    only, _ = await store.balance_transactions("m1", 10, payment_id="pay_1")
    assert [t.kind.value for t in only] == ["charge"]


async def test_ledger_transactions_are_writes_of_the_commits_one_transaction(
    store: DynamoStore, dynamodb: Any
) -> None:
    events = [DomainEvent("payment.succeeded", "pay_1", "m1", T0, {}) for _ in range(99)]
    payouts = [_payout("txn_po_1", 1_000), _payout("txn_po_2", 2_000)]
    with pytest.raises(ValueError, match="100"):
        await store.commit(Changeset(events=events, ledger=payouts))
    assert _scan(dynamodb, store.tables.ledger) == []
    assert _scan(dynamodb, store.tables.events) == []
    await store.commit(Changeset(events=events, ledger=payouts[:1]))
    assert len(_scan(dynamodb, store.tables.ledger)) == 1
