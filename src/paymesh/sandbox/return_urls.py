"""Where a sandbox's customer-facing pages may send a browser back to: never just anywhere.

The 3-D Secure and approval pages end, as the PSPs' own do, by redirecting the customer to
the return URL the merchant gave with the payment. A sandbox accepts any test credential,
so anyone may create that payment: redirecting to whatever URL it names would make the
sandbox an open redirector (a link on the sandbox's host that lands on a phishing page).

Two checks, each where the PSP would make it:

    when the payment is created   `is_valid`: an absolute URL the PSP would accept (Stripe
                                  answers `url_invalid`); never `javascript:`, `data:` and
                                  the like, never scheme-relative (`//evil.example`). An
                                  app's own scheme (`myapp://done`) is valid, as at the PSPs
    when the page redirects       `ReturnHosts.allows`: http(s) only, no user info, no
                                  backslash or control character, and a host on the allow
                                  list. Otherwise the page shows the result as JSON instead

The allow list is a sandbox setting (`return_url_hosts`); by default it is loopback
(`localhost`, 127.0.0.0/8, ::1) and the host of the sandbox's own webhook URL: where a
developer's shop runs.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from urllib.parse import SplitResult, urlencode, urlsplit

__all__ = ["ReturnHosts", "is_valid", "with_query"]

#: Schemes that run or embed content instead of naming a place: never a return URL.
_ACTIVE_SCHEMES = frozenset({"javascript", "data", "vbscript", "file", "blob", "about"})
_WEB_SCHEMES = frozenset({"http", "https"})
_LOOPBACK_NAMES = frozenset({"localhost"})


def _split(url: str) -> SplitResult | None:
    if not url or any(ch <= " " or ch == "\x7f" for ch in url) or "\\" in url:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None
    return parts


def is_valid(url: str) -> bool:
    """Whether a PSP would take `url` as a return URL: absolute, with a scheme it may
    redirect a browser to (http(s) with a host, or an app's own scheme)."""
    parts = _split(url)
    if parts is None or not parts.scheme:
        return False
    scheme = parts.scheme.lower()
    if scheme in _ACTIVE_SCHEMES:
        return False
    if scheme in _WEB_SCHEMES:
        return bool(parts.hostname)
    return bool(parts.netloc or parts.path)


def _host(name: str) -> str:
    return name.strip().lower().rstrip(".").removeprefix("[").removesuffix("]")


class ReturnHosts:
    """The hosts a sandbox's pages may redirect to (see the module docstring)."""

    def __init__(self, hosts: Iterable[str] | None, webhook_url: str | None = None) -> None:
        """`hosts`: the setting; None for the default, loopback plus `webhook_url`'s host."""
        self.loopback = hosts is None
        names = set(_LOOPBACK_NAMES) if hosts is None else set()
        if hosts is not None:
            names.update(_host(h) for h in hosts if h.strip())
        elif webhook_url:
            webhook = _split(webhook_url)
            if webhook is not None and webhook.hostname:
                names.add(_host(webhook.hostname))
        self.names = frozenset(names)

    def allows(self, url: str) -> bool:
        parts = _split(url)
        if parts is None or parts.scheme.lower() not in _WEB_SCHEMES or not parts.hostname:
            return False
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            return False
        host = _host(parts.hostname)
        return host in self.names or (self.loopback and _is_loopback_address(host))


def _is_loopback_address(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def with_query(url: str, query: Mapping[str, str]) -> str:
    """`url` with `query` appended, as the PSPs add their parameters to a return URL."""
    base, _, fragment = url.partition("#")
    separator = "&" if "?" in base else "?"
    joined = f"{base}{separator}{urlencode(query)}"
    return f"{joined}#{fragment}" if fragment else joined
