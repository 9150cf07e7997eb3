"""What a rule may name as an HTTP target (issue 12, item 5): checked when the rule is stored,
without DNS; every address a delivery would connect to is checked by the same policy."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from paymesh.domain.target_policy import TargetPolicy, TargetUrlRefused, is_public

NON_PUBLIC = [
    "127.0.0.1",
    "127.8.9.10",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "255.255.255.255",
    "240.0.0.1",
    "198.18.0.1",
    "::1",
    "::",
    "fd00::1",
    "fe80::1",
    "fec0::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::1",
    "2002:a9fe:a9fe::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "::127.0.0.1",
]
PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "2606:4700:4700::1111",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
]


@pytest.mark.parametrize("address", NON_PUBLIC)
def test_non_public_addresses_are_not_public(address: str) -> None:
    assert not is_public(ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are(address: str) -> None:
    assert is_public(ip_address(address))


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/paymesh",
        "http://hooks.example.com:8080/x?y=1",
        "https://8.8.8.8/hook",
        "https://[2606:4700:4700::1111]/hook",
        # A name is not resolved when the rule is stored, whatever it will resolve to.
        "https://internal.example.com/hook",
    ],
)
def test_public_urls_are_taken(url: str) -> None:
    TargetPolicy().check_url(url)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://hooks.example.com/x", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("gopher://127.0.0.1:6379/_x", "http or https"),
        ("http:///hook", "no host"),
        ("https://user:pw@hooks.example.com/", "user name or password"),
        ("https://hooks.example.com@127.0.0.1/", "user name or password"),
        ("http://169.254.169.254/latest/meta-data/", "non-public"),
        ("http://127.0.0.1:8000/hook", "non-public"),
        ("http://[::1]:8000/hook", "non-public"),
        ("http://[::ffff:10.0.0.1]/hook", "non-public"),
        ("http://10.0.0.7/hook", "non-public"),
        ("http://100.100.100.200/latest/meta-data", "non-public"),
        ("http://0.0.0.0:8000/", "non-public"),
        ("http://2130706433/", "not an IP address in dotted form"),
        ("http://0x7f.1/", "not an IP address in dotted form"),
        ("http://127.1/", "not an IP address in dotted form"),
        ("http://localhost:8000/", "localhost"),
        ("http://api.localhost/", "localhost"),
        ("http://hooks.example.com:99999/", "not a valid url"),
    ],
)
def test_refused_urls_say_why(url: str, why: str) -> None:
    with pytest.raises(TargetUrlRefused, match=why):
        TargetPolicy().check_url(url)


def test_live_mode_takes_https_only() -> None:
    live = TargetPolicy(require_https=True)
    live.check_url("https://hooks.example.com/")
    with pytest.raises(TargetUrlRefused, match="must be https"):
        live.check_url("http://hooks.example.com/")
    # The allow-list lets addresses through, not plain http.
    with pytest.raises(TargetUrlRefused, match="must be https"):
        TargetPolicy.parse(["127.0.0.1"], require_https=True).check_url("http://127.0.0.1/")


def test_the_allow_list_lets_development_targets_through() -> None:
    policy = TargetPolicy.parse(["127.0.0.1:5000", "localhost:8123", "10.0.0.0/8", "[::1]:9000"])
    for url in [
        "http://127.0.0.1:5000/hook",
        "http://localhost:8123/hook",
        "http://10.20.30.40/hook",
        "http://[::1]:9000/",
        "http://[::ffff:127.0.0.1]:5000/",
    ]:
        policy.check_url(url)
    for url in [
        "http://127.0.0.1:5001/hook",
        "http://localhost:8124/hook",
        "http://[::1]:9001/",
        "http://192.168.0.1/",
        "http://169.254.169.254/",
    ]:
        with pytest.raises(TargetUrlRefused):
            policy.check_url(url)
    # localhost is loopback: allow-listing 127.0.0.1 takes it, as the delivery will.
    TargetPolicy.parse(["127.0.0.1"]).check_url("http://localhost:8000/")


def test_addresses_are_checked_against_the_host_and_port_they_serve() -> None:
    policy = TargetPolicy.parse(["inventory.internal", "127.0.0.1:8123"])
    loopback, private = ip_address("127.0.0.1"), ip_address("10.0.0.5")
    # A name allow-listed takes whatever it resolves to.
    assert policy.allows_address("inventory.internal", 443, private)
    assert policy.allows_address("Inventory.Internal.", 443, private)
    # Otherwise each address must be public or allow-listed (with its port).
    assert policy.allows_address("shop.example.com", 8123, loopback)
    assert not policy.allows_address("shop.example.com", 8124, loopback)
    assert not policy.allows_address("shop.example.com", 443, private)
    assert policy.allows_address("shop.example.com", 443, ip_address("8.8.8.8"))


@pytest.mark.parametrize(
    "entry",
    ["", "http://x", "10.0.0.0/33", "host:0", "host:70000", "bad host", "2130706433", "a..b"],
)
def test_malformed_allow_list_entries_are_refused(entry: str) -> None:
    if not entry:
        assert TargetPolicy.parse([entry]).allowed == ()  # blanks from "a,,b" are skipped
        return
    with pytest.raises(ValueError, match="allow-list entry"):
        TargetPolicy.parse([entry])
