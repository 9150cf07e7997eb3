"""Customer confirmations leaving paymesh: email over SMTP, SMS through Twilio's Messages API,
and the templates both are rendered from (`paymesh.ports.notifier`)."""

from paymesh.adapters.notify.smtp import SmtpEmailSender, SmtpSettings
from paymesh.adapters.notify.templates import JinjaTemplates
from paymesh.adapters.notify.twilio import TWILIO_API_BASE, TwilioSmsSender

__all__ = [
    "TWILIO_API_BASE",
    "JinjaTemplates",
    "SmtpEmailSender",
    "SmtpSettings",
    "TwilioSmsSender",
]
