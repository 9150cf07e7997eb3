"""Email over SMTP (aiosmtplib): one connection per message.

Confirmations are a few per payment, so a connection per message costs little and leaves no
pooled connection for a mail server to drop between them. SMTP's own reply classes decide
retries: a 4xx reply (mailbox busy, greylisting, server short of space) or no reply at all
(refused, timed out, cut off) may pass later; a 5xx reply (no such mailbox, relaying denied,
bad credentials) will not.
"""

from __future__ import annotations

import asyncio
import email.utils
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage as MimeMessage

import aiosmtplib

from paymesh.ports.notifier import EmailMessage, SendLater, Undeliverable

__all__ = ["SmtpEmailSender", "SmtpSettings"]

SECURITY = ("none", "starttls", "tls")


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    mail_from: str
    #: none: plain (a local relay); starttls: upgrade on the submission port (587); tls:
    #: TLS from the first byte (465).
    security: str = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.security not in SECURITY:
            raise ValueError(f"SMTP security must be one of {', '.join(SECURITY)}")


class SmtpEmailSender:
    """Implements `paymesh.ports.notifier.EmailSender`."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._tls: ssl.SSLContext | None = None

    async def _tls_context(self) -> ssl.SSLContext:
        """The sender's one TLS context, what aiosmtplib makes by default (the system's CAs,
        names checked). aiosmtplib made one per message: reading the CAs cost 25-90 ms of the
        interpreter on the 2-core machine for each confirmation, beside the payments."""
        if self._tls is None:
            self._tls = await asyncio.to_thread(ssl.create_default_context, ssl.Purpose.SERVER_AUTH)
        return self._tls

    def mime(self, message: EmailMessage) -> MimeMessage:
        mime = MimeMessage()
        mime["From"] = self.settings.mail_from
        mime["To"] = message.to
        mime["Subject"] = message.subject
        mime["Message-ID"] = message.message_id
        mime["Date"] = email.utils.formatdate(usegmt=True)
        mime["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to us
        mime.set_content(message.text)
        return mime

    async def send(self, message: EmailMessage) -> None:
        s = self.settings
        with _smtp_errors():
            await aiosmtplib.send(
                self.mime(message),
                hostname=s.host,
                port=s.port,
                username=s.username,
                password=s.password,
                use_tls=s.security == "tls",
                start_tls=s.security == "starttls",
                tls_context=None if s.security == "none" else await self._tls_context(),
                timeout=s.timeout,
            )


@contextmanager
def _smtp_errors() -> Iterator[None]:
    """aiosmtplib's errors as the port's: the reply class decides, and nothing of the OS
    error (which names hosts and addresses) reaches the reason a merchant reads."""
    try:
        yield
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        code = codes[0] if codes else None
        if codes and all(400 <= c < 500 for c in codes):
            raise SendLater(f"recipient deferred ({code})", code) from exc
        raise Undeliverable(f"recipient refused ({code})", code) from exc
    except aiosmtplib.SMTPResponseException as exc:
        # Includes the sender refused, DATA refused and authentication failed.
        if 400 <= exc.code < 500:
            raise SendLater(f"mail server deferred ({exc.code})", exc.code) from exc
        if 500 <= exc.code < 600:
            raise Undeliverable(f"mail server refused ({exc.code})", exc.code) from exc
        raise SendLater(f"mail server answered {exc.code}", exc.code) from exc
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        # Refused, unreachable, timed out, TLS failed, cut off: no answer, maybe later.
        raise SendLater(f"mail server unreachable ({type(exc).__name__})") from exc
