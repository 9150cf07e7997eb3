"""The local SMTP server the confirmation tests receive mail on (`paymesh.sandbox.mailbox`)."""

from paymesh.sandbox.mailbox import Inbox, smtp_inbox

__all__ = ["Inbox", "smtp_inbox"]
