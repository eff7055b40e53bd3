"""gateway/cookies.py: cookie names under https, and one cookie read without ambiguity."""

from __future__ import annotations

import pytest
from starlette.requests import cookie_parser

from gateway.cookies import cookie_value, host_cookie_name


@pytest.mark.parametrize("header", [
    "", "roam_session=a.b", "x=1; roam_session=a.b; y=2", "roam_session = a.b ;x=1",
    'roam_session="a.b"', "roam_sessionx=1; x=roam_session",
    "roam_session", "roam_session=; x=1", "a=b=c; roam_session=s.t=u",
])
def test_a_single_cookie_is_read_as_starlette_reads_it(header: str) -> None:
    assert cookie_value(header, "roam_session") == cookie_parser(header).get("roam_session", "")


@pytest.mark.parametrize("header", [
    "roam_session=a.b; roam_session=c.d",  # a sibling host planted the second
    "roam_session=a.b; x=1; roam_session=a.b",
    "roam_session=; roam_session=c.d",
])
def test_two_cookies_of_one_name_are_read_as_none(header: str) -> None:
    # Starlette (and browsers' order) would pick one of them; either may be the planted one.
    assert cookie_parser(header).get("roam_session")
    assert cookie_value(header, "roam_session") == ""


def test_host_only_cookies_are_host_prefixed_under_https() -> None:
    assert host_cookie_name("roam_session", secure=True) == "__Host-roam_session"
    assert host_cookie_name("roam_session", secure=True, domain="sso.example.cn") == \
        "__Secure-roam_session"
    assert host_cookie_name("roam_session", secure=False) == "roam_session"
