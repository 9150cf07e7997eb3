"""The BusStore port's contract, one class per protocol of `paymesh.ports.bus`: rules;
routed deliveries, leases, dead letters, redrive. A backend subclasses `BusStoreContract`
(both) with a `store` fixture; routing writes through the store's `commit`."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from paymesh.domain.events import DomainEvent
from paymesh.ports.bus import Attempt, Delivery, Rule, Target
from paymesh.ports.bus_backend import BusBackend
from paymesh.ports.store import Changeset

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
TARGET = Target(id="conf", type="builtin", name="send_confirmation")


def delivery(
    did: str, event_id: str = "e1", target: Target = TARGET, merchant: str = "m1", at: datetime = T0
) -> Delivery:
    return Delivery(
        id=did,
        event_id=event_id,
        merchant_id=merchant,
        rule="r1",
        target=target,
        event_time=at,
        created_at=at,
        next_attempt_at=at,
    )


async def route(store: BusBackend, event_id: str, *deliveries: Delivery) -> None:
    await store.commit(
        Changeset(events=[DomainEvent("payment.succeeded", "pay_1", "m1", T0, {}, id=event_id)])
    )
    await store.commit(Changeset(routed=[event_id], deliveries=list(deliveries)))


class RuleStoreContract:
    async def test_rules_are_stored_replaced_and_deleted(self, store: BusBackend) -> None:
        rule = Rule("m1", "big", {"detail": {"amount": [{"numeric": [">", 100]}]}}, (TARGET,))
        await store.put_rule(rule)
        await store.put_rule(replace(rule, state="DISABLED"))
        await store.put_rule(replace(rule, merchant_id="m2"))
        rules = await store.rules()
        assert [(r.merchant_id, r.name, r.state) for r in rules] == [
            ("m1", "big", "DISABLED"),
            ("m2", "big", "ENABLED"),
        ]
        assert rules[0].targets == (TARGET,)
        assert await store.delete_rule("m1", "big")
        assert not await store.delete_rule("m1", "big")
        assert [r.merchant_id for r in await store.rules()] == ["m2"]

    async def test_a_stored_rule_changes_only_when_put_again(self, store: BusBackend) -> None:
        rule = Rule("m1", "big", {"detail": {"amount": [{"numeric": [">", 100]}]}}, (TARGET,))
        await store.put_rule(rule)
        rule.event_pattern["detail"]["amount"] = [1]  # edited after it was stored
        [stored] = await store.rules()
        stored.event_pattern.clear()  # edited after it was read
        [again] = await store.rules()
        assert again.event_pattern == {"detail": {"amount": [{"numeric": [">", 100]}]}}


class DeliveryStoreContract:
    async def test_routing_takes_the_event_out_of_the_outbox_with_its_deliveries(
        self, store: BusBackend
    ) -> None:
        http = Target(id="inv", type="http", url="http://127.0.0.1:9/x")
        await route(store, "e1", delivery("d1"), delivery("d2", target=http))
        assert await store.undelivered_events(10) == []
        claimed = await store.claim_deliveries(T0, 30, 10)
        assert sorted(d.id for d in claimed) == ["d1", "d2"]
        assert {d.target.id for d in claimed} == {"conf", "inv"}

    async def test_a_delivery_keeps_whether_a_default_rule_routed_it(
        self, store: BusBackend
    ) -> None:
        # Which secret signs it depends on that (the rule's own, or the deployment's); the
        # secret itself is never stored with a delivery.
        http = Target(id="inv", type="http", url="https://inventory.example.com/x")
        await route(
            store, "e1", replace(delivery("d1", target=http), default_rule=True), delivery("d2")
        )
        claimed = await store.claim_deliveries(T0, 30, 10)
        assert {d.id: d.default_rule for d in claimed} == {"d1": True, "d2": False}
        for d in claimed:
            d.status, d.attempts = "dead", 1
            await store.save_delivery(d)
        dead, _ = await store.dead_letters("m1", 10, None)
        assert {d.id: d.default_rule for d in dead} == {"d1": True, "d2": False}

    async def test_one_delivery_per_event_rule_and_target(self, store: BusBackend) -> None:
        await route(store, "e1", delivery("d1"))
        await store.commit(Changeset(routed=["e1"], deliveries=[delivery("d1-again")]))
        assert [d.id for d in await store.claim_deliveries(T0, 30, 10)] == ["d1"]

    async def test_a_leased_delivery_is_not_claimed_twice(self, store: BusBackend) -> None:
        await route(store, "e1", delivery("d1"))
        assert len(await store.claim_deliveries(T0, 30, 10)) == 1
        assert await store.claim_deliveries(T0 + timedelta(seconds=10), 30, 10) == []
        # the worker died: after the lease the delivery comes back
        assert len(await store.claim_deliveries(T0 + timedelta(seconds=31), 30, 10)) == 1

    async def test_released_leases_are_claimable_at_once(self, store: BusBackend) -> None:
        await route(store, "e1", delivery("d1"))
        assert len(await store.claim_deliveries(T0, 60, 10)) == 1
        assert await store.release_leases() == 1
        assert len(await store.claim_deliveries(T0, 60, 10)) == 1

    async def test_a_rescheduled_delivery_waits_for_its_time(self, store: BusBackend) -> None:
        await route(store, "e1", delivery("d1"))
        [d] = await store.claim_deliveries(T0, 30, 10)
        d.attempts = 1
        d.next_attempt_at = T0 + timedelta(seconds=5)
        d.history.append(Attempt(T0, "HTTP 500"))
        await store.save_delivery(d)
        assert await store.claim_deliveries(T0 + timedelta(seconds=4), 30, 10) == []
        [again] = await store.claim_deliveries(T0 + timedelta(seconds=5), 30, 10)
        assert (again.attempts, [a.error for a in again.history]) == (1, ["HTTP 500"])

    async def test_a_delivery_changes_only_when_saved(self, store: BusBackend) -> None:
        routed = delivery("d1")
        await route(store, "e1", routed)
        routed.status = "delivered"  # edited after the commit that created it
        [d] = await store.claim_deliveries(T0, 30, 10)
        d.status, d.attempts = "dead", 3
        d.history.append(Attempt(T0, "HTTP 500"))
        assert await store.release_leases() == 1  # the worker died before saving
        [again] = await store.claim_deliveries(T0, 30, 10)
        assert (again.status, again.attempts, again.history) == ("pending", 0, [])
        assert (await store.dead_letters("m1", 10, None))[0] == []

    async def test_delivered_ones_are_done(self, store: BusBackend) -> None:
        await route(store, "e1", delivery("d1"))
        [d] = await store.claim_deliveries(T0, 30, 10)
        d.status = "delivered"
        await store.save_delivery(d)
        assert await store.claim_deliveries(T0 + timedelta(hours=1), 30, 10) == []

    async def test_dead_letters_keep_every_attempt_and_redrive_once(
        self, store: BusBackend
    ) -> None:
        await route(store, "e1", delivery("d1"))
        [d] = await store.claim_deliveries(T0, 30, 10)
        d.status, d.attempts = "dead", 3
        d.history = [Attempt(T0 + timedelta(seconds=i), f"HTTP 50{i}") for i in range(3)]
        await store.save_delivery(d)
        dead, more = await store.dead_letters("m1", 10, None)
        assert [(x.id, x.attempts, len(x.history)) for x in dead] == [("d1", 3, 3)]
        assert not more
        assert (await store.dead_letters("m2", 10, None))[0] == []
        assert not await store.redrive("m2", "d1", T0)
        assert await store.redrive("m1", "d1", T0 + timedelta(minutes=1))
        assert not await store.redrive("m1", "d1", T0 + timedelta(minutes=1))
        [back] = await store.claim_deliveries(T0 + timedelta(minutes=1), 30, 10)
        assert (back.id, back.attempts, back.status) == ("d1", 0, "pending")
        assert [a.error for a in back.history] == ["HTTP 500", "HTTP 501", "HTTP 502"]

    async def test_dead_letters_page_by_last_attempt_newest_first(self, store: BusBackend) -> None:
        targets = [Target(id=f"t{i}", type="builtin", name="analytics") for i in range(3)]
        await route(store, "e1", *(delivery(f"d{i}", target=t) for i, t in enumerate(targets)))
        last_attempt = {"d0": 1, "d1": 3, "d2": 2}
        for d in await store.claim_deliveries(T0, 30, 10):
            d.status, d.attempts = "dead", 1
            d.history = [Attempt(T0 + timedelta(seconds=last_attempt[d.id]), "HTTP 500")]
            await store.save_delivery(d)
        page, more = await store.dead_letters("m1", 2, None)
        assert [d.id for d in page] == ["d1", "d2"] and more
        page, more = await store.dead_letters("m1", 2, "d2")
        assert [d.id for d in page] == ["d0"] and not more

    async def test_dead_letter_depth_counts_the_dead_of_every_merchant_per_target(
        self, store: BusBackend
    ) -> None:
        # Merchants' own targets, each its own id (one delivery per event, rule and target).
        hooks = [Target(id=f"hook{i}", type="http", url="http://127.0.0.1:9/x") for i in range(3)]
        inventory = Target(id="inv", type="http", name="inventory", url="http://127.0.0.1:9/y")
        await route(
            store,
            "e1",
            delivery("a1"),  # built-in: counted by its name
            delivery("a2", target=hooks[0]),  # merchant m1's own HTTP target
            delivery("a3", target=hooks[1]),  # redriven below: no longer dead
            delivery("a4", target=hooks[2]),  # delivered: never dead
        )
        await route(
            store,
            "e2",
            delivery("b1", event_id="e2", merchant="m2"),
            delivery("b2", event_id="e2", target=hooks[0], merchant="m2"),
            replace(
                delivery("b3", event_id="e2", target=inventory, merchant="m2"), default_rule=True
            ),
            delivery("b4", event_id="e2", target=hooks[1], merchant="m2"),  # still pending
        )
        assert await store.dead_letter_depth() == {}
        for d in await store.claim_deliveries(T0, 30, 10):
            if d.id == "b4":
                continue
            d.status, d.attempts = ("delivered", 1) if d.id == "a4" else ("dead", 1)
            d.history = [Attempt(T0, "HTTP 500")]
            await store.save_delivery(d)
        assert await store.redrive("m1", "a3", T0 + timedelta(minutes=1))
        assert await store.dead_letter_depth() == {
            "send_confirmation": 2,  # a1, b1
            "merchant_http": 2,  # a2, b2
            "inventory": 1,  # b3: a default rule's target, by name
        }
        assert await store.redrive("m2", "b2", T0 + timedelta(minutes=1))
        assert (await store.dead_letter_depth())["merchant_http"] == 1

    async def test_events_are_found_by_id(self, store: BusBackend) -> None:
        await route(store, "e1")
        event = await store.get_event("e1")
        assert event is not None and event["detail-type"] == "payment.succeeded"
        assert await store.get_event("nope") is None


class DeliveryRetentionContract:
    """Housekeeping's purge of delivered deliveries (`Store.purge_expired`). A backend whose
    database deletes them itself (DynamoDB's TTL) tests its expiry attribute instead."""

    async def test_delivered_deliveries_past_retention_go_and_nothing_else(
        self, store: BusBackend
    ) -> None:
        hooks = [Target(id=f"hook{i}", type="http", url="http://127.0.0.1:9/x") for i in range(4)]
        await route(store, "e1", *(delivery(f"d{i}", target=hooks[i]) for i in range(4)))
        claimed = {d.id: d for d in await store.claim_deliveries(T0, 30, 10)}
        for did, status, at in (
            ("d0", "delivered", T0),
            ("d1", "delivered", T0 + timedelta(days=10)),  # within the retention
            ("d2", "dead", T0),  # a dead letter waits for a person, however old
        ):
            d = claimed[did]
            d.status = status
            d.history.append(Attempt(at, "HTTP 500" if status == "dead" else ""))
            await store.save_delivery(d)
        # d3 stays pending (its lease ends): never purged either.
        before = T0 + timedelta(days=5)
        purged = await store.purge_expired(before, before, limit=10)
        assert purged.deliveries == 1
        assert (await store.purge_expired(before, before, limit=10)).deliveries == 0
        assert [d.id for d in (await store.dead_letters("m1", 10, None))[0]] == ["d2"]
        assert [d.id for d in await store.claim_deliveries(T0 + timedelta(minutes=1), 30, 10)] == [
            "d3"
        ]


class BusStoreContract(RuleStoreContract, DeliveryStoreContract, DeliveryRetentionContract):
    """The whole BusStore port: what a backend subclasses once."""
