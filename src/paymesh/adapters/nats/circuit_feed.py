"""The circuit feed over core NATS: a PSP circuit one process opens or closes, told to every
other process of the deployment.

Plain publish and subscribe, no stream: a circuit's state is worth something for seconds,
so a process that was away has nothing to catch up on, and one that misses a message is
where it would be with no feed (its own failures still open its circuits). A message is a
msgpack array of about 40 bytes: the sending process (a process hears its own messages
too, and skips them), the PSP, and for an opening how long it is open, in seconds from
when it was sent: processes do not share a clock.

Publishing is scheduled on the event loop and never awaited by the caller (the breakers are
fed in the payment path); a publish that fails is dropped and counted. While the
connection is down nats-py keeps what is published in its reconnect buffer.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from paymesh.ports.circuit_feed import CircuitListener

log = logging.getLogger(__name__)


class _Opened(msgspec.Struct, array_like=True, tag="o"):
    origin: str
    psp: str
    seconds: float


class _Closed(msgspec.Struct, array_like=True, tag="c"):
    origin: str
    psp: str


_decoder = msgspec.msgpack.Decoder(_Opened | _Closed)
_encoder = msgspec.msgpack.Encoder()


class NatsCircuitFeed:
    """Implements `paymesh.ports.circuit_feed.CircuitFeed` over a connection it does not own,
    and hands the other processes' messages to `listener` (this process's breakers).
    `published`, `applied` and `dropped` count."""

    def __init__(self, nc: Client, listener: CircuitListener, subject: str) -> None:
        self.nc = nc
        self.listener = listener
        self.subject = subject
        self.origin = uuid.uuid4().hex[:16]
        self.published = self.applied = self.dropped = 0
        self._sub: Any = None
        self._sending: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Subscribe; returns once the server has the subscription."""
        if self._sub is None:
            self._sub = await self.nc.subscribe(self.subject, cb=self._on_message)
            # Twice: nats-py (2.15) queues the SUB for its flusher task but writes flush()'s
            # PING straight to the socket, so the first PONG can come back before the
            # server has read the SUB, and a message published meanwhile never reaches
            # this process. The flusher has written the SUB by the time the first PONG is
            # read; the second PING goes after it.
            await self.nc.flush()
            await self.nc.flush()

    async def close(self) -> None:
        """Unsubscribe and let what is being published go (the connection is the caller's)."""
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
        if self._sub is not None:
            sub, self._sub = self._sub, None
            try:
                await sub.unsubscribe()
            except Exception:  # the connection went first: nothing to undo
                log.debug("circuit feed: unsubscribe after the connection closed")

    def opened(self, psp: str, seconds: float) -> None:
        self._publish(_Opened(self.origin, psp, seconds))

    def closed(self, psp: str) -> None:
        self._publish(_Closed(self.origin, psp))

    def _publish(self, message: _Opened | _Closed) -> None:
        try:
            task = asyncio.get_running_loop().create_task(self._send(_encoder.encode(message)))
        except RuntimeError:  # no loop running (a breaker used outside the server)
            self.dropped += 1
            return
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, payload: bytes) -> None:
        try:
            await self.nc.publish(self.subject, payload)
            self.published += 1
        except Exception as exc:  # never the caller's problem: its own calls still count
            self.dropped += 1
            log.warning("circuit feed: a message was not sent (%s)", type(exc).__name__)

    async def _on_message(self, msg: Msg) -> None:
        try:
            message = _decoder.decode(msg.data)
        except msgspec.DecodeError:
            log.warning("circuit feed: an unreadable message on %s was skipped", self.subject)
            return
        if message.origin == self.origin:
            return
        if isinstance(message, _Opened):
            if message.seconds > 0:
                self.listener.peer_opened(message.psp, min(message.seconds, 3_600.0))
        else:
            self.listener.peer_closed(message.psp)
        self.applied += 1
