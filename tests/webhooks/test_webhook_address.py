"""Which addresses webhooks may reach (gateway.webhooks.address), and the registration check
that uses it (the 422 naming ``url``)."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import InvalidRequest
from gateway.webhooks.address import AddressPolicy, is_public, parse_literal
from gateway.webhooks.api import parse_endpoint_request

REFUSED = [
    "127.0.0.1",
    "127.5.6.7",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # link-local: cloud metadata
    "100.64.0.1",  # CGNAT
    "0.0.0.0",
    "255.255.255.255",
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "192.0.2.1",  # documentation
    "198.18.0.1",  # benchmarking
    "240.0.0.1",  # reserved
    "::1",
    "::",
    "fd00::1",  # ULA
    "fc00::1",
    "fe80::1",  # link-local
    "ff02::1",  # multicast
    "ff0e::1",  # global-scope multicast is still multicast
    "2001:db8::1",  # documentation
    "::ffff:127.0.0.1",  # IPv4-mapped forms
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b:1::1",  # local-use NAT64
    "2002:a00:1::",  # 6to4 of 10.0.0.1
    "::a00:1",  # IPv4-compatible (deprecated)
]
PUBLIC = [
    "8.8.8.8",
    "93.184.216.34",
    "2606:4700::1111",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_refused(address: str) -> None:
    ip = ip_address(address)
    assert not is_public(ip)
    assert not AddressPolicy().permits(ip)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_permitted(address: str) -> None:
    assert is_public(ip_address(address))
    assert AddressPolicy().permits(ip_address(address))


def test_allowed_networks_open_exactly_what_they_list() -> None:
    policy = AddressPolicy((ip_network("127.0.0.0/8"), ip_network("fd12:3456::/32")))
    assert policy.permits(ip_address("127.0.0.1"))
    assert policy.permits(ip_address("::ffff:127.0.0.1"))  # the mapped form too
    assert policy.permits(ip_address("fd12:3456::9"))
    assert not policy.permits(ip_address("::1"))
    assert not policy.permits(ip_address("10.0.0.1"))
    assert not policy.permits(ip_address("fd00::1"))


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),  # the C resolver's short forms, hex and decimal
        ("2130706433", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("::1", "::1"),
        ("10.0.0.1.", "10.0.0.1"),  # a trailing dot (the root) changes nothing
        ("127.1.", "127.0.0.1"),
        ("example.com", None),
        ("cafe", None),
        ("1e100.net", None),
    ],
)
def test_literal_addresses_in_every_form_the_resolver_takes(host: str, address: str) -> None:
    expected = None if address is None else ip_address(address)
    assert parse_literal(host) == expected


def url_errors(url: str, policy: AddressPolicy | None = None) -> list[tuple[str, str]]:
    try:
        parse_endpoint_request({"url": url, "events": ["*"]}, allow_http=False, policy=policy)
    except InvalidRequest as e:
        return [(f.field, f.message) for f in e.errors]
    return []


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.1/",
        "https://[fd00::1]/",
        "https://[::ffff:7f00:1]/",  # ::ffff:127.0.0.1 in hex
        "http://localhost:9464/metrics",
        "http://api.localhost/",
        "https://LOCALHOST./",
        "https://[2001:db8::1]/",
    ],
)
def test_registration_refuses_a_literal_non_public_address_naming_url(url: str) -> None:
    errors = url_errors(url)
    assert [field for field, _ in errors] == ["url"]
    assert "is not a public address" in errors[0][1]


def test_registration_takes_names_public_and_allowed_addresses() -> None:
    assert url_errors("https://hooks.example.com/x") == []  # checked at each attempt
    assert url_errors("https://8.8.8.8/x") == []
    allowed = AddressPolicy((ip_network("2001:db8::/32"), ip_network("127.0.0.0/8")))
    assert url_errors("https://[2001:db8::1]/hook", allowed) == []
    assert url_errors("https://[2001:db8::1]:8443/hook", allowed) == []
    assert url_errors("http://127.0.0.1:8080/hook", allowed) == []
    assert url_errors("http://localhost/hook", allowed) == []


def test_brackets_must_hold_an_ipv6_address() -> None:
    assert [f for f, _ in url_errors("https://[10.0.0.1]/")] == ["url"]


@given(
    st.one_of(
        st.text(max_size=80),
        st.builds(
            lambda scheme, host, rest: f"{scheme}://{host}{rest}",
            st.sampled_from(["http", "https", "HTtps"]),
            st.one_of(
                st.text(alphabet="0123456789abcdefx.:[]%", max_size=40),
                st.ip_addresses().map(lambda ip: f"[{ip}]" if ip.version == 6 else str(ip)),
            ),
            st.text(max_size=20),
        ),
    )
)
def test_registration_raises_nothing_but_a_field_error(url: str) -> None:
    """Whatever the URL, the check answers (422/400 naming a field) or accepts: never a 500."""
    allowed = AddressPolicy((ip_network("127.0.0.0/8"),))
    try:
        parse_endpoint_request({"url": url, "events": ["*"]}, allow_http=False, policy=allowed)
    except InvalidRequest as e:
        assert {f.field for f in e.errors} <= {"url"}
