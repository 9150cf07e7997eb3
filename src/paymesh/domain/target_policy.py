"""Which HTTP targets a rule may name, and which addresses a delivery may connect to.

A merchant's rule makes paymesh send requests from inside its own network, so a target must be
a public address: never loopback, private, link-local (169.254.169.254, the cloud metadata
service), unique-local, multicast, reserved, CGNAT or unspecified, nor an IPv6 form wrapping
one (IPv4-mapped, NAT64, 6to4). An operator's allow-list lets development targets through
(`127.0.0.1`, `localhost:8123`, `10.0.0.0/8`, `[::1]:9000`); live mode requires https.

Pure: no DNS, no sockets. At rule creation only the url is checked, and a host that is an IP
address; a name is resolved at delivery, where the answer counts: the sender resolves it,
asks `allows_address` about every address and connects only to those (adapters/http_targets).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from urllib.parse import urlsplit

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

_DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = re.compile(r"[a-z0-9_-]{1,63}")
# A host made of numbers only: what socket's parser reads as IPv4 in its legacy forms
# (2130706433, 0x7f.1, 127.1, 0177.0.0.1), all of them 127.0.0.1.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*\.?$")
_NAT64 = IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = IPv6Network("64:ff9b:1::/48")
_LOOPBACK = IPv4Address("127.0.0.1")


class TargetUrlRefused(ValueError):
    """A target url the policy refuses; the message says why, for the merchant."""


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 one reaches: IPv4-mapped, well-known NAT64, 6to4."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def is_public(address: IPAddress) -> bool:
    """Globally reachable unicast. `is_global` alone lets multicast (224/4, ff00::/8) and
    site-local through, hence the other properties."""
    if isinstance(address, IPv6Address):
        if address in _NAT64_LOCAL or address.teredo is not None:
            return False  # translated or tunnelled to addresses nobody can check here
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public(embedded)
        if address.is_site_local:
            return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _unwrap(address: IPAddress) -> IPAddress:
    """::ffff:127.0.0.1 is 127.0.0.1, for the allow-list as for the kernel."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _normal_host(host: str) -> str:
    return host.strip("[]").lower().rstrip(".")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a target url points: `address` is set when the host is an IP address."""

    scheme: str
    host: str
    port: int
    address: IPAddress | None


@dataclass(frozen=True, slots=True)
class Allowed:
    """One allow-list entry: a host name, or a network (one address is a /32 or /128);
    any port unless one is given."""

    host: str | None = None
    network: IPNetwork | None = None
    port: int | None = None

    @classmethod
    def parse(cls, entry: str) -> Allowed:
        text = entry.strip()
        try:
            return cls(network=ip_network(text, strict=False))  # 127.0.0.1, 10.0.0.0/8, ::1
        except ValueError:
            pass
        host, port = text, None
        match = re.fullmatch(r"\[([^\]]+)\](?::(\d{1,5}))?", text) or re.fullmatch(
            r"([^:]+):(\d{1,5})", text
        )
        if match:
            host, port = match.group(1), int(match.group(2)) if match.group(2) else None
            if port is not None and not 1 <= port <= 65535:
                raise ValueError(f"allow-list entry {entry!r}: port out of range")
        try:
            return cls(network=ip_network(host, strict=False), port=port)
        except ValueError:
            pass
        name = _normal_host(host)
        if not all(_LABEL.fullmatch(label) for label in name.split(".")) or _NUMERIC_HOST.match(
            name
        ):
            raise ValueError(
                f"allow-list entry {entry!r} is not a host, host:port, IP address or CIDR network"
            )
        return cls(host=name, port=port)

    def admits_host(self, host: str, port: int) -> bool:
        return self.host is not None and self.host == host and self.port in (None, port)

    def admits_address(self, address: IPAddress, port: int) -> bool:
        return (
            self.network is not None
            and self.network.version == address.version
            and address in self.network
            and self.port in (None, port)
        )


@dataclass(frozen=True, slots=True)
class TargetPolicy:
    """What HTTP targets may be. The default allows no non-public address and takes http."""

    require_https: bool = False
    allowed: tuple[Allowed, ...] = ()

    @classmethod
    def parse(cls, allow: Iterable[str] = (), require_https: bool = False) -> TargetPolicy:
        """`allow`: entries such as "127.0.0.1", "localhost:8123", "10.0.0.0/8";
        raises ValueError naming a malformed one."""
        return cls(
            require_https=require_https, allowed=tuple(Allowed.parse(e) for e in allow if e.strip())
        )

    def check_url(self, url: str) -> Endpoint:
        """A rule's target url, when the rule is stored: raises TargetUrlRefused. Names are not
        resolved here (the answer may change before a delivery; it is checked then)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise TargetUrlRefused("target url is not a valid url") from exc
        endpoint = self.endpoint(
            parts.scheme,
            parts.hostname,
            port,
            parts.username is not None or parts.password is not None,
        )
        if endpoint.address is not None and not self.allows_address(
            endpoint.host, endpoint.port, endpoint.address
        ):
            raise TargetUrlRefused(
                "target url must not name a loopback, private, link-local "
                "or other non-public address"
            )
        # The one name that needs no lookup: "localhost" is loopback by definition (RFC 6761).
        if (
            endpoint.address is None
            and (endpoint.host == "localhost" or endpoint.host.endswith(".localhost"))
            and not self.allows_address(endpoint.host, endpoint.port, _LOOPBACK)
        ):
            raise TargetUrlRefused("target url must not name localhost")
        return endpoint

    def endpoint(
        self, scheme: str | None, host: str | None, port: int | None, userinfo: bool
    ) -> Endpoint:
        """The checks that need no address: scheme, https in live mode, a host, no
        credentials in the url, no legacy numeric host. Raises TargetUrlRefused."""
        scheme = (scheme or "").lower()
        if scheme not in _DEFAULT_PORTS:
            raise TargetUrlRefused("target url must be http or https")
        if self.require_https and scheme != "https":
            raise TargetUrlRefused("target url must be https")
        if userinfo:
            raise TargetUrlRefused("target url must not carry a user name or password")
        name = _normal_host(host or "")
        if not name:
            raise TargetUrlRefused("target url has no host")
        try:
            address: IPAddress | None = ip_address(name)
        except ValueError:
            address = None
            if _NUMERIC_HOST.match(name):
                raise TargetUrlRefused(
                    "target url host is a number but not an IP address in dotted form"
                ) from None
        return Endpoint(scheme, name, port or _DEFAULT_PORTS[scheme], address)

    def allows_host(self, host: str, port: int) -> bool:
        """Allow-listed by name: every address the name resolves to is taken."""
        name = _normal_host(host)
        return any(a.admits_host(name, port) for a in self.allowed)

    def allows_address(self, host: str, port: int, address: IPAddress) -> bool:
        """May a delivery to `host`:`port` connect to `address` (the host itself, or what its
        name resolved to)?"""
        if self.allows_host(host, port):
            return True
        plain = _unwrap(address)
        if any(a.admits_address(plain, port) for a in self.allowed):
            return True
        return is_public(address)
