"""gateway/urls.py: where plain http is allowed, cookie domains, and URL checks."""

from __future__ import annotations

import re

import pytest

from gateway.urls import (
    HOST_NAME,
    append_query,
    check_url,
    has_dot_segment,
    is_loopback_host,
    is_loopback_http,
    normalized_url,
    url_under,
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


@pytest.mark.parametrize(("path", "dot"), [
    ("a/b", False), ("a.b/c.d", False), ("a/.../b", False), ("a%20b", False),
    ("a/..b/c", False), ("a/b..;/c", False), ("a;x/b", False), ("%E5%85%AC", False),
    ("..", True), ("a/../b", True), ("a/./b", True), ("a/%2e%2e/b", True), ("a/%2E/b", True),
    ("a/.%2e", True), ("a%2f..%2fb", True), ("a\\..\\b", True), ("a/%5c..%5cb", True),
    # path parameters on dot segments: Tomcat, Jetty and Spring read ..; as ..
    ("a/..;/b", True), ("a/..;x=1/b", True), ("a/%2e%2e;/b", True), ("a/.;/..;/b", True),
    ("a/..%3b/b", True), ("a/.%3Bjsessionid=1/b", True),
    # encoded twice or more, for a server or app that decodes again
    ("a/%252e%252e/b", True), ("a/%252E%252e;/b", True), ("a/%25252e%25252e/b", True),
    ("a/%2525252e%2525252e/b", True),  # deeper than anyone decodes in good faith
])
def test_dot_segments_are_found_however_they_are_written(path: str, dot: bool) -> None:
    assert has_dot_segment(path) is dot


@pytest.mark.parametrize(("url", "normal"), [
    ("https://a.gov.cn", "https://a.gov.cn/"),
    ("HTTPS://A.Gov.CN:443/x", "https://a.gov.cn/x"),
    ("https://a.gov.cn:8443/x", "https://a.gov.cn:8443/x"),
    ("http://127.0.0.1:80/x?y=1#frag", "http://127.0.0.1/x?y=1"),
    ("http://[::1]:8000/x", "http://[::1]:8000/x"),
    ("https://a.gov.cn/%61%7e%2D/%2f%3f?q=%e5%85%ac", "https://a.gov.cn/a~-/%2F%3F?q=%E5%85%AC"),
    ("https://a.gov.cn/公积金", "https://a.gov.cn/%E5%85%AC%E7%A7%AF%E9%87%91"),
])
def test_urls_in_normal_form(url: str, normal: str) -> None:
    assert normalized_url(url) == normal


@pytest.mark.parametrize("url", [
    "http://a.gov.cn/", "ftp://a.gov.cn/", "/relative", "https://u@a.gov.cn/",
    "https://a.gov.cn/x y", "https://a.gov.cn/\nx", "https://a.gov.cn\\x", "https://a.gov.cn:x/",
    "https://a.gov.cn/a/../b", "https://a.gov.cn/a/%2E%2E/b", "https://a.gov.cn/a/..;/b",
    "https://a.gov.cn/100%", "https://a.gov.cn/x?q=%zz",
])
def test_urls_without_a_normal_form(url: str) -> None:
    assert normalized_url(url) is None


@pytest.mark.parametrize(("url", "prefix", "under"), [
    ("https://a.gov.cn/gjj", "https://a.gov.cn/gjj", True),
    ("https://a.gov.cn/gjj/x", "https://a.gov.cn/gjj", True),
    ("https://a.gov.cn/gjj?x=1", "https://a.gov.cn/gjj", True),
    ("https://a.gov.cn/gjj#x", "https://a.gov.cn/gjj", True),
    ("https://a.gov.cn/gjjx", "https://a.gov.cn/gjj", False),  # a segment boundary
    ("https://a.gov.cn/gjj", "https://a.gov.cn/gjj/", False),
    ("https://a.gov.cn/gjj/", "https://a.gov.cn/gjj/", True),
    ("https://A.GOV.CN:443/%67jj/x", "https://a.gov.cn/gjj", True),  # normalised
    ("https://a.gov.cn/gjj%2Fx", "https://a.gov.cn/gjj/", False),  # %2F is no separator
    ("https://a.gov.cn/gjj/../other", "https://a.gov.cn/gjj", False),
    ("https://a.gov.cn/gjj/%2e%2e/other", "https://a.gov.cn/gjj", False),
    ("https://a.gov.cn.evil.example/", "https://a.gov.cn", False),
    ("https://a.gov.cn:8443/gjj", "https://a.gov.cn/gjj", False),
    ("https://a.gov.cn/x", "https://a.gov.cn", True),
    ("https://a.gov.cn/app?id=1&x=2", "https://a.gov.cn/app?id=1", True),
    ("https://a.gov.cn/app?id=10", "https://a.gov.cn/app?id=1", False),
    ("https://a.gov.cn/app/x?id=1", "https://a.gov.cn/app?id=1", False),
])
def test_a_url_under_a_prefix(url: str, prefix: str, under: bool) -> None:
    assert url_under(url, prefix) is under


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
