"""Settings: command-line flags over PAYMESH_* environment variables over defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from paymesh.sandbox.suite import SandboxSecrets


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"PAYMESH_{name}", default)


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database: str | None = None  # sqlite:///path; default <data_dir>/paymesh.db
    host: str = "127.0.0.1"
    port: int = 8080
    stripe_api_base: str | None = None  # None: the built-in sandbox
    stripe_secret_key: str = "sk_test_paymesh_sandbox"  # noqa: S105 (sandbox only)
    stripe_webhook_secret: str = "whsec_paymesh_sandbox"  # noqa: S105
    adyen_api_base: str | None = None  # None: the built-in sandbox
    adyen_api_key: str = "AQE_paymesh_sandbox"
    adyen_merchant_account: str = "PaymeshSandbox"
    adyen_hmac_key: str = "08F2B4BA0114B680CB076A045C13272D1648E9661DC35E048F6989506280F155"
    paypal_api_base: str | None = None  # None: the built-in sandbox
    paypal_client_id: str = "paymesh-sandbox-client"
    paypal_client_secret: str = "paymesh-sandbox-secret"  # noqa: S105 (sandbox only)
    paypal_webhook_id: str = "WH-PAYMESH-SANDBOX"
    #: PEM file of the certificate PayPal webhooks must be signed under; None with the
    #: built-in sandbox means its own (kept in <data_dir>/sandbox).
    paypal_trusted_cert: Path | None = None
    rate_limit: float = 100.0  # requests per second per API key; 0 turns it off
    psp_timeout: float = 10.0
    recovery_interval: float = 30.0  # seconds between recovery passes
    recovery_grace: float = 90.0  # seconds a payment is left to its live request first
    bus_retry_base: float = 1.0  # seconds; the first retry waits up to this, then doubles
    inventory_url: str | None = None  # update_inventory posts payment.succeeded here
    fraud_rules: Path | None = None  # a fraud rules file (JSON); None: the packaged defaults
    #: nats://host:port: the event bus on NATS JetStream (scale-out, with PostgreSQL); None:
    #: the bus in the database, dispatched by the server itself.
    bus: str | None = None
    nats_prefix: str = "paymesh"  # stream and consumer names; deployments sharing a server
    #: Seconds a dead worker's unacknowledged deliveries wait before another worker takes them.
    nats_ack_wait: float = 60.0

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "data_dir": Path(_env("DATA_DIR", "paymesh-data") or "paymesh-data"),
            "database": _env("DATABASE"),
            "stripe_api_base": _env("STRIPE_API_BASE"),
            "stripe_secret_key": _env("STRIPE_SECRET_KEY", cls.stripe_secret_key),
            "stripe_webhook_secret": _env("STRIPE_WEBHOOK_SECRET", cls.stripe_webhook_secret),
            "adyen_api_base": _env("ADYEN_API_BASE"),
            "adyen_api_key": _env("ADYEN_API_KEY", cls.adyen_api_key),
            "adyen_merchant_account": _env("ADYEN_MERCHANT_ACCOUNT", cls.adyen_merchant_account),
            "adyen_hmac_key": _env("ADYEN_HMAC_KEY", cls.adyen_hmac_key),
            "paypal_api_base": _env("PAYPAL_API_BASE"),
            "paypal_client_id": _env("PAYPAL_CLIENT_ID", cls.paypal_client_id),
            "paypal_client_secret": _env("PAYPAL_CLIENT_SECRET", cls.paypal_client_secret),
            "paypal_webhook_id": _env("PAYPAL_WEBHOOK_ID", cls.paypal_webhook_id),
            "paypal_trusted_cert": _env("PAYPAL_TRUSTED_CERT"),
            "rate_limit": float(_env("RATE_LIMIT", str(cls.rate_limit)) or 0),
            "psp_timeout": float(_env("PSP_TIMEOUT", str(cls.psp_timeout)) or 10),
            "recovery_interval": float(_env("RECOVERY_INTERVAL", "30") or 30),
            "recovery_grace": float(_env("RECOVERY_GRACE", "90") or 90),
            "bus_retry_base": float(_env("BUS_RETRY_BASE", str(cls.bus_retry_base)) or 1),
            "inventory_url": _env("INVENTORY_URL"),
            "fraud_rules": _env("FRAUD_RULES"),
            "bus": _env("BUS"),
            "nats_prefix": _env("NATS_PREFIX", cls.nats_prefix),
            "nats_ack_wait": float(_env("NATS_ACK_WAIT", str(cls.nats_ack_wait)) or 60),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        for name in ("data_dir", "fraud_rules", "paypal_trusted_cert"):
            value = values[name]
            if isinstance(value, str):
                values[name] = Path(value)
        settings = cls(**values)  # type: ignore[arg-type]
        if settings.bus is not None:
            if not settings.bus.startswith(("nats://", "tls://")):
                raise ValueError(f"unsupported bus URL {settings.bus!r}: use nats://HOST:PORT")
            if not settings.uses_postgres:
                # Many processes on one bus need one shared database; SQLite is one process.
                raise ValueError("the NATS bus is for scale-out: it needs "
                                 "--database postgresql://...")
        return settings

    @property
    def uses_postgres(self) -> bool:
        return bool(self.database) and str(self.database).startswith(
            ("postgresql://", "postgres://"))

    @property
    def uses_nats(self) -> bool:
        return self.bus is not None

    @property
    def sqlite_path(self) -> Path:
        if self.database:
            if not self.database.startswith("sqlite:///"):
                raise ValueError(f"unsupported database URL {self.database!r}: use "
                                 "sqlite:///PATH or postgresql://...")
            return Path(self.database.removeprefix("sqlite:///"))
        return self.data_dir / "paymesh.db"

    @property
    def sandboxed_psps(self) -> tuple[str, ...]:
        """The PSPs served by the built-in sandbox: those with no API base configured."""
        bases = {"stripe": self.stripe_api_base, "adyen": self.adyen_api_base,
                 "paypal": self.paypal_api_base}
        return tuple(psp for psp, base in bases.items() if base is None)

    @property
    def uses_sandbox(self) -> bool:
        return bool(self.sandboxed_psps)

    @property
    def sandbox_secrets(self) -> SandboxSecrets:
        from paymesh.sandbox.suite import SandboxSecrets

        return SandboxSecrets(
            stripe_webhook_secret=self.stripe_webhook_secret, adyen_hmac_key=self.adyen_hmac_key,
            adyen_merchant_account=self.adyen_merchant_account,
            paypal_webhook_id=self.paypal_webhook_id,
            paypal_signing_dir=self.data_dir / "sandbox")

    @property
    def self_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"
