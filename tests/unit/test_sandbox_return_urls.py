"""Which return URLs a sandbox takes, and which it redirects a browser to."""

from __future__ import annotations

import pytest

from paymesh.sandbox.return_urls import ReturnHosts, is_valid, with_query


@pytest.mark.parametrize("url", [
    "https://shop.example/return?cart=9", "http://127.0.0.1:8080/r", "http://[::1]/r",
    "myapp://payment-done", "myapp:done",
])  # fmt: skip
def test_urls_a_psp_takes(url: str) -> None:
    assert is_valid(url)


@pytest.mark.parametrize("url", [
    "", "javascript:alert(1)", "JAVASCRIPT:alert(1)", "data:text/html,x", "vbscript:x",
    "file:///etc/passwd", "//evil.example/", "/relative", "shop.example/return",
    "https:///no-host", "http://exa mple.com/", "http://a.example/\nLocation: x",
    "http://a.example\\@evil.example/", "http://a.example:99999/",
])  # fmt: skip
def test_urls_refused_when_the_payment_is_made(url: str) -> None:
    assert not is_valid(url)


def test_by_default_loopback_and_the_webhook_host() -> None:
    hosts = ReturnHosts(None, "http://Shop.Internal:9000/webhooks/stripe")
    for url in (
        "http://localhost/r",
        "http://LOCALHOST.:3000/r",
        "http://127.0.0.1/r",
        "http://127.8.9.10:80/r",
        "http://[::1]:8000/r",
        "https://shop.internal/r",
    ):
        assert hosts.allows(url), url
    for url in (
        "https://evil.example/",
        "http://localhost.evil.example/",
        "http://127.0.0.1.evil.example/",
        "http://user@localhost/",
        "http://localhost:pw@evil.example/",
        "javascript://localhost/%0aalert(1)",
        "myapp://localhost/",
        "//localhost/r",
        "http://2130706433/",
    ):
        assert not hosts.allows(url), url


def test_a_configured_list_replaces_the_defaults() -> None:
    hosts = ReturnHosts(("shop.example", " [::1] "), "http://shop.internal/webhooks")
    assert hosts.allows("https://SHOP.example/r") and hosts.allows("http://[::1]/r")
    assert not hosts.allows("http://localhost/r")
    assert not hosts.allows("http://127.0.0.1/r")
    assert not hosts.allows("https://shop.internal/r")
    assert not ReturnHosts((), None).allows("http://localhost/r")


def test_the_psps_parameters_go_before_any_fragment() -> None:
    assert with_query("https://s.example/r", {"a": "1 2"}) == "https://s.example/r?a=1+2"
    assert with_query("https://s.example/r?x=1#top", {"a": "b"}) == (
        "https://s.example/r?x=1&a=b#top"
    )
