"""Stripe in the registry: its connector from the process's settings, and its sandbox."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paymesh.connectors.psp_entry import ConnectorSetup, PspEntry, required
from paymesh.connectors.stripe.connector import StripeConnector, StripeSettings
from paymesh.sandbox.stripe import StripeSandbox, StripeSandboxSettings

if TYPE_CHECKING:
    from paymesh.sandbox.suite import SandboxSecrets

__all__ = ["ENTRY"]


def connector(setup: ConnectorSetup) -> StripeConnector:
    s = setup.settings
    return StripeConnector(
        StripeSettings(
            api_base=setup.api_base,
            secret_key=required(s.stripe_secret_key, "stripe_secret_key"),
            webhook_secret=required(s.stripe_webhook_secret, "stripe_webhook_secret"),
            timeout_seconds=s.psp_timeout,
        ),
        transport=setup.transport,
    )


def sandbox(secrets: SandboxSecrets, webhook_url: str | None) -> StripeSandbox:
    return StripeSandbox(
        StripeSandboxSettings(webhook_url=webhook_url, webhook_secret=secrets.stripe_webhook_secret)
    )


ENTRY = PspEntry("stripe", connector, sandbox)
