"""What one arrival does, and how each answer is judged.

The arrival's first request is timed from its scheduled (due) time; a follow-up (the 3-D
Secure page, a capture, a refund) leaves as soon as the answer before it is in, and is timed
from then. Answers that are right but not successes are outcomes, not errors: a decline on
a declining card, a fraud block (402 `fraud_error`), a fraud review hold. Everything else
unexpected is an error, by operation and kind (`create 500 api_error`, `TimeoutError`).
"""

from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import msgspec

from .clients import Answer, LoadClient, RequestSpec
from .receiver import ConfirmationReceiver
from .stats import PhaseStats
from .workload import CONFIRMED_FLOWS, Arrival, Workload

#: The payment status each flow's create should answer with.
EXPECTED_STATUS = {
    "success": "succeeded",
    "refund": "succeeded",
    "decline": "declined",
    "threeds": "requires_action",
    "manual": "requires_capture",
}
_decode = msgspec.json.Decoder().decode


@dataclass(frozen=True, slots=True)
class Replayable:
    spec: RequestSpec
    status: int


@dataclass(frozen=True, slots=True)
class Succeeded:
    """A payment the client saw succeed: its confirmation is read back after the phase."""

    payment_id: str
    flow: str
    due_offset: float  # seconds from the phase's t0
    due_wall: float  # time.time() of its due time


class FlowRunner:
    """Runs arrivals against one phase's stats; shared state (replays) lives across phases."""

    def __init__(
        self,
        client: LoadClient,
        stats: PhaseStats,
        workload: Workload | None,
        receiver: ConfirmationReceiver | None,
        replayable: deque[Replayable],
        late_after: float,
        rng: random.Random,
    ) -> None:
        self._client = client
        self._stats = stats
        self._workload = workload
        self._receiver = receiver
        self._replayable = replayable
        self._late_after = late_after
        self._rng = rng
        self._injected = (stats.injected_ms or 0.0) / 1000
        self.succeeded: list[Succeeded] = []

    async def run(self, arrival: Arrival, due: float) -> None:
        stats = self._stats
        lag = time.perf_counter() - due
        stats.send_lags.append(lag)
        if lag > self._late_after:
            stats.late += 1
        try:
            if arrival.flow == "healthz":
                assert arrival.create is not None
                answer = await self._send("healthz", arrival.create, due)
                if answer is not None and answer[0].status != 200:
                    stats.errors[f"healthz {answer[0].status}"] += 1
            elif arrival.flow == "replay":
                await self._replay(due)
            else:
                await self._payment(arrival, due)
        finally:
            stats.finished += 1

    async def _send(
        self, op: str, spec: RequestSpec, due: float, origin: float | None = None
    ) -> tuple[Answer, float] | None:
        """Sends; latency from `due` (now, for a follow-up of the arrival due at `origin`)."""
        try:
            answer = await self._client.send(spec)
        except Exception as exc:  # every failure is a data point, none may stop the run
            self._stats.errors[f"{op} {type(exc).__name__}"] += 1
            return None
        done = time.perf_counter()
        latency = self._stats.answered(op, due, done, due if origin is None else origin)
        self._stats.statuses[f"{op} {answer.status}"] += 1
        return answer, latency

    # -- payments -----------------------------------------------------------------------

    async def _payment(self, arrival: Arrival, due: float) -> None:
        stats = self._stats
        assert arrival.create is not None and arrival.order_id is not None
        if self._receiver is not None and arrival.flow in CONFIRMED_FLOWS:
            # Before sending: the confirmation may arrive before the answer does.
            assert self._receiver is not None
            self._receiver.expect(arrival.order_id, stats, due)
        sent = await self._send("create", arrival.create, due)
        if sent is None:
            return
        answer, latency = sent
        status, payment = _classify(answer)
        if status == "error":
            stats.errors[f"create {_describe(answer)}"] += 1
            return
        stats.payments += 1
        if status != "blocked":  # a blocked payment never reached a PSP
            stats.overhead.append(latency - self._injected)
        if status in ("blocked", "review", "pending", "processing"):
            # Fraud said no or hold; or the PSP answer is not final yet (a webhook will say).
            stats.outcomes[status] += 1
            return
        if status != EXPECTED_STATUS[arrival.flow]:
            stats.errors[f"create {answer.status} {status} ({arrival.flow})"] += 1
            return
        stats.outcomes[status] += 1
        if status in ("succeeded", "declined"):
            # Replayed, a 201 comes back as 200 (nothing was created); a 402 stays a 402.
            again = 200 if answer.status == 201 else answer.status
            self._replayable.append(Replayable(arrival.create, again))
        if status == "succeeded":
            self._succeeded(payment, due, arrival.flow)
            if arrival.flow == "refund":
                await self._refund(payment, arrival.amount, due)
        elif status == "requires_action":
            await self._three_d_secure(payment, due)
        elif status == "requires_capture":
            await self._capture(payment, due)

    def _succeeded(self, payment: dict[str, Any], due: float, flow: str) -> None:
        stats = self._stats
        stats.succeeded += 1
        stats.e2e_expected += 1
        offset = due - stats.t0
        self.succeeded.append(Succeeded(payment["id"], flow, offset, stats.t0_wall + offset))

    async def _three_d_secure(self, payment: dict[str, Any], due: float) -> None:
        url = (payment.get("next_action") or {}).get("redirect_url")
        if not isinstance(url, str):
            self._stats.errors["create requires_action without redirect_url"] += 1
            return
        # The customer passes the challenge; the PSP's webhook then makes it succeeded.
        page = RequestSpec("GET", url + ("&" if "?" in url else "?") + "outcome=succeed", {})
        sent = await self._send("threeds_page", page, time.perf_counter(), due)
        if sent is None:
            return
        if sent[0].status >= 400:
            self._stats.errors[f"threeds_page {sent[0].status}"] += 1
            return
        self._stats.outcomes["3ds_completed"] += 1
        self._succeeded(payment, due, "threeds")

    async def _capture(self, payment: dict[str, Any], due: float) -> None:
        assert self._workload is not None
        spec = RequestSpec(
            "POST", f"/v1/payments/{payment['id']}/capture", self._workload.headers(body=False)
        )
        sent = await self._send("capture", spec, time.perf_counter(), due)
        if sent is None:
            return
        status, captured = _classify(sent[0])
        if sent[0].status != 200 or status != "succeeded":
            self._stats.errors[f"capture {_describe(sent[0])}"] += 1
            return
        self._stats.outcomes["captured"] += 1
        self._succeeded(captured, due, "manual")

    async def _refund(self, payment: dict[str, Any], amount: int, due: float) -> None:
        assert self._workload is not None
        # Half the time all of it (no amount), else half.
        body = b"{}" if self._rng.random() < 0.5 else b'{"amount": %d}' % max(1, amount // 2)
        spec = RequestSpec(
            "POST", f"/v1/payments/{payment['id']}/refunds", self._workload.headers(), body
        )
        sent = await self._send("refund", spec, time.perf_counter(), due)
        if sent is None:
            return
        if sent[0].status != 201:
            self._stats.errors[f"refund {_describe(sent[0])}"] += 1
            return
        self._stats.outcomes["refunded"] += 1

    async def _replay(self, due: float) -> None:
        if not self._replayable:
            self._stats.outcomes["replay_skipped"] += 1  # nothing answered yet to replay
            return
        original = self._replayable[self._rng.randrange(len(self._replayable))]
        sent = await self._send("replay", original.spec, due)
        if sent is None:
            return
        answer = sent[0]
        if answer.status != original.status or not answer.replayed:
            kind = "not marked replayed" if answer.status == original.status else _describe(answer)
            self._stats.errors[f"replay {kind}"] += 1
            return
        self._stats.outcomes["replayed"] += 1


def _classify(answer: Answer) -> tuple[str, dict[str, Any]]:
    """(what the answer means, the payment in it): a payment status, `declined`, `blocked`,
    `review` (authorised and held for a person), or `error`."""
    try:
        body = _decode(answer.body)
    except msgspec.DecodeError:
        return "error", {}
    if not isinstance(body, dict):
        return "error", {}
    if answer.status in (200, 201):
        review = (body.get("fraud") or {}).get("decision") == "review"
        status = body.get("status")
        if review and status == "requires_capture":
            return "review", body
        return (status if isinstance(status, str) else "error"), body
    if answer.status == 402:
        kind = (body.get("error") or {}).get("type")
        if kind == "card_error":
            return "declined", body
        if kind == "fraud_error":
            return "blocked", body
    return "error", body


def _describe(answer: Answer) -> str:
    """`402 fraud_error` says more than `402`; only parsed off the success path."""
    try:
        kind = _decode(answer.body)["error"]["type"]
    except (msgspec.DecodeError, KeyError, TypeError):
        return str(answer.status)
    return f"{answer.status} {kind}"
