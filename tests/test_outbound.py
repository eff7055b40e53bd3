"""Tests for gateway.outbound: the SSRF guard on client-registered URLs.

Only literal IPs and ``localhost`` are ever resolved; other names go to an injected
resolver, so no test touches real DNS. Checked addresses are never connected to, except
by the tests of pinned calls, which start their own servers on loopback under names in
``.invalid`` (RFC 6761: no resolver ever answers them).
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Iterable
from pathlib import Path

import anyio
import httpx
import pytest
import trustme
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.config import OutboundSection
from gateway.errors import RoamError
from gateway.outbound import OutboundPolicy, OutboundRefused, is_special
from tests.support.servers import RecordingUpstream, serve

LOOPBACK = ("127.0.0.0/8", "::1/128")


def policy(*allowed: str, timeout: float = 5.0) -> OutboundPolicy:
    return OutboundPolicy(OutboundSection(allowed_networks=allowed, timeout=timeout))


def fixed_resolver(*addresses: str, allowed: tuple[str, ...] = ()
                   ) -> tuple[OutboundPolicy, list[tuple[str, int]]]:
    calls: list[tuple[str, int]] = []

    async def resolve(host: str, port: int) -> Iterable[str]:
        calls.append((host, port))
        return addresses

    return OutboundPolicy(OutboundSection(allowed_networks=allowed), resolver=resolve), calls


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/bcl",
        "https://127.8.9.10/bcl",
        "https://[::1]/bcl",
        "https://10.1.2.3/bcl",
        "https://172.16.0.1/bcl",
        "https://192.168.1.1/bcl",
        "https://169.254.169.254/latest/meta-data/",
        "https://100.64.0.1/bcl",
        "https://0.0.0.0/bcl",
        "https://0.1.2.3/bcl",
        "https://192.0.2.1/bcl",
        "https://198.51.100.1/bcl",
        "https://203.0.113.5/bcl",
        "https://198.18.0.1/bcl",
        "https://224.0.0.1/bcl",
        "https://240.0.0.1/bcl",
        "https://255.255.255.255/bcl",
        "https://[::]/bcl",
        "https://[::ffff:127.0.0.1]/bcl",  # IPv4-mapped loopback
        "https://[::ffff:169.254.169.254]/bcl",
        "https://[::127.0.0.1]/bcl",  # IPv4-compatible
        "https://[64:ff9b::a00:1]/bcl",  # NAT64 of 10.0.0.1
        "https://[2002:a00:1::1]/bcl",  # 6to4 of 10.0.0.1
        "https://[fd00::1]/bcl",
        "https://[fc00::1]/bcl",
        "https://[fe80::1]/bcl",
        "https://[fec0::1]/bcl",
        "https://[ff02::1]/bcl",
        "https://[2001:db8::1]/bcl",
        "https://[3fff::1]/bcl",
        "https://[100::1]/bcl",
    ],
)
async def test_special_use_addresses_are_refused(url: str) -> None:
    with pytest.raises(OutboundRefused, match="special-use"):
        await policy().check(url)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://203.0.113.5/bcl",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_INFO",
        "javascript:alert(1)",
        "bcl",
    ],
)
async def test_non_http_schemes_are_refused(url: str) -> None:
    with pytest.raises(OutboundRefused, match="scheme"):
        await policy(*LOOPBACK).check(url)


async def test_plain_http_to_a_non_loopback_host_is_refused() -> None:
    with pytest.raises(OutboundRefused, match="plain http"):
        await policy().check("http://203.0.113.5/bcl")
    # Even where its network is allowed: plain http is for loopback only.
    with pytest.raises(OutboundRefused, match="plain http"):
        await policy("10.0.0.0/8").check("http://10.0.0.1/bcl")
    with pytest.raises(OutboundRefused, match="plain http"):
        await policy().check("http://8.8.8.8/bcl")


@pytest.mark.parametrize(
    "url", ["https:///bcl", "https://127.0.0.1:99999/bcl", "https://[::1/bcl"]
)
async def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(OutboundRefused):
        await policy(*LOOPBACK).check(url)


async def test_allowed_networks_let_loopback_through() -> None:
    guard = policy("127.0.0.0/8")
    await guard.check("http://127.0.0.1:8080/bcl")
    await guard.check("https://127.0.0.1/bcl")
    await guard.check("http://[::ffff:127.0.0.1]:8080/bcl")
    # The allowance is exactly what was listed.
    with pytest.raises(OutboundRefused):
        await guard.check("https://[::1]/bcl")
    with pytest.raises(OutboundRefused):
        await guard.check("https://10.0.0.1/bcl")
    with pytest.raises(OutboundRefused):
        await guard.check("https://169.254.169.254/")


async def test_allowed_network_other_than_loopback() -> None:
    guard = policy("203.0.113.0/24")
    await guard.check("https://203.0.113.5/bcl")
    with pytest.raises(OutboundRefused):
        await guard.check("https://198.51.100.5/bcl")


async def test_public_literal_addresses_pass_without_dns() -> None:
    guard, calls = fixed_resolver()
    await guard.check("https://8.8.8.8/bcl")
    await guard.check("https://[2606:4700:4700::1111]/bcl")
    await guard.check("https://[::ffff:8.8.8.8]/bcl")
    await guard.check("https://[2002:808:808::1]/bcl")  # 6to4 of a public address
    assert calls == []


async def test_localhost_resolves_to_loopback_and_is_refused() -> None:
    with pytest.raises(OutboundRefused, match="special-use address"):
        await policy().check("https://localhost/bcl")
    with pytest.raises(OutboundRefused):
        await policy().check("http://localhost:8080/bcl")
    await policy(*LOOPBACK).check("http://localhost:8080/bcl")


async def test_every_resolved_address_must_pass() -> None:
    guard, calls = fixed_resolver("93.184.215.14", "10.0.0.7")
    with pytest.raises(OutboundRefused, match=r"10\.0\.0\.7"):
        await guard.check("https://rp.example.gov.cn/bcl")
    assert calls == [("rp.example.gov.cn", 443)]

    guard, calls = fixed_resolver("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c")
    await guard.check("https://rp.example.gov.cn:8443/bcl")
    assert calls == [("rp.example.gov.cn", 8443)]


async def test_plain_http_name_resolving_to_public_address_is_refused() -> None:
    guard, _ = fixed_resolver("93.184.215.14")
    with pytest.raises(OutboundRefused, match="plain http"):
        await guard.check("http://rp.example.gov.cn/bcl")


async def test_resolution_failure_is_a_refusal() -> None:
    async def fails(host: str, port: int) -> Iterable[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def empty(host: str, port: int) -> Iterable[str]:
        return []

    async def garbage(host: str, port: int) -> Iterable[str]:
        return ["not-an-ip"]

    async def hangs(host: str, port: int) -> Iterable[str]:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    for resolver, reason in [(fails, "cannot resolve"), (empty, "no address"),
                             (garbage, "non-IP"), (hangs, "timed out")]:
        guard = OutboundPolicy(OutboundSection(timeout=0.05), resolver=resolver)
        with pytest.raises(OutboundRefused, match=reason):
            await guard.check("https://rp.example.gov.cn/bcl")


def test_refusal_is_a_roam_error_and_policy_reads_config() -> None:
    assert issubclass(OutboundRefused, RoamError)
    guard = OutboundPolicy(OutboundSection(allowed_networks=("127.0.0.1",), timeout=2.5,
                                           retry_for=30))
    assert guard.timeout == 2.5
    assert guard.retry_for == 30
    assert guard.allowed_networks == (ipaddress.ip_network("127.0.0.1/32"),)
    assert OutboundPolicy().allowed_networks == ()


@pytest.mark.parametrize(
    ("address", "special"),
    [
        ("8.8.8.8", False),
        ("2606:4700:4700::1111", False),
        ("::ffff:8.8.8.8", False),
        ("169.254.169.254", True),
        ("::ffff:10.0.0.1", True),
        ("64:ff9b::7f00:1", True),
        ("2002:7f00:1::", True),
    ],
)
def test_is_special(address: str, special: bool) -> None:
    assert is_special(ipaddress.ip_address(address)) is special


# Pinned calls: the connection goes to the address that was checked ---------------------


async def test_a_call_goes_to_the_checked_address_and_never_resolves_the_name_again() -> None:
    guard, calls = fixed_resolver("127.0.0.1", allowed=LOOPBACK)
    with RecordingUpstream() as base:
        port = httpx.URL(base).port
        async with httpx.AsyncClient() as http:
            body, _ = await guard.read(http, f"http://rp.invalid:{port}/jwks", limit=100)
    assert body == b"ok"
    assert calls == [("rp.invalid", port)], "resolved once, by the guard"


async def test_the_name_goes_in_the_host_header_and_the_connection_is_not_kept() -> None:
    guard, _ = fixed_resolver("127.0.0.1", allowed=LOOPBACK)
    upstream = RecordingUpstream()
    with upstream as base:
        port = httpx.URL(base).port
        pinned = await guard.pin(f"http://rp.invalid:{port}/bcl")
        assert pinned.url == f"http://127.0.0.1:{port}/bcl"
        async with httpx.AsyncClient() as http:
            for _ in range(2):
                async with guard.stream(http, "POST", pinned, data={"a": "b"}) as answer:
                    assert answer.status_code == 200
    head = upstream.heads[0].lower()
    assert f"host: rp.invalid:{port}\r\n".encode() in head
    assert b"connection: close\r\n" in head
    assert upstream.connections == 2, "each call its own connection"


async def test_a_name_that_now_resolves_inside_is_refused_and_nothing_is_sent() -> None:
    answers = iter([["127.0.0.1"], ["10.0.0.7"]])  # the check passed; the name moved since

    async def rebinding(host: str, port: int) -> Iterable[str]:
        return next(answers)

    guard = OutboundPolicy(OutboundSection(allowed_networks=("127.0.0.0/8",)),
                           resolver=rebinding)
    upstream = RecordingUpstream()
    with upstream as base:
        url = f"https://rp.invalid:{httpx.URL(base).port}/jwks"
        await guard.check(url)  # as at registration
        async with httpx.AsyncClient() as http:
            with pytest.raises(OutboundRefused, match=r"special-use address 10\.0\.0\.7"):
                await guard.read(http, url, limit=100)
    assert upstream.connections == 0


def _jwks(request: Request) -> JSONResponse:
    return JSONResponse({"keys": [], "host": request.headers["host"]})


async def test_tls_checks_the_certificate_against_the_name_not_the_address(
        tmp_path: Path) -> None:
    authority = trustme.CA()
    issued = authority.issue_cert("rp.invalid")  # not for 127.0.0.1, not for others
    key, chain = tmp_path / "key.pem", tmp_path / "chain.pem"
    issued.private_key_pem.write_to_path(str(key))
    issued.cert_chain_pems[0].write_to_path(str(chain))
    trusted = ssl.create_default_context()
    authority.configure_trust(trusted)
    guard, _ = fixed_resolver("127.0.0.1", allowed=LOOPBACK)
    app = Starlette(routes=[Route("/jwks", _jwks)])
    with serve(app, ssl_keyfile=str(key), ssl_certfile=str(chain)) as base:
        port = httpx.URL(base).port
        async with httpx.AsyncClient(verify=trusted) as http:
            body, _ = await guard.read(http, f"https://rp.invalid:{port}/jwks", limit=1000)
            assert b'"host":"rp.invalid:' in body
            # another name at the same address: its own handshake, which fails
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await guard.read(http, f"https://other.invalid:{port}/jwks", limit=1000)
