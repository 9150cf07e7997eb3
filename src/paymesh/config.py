"""Settings: command-line flags over PAYMESH_* environment variables over defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


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
    rate_limit: float = 100.0  # requests per second per API key; 0 turns it off
    psp_timeout: float = 10.0
    bus_retry_base: float = 1.0  # seconds; the first retry waits up to this, then doubles
    inventory_url: str | None = None  # update_inventory posts payment.succeeded here

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "data_dir": Path(_env("DATA_DIR", "paymesh-data") or "paymesh-data"),
            "database": _env("DATABASE"),
            "stripe_api_base": _env("STRIPE_API_BASE"),
            "stripe_secret_key": _env("STRIPE_SECRET_KEY", cls.stripe_secret_key),
            "stripe_webhook_secret": _env("STRIPE_WEBHOOK_SECRET", cls.stripe_webhook_secret),
            "rate_limit": float(_env("RATE_LIMIT", str(cls.rate_limit)) or 0),
            "psp_timeout": float(_env("PSP_TIMEOUT", str(cls.psp_timeout)) or 10),
            "bus_retry_base": float(_env("BUS_RETRY_BASE", str(cls.bus_retry_base)) or 1),
            "inventory_url": _env("INVENTORY_URL"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        if isinstance(values["data_dir"], str):
            values["data_dir"] = Path(values["data_dir"])
        return cls(**values)  # type: ignore[arg-type]

    @property
    def sqlite_path(self) -> Path:
        if self.database:
            if not self.database.startswith("sqlite:///"):
                raise ValueError(f"unsupported database URL {self.database!r}: this build "
                                 "supports sqlite:///PATH")
            return Path(self.database.removeprefix("sqlite:///"))
        return self.data_dir / "paymesh.db"

    @property
    def uses_sandbox(self) -> bool:
        return self.stripe_api_base is None

    @property
    def self_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"
