"""gateway/urls.py: where plain http is allowed, cookie domains, and URL checks."""

from __future__ import annotations

import re

import pytest

from gateway.urls import (
    HOST_NAME,
    append_query,
    check_url,
    is_loopback_host,
    is_loopback_http,
    within_domain,
)


@pytest.mark.parametrize(("url", "loopback"), [
    ("http://127.0.0.1:8000/cb", True),
    ("http://127.9.9.9/", True),
    ("http://localhost/x", True),
    ("http://[::1]:8000/", True),
    ("https://127.0.0.1/", False),  # https is never "loopback http"
    ("http://10.0.0.1/", False),
    ("http://localhost.evil.example/", False),
    ("http://127.0.0.1.nip.io/", False),
    ("http:///nohost", False),
])
def test_plain_http_only_on_loopback(url: str, loopback: bool) -> None:
    assert is_loopback_http(url) is loopback


def test_a_cookie_domain_covers_itself_and_its_subdomains_only() -> None:
    assert within_domain("sso.hunan.gov.cn", "sso.hunan.gov.cn")
    assert within_domain("gjj.sso.hunan.gov.cn", "sso.hunan.gov.cn")
    assert not within_domain("evilsso.hunan.gov.cn", "sso.hunan.gov.cn")
    assert not within_domain("hunan.gov.cn", "sso.hunan.gov.cn")


@pytest.mark.parametrize("host", ["a.b", "gjj.sso.hunan.gov.cn", "x-1.example.cn"])
def test_host_names_that_pass(host: str) -> None:
    assert re.match(HOST_NAME, host)


@pytest.mark.parametrize("host", ["localhost", "A.example.cn", "a.example.cn:443",
                                  "127.0.0.1", "-a.example.cn", "a..b"])
def test_host_names_that_do_not(host: str) -> None:
    assert not re.match(HOST_NAME, host)


def test_check_url() -> None:
    assert check_url("https://a.example.cn/cb") == "https://a.example.cn/cb"
    assert check_url("http://127.0.0.1:8001/cb") == "http://127.0.0.1:8001/cb"
    assert check_url("https://a.example.cn/#x", allow_fragment=True)
    for bad in ("http://a.example.cn/cb", "ftp://a.example.cn/", "/relative",
                "https://a.example.cn/cb#frag"):
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            check_url(bad)


def test_append_query_keeps_the_rest_of_the_url_as_it_was() -> None:
    assert append_query("https://a.cn/app/", {"ticket": "ST-1"}) == "https://a.cn/app/?ticket=ST-1"
    assert append_query("https://a.cn/x?b=%2f&c#frag", {"ticket": "t"}) == (
        "https://a.cn/x?b=%2f&c&ticket=t#frag")


@pytest.mark.parametrize(("url", "loopback"), [
    ("http://127.0.0.1:8000", True), ("https://127.200.0.1", True), ("http://[::1]:8000", True),
    ("https://localhost:8443", True), ("https://sso.localhost", True),
    ("https://SSO.LOCALHOST.", True),
    ("https://localhost.example", False), ("https://127.0.0.1.nip.example", False),
    ("https://sso.hunan.gov.cn", False), ("http://10.0.0.1", False), ("http://[::2]", False),
    ("not a url", False),
])
def test_is_loopback_host(url: str, loopback: bool) -> None:
    assert is_loopback_host(url) is loopback
