"""Adyen in the registry: its connector from the process's settings, and its sandbox."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paymesh.connectors.adyen.connector import AdyenConnector, AdyenSettings
from paymesh.connectors.psp_entry import ConnectorSetup, PspEntry, required
from paymesh.sandbox.adyen import AdyenSandbox, AdyenSandboxSettings

if TYPE_CHECKING:
    from paymesh.sandbox.suite import SandboxSecrets

__all__ = ["ENTRY"]


def connector(setup: ConnectorSetup) -> AdyenConnector:
    s = setup.settings
    return AdyenConnector(
        AdyenSettings(
            api_base=setup.api_base,
            api_key=required(s.adyen_api_key, "adyen_api_key"),
            merchant_account=required(s.adyen_merchant_account, "adyen_merchant_account"),
            hmac_key=required(s.adyen_hmac_key, "adyen_hmac_key"),
            timeout_seconds=s.psp_timeout,
        ),
        transport=setup.transport,
    )


def sandbox(secrets: SandboxSecrets, webhook_url: str | None) -> AdyenSandbox:
    return AdyenSandbox(
        AdyenSandboxSettings(
            webhook_url=webhook_url,
            hmac_key=secrets.adyen_hmac_key,
            merchant_account=secrets.adyen_merchant_account,
        )
    )


ENTRY = PspEntry("adyen", connector, sandbox)
