"""The sandboxes together (the three PSPs' and the SMS provider's), as `paymesh serve` and
`paymesh sandbox` run them.

Each PSP's sandbox is mounted at `/sandbox/{psp}` of the sandboxes' own listener, never of the
API's port: a sandbox has no authentication (anyone who reaches it can capture or fail a
payment, flip its faults or read its ledger), so it listens on loopback only. Webhooks go to
`{webhook_base}/webhooks/{psp}`, signed with the secrets the matching connectors verify with.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from paymesh.sandbox.adyen import AdyenSandbox, AdyenSandboxSettings
from paymesh.sandbox.paypal import PayPalSandbox, PayPalSandboxSettings, SigningIdentity
from paymesh.sandbox.stripe import StripeSandbox, StripeSandboxSettings
from paymesh.sandbox.twilio import TwilioSandbox, TwilioSandboxSettings

PSPS = ("stripe", "adyen", "paypal")
_SECRETS_FILE = "secrets.json"
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")

#: Which secrets each PSP's connector and sandbox share.
_PSP_FIELDS = {
    "stripe": ("stripe_secret_key", "stripe_webhook_secret"),
    "adyen": ("adyen_api_key", "adyen_hmac_key", "adyen_merchant_account"),
    "paypal": ("paypal_client_id", "paypal_client_secret", "paypal_webhook_id"),
}


@dataclass(frozen=True)
class SandboxSecrets:
    """The secrets one data directory's sandboxes and servers share, generated on first use
    so that nothing a sandbox trusts is compiled into the program."""

    stripe_secret_key: str = field(repr=False)
    stripe_webhook_secret: str = field(repr=False)
    adyen_api_key: str = field(repr=False)
    adyen_hmac_key: str = field(repr=False)
    adyen_merchant_account: str
    paypal_client_id: str
    paypal_client_secret: str = field(repr=False)
    paypal_webhook_id: str
    delivery_signing_secret: str = field(repr=False)
    #: The SMS sandbox's one Twilio account (`PAYMESH_TWILIO_ACCOUNT_SID`/`_AUTH_TOKEN`).
    twilio_account_sid: str = ""
    twilio_auth_token: str = field(default="", repr=False)
    #: Where the PayPal sandbox keeps its signing key and certificate (made on first use).
    paypal_signing_dir: Path = Path()

    @classmethod
    def generate(cls, directory: Path) -> SandboxSecrets:
        return cls(
            stripe_secret_key="sk_test_" + secrets.token_hex(24),
            stripe_webhook_secret="whsec_" + secrets.token_hex(24),
            adyen_api_key="AQE" + secrets.token_hex(32),
            adyen_hmac_key=secrets.token_hex(32).upper(),
            adyen_merchant_account="PaymeshSandbox",
            paypal_client_id="sandbox-" + secrets.token_hex(12),
            paypal_client_secret=secrets.token_hex(32),
            paypal_webhook_id="WH-" + secrets.token_hex(10).upper(),
            delivery_signing_secret="whsec_" + secrets.token_hex(24),
            twilio_account_sid="AC" + secrets.token_hex(16),
            twilio_auth_token=secrets.token_hex(16),
            paypal_signing_dir=directory,
        )

    @classmethod
    def load_or_create(cls, directory: Path) -> SandboxSecrets:
        """The directory's secrets, made once and readable by the owner only. Two processes
        starting together (a `paymesh sandbox` and its server) agree: the file is published
        with a link, which fails if the other one got there first."""
        path = directory / _SECRETS_FILE
        if not path.exists():
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            made = cls.generate(directory)
            data = {k: v for k, v in asdict(made).items() if k != "paypal_signing_dir"}
            tmp = directory / f".{_SECRETS_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(data, out)
                out.flush()
                os.fsync(out.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
            tmp.unlink()
        stored = json.loads(path.read_text())
        known = {f.name for f in fields(cls)}
        fresh = asdict(cls.generate(directory))  # fields added since the file was written
        return cls(
            **{
                **fresh,
                **{k: v for k, v in stored.items() if k in known},
                "paypal_signing_dir": directory,
            }
        )

    def with_overrides(self, **given: str | None) -> SandboxSecrets:
        """The user's own values (PAYMESH_*) over the generated ones."""
        chosen: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        return replace(self, **chosen)

    def for_psps(self, psps: tuple[str, ...]) -> dict[str, str]:
        return {name: getattr(self, name) for psp in psps for name in _PSP_FIELDS[psp]}

    def twilio(self) -> dict[str, str]:
        """The SMS sandbox's account, as the settings name it."""
        return {
            "twilio_account_sid": self.twilio_account_sid,
            "twilio_auth_token": self.twilio_auth_token,
        }


class SandboxSuite:
    """The PSP sandboxes named in `psps` and, with `sms`, the SMS provider's (Twilio's, at
    `/sandbox/twilio`, which sends no webhooks)."""

    def __init__(
        self,
        secrets: SandboxSecrets,
        webhook_base: str | None,
        psps: tuple[str, ...] = PSPS,
        sms: bool = True,
    ) -> None:
        base = webhook_base.rstrip("/") if webhook_base else None

        def url(psp: str) -> str | None:
            return f"{base}/webhooks/{psp}" if base else None

        self.boxes: dict[str, Any] = {}
        if "stripe" in psps:
            self.boxes["stripe"] = StripeSandbox(
                StripeSandboxSettings(
                    webhook_url=url("stripe"), webhook_secret=secrets.stripe_webhook_secret
                )
            )
        if "adyen" in psps:
            self.boxes["adyen"] = AdyenSandbox(
                AdyenSandboxSettings(
                    webhook_url=url("adyen"),
                    hmac_key=secrets.adyen_hmac_key,
                    merchant_account=secrets.adyen_merchant_account,
                )
            )
        if "paypal" in psps:
            self.boxes["paypal"] = PayPalSandbox(
                PayPalSandboxSettings(
                    webhook_url=url("paypal"),
                    webhook_id=secrets.paypal_webhook_id,
                    client_id=secrets.paypal_client_id,
                    client_secret=secrets.paypal_client_secret,
                    signing=SigningIdentity.load_or_create(secrets.paypal_signing_dir),
                )
            )
        if sms:
            self.boxes["twilio"] = TwilioSandbox(
                TwilioSandboxSettings(
                    account_sid=secrets.twilio_account_sid, auth_token=secrets.twilio_auth_token
                )
            )

    def mounts(self) -> list[Mount]:
        return [Mount(f"/sandbox/{psp}", app=box.app) for psp, box in self.boxes.items()]

    async def start(self) -> None:
        for box in self.boxes.values():
            await box.start()

    async def stop(self) -> None:
        for box in self.boxes.values():
            await box.stop()


class _NoSignals(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the API server owns the process's signals
        pass


class SandboxListener:
    """The built-in sandboxes on their own loopback port, served beside the API server.

    The socket is bound when this is made, so the connectors know the sandboxes' address
    before anything starts; `start()` serves it and starts the sandboxes' webhook delivery.
    """

    def __init__(self, suite: SandboxSuite, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in LOOPBACK_HOSTS:
            raise ValueError("the sandboxes listen on loopback only: they have no authentication")
        self.suite = suite
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self._socket.set_inheritable(True)
        bound = self._socket.getsockname()
        authority = f"[{bound[0]}]" if family == socket.AF_INET6 else bound[0]
        self.url = f"http://{authority}:{bound[1]}"
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    def psp_url(self, psp: str) -> str:
        return f"{self.url}/sandbox/{psp}"

    async def start(self) -> None:
        await self.suite.start()
        app = Starlette(routes=list(self.suite.mounts()))
        server = _NoSignals(
            # Loopback only, no proxy in front: no X-Forwarded-* middleware to pass through.
            uvicorn.Config(
                app,
                lifespan="off",
                log_level="warning",
                access_log=False,
                proxy_headers=False,
            )
        )
        server.config.load()
        server.lifespan = server.config.lifespan_class(server.config)
        await server.startup(sockets=[self._socket])
        self._server = server
        self._task = asyncio.create_task(server.main_loop(), name="sandbox-listener")

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.should_exit = True
            if self._task is not None:
                await asyncio.gather(self._task, return_exceptions=True)
            await server.shutdown(sockets=[self._socket])
        else:
            self._socket.close()
        await self.suite.stop()
