"""Random sequences of API calls against a real server, with the invariants checked after
every step.

A hypothesis state machine creates payments (any test card of the shared vault, any PSP,
manual or automatic capture, fresh or reused idempotency keys), replays them, captures,
cancels and refunds them (partly, wholly, too much), completes 3-D Secure on the sandboxes'
pages (whose outcome reaches paymesh as a genuinely signed webhook), and posts forged and
late webhooks. A model of what must be true predicts each answer; after every step the API
must show:

- amounts: captured <= amount, refunded <= captured, refunds add up;
- statuses: known, consistent with the amounts, and never moving backwards (only along
  the state machine's TRANSITIONS; a retryable failure may start a new attempt);
- idempotency: a replay is the same payment, byte for byte, marked `Idempotent-Replayed`;
  the same key with another request is 422;
- errors: no 5xx, and every 4xx in DESIGN.md's shape.

At the end of each sequence every payment's timeline must be a path of the state machine
ending where the payment is, and the three sandboxes' ledgers must hold exactly one charged
row per charged payment, for the amounts paymesh shows, and none for any other.
Sizes: tests/fuzz/common.py.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from paymesh.config import Settings
from paymesh.connectors.adyen.webhook import sign as adyen_sign
from paymesh.connectors.stripe.webhook import sign as stripe_sign
from paymesh.domain.status import CAPTURED, TRANSITIONS, PaymentStatus
from paymesh.domain.status import reachable as reachable_from
from tests.fuzz.common import (
    PHASES,
    RUNS,
    STEPS,
    assert_error_shape,
    assert_no_server_error,
    describe,
)
from tests.integration.conftest import Server, start

S = PaymentStatus
PSPS = ("stripe", "adyen", "paypal")
APPROVING = ["pm_card_visa", "pm_card_mastercard", "pm_card_amex", "pm_card_visa_debit"]
DECLINING = {
    "pm_card_chargeDeclined": "generic_decline",
    "pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds",
    "pm_card_visa_chargeDeclinedLostCard": "lost_card",
    "pm_card_chargeDeclinedProcessingError": "processing_error",
}
THREE_DS = ["pm_card_threeDSecure2Required", "pm_card_authenticationRequired"]
DISPUTED = "pm_card_createDispute"
CARDS = [*APPROVING, *DECLINING, *THREE_DS, DISPUTED]
#: What may still change without a request: the outcome of a 3-D Secure page, a PayPal
#: order being captured after its approval webhook, a refund's verdict, a dispute.
UNSETTLED = {S.PENDING, S.PROCESSING}

pytestmark = [
    pytest.mark.timeout(300 + RUNS * STEPS),
    # The server runs in a thread of this process and uses `random` (jitter, sandbox faults)
    # while hypothesis draws: hypothesis mistakes that for the strategies using it.
    pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies"),
]


def reachable(start: S) -> set[S]:
    """Every status the state machine can reach from `start` (itself included)."""
    return {start, *reachable_from(start)}


@dataclass
class Tracked:
    """What the model knows of one payment."""

    id: str
    card: str
    capture_method: str
    connector: str
    history: list[S] = field(default_factory=list)
    view: dict[str, Any] = field(default_factory=dict)
    awaiting: str | None = None  # an asynchronous outcome was set off: what it is

    @property
    def status(self) -> S:
        return S(self.view["status"])

    @property
    def retryable_failure(self) -> bool:
        failure = self.view.get("failure") or {}
        return self.status == S.FAILED and bool(failure.get("retryable"))

    @property
    def review_open(self) -> bool:
        return (self.view.get("review") or {}).get("status") == "open"

    @property
    def refundable(self) -> int:
        reserved = sum(r["amount"] for r in self.view["refunds"] if r["status"] == "pending")
        return int(self.view["amount_captured"] - self.view["amount_refunded"] - reserved)


@dataclass(frozen=True)
class Sent:
    """A request made with an idempotency key whose reply paymesh stored."""

    operation: str  # create | capture | refund
    fingerprint: str  # the request, as paymesh compares it
    path: str
    body: dict[str, Any]
    status: int
    content: bytes


def canonical(body: dict[str, Any]) -> str:
    """A create request as paymesh fingerprints it: currency in any case is one currency."""
    return json.dumps({**body, "currency": body["currency"].lower()}, sort_keys=True)


class PaymentsMachine(RuleBasedStateMachine):
    server: Server  # set by the test

    def __init__(self) -> None:
        super().__init__()
        self.http = self.server.client()
        self.started = datetime.now(UTC)
        self.tag = uuid.uuid4().hex[:6]
        self.payments: dict[str, Tracked] = {}
        self.keys: dict[str, Sent] = {}  # explicit Idempotency-Key -> what it stored
        self.orders: dict[tuple[Any, ...], Sent] = {}  # derived keys: (amount, ...) -> stored

    # -- plumbing -------------------------------------------------------------------------

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        r = self.http.request(method, path, json=body, headers=headers)
        assert_no_server_error(r)
        if 400 <= r.status_code < 500 and r.status_code != 402:
            assert_error_shape(r)
        return r

    def refresh(self, tracked: Tracked) -> dict[str, Any]:
        r = self.call("GET", f"/v1/payments/{tracked.id}")
        assert r.status_code == 200, describe(r)
        self.observe(r.json())
        return tracked.view

    def observe(self, view: dict[str, Any]) -> None:
        """Record a payment as the API showed it, checking it against what came before."""
        tracked = self.payments[view["id"]]
        status = S(view["status"])
        if tracked.history and status != tracked.history[-1]:
            last = tracked.history[-1]
            allowed = reachable(last)
            if tracked.retryable_failure and last == S.FAILED:
                allowed |= reachable(S.PENDING)  # a new attempt (payment_retry)
            assert status in allowed, f"{view['id']} moved backwards: {[*tracked.history, status]}"
        if not tracked.history or status != tracked.history[-1]:
            tracked.history.append(status)
        tracked.view = view
        check_payment(view)

    def payment_of(self, data: st.DataObject, *statuses: S) -> Tracked | None:
        pool = [t for t in self.payments.values() if not statuses or t.status in statuses]
        return pick(data, sorted(pool, key=lambda t: t.id), "payment")

    def target(self, data: st.DataObject, *fitting: S) -> Tracked | None:
        """Mostly a payment the operation fits (so sequences go somewhere), else any."""
        fits = data.draw(st.integers(0, 3), label="fitting") > 0
        chosen = self.payment_of(data, *fitting)
        anyone = self.payment_of(data)
        return chosen if fits and chosen is not None else anyone

    def settle(self, tracked: Tracked, within: float = 15.0) -> None:
        """Wait for the asynchronous outcome a step set off (a webhook's, a capture's)."""
        deadline = time.monotonic() + within
        while True:
            view = self.refresh(tracked)
            pending_refund = any(r["status"] == "pending" for r in view["refunds"])
            waiting = {
                "3ds": tracked.status in (S.REQUIRES_ACTION, *UNSETTLED),
                "refund": pending_refund,
                "dispute": tracked.status in (S.SUCCEEDED, S.PARTIALLY_REFUNDED, S.REFUNDED)
                and tracked.card == DISPUTED,
            }.get(tracked.awaiting or "", False) or tracked.status in UNSETTLED
            if not waiting:
                tracked.awaiting = None
                return
            assert time.monotonic() < deadline, (
                f"{tracked.id} still waiting for {tracked.awaiting}: {view}"
            )
            time.sleep(0.05)

    # -- create and replay ----------------------------------------------------------------

    @initialize(data=st.data())
    def first_payments(self, data: st.DataObject) -> None:
        for _ in range(3):
            self.create(data)

    @rule(data=st.data())
    def create(self, data: st.DataObject) -> None:
        card = data.draw(st.sampled_from(CARDS), label="card")
        body: dict[str, Any] = {
            # Within every sandbox's limits (Stripe's: 50 cents to 999,999.99 dollars).
            "amount": data.draw(
                st.sampled_from([100, 999, 2000, 12_345, 99_999_999]) | st.integers(100, 10**7),
                label="amount",
            ),
            "currency": data.draw(
                st.sampled_from(["usd", "USD", "eur", "gbp", "jpy"]), label="currency"
            ),
            # A few returning customers (fraud velocity builds up: reviews, blocks) and new ones.
            "customer_id": data.draw(
                st.sampled_from([f"cus_{self.tag}_{i}" for i in range(4)]), label="customer"
            ).replace("_3", f"_{uuid.uuid4().hex}"),
            "payment_method": card,
        }
        if data.draw(st.booleans(), label="manual"):
            body["capture_method"] = "manual"
        connector = data.draw(st.sampled_from([None, *PSPS]), label="connector")
        if connector:
            body["connector"] = connector
        order = data.draw(st.sampled_from([None, None, "o-1", "o-2"]), label="order")
        if order:
            body["metadata"] = {"order_id": f"{self.tag}-{order}"}
        key = data.draw(st.sampled_from(["none", "new", "reuse"]), label="key")
        reused = pick(data, sorted(self.keys), "reused key")
        headers: dict[str, str] = {}
        if key == "new" or (key == "reuse" and reused is None):
            headers["Idempotency-Key"] = f"k-{uuid.uuid4().hex}"
        elif key == "reuse" and reused is not None:
            headers["Idempotency-Key"] = reused
        self.send_create(body, headers)

    def send_create(self, body: dict[str, Any], headers: dict[str, str]) -> None:
        r = self.call("POST", "/v1/payments", body, headers)
        key = headers.get("Idempotency-Key")
        order = (body.get("metadata") or {}).get("order_id")
        derived = (body["amount"], body["currency"].lower(), body["customer_id"], order)
        earlier = self.keys.get(key) if key else self.orders.get(derived) if order else None
        if earlier is not None:
            if earlier.operation == "create" and earlier.fingerprint == canonical(body):
                self.check_replay(r, earlier)
            else:
                error = assert_error_shape(r, 422)
                assert error["type"] == "idempotency_error", describe(r)
            return
        assert "Idempotent-Replayed" not in r.headers, describe(r)
        view = self.check_created(r, body)
        sent = Sent("create", canonical(body), "/v1/payments", body, r.status_code, r.content)
        if key:
            self.keys[key] = sent
        elif order:
            self.orders[derived] = sent
        tracked = self.payments[view["id"]]
        if tracked.status in UNSETTLED:
            tracked.awaiting = "3ds"
            self.settle(tracked)
        if tracked.card == DISPUTED and tracked.status in (S.SUCCEEDED,):
            # Its dispute webhook follows the capture: a refund racing it may meet either
            # state, so wait for the dispute before any later step.
            tracked.awaiting = "dispute"
            self.settle(tracked)

    def check_created(self, r: httpx.Response, body: dict[str, Any]) -> dict[str, Any]:
        """The first answer to a create: a payment (201) or a decline/block (402)."""
        assert r.status_code in (201, 402), describe(r)
        view: dict[str, Any]
        if r.status_code == 402:
            error = r.json()["error"]
            assert error["type"] in ("card_error", "fraud_error"), describe(r)
            view = error["payment"]
            assert view["id"] == error["payment_id"]
        else:
            view = r.json()
        assert view["id"] not in self.payments, f"a new request returned an old payment {r}"
        connector = view["connector"]
        assert body.get("connector") in (None, connector), describe(r)
        self.payments[view["id"]] = Tracked(
            view["id"], body["payment_method"], body.get("capture_method", "automatic"), connector
        )
        self.observe(view)
        expected = expected_created(body, view)
        assert view["status"] in expected, (
            f"created {body} -> {view['status']}, expected one of {sorted(expected)}\n{describe(r)}"
        )
        assert (view["amount"], view["currency"]) == (body["amount"], body["currency"].lower())
        if view["status"] == S.REQUIRES_ACTION:
            # The customer's page is the sandbox's, on its own loopback port.
            assert view["next_action"]["redirect_url"].startswith(self.server.sandbox_url), view
        return view

    def check_replay(self, r: httpx.Response, earlier: Sent) -> None:
        assert r.headers.get("Idempotent-Replayed") == "true", describe(r)
        assert r.status_code == (200 if earlier.status == 201 else earlier.status), describe(r)
        assert r.content == earlier.content, (
            f"replay differs from the first answer:\n{earlier.content!r}\n{describe(r)}"
        )

    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        key = pick(data, sorted(self.keys), "key")
        other_case = data.draw(st.booleans(), label="other case")
        if key is None:
            return
        earlier = self.keys[key]
        body = earlier.body
        if earlier.operation == "create" and other_case:
            body = {**body, "currency": body["currency"].swapcase()}  # the same request
        r = self.call("POST", earlier.path, body, {"Idempotency-Key": key})
        self.check_replay(r, earlier)

    @rule(data=st.data())
    def reuse_a_key_for_another_request(self, data: st.DataObject) -> None:
        key = pick(data, sorted(self.keys), "key")
        tracked = self.payment_of(data)
        other = data.draw(st.sampled_from(["create", "refunds", "capture"]), label="request")
        if key is None or tracked is None:
            return
        earlier = self.keys[key]
        path, body = {
            "create": ("/v1/payments", {**GOOD_BODY, "amount": 4242}),
            "refunds": (f"/v1/payments/{tracked.id}/refunds", {"amount": 7}),
            "capture": (f"/v1/payments/{tracked.id}/capture", {"amount": 7}),
        }[other]
        if (path, body) == (earlier.path, earlier.body):
            return
        before = self.refresh(tracked)
        r = self.call("POST", path, body, {"Idempotency-Key": key})
        error = assert_error_shape(r, 422)
        assert error["type"] == "idempotency_error", describe(r)
        assert self.refresh(tracked) == before, "a refused request changed the payment"

    # -- capture, cancel, refund ----------------------------------------------------------

    def keyed(self, data: st.DataObject) -> dict[str, str]:
        if data.draw(st.booleans(), label="with a key"):
            return {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}
        return {}

    @rule(data=st.data())
    def capture(self, data: st.DataObject) -> None:
        tracked = self.target(data, S.REQUIRES_CAPTURE)
        amount = data.draw(st.sampled_from([None, "partial", "all", "over"]), label="amount")
        headers = self.keyed(data)
        if tracked is None:
            return
        view = self.refresh(tracked)
        value = {
            None: None,
            "partial": max(1, view["amount"] // 3),
            "all": view["amount"],
            "over": view["amount"] + 1,
        }[amount]
        body = {} if value is None else {"amount": value}
        r = self.call("POST", f"/v1/payments/{tracked.id}/capture", body, headers)
        capturable = tracked.status == S.REQUIRES_CAPTURE and not tracked.review_open
        if not capturable:
            assert_error_shape(r, 409)
        elif amount == "over":
            assert assert_error_shape(r, 400).get("param") == "amount"
        else:
            assert r.status_code == 200, describe(r)
            self.observe(r.json())
            self.settle(tracked)
            captured = view["amount"] if value is None else value
            done = {S.SUCCEEDED, S.DISPUTED} if tracked.card == DISPUTED else {S.SUCCEEDED}
            assert tracked.status in done, f"capture {body} of {view['amount']} -> {tracked.view}"
            assert tracked.view["amount_captured"] == captured, (
                f"capture {body} of {view['amount']} -> {tracked.view}"
            )
            if headers:
                self.keys[headers["Idempotency-Key"]] = Sent(
                    "capture",
                    json.dumps(body),
                    f"/v1/payments/{tracked.id}/capture",
                    body,
                    r.status_code,
                    r.content,
                )
        self.refresh(tracked)

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        tracked = self.target(data, S.REQUIRES_CAPTURE, S.REQUIRES_ACTION)
        headers = self.keyed(data)
        if tracked is None:
            return
        self.refresh(tracked)
        was = tracked.status
        cancelable = was == S.CANCELED or S.CANCELED in TRANSITIONS[was]
        # Between the read above and the cancel, a pending payment's PSP may answer and a
        # retryable failure may be retried (`payment_retry` backs off 2, 4, 8 s): either may
        # land first, and the server then rightly answers from where the payment is.
        moving = was in UNSETTLED or tracked.retryable_failure
        r = self.call("POST", f"/v1/payments/{tracked.id}/cancel", None, headers)
        if r.status_code == 200 and (cancelable or moving):
            self.observe(r.json())  # checks the move from `was` is a forward one
            assert tracked.status == S.CANCELED, describe(r)
            assert not tracked.review_open, "a canceled payment left its review open"
        elif moving and r.status_code == 409:
            error = assert_error_shape(r, 409)
            if error["code"] == "payment_not_ready":  # a new attempt not yet sent: ask again
                assert was == S.PENDING or tracked.retryable_failure, describe(r)
            else:
                assert error["code"] == "payment_unexpected_state", describe(r)
                assert S.CANCELED not in TRANSITIONS[S(error["payment_status"])], describe(r)
            self.refresh(tracked)
        elif cancelable:
            raise AssertionError(f"a {was} payment was not canceled: {describe(r)}")
        else:
            assert_error_shape(r, 409)
            assert self.refresh(tracked)["status"] == was

    @rule(data=st.data())
    def refund(self, data: st.DataObject) -> None:
        tracked = self.target(data, S.SUCCEEDED, S.PARTIALLY_REFUNDED)
        amount = data.draw(
            st.sampled_from([None, "partial", "rest", "over", "one"]), label="amount"
        )
        reason = data.draw(st.booleans(), label="reason")
        headers = self.keyed(data)
        if tracked is None:
            return
        self.settle(tracked)
        view = self.refresh(tracked)
        left = tracked.refundable
        value = {
            None: None,
            "partial": max(1, left // 2),
            "rest": max(1, left),
            "over": left + 1,
            "one": 1,
        }[amount]
        body: dict[str, Any] = {} if value is None else {"amount": value}
        if reason:
            body["reason"] = "requested_by_customer"
        r = self.call("POST", f"/v1/payments/{tracked.id}/refunds", body, headers)
        refundable_status = tracked.status in (S.SUCCEEDED, S.PARTIALLY_REFUNDED, S.REFUNDED)
        if not refundable_status:
            assert_error_shape(r, 409)
        elif left <= 0 or (value is not None and value > left):
            assert assert_error_shape(r, 400).get("param") == "amount", describe(r)
        else:
            assert r.status_code == 201, describe(r)
            made = r.json()
            assert (made["object"], made["payment_id"]) == ("refund", tracked.id)
            assert made["amount"] == (left if value is None else value), describe(r)
            assert made["status"] in ("succeeded", "pending", "failed"), describe(r)
            tracked.awaiting = "refund"
            self.settle(tracked)
            got = self.call("GET", f"/v1/refunds/{made['id']}")
            assert got.status_code == 200 and got.json()["amount"] == made["amount"]
            if headers:
                self.keys[headers["Idempotency-Key"]] = Sent(
                    "refund",
                    json.dumps(body),
                    f"/v1/payments/{tracked.id}/refunds",
                    body,
                    r.status_code,
                    r.content,
                )
        after = self.refresh(tracked)
        if r.status_code != 201:
            assert after["amount_refunded"] == view["amount_refunded"]
            assert len(after["refunds"]) == len(view["refunds"]), "a refused refund was kept"

    # -- the customer's side and the PSPs' ------------------------------------------------

    @rule(data=st.data())
    def complete_three_d_secure(self, data: st.DataObject) -> None:
        tracked = self.payment_of(data, S.REQUIRES_ACTION)
        outcome = data.draw(st.sampled_from(["succeed", "fail"]), label="outcome")
        if tracked is None or self.refresh(tracked)["status"] != S.REQUIRES_ACTION:
            return
        url = tracked.view["next_action"]["redirect_url"]
        page = httpx.get(httpx.URL(url).copy_merge_params({"outcome": outcome}), timeout=20)
        assert page.status_code == 200, describe(page)
        tracked.awaiting = "3ds"
        self.settle(tracked)
        if outcome == "succeed":
            manual = tracked.capture_method == "manual" or tracked.review_open
            expected = {S.REQUIRES_CAPTURE} if manual else {S.SUCCEEDED, S.DISPUTED}
            assert tracked.status in expected, f"3DS passed -> {tracked.view}"
        else:
            assert tracked.status == S.FAILED, f"3DS failed -> {tracked.view}"

    @rule(data=st.data())
    def forged_webhook(self, data: st.DataObject) -> None:
        psp = data.draw(st.sampled_from(PSPS), label="psp")
        tracked = self.payment_of(data)
        before = self.refresh(tracked) if tracked is not None else None
        how = data.draw(st.sampled_from(FORGERIES[psp]), label="forgery")
        body, headers = forged(psp, tracked, how, self.server.settings)
        r = httpx.post(f"{self.server.base}/webhooks/{psp}", content=body, headers=headers)
        error = assert_error_shape(r, 400)
        assert error["code"] == "webhook_signature_invalid", describe(r)
        if tracked is not None and before is not None and not tracked.retryable_failure:
            assert self.refresh(tracked) == before, "a forged webhook changed the payment"

    @rule(data=st.data())
    def late_webhook(self, data: st.DataObject) -> None:
        """A genuinely signed Stripe webhook from an earlier state: applied, never backwards."""
        # Only payments past every state the event could claim: news older than what the
        # PSP already said. (A signed event for a state the PSP never reached is a lie.)
        pool = [
            t
            for t in self.payments.values()
            if t.connector == "stripe"
            and t.view.get("connector_payment_id")
            and not TRANSITIONS[t.status] - {S.PARTIALLY_REFUNDED, S.REFUNDED, S.DISPUTED}
        ]
        tracked = pick(data, sorted(pool, key=lambda t: t.id), "payment")
        status = data.draw(
            st.sampled_from(
                [
                    "requires_action",
                    "processing",
                    "requires_capture",
                    "requires_payment_method",
                    "canceled",
                ]
            ),
            label="stripe status",
        )
        if tracked is None:
            return
        view = self.refresh(tracked)
        if status == view["status"]:
            return  # not late: the same news (a real one would carry its next_action)
        body = json.dumps(
            {
                "id": f"evt_late_{uuid.uuid4().hex}",
                "object": "event",
                "type": f"payment_intent.{status}",
                "created": int(time.time()) - 60,
                "data": {
                    "object": {
                        "id": view["connector_payment_id"],
                        "object": "payment_intent",
                        "status": status,
                        "amount": view["amount"],
                        "currency": view["currency"],
                        "amount_received": 0,
                        "metadata": {"paymesh_payment_id": tracked.id},
                    }
                },
            }
        ).encode()
        secret = self.server.settings.stripe_webhook_secret
        assert secret is not None  # sandbox mode generates every secret
        signature = stripe_sign(body, secret, int(time.time()))
        r = httpx.post(
            f"{self.server.base}/webhooks/stripe",
            content=body,
            headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
        )
        assert r.status_code == 200, describe(r)
        self.refresh(tracked)  # observe() fails if it moved backwards

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def every_payment_holds_together(self) -> None:
        r = self.http.get(
            "/v1/payments", params={"created_gte": self.started.isoformat(), "limit": 100}
        )
        assert_no_server_error(r)
        assert r.status_code == 200, describe(r)
        listed = {p["id"]: p for p in r.json()["data"]}
        mine = {pid: p for pid, p in listed.items() if pid in self.payments}
        assert len(mine) == min(len(self.payments), 100) or r.json()["has_more"]
        for view in mine.values():
            self.observe(view)

    def teardown(self) -> None:
        try:
            if self.payments:
                for tracked in self.payments.values():
                    self.settle(tracked)
                self.check_timelines()
                self.check_ledgers()
        finally:
            self.http.close()

    def check_timelines(self) -> None:
        for tracked in self.payments.values():
            r = self.call("GET", f"/v1/payments/{tracked.id}/events")
            assert r.status_code == 200, describe(r)
            events = r.json()["data"]
            # A payment's events that carry its status (a fraud alert about it carries none),
            # each with the status it announces.
            moves = [e for e in events if "status" in e["detail"]]
            statuses = [S(e["detail"]["status"]) for e in moves]
            assert statuses and statuses[0] == S.PENDING, (tracked.id, statuses)
            for before, after, event in zip(statuses, statuses[1:], moves[1:], strict=False):
                if before == after or after in TRANSITIONS[before]:
                    continue
                retried = (before, after, event["detail-type"]) == (
                    S.FAILED,
                    S.PENDING,
                    "payment.retrying",
                )
                assert retried, f"{tracked.id} timeline jumps {before} -> {after}: {statuses}"
            assert statuses[-1] == tracked.status, (
                f"{tracked.id} is {tracked.status} but its timeline ends {statuses[-1]}"
            )

    def check_ledgers(self) -> None:
        rows: dict[str, list[dict[str, Any]]] = {}
        for psp in PSPS:
            r = httpx.get(f"{self.server.sandbox_url}/sandbox/{psp}/_ledger", timeout=20)
            assert r.status_code == 200, describe(r)
            for row in r.json()["payments"]:
                rows.setdefault(row["reference"] or "", []).append({**row, "psp": psp})
        for tracked in self.payments.values():
            view = tracked.view
            mine = rows.get(tracked.id, [])
            charged = [row for row in mine if row["charged"]]
            if tracked.status == S.BLOCKED:
                assert mine == [], f"{tracked.id} was blocked but reached a PSP: {mine}"
            if tracked.status in CAPTURED:
                assert len(charged) == 1, f"{tracked.id} ({view['status']}): {mine}"
                [row] = charged
                assert row["psp"] == view["connector"], (view, row)
                assert row["amount_captured"] == view["amount_captured"], (view, row)
                if tracked.status != S.DISPUTED:
                    assert row["amount_refunded"] == view["amount_refunded"], (view, row)
            else:
                assert charged == [], f"{tracked.id} is {view['status']} but was charged: {mine}"


T = TypeVar("T")


def pick(data: st.DataObject, items: list[T], label: str) -> T | None:
    """One of `items`, or None; always one draw, so a sequence replays whatever the server
    did meanwhile (a live system is not deterministic: fraud scores, webhooks)."""
    index = data.draw(st.integers(0, 255), label=label)
    return items[index % len(items)] if items else None


GOOD_BODY = {
    "amount": 2000,
    "currency": "usd",
    "customer_id": "cus_fuzz_other",
    "payment_method": "pm_card_visa",
}


def check_payment(view: dict[str, Any]) -> None:
    """What must hold for any payment the API shows, whatever happened before."""
    status = S(view["status"])
    amount, captured, refunded = view["amount"], view["amount_captured"], view["amount_refunded"]
    assert amount > 0, view
    assert 0 <= captured <= amount, f"captured more than the amount: {view}"
    assert 0 <= refunded <= captured, f"refunded more than was captured: {view}"
    done = sum(r["amount"] for r in view["refunds"] if r["status"] == "succeeded")
    held = sum(r["amount"] for r in view["refunds"] if r["status"] in ("succeeded", "pending"))
    assert done == refunded, f"refunds add up to {done}, the payment says {refunded}: {view}"
    assert held <= captured, f"refunds reserve more than was captured: {view}"
    if status in CAPTURED:
        assert captured > 0, view
    else:
        assert captured == 0 and not view["refunds"], f"{status} with money moved: {view}"
    if status == S.REFUNDED:
        assert refunded == captured, view
    if status == S.PARTIALLY_REFUNDED:
        assert 0 < refunded < captured, view
    if status == S.BLOCKED:
        assert view["connector_payment_id"] is None, view
    if (view.get("review") or {}).get("status") == "open":
        assert status == S.REQUIRES_CAPTURE, f"an open review on a {status} payment: {view}"


def expected_created(body: dict[str, Any], view: dict[str, Any]) -> set[str]:
    """The statuses a fresh payment may have, from its card, capture method and fraud verdict."""
    decision = (view.get("fraud") or {}).get("decision")
    if decision == "block":
        return {S.BLOCKED}
    card = body["payment_method"]
    if card in DECLINING:
        return {S.FAILED}
    if card in THREE_DS:
        return {S.REQUIRES_ACTION}
    if body.get("capture_method") == "manual" or decision == "review":
        return {S.REQUIRES_CAPTURE}
    return {S.SUCCEEDED, S.DISPUTED} if card == DISPUTED else {S.SUCCEEDED}


FORGERIES = {
    "stripe": ["none", "garbage", "wrong secret", "stale", "tampered"],
    "adyen": ["none", "wrong key", "tampered"],
    "paypal": ["none", "garbage", "stale"],
}


def forged(
    psp: str, tracked: Tracked | None, how: str, config: Settings
) -> tuple[bytes, dict[str, str]]:
    """A webhook that would move `tracked` forward if it were believed."""
    pid = tracked.id if tracked else f"pay_{uuid.uuid4().hex[:12]}"
    ref = (tracked.view.get("connector_payment_id") if tracked else None) or "ref_forged"
    amount = tracked.view["amount"] if tracked else 100
    now = int(time.time())
    if psp == "stripe":
        body = json.dumps(
            {
                "id": f"evt_forged_{uuid.uuid4().hex}",
                "object": "event",
                "type": "payment_intent.canceled",
                "created": now,
                "data": {
                    "object": {
                        "id": ref,
                        "object": "payment_intent",
                        "status": "canceled",
                        "amount": amount,
                        "metadata": {"paymesh_payment_id": pid},
                    }
                },
            }
        )
        raw = body.encode()
        secret = config.stripe_webhook_secret
        assert secret is not None  # sandbox mode generates every secret
        signature = {
            "none": None,
            "garbage": "t=1,v1=deadbeef",
            "wrong secret": stripe_sign(raw, "whsec_not_ours", now),
            "stale": stripe_sign(raw, secret, now - 3600),
            "tampered": stripe_sign(raw.replace(b"canceled", b"succeeded", 1), secret, now),
        }[how]
        return raw, {} if signature is None else {"Stripe-Signature": signature}
    if psp == "adyen":
        item: dict[str, Any] = {
            "pspReference": f"FORGED{uuid.uuid4().hex[:10].upper()}",
            "originalReference": ref,
            "merchantAccountCode": config.adyen_merchant_account,
            "merchantReference": pid,
            "amount": {"value": amount, "currency": "USD"},
            "eventCode": "CANCELLATION",
            "success": "true",
            "additionalData": {},
        }
        if how == "wrong key":
            item["additionalData"]["hmacSignature"] = "Zm9yZ2Vk"
        elif how == "tampered":
            assert config.adyen_hmac_key is not None  # sandbox mode generates every secret
            key = bytes.fromhex(config.adyen_hmac_key)
            item["additionalData"]["hmacSignature"] = adyen_sign(item, key)
            item["eventCode"] = "CAPTURE"  # changed after signing
        body = json.dumps(
            {"live": "false", "notificationItems": [{"NotificationRequestItem": item}]}
        )
        return body.encode(), {"Content-Type": "application/json"}
    body = json.dumps(
        {
            "id": f"WH-FORGED-{uuid.uuid4().hex}",
            "event_type": "PAYMENT.CAPTURE.COMPLETED",
            "create_time": "2026-01-01T00:00:00Z",
            "resource": {
                "id": "CAP1",
                "status": "COMPLETED",
                "custom_id": pid,
                "amount": {"value": "1.00", "currency_code": "USD"},
                "supplementary_data": {"related_ids": {"order_id": ref}},
            },
        }
    )
    sent = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - (3600 if how == "stale" else 0)))
    headers = (
        {}
        if how == "none"
        else {
            "PAYPAL-TRANSMISSION-ID": str(uuid.uuid4()),
            "PAYPAL-TRANSMISSION-TIME": sent,
            "PAYPAL-TRANSMISSION-SIG": "Zm9yZ2Vk",
            "PAYPAL-CERT-URL": "https://example.invalid/c",
            "PAYPAL-AUTH-ALGO": "SHA256withRSA",
        }
    )
    return body.encode(), headers


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start(tmp_path_factory.mktemp("fuzz-stateful"))


def test_random_sequences_keep_every_invariant(live: Server) -> None:
    machine = type("Machine", (PaymentsMachine,), {"server": live})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=RUNS,
            stateful_step_count=STEPS,
            deadline=None,
            phases=PHASES,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


# -- found by the state machine, pinned so they fail every run until fixed ----------------------


def manual_payment(server: Server, **extra: Any) -> dict[str, Any]:
    with server.client() as http:
        r = http.post(
            "/v1/payments",
            json={
                **GOOD_BODY,
                "customer_id": f"cus_{uuid.uuid4().hex}",
                "capture_method": "manual",
                **extra,
            },
        )
    assert r.status_code == 201, describe(r)
    return dict(r.json())


def test_cancelling_a_canceled_payment_with_a_new_key_answers_the_payment(live: Server) -> None:
    """A cancel retried with its Idempotency-Key after the first answer was lost."""
    pid = manual_payment(live)["id"]
    with live.client() as http:
        assert http.post(f"/v1/payments/{pid}/cancel").json()["status"] == "canceled"
        for _ in range(2):
            r = http.post(f"/v1/payments/{pid}/cancel", headers={"Idempotency-Key": f"c-{pid}"})
            assert r.status_code == 200, describe(r)
            assert r.json()["status"] == "canceled"


def test_cancelling_an_adyen_payment_awaiting_3ds_is_not_a_5xx(live: Server) -> None:
    """requires_action -> canceled is a move of the state machine; the PSP's refusal is not
    'unavailable, retry' (a retry gets the same refusal forever)."""
    p = manual_payment(
        live,
        connector="adyen",
        payment_method="pm_card_threeDSecure2Required",
        capture_method="automatic",
    )
    assert p["status"] == "requires_action"
    with live.client() as http:
        r = http.post(f"/v1/payments/{p['id']}/cancel")
    assert_no_server_error(r)
    if r.status_code != 200:
        assert_error_shape(r, 409)


def test_cancelling_a_payment_its_psp_has_not_answered_is_not_a_500(live: Server) -> None:
    """While the PSP is slow the payment is `pending`, listed, and may be canceled by id."""
    sandbox = f"{live.sandbox_url}/sandbox/stripe/_config"
    assert httpx.put(sandbox, json={"latency_ms": 1500}).status_code == 200
    try:
        with live.client() as http, ThreadPoolExecutor(1) as pool:
            customer = f"cus_{uuid.uuid4().hex}"
            creating = pool.submit(
                http.post,
                "/v1/payments",
                json={**GOOD_BODY, "customer_id": customer, "capture_method": "manual"},
            )
            deadline = time.monotonic() + 5
            listed: list[dict[str, Any]] = []
            while not listed and time.monotonic() < deadline:
                listed = http.get("/v1/payments", params={"customer_id": customer}).json()["data"]
            assert listed and listed[0]["status"] == "pending", listed
            r = http.post(f"/v1/payments/{listed[0]['id']}/cancel")
            creating.result()
    finally:
        httpx.put(sandbox, json={"latency_ms": 0})
    assert_no_server_error(r)
    if r.status_code != 200:
        assert_error_shape(r, 409)
