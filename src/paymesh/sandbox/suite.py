"""The three sandboxes together, as `paymesh serve` mounts them and `paymesh sandbox` runs them.

Each PSP's sandbox is mounted at `/sandbox/{psp}`; webhooks go to `{webhook_base}/webhooks/{psp}`,
signed with the secrets the matching connectors verify with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.routing import Mount

from paymesh.sandbox.adyen import AdyenSandbox, AdyenSandboxSettings
from paymesh.sandbox.paypal import PayPalSandbox, PayPalSandboxSettings, SigningIdentity
from paymesh.sandbox.stripe import StripeSandbox, StripeSandboxSettings

PSPS = ("stripe", "adyen", "paypal")


@dataclass(frozen=True)
class SandboxSecrets:
    stripe_webhook_secret: str
    adyen_hmac_key: str
    adyen_merchant_account: str
    paypal_webhook_id: str
    #: Where the PayPal sandbox keeps its signing key and certificate (made on first use).
    paypal_signing_dir: Path


class SandboxSuite:
    def __init__(self, secrets: SandboxSecrets, webhook_base: str | None,
                 psps: tuple[str, ...] = PSPS) -> None:
        base = webhook_base.rstrip("/") if webhook_base else None

        def url(psp: str) -> str | None:
            return f"{base}/webhooks/{psp}" if base else None

        self.boxes: dict[str, Any] = {}
        if "stripe" in psps:
            self.boxes["stripe"] = StripeSandbox(StripeSandboxSettings(
                webhook_url=url("stripe"), webhook_secret=secrets.stripe_webhook_secret))
        if "adyen" in psps:
            self.boxes["adyen"] = AdyenSandbox(AdyenSandboxSettings(
                webhook_url=url("adyen"), hmac_key=secrets.adyen_hmac_key,
                merchant_account=secrets.adyen_merchant_account))
        if "paypal" in psps:
            self.paypal_signing = SigningIdentity.load_or_create(secrets.paypal_signing_dir)
            self.boxes["paypal"] = PayPalSandbox(PayPalSandboxSettings(
                webhook_url=url("paypal"), webhook_id=secrets.paypal_webhook_id,
                signing=self.paypal_signing))

    def mounts(self) -> list[Mount]:
        return [Mount(f"/sandbox/{psp}", app=box.app) for psp, box in self.boxes.items()]

    async def start(self) -> None:
        for box in self.boxes.values():
            await box.start()

    async def stop(self) -> None:
        for box in self.boxes.values():
            await box.stop()
