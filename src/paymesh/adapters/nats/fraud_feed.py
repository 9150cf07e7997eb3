"""The fraud feed over NATS core pub/sub: every process's engine learns what the others
scored, and what became of it.

One subject. A message is a msgpack array (a tag, then the fields in order), about 100 bytes;
it names the feed that sent it, because a subscriber also receives its own messages, and its
engine has those already. There is no card number in it: the card is its fingerprint (the
payment method id), as in the engine.

At most once, on purpose: core NATS keeps nothing, so a process that is disconnected or not
yet subscribed misses what is said meanwhile, and a full buffer drops. A lost message only
makes scores slightly less informed (one payment fewer in another process's velocity
counts, a decline not counted there), the same trade the feature checkpoint makes; no money
depends on it, and JetStream's acknowledgements would cost every payment more than that.

Late is fine: features are windows over the transactions' own times, not arrival times,
and the windows put a late event in its place (`paymesh.fraud.windows`). After a reconnect
a sender's buffered messages can be minutes late and still count where they belong.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError

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
    """

    def __init__(
        self, nc: Client, engine: FraudLearner, subject: str = SUBJECT, max_queued: int = 10_000
    ) -> None:
        self.nc = nc
        self.engine = engine
        self.subject = subject
        self.origin = uuid.uuid4().hex[:16]
        self.published = self.applied = self.dropped = 0
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(max_queued)
        self._sub: Subscription | None = None
        self._sender: asyncio.Task[None] | None = None
        self._failing = False
        self._unreadable_logged = False

    async def start(self) -> None:
        """Subscribe and start publishing. Returns once the server has the subscription:
        from then on this engine hears what the others say."""
        if self._sub is not None:
            return
        self._sub = await self.nc.subscribe(self.subject, cb=self._receive)
        self._sender = asyncio.get_running_loop().create_task(
            self._send_queued(), name="fraud-feed"
        )
        await self._sync()

    async def flush(self, within: float = 2.0) -> None:
        """Wait until what was said so far has reached the server (tests; shutdown).

        Raises TimeoutError after `within` seconds.
        """
        async with asyncio.timeout(within):
            await self._queue.join()
            await self._sync()

    async def close(self, within: float = 2.0) -> None:
        """Unsubscribe, then send what is still queued (for up to `within` seconds). Call it
        before closing the connection: that is the caller's, and this leaves it open."""
        if self._sub is not None:
            sub, self._sub = self._sub, None
            with contextlib.suppress(NatsError):  # the connection went first: nothing to undo
                await sub.unsubscribe()
        if self._sender is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within):
                    await self._queue.join()
            sender, self._sender = self._sender, None
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    async def _sync(self) -> None:
        # nats-py (2.15) writes a flush's PING ahead of the commands still queued for its
        # writer task, so the first PONG can come back before they reached the server. They
        # are written by then, and the second PING goes out behind them.
        await self.nc.flush()
        await self.nc.flush()

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

    async def _send_queued(self) -> None:
        queue = self._queue
        while True:
            data = await queue.get()
            try:
                # Buffered by the client (also while it reconnects, up to its pending size).
                await self.nc.publish(self.subject, data)
            except Exception as exc:
                self._lost(repr(exc))
            else:
                self.published += 1
                if self._failing:
                    self._failing = False
                    log.info(
                        "fraud feed: publishing again (%d messages dropped so far)", self.dropped
                    )
            finally:
                queue.task_done()

    async def _receive(self, msg: Msg) -> None:
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
