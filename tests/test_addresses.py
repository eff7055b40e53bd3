"""The client's address behind trusted proxies: one rule for the throttle and the audit."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.addresses import client_address, scope_address

TRUSTED = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"))


@pytest.mark.parametrize(("peer", "forwarded", "expected"), [
    ("192.0.2.1", [], "192.0.2.1"),
    ("192.0.2.1", ["203.0.113.9"], "192.0.2.1"),  # not a trusted peer: header ignored
    ("10.0.0.5", ["203.0.113.9"], "203.0.113.9"),
    ("10.0.0.5", ["1.1.1.1, 203.0.113.9, 10.0.0.7"], "203.0.113.9"),  # right-most untrusted
    ("10.0.0.5", ["1.1.1.1", "203.0.113.9"], "203.0.113.9"),  # several headers, in order
    ("10.0.0.5", ["10.0.0.6, 10.0.0.7"], "10.0.0.6"),  # only proxies: the last one seen
    ("10.0.0.5", ["203.0.113.9, nonsense"], "10.0.0.5"),  # unparsable: stop at the proxy
    ("10.0.0.5", [], "10.0.0.5"),
    ("::1", ["2001:db8::7"], "2001:db8::7"),
    ("::ffff:192.0.2.4", [], "192.0.2.4"),
    ("", ["203.0.113.9"], ""),
])
def test_client_address(peer: str, forwarded: list[str], expected: str) -> None:
    assert client_address(peer, forwarded, TRUSTED) == expected


def test_scope_address_reads_the_header_only_from_a_trusted_peer() -> None:
    scope = {"client": ("10.0.0.5", 5000), "headers": [(b"x-forwarded-for", b"203.0.113.9")]}
    assert scope_address(scope, TRUSTED) == "203.0.113.9"
    assert scope_address(scope, ()) == "10.0.0.5"
    assert scope_address({"headers": []}, TRUSTED) == ""
