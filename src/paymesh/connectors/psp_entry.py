"""What the registry holds for one PSP: how its connector and its sandbox are built.

Each PSP's folder has an `entry.py` with its `ENTRY`; `connectors.registry` lists them. The
composition root (bootstrap) decides the rest, the same for every PSP: which PSPs are
enabled, where each one's API is (configured, or the built-in sandbox), the one transport.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from paymesh.connectors.transport import HttpTransport
from paymesh.ports.connector import Connector

if TYPE_CHECKING:  # types only: the registry is read by config's users, not by config
    from paymesh.config import Settings
    from paymesh.sandbox.suite import SandboxSecrets

__all__ = ["ConnectorSetup", "PspEntry", "Sandbox", "required"]


@dataclass(frozen=True, slots=True)
class ConnectorSetup:
    """What a connector is built from: the process's settings, and what bootstrap decided."""

    settings: Settings
    api_base: str  # the configured API, or the built-in sandbox's mount
    transport: HttpTransport | None = None  # None: the connector makes its own
    #: The built-in sandbox serving this PSP in this process, if one does (PayPal's signs
    #: webhooks under its own certificate, which its connector must then trust).
    sandbox: object | None = None


class Sandbox(Protocol):
    """An offline PSP, mounted by `SandboxSuite` at /sandbox/{name}."""

    app: Any  # an ASGI app

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class PspEntry:
    name: str  # as in URLs, settings and events: "stripe"
    connector: Callable[[ConnectorSetup], Connector]
    #: (the sandbox secrets, where it sends its webhooks or None) -> the sandbox.
    sandbox: Callable[[SandboxSecrets, str | None], Sandbox]


def required(value: str | None, name: str) -> str:
    """A secret `Settings.from_env` has resolved for every enabled PSP."""
    if value is None:
        raise ValueError(f"{name} is not set: Settings.from_env resolves it for enabled PSPs")
    return value
