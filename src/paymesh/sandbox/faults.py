"""Fault injection shared by every sandbox.

Real PSPs are slow, fail, throttle and, worst of all, accept a request and
then lose the answer. The sandboxes reproduce those failures on demand so the
platform's retries, idempotency and recovery can be proven offline. This
module is PSP-neutral: it decides *whether* a fault happens; each sandbox maps
a fault to its own wire format (Stripe's `api_error`, Adyen's 500 body, ...).

Configured at run time through `PUT /_config` (any subset of the fields of
`FaultConfig`), read back with `GET /_config`. Every random draw comes from
one `random.Random(seed)`, so a test that sets a seed sees the same faults on
every run.
"""

from __future__ import annotations

import asyncio
import enum
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = [
    "FaultConfig",
    "FaultInjector",
    "InvalidFaultConfig",
    "Rejection",
    "RequestFaults",
    "fault_config_route",
]


@dataclass(frozen=True)
class FaultConfig:
    """What to break, and how often. Rates are probabilities per request."""

    latency_ms: int = 0
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    timeout_rate: float = 0.0
    timeout_hold_ms: int = 30_000
    webhook_delay_ms: int = 0
    webhook_duplicate_rate: float = 0.0
    webhook_reorder: bool = False


_RATES = frozenset({"error_rate", "rate_limit_rate", "timeout_rate", "webhook_duplicate_rate"})
_DURATIONS = frozenset({"latency_ms", "timeout_hold_ms", "webhook_delay_ms"})
_FLAGS = frozenset({"webhook_reorder"})
_MAX_DURATION_MS = 600_000


class InvalidFaultConfig(ValueError):
    """A `_config` change that names an unknown fault or gives a bad value."""


class Rejection(enum.Enum):
    """A fault that answers instead of the PSP, before any state changes."""

    SERVER_ERROR = "server_error"
    RATE_LIMITED = "rate_limited"


@dataclass(frozen=True, slots=True)
class RequestFaults:
    """The faults drawn for one API request.

    `rejection` answers before anything happens; `hold_response_s` > 0 means
    the request is processed normally but its answer is held back that long,
    so the client gives up although the PSP did the work.
    """

    latency_s: float = 0.0
    rejection: Rejection | None = None
    hold_response_s: float = 0.0


_NO_FAULTS = RequestFaults()


class FaultInjector:
    """Holds the fault configuration and draws faults from a seeded generator."""

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)
        self._config = FaultConfig()
        self._released = asyncio.Event()

    @property
    def config(self) -> FaultConfig:
        return self._config

    @property
    def rng(self) -> random.Random:
        """The seeded generator; webhook senders draw from it too, to stay reproducible."""
        return self._rng

    def as_dict(self) -> dict[str, Any]:
        return asdict(self._config)

    def update(self, changes: Mapping[str, Any]) -> FaultConfig:
        """Apply a partial change, all or nothing; raises `InvalidFaultConfig`."""
        known = {f.name for f in fields(FaultConfig)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise InvalidFaultConfig(
                f"Unknown fault setting(s): {', '.join(unknown)}. "
                f"Known settings: {', '.join(sorted(known))}."
            )
        checked = {name: _check(name, value) for name, value in changes.items()}
        self._config = replace(self._config, **checked)
        return self._config

    def reset(self) -> None:
        self._config = FaultConfig()

    def draw(self) -> RequestFaults:
        """Draw this request's faults. Cheap when nothing is configured."""
        config = self._config
        if (
            config.latency_ms == 0
            and config.error_rate == 0
            and config.rate_limit_rate == 0
            and config.timeout_rate == 0
        ):
            return _NO_FAULTS
        rejection: Rejection | None = None
        if config.error_rate and self._rng.random() < config.error_rate:
            rejection = Rejection.SERVER_ERROR
        elif config.rate_limit_rate and self._rng.random() < config.rate_limit_rate:
            rejection = Rejection.RATE_LIMITED
        hold = 0.0
        if rejection is None and config.timeout_rate and self._rng.random() < config.timeout_rate:
            hold = config.timeout_hold_ms / 1000
        return RequestFaults(config.latency_ms / 1000, rejection, hold)

    def duplicate_webhook(self) -> bool:
        rate = self._config.webhook_duplicate_rate
        return bool(rate) and self._rng.random() < rate

    async def hold(
        self, seconds: float, abandoned: Callable[[], Awaitable[object]] | None = None
    ) -> None:
        """Sleep for a held response; end early on `release_holds` or when `abandoned` returns.

        `abandoned` lets the caller stop holding once the client has hung up:
        nobody waits for that answer any more, and a server shutting down
        would otherwise wait out every 30-second hold.
        """
        if seconds <= 0 or self._released.is_set():
            return
        waits: list[asyncio.Future[object]] = [asyncio.ensure_future(self._released.wait())]
        if abandoned is not None:
            waits.append(asyncio.ensure_future(abandoned()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    def release_holds(self) -> None:
        self._released.set()

    def arm_holds(self) -> None:
        self._released = asyncio.Event()


def _check(name: str, value: Any) -> Any:
    if name in _FLAGS:
        if not isinstance(value, bool):
            raise InvalidFaultConfig(f"{name} must be true or false, not {value!r}.")
        return value
    # bool is an int in Python; `true` is never a sensible latency or rate.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidFaultConfig(f"{name} must be a number, not {value!r}.")
    if name in _RATES:
        if not 0.0 <= value <= 1.0:
            raise InvalidFaultConfig(f"{name} must be between 0 and 1, not {value}.")
        return float(value)
    assert name in _DURATIONS
    if isinstance(value, float) and not value.is_integer():
        raise InvalidFaultConfig(f"{name} must be a whole number of milliseconds, not {value}.")
    if not 0 <= value <= _MAX_DURATION_MS:
        raise InvalidFaultConfig(f"{name} must be between 0 and {_MAX_DURATION_MS}, not {value}.")
    return int(value)


def fault_config_route(injector: FaultInjector, path: str = "/_config") -> Route:
    """`GET` reads the fault configuration, `PUT` changes part of it (JSON object)."""

    async def endpoint(request: Request) -> Response:
        if request.method == "PUT":
            try:
                changes = msgspec.json.decode(await request.body())
            except msgspec.DecodeError as exc:
                return _config_error(f"Body must be a JSON object: {exc}.")
            if not isinstance(changes, dict):
                return _config_error("Body must be a JSON object.")
            try:
                injector.update(changes)
            except InvalidFaultConfig as exc:
                return _config_error(str(exc))
        return Response(msgspec.json.encode(injector.as_dict()), media_type="application/json")

    return Route(path, endpoint, methods=["GET", "PUT"])


def _config_error(message: str) -> Response:
    body = {"error": {"type": "invalid_request_error", "message": message}}
    return Response(msgspec.json.encode(body), status_code=400, media_type="application/json")
