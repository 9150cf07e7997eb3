"""PayPal in the registry: its connector from the process's settings, and its sandbox."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paymesh.connectors.paypal.connector import PayPalConnector, PayPalSettings
from paymesh.connectors.psp_entry import ConnectorSetup, PspEntry, required
from paymesh.sandbox.paypal import PayPalSandbox, PayPalSandboxSettings, SigningIdentity

if TYPE_CHECKING:
    from paymesh.config import Settings
    from paymesh.sandbox.suite import SandboxSecrets

__all__ = ["ENTRY", "trusted_certificate"]

#: Where a `paymesh sandbox` process keeps its webhook certificate, in the data directory's
#: sandbox folder, for the servers sharing that directory.
KEPT_CERTIFICATE = "paypal-webhook-cert.pem"


def trusted_certificate(settings: Settings, built_in: object | None) -> bytes | None:
    """The certificate PayPal webhooks must be signed under: the configured one; the built-in
    sandbox's; or, for a `paymesh sandbox` sharing this data directory, the one it keeps."""
    if settings.paypal_trusted_cert:
        return settings.paypal_trusted_cert.read_bytes()
    if isinstance(built_in, PayPalSandbox):
        return built_in.certificate_pem
    kept = settings.sandbox_dir / KEPT_CERTIFICATE
    if settings.psp_mode("paypal") == "sandbox" and kept.exists():
        return kept.read_bytes()
    return None


def connector(setup: ConnectorSetup) -> PayPalConnector:
    s = setup.settings
    return PayPalConnector(
        PayPalSettings(
            api_base=setup.api_base,
            client_id=required(s.paypal_client_id, "paypal_client_id"),
            client_secret=required(s.paypal_client_secret, "paypal_client_secret"),
            webhook_id=required(s.paypal_webhook_id, "paypal_webhook_id"),
            trusted_cert_pem=trusted_certificate(s, setup.sandbox),
            timeout_seconds=s.psp_timeout,
        ),
        transport=setup.transport,
    )


def sandbox(secrets: SandboxSecrets, webhook_url: str | None) -> PayPalSandbox:
    return PayPalSandbox(
        PayPalSandboxSettings(
            webhook_url=webhook_url,
            webhook_id=secrets.paypal_webhook_id,
            client_id=secrets.paypal_client_id,
            client_secret=secrets.paypal_client_secret,
            signing=SigningIdentity.load_or_create(secrets.paypal_signing_dir),
        )
    )


ENTRY = PspEntry("paypal", connector, sandbox)
