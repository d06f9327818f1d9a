"""URL checks without a network: a fake resolver stands in for DNS."""

from __future__ import annotations

import ipaddress

import pytest

from mlcore.infra.errors import InvalidInput
from mlcore.infra.urlfetch import UrlPolicy, check_url


def policy(*addresses, **kwargs):
    return UrlPolicy(resolver=lambda host, port: list(addresses), **kwargs)


def test_public_https_is_pinned_to_the_checked_address():
    assert check_url("https://data.example.org/a/b.csv?x=1", policy("93.184.216.34")) == (
        "https",
        "data.example.org",
        443,
        "/a/b.csv?x=1",
        "93.184.216.34",
    )


@pytest.mark.parametrize(
    "addresses",
    [
        ["169.254.169.254"],
        ["93.184.216.34", "10.0.0.5"],  # every resolved address is checked, not only the first
        ["127.0.0.1"],
        ["::1"],
        ["fe80::1"],
        ["::ffff:127.0.0.1"],
        ["fd00:ec2::254"],  # the IPv6 instance metadata address
        ["0.0.0.0"],
        ["100.64.0.1"],  # carrier-grade NAT: not global
        ["224.0.0.1"],
    ],
)
def test_non_public_addresses_are_refused(addresses):
    with pytest.raises(InvalidInput, match="which is not a public address$"):
        check_url("https://evil.example/", policy(*addresses))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://example.org/x", "only https URLs can be ingested"),
        ("file:///etc/passwd", "only https URLs can be ingested"),
        ("https://user:secret@example.org/x", "URLs with credentials are not accepted"),
        ("https:///x", "has no host"),
    ],
)
def test_bad_urls(url, message):
    with pytest.raises(InvalidInput, match=message):
        check_url(url, policy("93.184.216.34"))


def test_an_allowed_network_admits_its_own_addresses_only():
    allowed = policy(
        "127.0.0.1", allow_networks=(ipaddress.ip_network("127.0.0.1/32"),), allow_http=True, allow_ports=(8080,)
    )
    assert check_url("http://localhost:8080/x", allowed)[4] == "127.0.0.1"
    with pytest.raises(InvalidInput, match="169.254.169.254"):
        check_url("http://x/", policy("169.254.169.254", allow_networks=allowed.allow_networks, allow_http=True))


def test_there_is_no_allowance_by_default():
    assert UrlPolicy.from_settings() == UrlPolicy()  # the default: no allowance


def test_the_allowance_is_read_from_the_settings():
    assert UrlPolicy.from_settings("127.0.0.1/32, 10.0.0.0/8", True).allow_networks == (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("10.0.0.0/8"),
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://a:99999/", "is malformed: Port out of range"),
        ("https://a:abc/", "is malformed: Port could not be cast"),
        ("https://a:-1/", "is malformed: Port could not be cast"),
        ("https://[::1/", "is malformed: Invalid IPv6 URL"),
        ("https://a..b/", "^invalid host name 'a..b': label empty or too long$"),
        ("https://" + "a" * 64 + ".com/", "label empty or too long"),
        ("https://" + ".".join(["abcdefghij"] * 25) + "/", "^invalid host name: 274 characters, more than 253$"),
    ],
)
def test_malformed_urls_are_refused_by_name(url, message):
    policy = UrlPolicy(resolver=lambda host, port: ["93.184.216.34"])
    with pytest.raises(InvalidInput, match=message):
        check_url(url, policy)


@pytest.mark.parametrize(
    "address",
    [
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254
        "64:ff9b::a00:5",  # NAT64 of 10.0.0.5
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    ],
)
def test_6to4_and_nat64_addresses_are_judged_by_the_ipv4_address_they_carry(address):
    with pytest.raises(InvalidInput, match="which is not a public address$"):
        check_url("https://evil.example/", policy(address))


def test_6to4_and_nat64_of_a_public_address_are_fetched():
    for address in ("2002:5db8:d822::", "64:ff9b::5db8:d822"):  # 93.184.216.34
        assert check_url("https://ok.example/", policy(address))[4] == address


def test_only_the_schemes_own_port_is_allowed_unless_configured():
    with pytest.raises(InvalidInput, match="^refusing to fetch 'https://ok.example:8443/': only port 443 is allowed"):
        check_url("https://ok.example:8443/", policy("93.184.216.34"))
    assert check_url("https://ok.example:8443/", policy("93.184.216.34", allow_ports=(8443,)))[2] == 8443
    assert check_url("https://ok.example:443/", policy("93.184.216.34"))[2] == 443
