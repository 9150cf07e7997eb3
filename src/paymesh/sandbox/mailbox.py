"""A local SMTP server (aiosmtpd) on loopback that keeps what it receives: the mail server of
`paymesh demo` and of the confirmation tests when no SMTP server is configured.

Its replies can be scripted: `defer_next(n)` answers the next n recipients with a 4xx (the
mail server is busy: try later), `refuse_all()` every recipient with a 5xx (no such mailbox).
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import socket
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

__all__ = ["Inbox", "smtp_inbox"]


class Inbox:
    def __init__(self) -> None:
        self.port = 0
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []  # (MAIL FROM, RCPT TOs) of each
        self._deferrals = 0
        self._refuse = False
        self._lock = threading.Lock()

    def defer_next(self, count: int) -> None:
        with self._lock:
            self._deferrals = count

    def refuse_all(self) -> None:
        with self._lock:
            self._refuse = True

    def wait_for(self, count: int, seconds: float = 10.0) -> list[EmailMessage]:
        deadline = time.monotonic() + seconds
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.messages)} mails arrived, not {count}")
            time.sleep(0.02)
        return list(self.messages)

    # -- aiosmtpd's handler hooks -----------------------------------------------------------

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        with self._lock:
            if self._refuse:
                return "550 5.1.1 No such user here"
            if self._deferrals:
                self._deferrals -= 1
                return "451 4.3.0 Mail server temporarily busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(message)
        return "250 2.0.0 Message accepted"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def smtp_inbox() -> Iterator[Inbox]:
    """Serve an `Inbox` on a free loopback port (its own thread and loop) while inside."""
    inbox = Inbox()
    inbox.port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()
