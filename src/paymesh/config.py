"""Settings: command-line flags over PAYMESH_* environment variables over defaults.

Two modes (`PAYMESH_MODE`):

- `sandbox` (the default): every PSP is a sandbox. Without an API base it is the built-in one,
  which `paymesh serve` runs on its own loopback listener; with one it is a `paymesh sandbox`
  process. Secrets not given are generated once per data directory (`<data_dir>/sandbox/
  secrets.json`, owner-only), so no secret is compiled into the program.
- `live`: a PSP is used only with its real credentials and webhook secret; a PSP without
  them is disabled, never faked. A built-in, generated or missing secret refuses the start.
  Running some PSPs as sandboxes beside live ones needs `PAYMESH_SANDBOX_PSPS` and the
  explicit `PAYMESH_ALLOW_MIXED_MODE=true`.

`Settings.from_env` validates all of this and resolves the secrets, so what it returns is what
the server will run with; an impossible configuration is a `ConfigError` before anything starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from paymesh.sandbox.suite import SandboxSecrets

PSPS = ("stripe", "adyen", "paypal")

#: Where each PSP's live API is when none is configured. Adyen's live endpoint carries the
#: merchant's own prefix, so it has no default: live Adyen needs PAYMESH_ADYEN_API_BASE.
LIVE_API_BASES = {"stripe": "https://api.stripe.com", "paypal": "https://api-m.paypal.com"}
#: Hosts of the PSPs' real APIs: a sandbox-mode server must never send them sandbox secrets.
_REAL_PSP_HOSTS = ("stripe.com", "adyen.com", "adyenpayments.com", "paypal.com")

#: Values earlier versions compiled in, and the sandbox's own defaults: public, so never
#: trusted as a live secret.
BUILT_IN_SECRETS = frozenset(
    {
        "sk_test_paymesh_sandbox",
        "whsec_paymesh_sandbox",
        "AQE_paymesh_sandbox",
        "08F2B4BA0114B680CB076A045C13272D1648E9661DC35E048F6989506280F155",
        "paymesh-sandbox-client",
        "paymesh-sandbox-secret",
        "WH-PAYMESH-SANDBOX",
    }
)


class ConfigError(ValueError):
    """A configuration paymesh refuses to run with; the message says what to change."""


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"PAYMESH_{name}", default)


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database: str | None = None  # sqlite:///path; default <data_dir>/paymesh.db
    host: str = "127.0.0.1"
    port: int = 8080
    mode: str = "sandbox"  # or "live"
    #: The built-in sandboxes' own loopback listener; 0: a free port, printed at start.
    sandbox_port: int = 0
    #: In live mode, the PSPs to run as sandboxes anyway (needs allow_mixed_mode).
    sandbox_psps: tuple[str, ...] = ()
    allow_mixed_mode: bool = False
    stripe_api_base: str | None = None  # None: the built-in sandbox (live: api.stripe.com)
    stripe_secret_key: str | None = field(default=None, repr=False)
    stripe_webhook_secret: str | None = field(default=None, repr=False)
    adyen_api_base: str | None = None  # None: the built-in sandbox
    adyen_api_key: str | None = field(default=None, repr=False)
    adyen_merchant_account: str | None = None
    adyen_hmac_key: str | None = field(default=None, repr=False)
    paypal_api_base: str | None = None  # None: the built-in sandbox (live: api-m.paypal.com)
    paypal_client_id: str | None = None
    paypal_client_secret: str | None = field(default=None, repr=False)
    paypal_webhook_id: str | None = None
    #: PEM file of the certificate PayPal webhooks must be signed under; None with the
    #: built-in sandbox means its own (kept in <data_dir>/sandbox).
    paypal_trusted_cert: Path | None = None
    rate_limit: float = 100.0  # requests per second per API key; 0 turns it off
    psp_timeout: float = 10.0
    recovery_interval: float = 30.0  # seconds between recovery passes
    recovery_grace: float = 90.0  # seconds a payment is left to its live request first
    bus_retry_base: float = 1.0  # seconds; the first retry waits up to this, then doubles
    inventory_url: str | None = None  # update_inventory posts payment.succeeded here
    #: Signs deliveries of the default rules (update_inventory); generated per data
    #: directory when not given.
    delivery_signing_secret: str | None = field(default=None, repr=False)
    #: Hosts or networks HTTP rule targets may reach although they are not public (loopback,
    #: private, link-local): for development only. Empty: public addresses only.
    target_allowlist: tuple[str, ...] = ()
    fraud_rules: Path | None = None  # a fraud rules file (JSON); None: the packaged defaults
    #: The learned fraud model: "packaged" (the one paymesh ships), "none" (the rules alone),
    #: or the path of a model file that `paymesh fraud train` wrote.
    fraud_model: str = "packaged"
    #: nats://host:port: the event bus on NATS JetStream (scale-out, with PostgreSQL); None:
    #: the bus in the database, dispatched by the server itself.
    bus: str | None = None
    nats_prefix: str = "paymesh"  # stream and consumer names; deployments sharing a server
    #: Seconds a dead worker's unacknowledged deliveries wait before another worker takes them.
    nats_ack_wait: float = 60.0
    #: This process's place in the fraud feed's stream: the same name after a restart resumes
    #: what the others said meanwhile. One name per process (two sharing one would split the
    #: messages between them); None: a fresh name each start, from new messages on.
    fraud_feed_consumer: str | None = None
    # -- customer confirmations (paymesh.service.confirmations) --------------------------
    #: The mail server confirmations are sent through; None: emails are recorded, not sent
    #: (live mode says so at start).
    smtp_host: str | None = None
    smtp_port: int | None = None  # None: 587 with starttls, 465 with tls, 25 with none
    smtp_security: str = "starttls"  # none | starttls | tls
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    mail_from: str | None = None
    #: Twilio's Messages API; None: the built-in SMS sandbox in sandbox mode,
    #: https://api.twilio.com in live mode.
    twilio_api_base: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = field(default=None, repr=False)
    twilio_from: str | None = None
    #: Merchants' own confirmation templates: <templates_dir>/<merchant_id>/<name>.{subject,
    #: txt,sms}; None: the packaged ones only.
    templates_dir: Path | None = None
    #: Test-only (sandbox mode): the process exits right after a confirmation is sent and
    #: before it is recorded, as a crash there would (tests/e2e/test_confirmation_crash.py).
    fault_crash_after_send: bool = False
    #: Embedded only: the bus's deliveries run in a second process over the same SQLite
    #: file (`paymesh.adapters.deliverer_process`), so the server uses a second core.
    deliverer_process: bool = False
    #: A stall of the event loop this long (ms) is logged with the code that held it
    #: (`paymesh.adapters.metrics.loop_watch`); 0: lag measured, stalls not logged.
    loop_stall_ms: float = 100.0
    #: Embedded (SQLite) only: how long (ms) the writer may wait for more changes before a
    #: commit, while they arrive faster than that (`paymesh.adapters.sqlite.writer`); 0, the
    #: default: never wait (it costs latency below this machine's ceiling; see the README).
    sqlite_commit_delay_ms: float = 0.0
    #: A process of its own (`paymesh serve`, `paymesh worker`; not an environment variable):
    #: once started, its objects are frozen out of the cycle collector's passes
    #: (`paymesh.adapters.collector.freeze_startup`).
    gc_freeze: bool = False

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Flags over PAYMESH_* over defaults, validated, with the secrets resolved (raises
        `ConfigError`)."""
        values: dict[str, object] = {
            "data_dir": Path(_env("DATA_DIR", "paymesh-data") or "paymesh-data"),
            "database": _env("DATABASE"),
            "mode": (_env("MODE", "sandbox") or "sandbox").strip().lower(),
            "sandbox_port": int(_env("SANDBOX_PORT", "0") or 0),
            "sandbox_psps": tuple(
                p.strip().lower() for p in (_env("SANDBOX_PSPS") or "").split(",") if p.strip()
            ),
            "allow_mixed_mode": _flag(_env("ALLOW_MIXED_MODE")),
            "deliverer_process": _flag(_env("DELIVERER_PROCESS")),
            "loop_stall_ms": float(_env("LOOP_STALL_MS", str(cls.loop_stall_ms)) or 0),
            "sqlite_commit_delay_ms": float(
                _env("SQLITE_COMMIT_DELAY_MS", str(cls.sqlite_commit_delay_ms)) or 0
            ),
            "stripe_api_base": _env("STRIPE_API_BASE"),
            "stripe_secret_key": _env("STRIPE_SECRET_KEY"),
            "stripe_webhook_secret": _env("STRIPE_WEBHOOK_SECRET"),
            "adyen_api_base": _env("ADYEN_API_BASE"),
            "adyen_api_key": _env("ADYEN_API_KEY"),
            "adyen_merchant_account": _env("ADYEN_MERCHANT_ACCOUNT"),
            "adyen_hmac_key": _env("ADYEN_HMAC_KEY"),
            "paypal_api_base": _env("PAYPAL_API_BASE"),
            "paypal_client_id": _env("PAYPAL_CLIENT_ID"),
            "paypal_client_secret": _env("PAYPAL_CLIENT_SECRET"),
            "paypal_webhook_id": _env("PAYPAL_WEBHOOK_ID"),
            "paypal_trusted_cert": _env("PAYPAL_TRUSTED_CERT"),
            "rate_limit": float(_env("RATE_LIMIT", str(cls.rate_limit)) or 0),
            "psp_timeout": float(_env("PSP_TIMEOUT", str(cls.psp_timeout)) or 10),
            "recovery_interval": float(_env("RECOVERY_INTERVAL", "30") or 30),
            "recovery_grace": float(_env("RECOVERY_GRACE", "90") or 90),
            "bus_retry_base": float(_env("BUS_RETRY_BASE", str(cls.bus_retry_base)) or 1),
            "inventory_url": _env("INVENTORY_URL"),
            "delivery_signing_secret": _env("DELIVERY_SIGNING_SECRET"),
            "target_allowlist": tuple(
                h.strip() for h in (_env("TARGET_ALLOWLIST") or "").split(",") if h.strip()
            ),
            "fraud_rules": _env("FRAUD_RULES"),
            "fraud_model": _env("FRAUD_MODEL", cls.fraud_model),
            "bus": _env("BUS"),
            "nats_prefix": _env("NATS_PREFIX", cls.nats_prefix),
            "nats_ack_wait": float(_env("NATS_ACK_WAIT", str(cls.nats_ack_wait)) or 60),
            "fraud_feed_consumer": _env("FRAUD_FEED_CONSUMER") or None,
            "smtp_host": _env("SMTP_HOST") or None,
            "smtp_port": int(_env("SMTP_PORT") or 0) or None,
            "smtp_security": (_env("SMTP_SECURITY") or cls.smtp_security).strip().lower(),
            "smtp_username": _env("SMTP_USERNAME") or None,
            "smtp_password": _env("SMTP_PASSWORD") or None,
            "mail_from": _env("MAIL_FROM") or None,
            "twilio_api_base": _env("TWILIO_API_BASE") or None,
            "twilio_account_sid": _env("TWILIO_ACCOUNT_SID") or None,
            "twilio_auth_token": _env("TWILIO_AUTH_TOKEN") or None,
            "twilio_from": _env("TWILIO_FROM") or None,
            "templates_dir": _env("TEMPLATES_DIR") or None,
            # Read in sandbox mode only: a live server never takes a crash hook.
            "fault_crash_after_send": _flag(_env("FAULT_CRASH_AFTER_SEND"))
            and (_env("MODE", "sandbox") or "sandbox").strip().lower() == "sandbox",
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        for name in ("data_dir", "fraud_rules", "paypal_trusted_cert", "templates_dir"):
            value = values[name]
            if isinstance(value, str):
                values[name] = Path(value)
        for name in ("sandbox_psps", "target_allowlist"):
            raw = values[name]
            if isinstance(raw, str):
                values[name] = tuple(part.strip() for part in raw.split(",") if part.strip())
            elif isinstance(raw, list):
                values[name] = tuple(raw)
        settings = cls(**values)  # type: ignore[arg-type]
        settings._check_store()
        settings._check_bus()
        settings._check_targets()
        settings._check_confirmations()
        return settings._resolve_psps()

    def _check_confirmations(self) -> None:
        if self.smtp_security not in ("none", "starttls", "tls"):
            raise ConfigError(
                f"PAYMESH_SMTP_SECURITY {self.smtp_security!r}: use none, starttls or tls"
            )
        if self.smtp_host and not self.mail_from:
            raise ConfigError("PAYMESH_SMTP_HOST needs PAYMESH_MAIL_FROM (the sender address)")
        if (
            self.smtp_host
            and self.smtp_username
            and self.smtp_security == "none"
            and self.smtp_host not in ("127.0.0.1", "::1", "localhost")
        ):
            raise ConfigError(
                "PAYMESH_SMTP_USERNAME with PAYMESH_SMTP_SECURITY=none would send the SMTP "
                "password in the clear: use starttls or tls"
            )
        if self.mode == "live" and self.fault_crash_after_send:
            raise ConfigError("PAYMESH_FAULT_CRASH_AFTER_SEND is for tests in sandbox mode")
        if self.mode != "live" and self.twilio_api_base and _is_real_twilio(self.twilio_api_base):
            raise ConfigError(
                f"{self.twilio_api_base} is Twilio itself, but paymesh runs in sandbox mode; "
                "set PAYMESH_MODE=live with real Twilio credentials"
            )
        if self.mode == "live" and (self.twilio_account_sid or self.twilio_auth_token):
            missing = [
                f"PAYMESH_TWILIO_{name.upper()}"
                for name in ("account_sid", "auth_token", "from")
                if not getattr(self, f"twilio_{name}")
            ]
            if missing:
                raise ConfigError(f"live SMS through Twilio also needs {', '.join(missing)}")

    # -- confirmations --------------------------------------------------------------------

    @property
    def smtp_configured(self) -> bool:
        return bool(self.smtp_host)

    @property
    def smtp_port_or_default(self) -> int:
        return self.smtp_port or {"tls": 465, "none": 25}.get(self.smtp_security, 587)

    @property
    def sms_mode(self) -> str:
        """`live` (Twilio), `sandbox` (the built-in one, or a `paymesh sandbox`'s) or `off`
        (live mode without Twilio credentials: SMS confirmations are recorded, not sent)."""
        if not self.is_live:
            return "sandbox"
        return "live" if self.twilio_account_sid and self.twilio_auth_token else "off"

    @property
    def sms_sandboxed(self) -> bool:
        """The built-in SMS sandbox serves this process's SMS (no API base given)."""
        return self.sms_mode == "sandbox" and self.twilio_api_base is None

    def _check_targets(self) -> None:
        from paymesh.domain.target_policy import TargetPolicy, TargetUrlRefused

        try:
            policy = TargetPolicy.parse(self.target_allowlist, require_https=self.is_live)
        except ValueError as exc:
            raise ConfigError(f"PAYMESH_TARGET_ALLOWLIST: {exc}") from exc
        if self.inventory_url:
            try:
                policy.check_url(self.inventory_url)
            except TargetUrlRefused as exc:
                raise ConfigError(
                    f"PAYMESH_INVENTORY_URL: {exc} (an internal inventory "
                    "service belongs in PAYMESH_TARGET_ALLOWLIST)"
                ) from exc
            if self.is_live and not self.delivery_signing_secret:
                # The inventory service must verify what it is sent: the operator gives both
                # sides the same secret; paymesh never sends an unsigned delivery.
                raise ConfigError(
                    "live mode with PAYMESH_INVENTORY_URL needs "
                    "PAYMESH_DELIVERY_SIGNING_SECRET (the inventory service "
                    "verifies deliveries with it)"
                )

    def _check_store(self) -> None:
        if not 0 <= self.sqlite_commit_delay_ms <= 100:
            # A caller waits this long for its commit: past 100 ms it would be an outage.
            raise ConfigError(
                f"PAYMESH_SQLITE_COMMIT_DELAY_MS {self.sqlite_commit_delay_ms:g}: use 0 to 100"
            )

    def _check_bus(self) -> None:
        if self.deliverer_process and (self.shared_store or self.bus is not None):
            raise ConfigError(
                "PAYMESH_DELIVERER_PROCESS is for the embedded server (SQLite); with a "
                "shared database, run `paymesh worker` processes instead"
            )
        if self.bus is not None:
            if not self.bus.startswith(("nats://", "tls://")):
                raise ConfigError(f"unsupported bus URL {self.bus!r}: use nats://HOST:PORT")
            if not self.uses_postgres:
                # Many processes on one bus need one shared database; SQLite is one process.
                raise ConfigError(
                    "the NATS bus is for scale-out: it needs --database postgresql://..."
                )

    # -- PSP modes ------------------------------------------------------------------------

    def _resolve_psps(self) -> Settings:
        if self.mode not in ("sandbox", "live"):
            raise ConfigError(f"unknown mode {self.mode!r}: use sandbox or live")
        unknown = set(self.sandbox_psps) - set(PSPS)
        if unknown:
            raise ConfigError(f"PAYMESH_SANDBOX_PSPS names unknown PSPs: {sorted(unknown)}")
        if self.mode == "sandbox":
            for psp in PSPS:
                base = self.api_base_of(psp)
                if base and _is_real_psp(base):
                    raise ConfigError(
                        f"{psp}: {base} is the real PSP, but paymesh runs in sandbox mode; "
                        "set PAYMESH_MODE=live with that PSP's real credentials"
                    )
            return self._with_sandbox_secrets(PSPS)
        from paymesh.live_credentials import check_live_psp

        if self.sandbox_psps and not self.allow_mixed_mode:
            raise ConfigError(
                f"live mode with sandbox PSPs ({', '.join(self.sandbox_psps)}) would fake "
                "those PSPs beside real money: set PAYMESH_ALLOW_MIXED_MODE=true to mean it"
            )
        live = [psp for psp in PSPS if psp not in self.sandbox_psps and check_live_psp(self, psp)]
        if not live:
            raise ConfigError(
                "live mode with no PSP configured: give at least one PSP its "
                "real credentials (see the README's configuration table)"
            )
        resolved = self._with_sandbox_secrets(self.sandbox_psps) if self.sandbox_psps else self
        bases = {
            f"{psp}_api_base": resolved.api_base_of(psp) or LIVE_API_BASES.get(psp) for psp in live
        }
        return replace(resolved, **bases)  # type: ignore[arg-type]

    def _with_sandbox_secrets(self, psps: tuple[str, ...]) -> Settings:
        """Secrets the user did not give come from the data directory's sandbox secrets."""
        from paymesh.sandbox.suite import SandboxSecrets

        generated = SandboxSecrets.load_or_create(self.sandbox_dir)
        fill: dict[str, object] = {}
        for name, value in generated.for_psps(psps).items():
            if getattr(self, name) is None:
                fill[name] = value
        if self.delivery_signing_secret is None:
            fill["delivery_signing_secret"] = generated.delivery_signing_secret
        if not self.is_live:  # the SMS sandbox's account, shared like the PSPs' secrets
            for name, value in generated.twilio().items():
                if getattr(self, name) is None:
                    fill[name] = value
        return replace(self, **fill)  # type: ignore[arg-type]

    @property
    def is_live(self) -> bool:
        return self.mode == "live"

    def api_base_of(self, psp: str) -> str | None:
        base: str | None = getattr(self, f"{psp}_api_base")
        return base

    def psp_mode(self, psp: str) -> str:
        """`live`, `sandbox` (built-in or a `paymesh sandbox` process) or `disabled`."""
        if not self.is_live or psp in self.sandbox_psps:
            return "sandbox"
        return "live" if self.api_base_of(psp) is not None else "disabled"

    @property
    def enabled_psps(self) -> tuple[str, ...]:
        return tuple(psp for psp in PSPS if self.psp_mode(psp) != "disabled")

    @property
    def sandboxed_psps(self) -> tuple[str, ...]:
        """The PSPs served by the built-in sandbox: sandbox PSPs with no API base."""
        return tuple(
            psp for psp in PSPS if self.psp_mode(psp) == "sandbox" and self.api_base_of(psp) is None
        )

    @property
    def uses_sandbox(self) -> bool:
        return bool(self.sandboxed_psps)

    @property
    def sandbox_dir(self) -> Path:
        """The sandbox secrets and PayPal signing identity: shared by a `paymesh sandbox`
        and the servers that use it when they share the data directory."""
        return self.data_dir / "sandbox"

    @property
    def sandbox_secrets(self) -> SandboxSecrets:
        from paymesh.sandbox.suite import SandboxSecrets

        return SandboxSecrets.load_or_create(self.sandbox_dir).with_overrides(
            stripe_webhook_secret=self.stripe_webhook_secret,
            adyen_hmac_key=self.adyen_hmac_key,
            adyen_merchant_account=self.adyen_merchant_account,
            paypal_client_id=self.paypal_client_id,
            paypal_client_secret=self.paypal_client_secret,
            paypal_webhook_id=self.paypal_webhook_id,
            twilio_account_sid=self.twilio_account_sid if not self.is_live else None,
            twilio_auth_token=self.twilio_auth_token if not self.is_live else None,
        )

    # -- storage and addresses ------------------------------------------------------------

    @property
    def uses_postgres(self) -> bool:
        return bool(self.database) and str(self.database).startswith(
            ("postgresql://", "postgres://")
        )

    @property
    def uses_dynamodb(self) -> bool:
        """AWS mode: `dynamodb://PREFIX`, the tables the CDK stack made (`PREFIX-*`)."""
        return bool(self.database) and str(self.database).startswith("dynamodb://")

    @property
    def dynamodb_prefix(self) -> str:
        prefix = str(self.database).removeprefix("dynamodb://").strip("/")
        if not prefix:
            raise ConfigError("dynamodb:// needs the table prefix: dynamodb://paymesh")
        return prefix

    @property
    def shared_store(self) -> bool:
        """Other processes may be using the same store at the same time (PostgreSQL, or
        DynamoDB under many Lambda containers): nothing may assume it is alone."""
        return self.uses_postgres or self.uses_dynamodb

    @property
    def uses_nats(self) -> bool:
        return self.bus is not None

    @property
    def sqlite_path(self) -> Path:
        if self.database:
            if not self.database.startswith("sqlite:///"):
                raise ValueError(
                    f"unsupported database URL {self.database!r}: use "
                    "sqlite:///PATH, postgresql://... or dynamodb://PREFIX"
                )
            return Path(self.database.removeprefix("sqlite:///"))
        return self.data_dir / "paymesh.db"

    @property
    def self_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"


def _is_real_twilio(base: str) -> bool:
    host = (urlsplit(base).hostname or "").lower()
    return host == "twilio.com" or host.endswith(".twilio.com")


def _is_real_psp(base: str) -> bool:
    host = (urlsplit(base).hostname or "").lower()
    return any(host == real or host.endswith("." + real) for real in _REAL_PSP_HOSTS)
