"""HTTP targets over aiohttp (the same client the connectors use), guarded against SSRF.

A merchant names the url; paymesh sends from inside its network. So every delivery:
- checks the url (scheme, https in live mode, no credentials) and, when the host is an IP
  address, that address, before anything else;
- resolves a host name once, through `CheckedResolver`, and connects only to the addresses it
  checked (see there why no second lookup can happen);
- follows no redirect: a 3xx is the answer (the bus records a failed attempt);
- reports failures as a few fixed phrases, never an OS error or an address.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable
from ipaddress import ip_address

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from paymesh.domain.target_policy import TargetPolicy
from paymesh.ports.targets import TargetRefused, TargetUnreachable

log = logging.getLogger(__name__)

NOT_ALLOWED = "target address not allowed"
URL_NOT_ALLOWED = "target url not allowed"
UNREACHABLE = "target unreachable"
#: What is read of a target's answer: only its status matters; a huge body must not cost memory.
_ANSWER_LIMIT = 64 * 1024


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: ignored, the backoff decides


class CheckedResolver(AbstractResolver):
    """Resolves a target's host name through `inner` and refuses the host unless every address
    is public (or allow-listed).

    Why a resolver: aiohttp's connector takes the resolver's answer as numeric addresses and
    connects to exactly those (a socket per address, no getaddrinfo on a name again), while
    the request keeps the url's host name for the Host header and for TLS (SNI and the
    certificate check). So the addresses checked here are the ones connected to: a name that
    answers with a public address now and 169.254.169.254 a moment later (DNS rebinding)
    cannot slip between a check and the connection. aiohttp's DNS cache holds only what this
    returned. A host that is already an IP address never reaches a resolver: the sender checks
    it itself before the request.
    """

    def __init__(self, policy: TargetPolicy, inner: AbstractResolver) -> None:
        self._policy = policy
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if not found:
            raise TargetUnreachable(UNREACHABLE)
        if self._policy.allows_host(host, port):
            return found
        for result in found:
            try:
                address = ip_address(result["host"])
            except ValueError:
                raise TargetRefused(NOT_ALLOWED) from None
            if not self._policy.allows_address(host, port, address):
                # Every address or none: a name that mixes in an internal one is not a
                # merchant's endpoint.
                raise TargetRefused(NOT_ALLOWED)
        return found

    async def close(self) -> None:
        await self._inner.close()


def _refusal(exc: BaseException) -> TargetRefused | None:
    """aiohttp may wrap what the resolver raised; find it in the chain."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TargetRefused):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class AiohttpTargetSender:
    """`require_https`: live mode. `allow`: the operator's allow-list (hosts, host:port, IP
    addresses, CIDR networks) whose targets skip the address check, for development; empty by
    default, so no loopback, private or link-local target is reached. `resolver`: the name
    lookup under the check (aiohttp's threaded getaddrinfo by default; tests pass a fake)."""

    def __init__(
        self,
        timeout_seconds: float = 10.0,
        *,
        require_https: bool = False,
        allow: Iterable[str] = (),
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.policy = TargetPolicy.parse(allow, require_https=require_https)
        self._timeout = timeout_seconds
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:  # made inside the running loop, as aiohttp requires
            inner = self._resolver or aiohttp.ThreadedResolver()
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=CheckedResolver(self.policy, inner)),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                cookie_jar=aiohttp.DummyCookieJar(),  # nothing carried from one target to another
                trust_env=False,
            )  # no proxy from the environment: the connection is the check
        return self._session

    def _checked(self, url: str) -> URL:
        """The url as aiohttp will read it, refused unless allowed; the very object is what
        gets sent, so the check and the request cannot parse it differently."""
        try:
            target = URL(url)
            endpoint = self.policy.endpoint(
                target.scheme,
                target.raw_host,
                target.port,
                bool(target.raw_user or target.raw_password),
            )
        except ValueError:  # a TargetUrlRefused, or a url yarl cannot read
            raise TargetRefused(URL_NOT_ALLOWED) from None
        if endpoint.address is not None and not self.policy.allows_address(
            endpoint.host, endpoint.port, endpoint.address
        ):
            raise TargetRefused(NOT_ALLOWED)
        return target

    async def post(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, float | None]:
        target = self._checked(url)
        try:
            async with self._open().post(
                target, data=body, headers=headers, allow_redirects=False
            ) as response:
                left = _ANSWER_LIMIT
                while left > 0 and (chunk := await response.content.read(min(left, 16384))):
                    left -= len(chunk)
                return response.status, _retry_after(response.headers.get("Retry-After"))
        except TargetRefused:
            raise
        except Exception as exc:
            refused = _refusal(exc)
            if refused is not None:
                raise TargetRefused(NOT_ALLOWED) from None
            # The detail (refused, timed out, no route, no such host) stays in the operator's
            # log; the merchant's record says only that no answer came.
            log.debug("target %s unreachable: %r", target.host, exc)
            raise TargetUnreachable(UNREACHABLE) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
