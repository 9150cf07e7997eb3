"""The fraud feed over NATS JetStream: every process's engine learns what the others
scored, and what became of it.

One subject, captured by one stream (limits retention, a few hours of messages). A message is
a msgpack array (a tag, then the fields in order), about 100 bytes; it names the feed that
sent it, because a process also reads its own messages, and its engine has those already.
There is no card number in it: the card is its fingerprint (the payment method id), as in
the engine.

At least once, from the moment the stream has a message:

- a sender keeps a message until the stream acknowledged it, retrying (with one message id
  per message, so a retry after a lost acknowledgement is de-duplicated);
- every process reads the whole stream through a consumer of its own (fan-out, not a shared
  work queue) and acknowledges a batch once its engine applied it. A process that is
  disconnected, or restarted under the same `consumer` name, is handed what was said
  meanwhile, up to the stream's age; one never acknowledged is handed again;
- so an engine may be handed a message twice, and applying one again changes nothing: an
  observation of a transaction the engine already holds is skipped (`FraudEngine.observe`,
  by transaction id while its feedback memory holds it), an outcome already learned is
  (`FraudEngine.feedback`).

What it costs: the stream's storage on the server (about 100 bytes a message for its max
age), a round trip per batch of published messages (off the payment path, concurrently), and
an acknowledgement per batch read. What is still lost: messages queued in a process that
dies before the stream took them, and those dropped when the bounded queue is full during a
long outage (counted in `dropped`): as before, only scores slightly less informed; no money
depends on them.

Late is fine: features are windows over the transactions' own times, not arrival times,
and the windows put a late event in its place (`paymesh.fraud.windows`). After a reconnect
a sender's buffered messages can be minutes late and still count where they belong.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StreamConfig,
)

from paymesh.adapters.nats.bus import ensure_stream
from paymesh.domain.fraud_transaction import Transaction
from paymesh.ports.fraud_feed import FraudLearner

log = logging.getLogger(__name__)

SUBJECT = "paymesh.fraud"


# Positional on the wire. A field added later goes last, with a default: a reader of this
# version ignores trailing fields it does not know, and a newer one defaults a missing one.
class _Observed(msgspec.Struct, array_like=True, tag="o"):
    origin: str
    transaction_id: str
    timestamp: float
    customer_id: str
    amount: int
    currency: str
    score: int
    card_fingerprint: str | None = None
    device_id: str | None = None
    ip_address: str | None = None
    country: str | None = None
    merchant_id: str | None = None
    city: str | None = None
    channel: str | None = None
    approved: bool | None = None
    lat: float | None = None
    lon: float | None = None
    merchant_category: str | None = None

    def transaction(self) -> Transaction:
        return Transaction(
            transaction_id=self.transaction_id,
            timestamp=self.timestamp,
            customer_id=self.customer_id,
            amount=self.amount,
            currency=self.currency,
            card_fingerprint=self.card_fingerprint,
            device_id=self.device_id,
            ip_address=self.ip_address,
            country=self.country,
            city=self.city,
            lat=self.lat,
            lon=self.lon,
            merchant_id=self.merchant_id,
            channel=self.channel,
            approved=self.approved,
            merchant_category=self.merchant_category,
        )


class _Outcome(msgspec.Struct, array_like=True, tag="f"):
    origin: str
    transaction_id: str
    outcome: str
    at: float


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(_Observed | _Outcome).decode


class NatsFraudFeed:
    """Implements `paymesh.ports.fraud_feed.FraudFeed` over a connection it does not own.

    `observed` and `outcome` only queue (bounded; a full queue drops): a task started by
    `start` publishes, so the payment path never waits on NATS. Messages from other processes
    are applied to `engine` on the event loop, where it is scored: it is not thread-safe.
    `published`, `applied` (messages of other feeds given to the engine) and `dropped` count.

    `consumer` names this process's place in the stream: a process started again under the
    same name resumes where the last one stopped. Without one, each feed reads from when it
    first starts. A consumer no one reads for `max_age_seconds` is removed by the server.
    """

    def __init__(
        self,
        nc: Client,
        engine: FraudLearner,
        subject: str = SUBJECT,
        max_queued: int = 10_000,
        consumer: str | None = None,
        max_age_seconds: float = 3 * 3600.0,
        ack_wait_seconds: float = 30.0,
        retry_seconds: float = 1.0,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.engine = engine
        self.subject = subject
        self.stream = subject.upper().replace(".", "_").replace("*", "_").replace(">", "_")
        self.origin = uuid.uuid4().hex[:16]
        self.consumer = consumer or f"fraud-{self.origin}"
        self.max_age = max_age_seconds
        self.ack_wait = ack_wait_seconds
        self.retry_seconds = retry_seconds
        self.published = self.applied = self.dropped = 0
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(max_queued)
        self._ids = itertools.count()
        self._sub: Any = None
        self._sender: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._failing = False
        self._unreadable_logged = False
        #: Cleared by `close`: the reader ends at its next turn even if its cancel is lost.
        self._reading = False

    async def start(self) -> None:
        """Make the stream and this process's consumer (if absent) and start reading and
        publishing. Returns once the consumer exists: from then on this engine hears what
        the others say, even while it is not connected."""
        if self._sub is not None:
            return
        await self._ensure_stream()
        self._sub = await self.js.pull_subscribe(
            self.subject,
            durable=self.consumer,
            stream=self.stream,
            config=ConsumerConfig(
                durable_name=self.consumer,
                deliver_policy=DeliverPolicy.NEW,
                # One ack per batch: the engine applies a batch in order, so acking its last
                # message acknowledges every one before it.
                ack_policy=AckPolicy.ALL,
                ack_wait=self.ack_wait,
                max_deliver=-1,
                max_ack_pending=20_000,
                inactive_threshold=self.max_age,
            ),
        )
        loop = asyncio.get_running_loop()
        self._reading = True
        self._sender = loop.create_task(self._send_queued(), name="fraud-feed-send")
        self._reader = loop.create_task(self._read(self._sub), name="fraud-feed-read")

    async def _ensure_stream(self) -> None:
        config = StreamConfig(
            name=self.stream,
            subjects=[self.subject],
            retention=RetentionPolicy.LIMITS,
            discard=DiscardPolicy.OLD,
            max_age=self.max_age,
            duplicate_window=120.0,
        )
        await ensure_stream(self.js, config)

    async def flush(self, within: float = 2.0) -> None:
        """Wait until the stream holds what was said so far (tests; shutdown).

        Raises TimeoutError after `within` seconds.
        """
        async with asyncio.timeout(within):
            await self._queue.join()

    async def close(self, within: float = 2.0) -> None:
        """Stop reading (the consumer stays, for the next process of its name), then send
        what is still queued (for up to `within` seconds). Call it before closing the
        connection: that is the caller's, and this leaves it open."""
        sender, reader, self._sender, self._reader = self._sender, self._reader, None, None
        # The reader waits in nats-py's fetch, whose `asyncio.wait_for` (Python 3.11) can lose
        # a cancel that lands as messages arrive; it would then read on, and the wait below
        # would last until the caller closed the connection, which it does after this.
        self._reading = False
        if reader is not None:
            reader.cancel()
        if sender is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within):
                    await self._queue.join()
            sender.cancel()
        await asyncio.gather(*(t for t in (sender, reader) if t), return_exceptions=True)
        if self._sub is not None:
            sub, self._sub = self._sub, None
            with contextlib.suppress(NatsError):  # the connection went first: nothing to undo
                await sub.unsubscribe()

    def observed(self, txn: Transaction, score: int) -> None:
        try:
            self._queue.put_nowait(
                _encode(
                    _Observed(
                        self.origin,
                        txn.transaction_id,
                        txn.timestamp,
                        txn.customer_id,
                        txn.amount,
                        txn.currency,
                        score,
                        txn.card_fingerprint,
                        txn.device_id,
                        txn.ip_address,
                        txn.country,
                        txn.merchant_id,
                        txn.city,
                        txn.channel,
                        txn.approved,
                        txn.lat,
                        txn.lon,
                        txn.merchant_category,
                    )
                )
            )
        except asyncio.QueueFull:
            self._lost("the publish queue is full")
        except Exception as exc:  # in the payment path: nothing may come out of here
            self._lost(repr(exc))

    def outcome(self, transaction_id: str, outcome: str, at: float) -> None:
        try:
            self._queue.put_nowait(_encode(_Outcome(self.origin, transaction_id, outcome, at)))
        except asyncio.QueueFull:
            self._lost("the publish queue is full")
        except Exception as exc:
            self._lost(repr(exc))

    def _lost(self, why: str) -> None:
        self.dropped += 1
        if not self._failing:  # once per outage, not once per payment
            self._failing = True
            log.warning(
                "fraud feed: dropping messages (%s); other processes' scores are "
                "less informed until it recovers",
                why,
            )

    async def _send_queued(self, batch: int = 256) -> None:
        """Publish what is queued, a batch at a time, concurrently; a message leaves the
        queue (`task_done`) once the stream acknowledged it, and is retried until then."""
        queue = self._queue
        while True:
            pending = [(await queue.get(), next(self._ids))]
            while len(pending) < batch and not queue.empty():
                pending.append((queue.get_nowait(), next(self._ids)))
            while pending:
                results = await asyncio.gather(
                    *(
                        self.js.publish(
                            self.subject, data, headers={"Nats-Msg-Id": f"{self.origin}:{n}"}
                        )
                        for data, n in pending
                    ),
                    return_exceptions=True,
                )
                failed = [
                    p for p, r in zip(pending, results, strict=True) if isinstance(r, BaseException)
                ]
                for _ in range(len(pending) - len(failed)):
                    queue.task_done()
                self.published += len(pending) - len(failed)
                if failed and not self._failing:
                    self._failing = True
                    log.warning(
                        "fraud feed: the stream did not take %d messages (%r); retrying",
                        len(failed),
                        next(r for r in results if isinstance(r, BaseException)),
                    )
                elif not failed and self._failing:
                    self._failing = False
                    log.info(
                        "fraud feed: publishing again (%d messages dropped so far)", self.dropped
                    )
                pending = failed
                if pending and self.nc.is_closed:  # never coming back: no one to retry on
                    for _ in pending:
                        self._lost("the connection is closed")
                        queue.task_done()
                    pending = []
                if pending:
                    await asyncio.sleep(self.retry_seconds)

    async def _read(self, sub: Any) -> None:
        while self._reading:  # until `close` cancels it, or at the latest its next turn
            try:
                msgs: list[Msg] = await sub.fetch(256, timeout=1.0)
            except (NatsTimeout, TimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception:
                if self.nc.is_closed or not self._reading:  # closed: nothing more to read
                    return
                log.exception("fraud feed: fetch failed; retrying")
                await asyncio.sleep(self.retry_seconds)
                continue
            for msg in msgs:
                self._apply(msg)
            # Applied, so acknowledged: a process that dies before this is handed the batch
            # again, and its engine skips what it already learned.
            if msgs:
                with contextlib.suppress(Exception):
                    await msgs[-1].ack()

    def _apply(self, msg: Msg) -> None:
        try:
            message = _decode(msg.data)
        except msgspec.DecodeError as exc:
            if not self._unreadable_logged:  # another version, mid-deploy: once is enough
                self._unreadable_logged = True
                log.warning(
                    "fraud feed: skipping messages it cannot read on %s (%s)", msg.subject, exc
                )
            return
        if message.origin == self.origin:
            return
        try:
            if isinstance(message, _Observed):
                self.engine.observe(message.transaction(), message.score)
            else:
                self.engine.feedback(message.transaction_id, message.outcome, message.at)
        except Exception:  # one bad message must not end the subscription
            log.exception("fraud feed: could not apply a message from %s", message.origin)
            return
        self.applied += 1
