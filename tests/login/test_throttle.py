"""Failed logins per client address: a spray over many accounts from one client stops.

The page tests run the real app on a real server and count the password checks the real
TOML directory makes (``CountingDirectory``): a throttled attempt must check none.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.config import Config
from gateway.login.throttle import source_key
from gateway.store import MemoryStore, Store
from tests.support.audit import audited
from tests.support.counting import CountingDirectory
from tests.support.gateway import REPO, config_on_port, form_field
from tests.support.servers import free_port, serve

# c-0001..c-0006 of config/directory.toml, and the password they share
ACCOUNTS = ["13800000001", "13900000002", "15000000003", "13800000004", "13900000005",
            "15000000006"]
PASSWORD = "Roam@2026"
LIMIT = 3


def with_login(config: Config, **changes: Any) -> Config:
    login = config.settings.login.model_copy(update=changes)
    return config.revised(settings=config.settings.model_copy(update={"login": login}))


def trusting(config: Config, *networks: str) -> Config:
    gateway = config.settings.gateway.model_copy(update={"trusted_proxies": networks})
    return config.revised(settings=config.settings.model_copy(update={"gateway": gateway}))


class Checks:
    """Password checks the gateways of one test made (their directories count together)."""

    def __init__(self) -> None:
        CountingDirectory.verified = 0

    @property
    def verified(self) -> int:
        return CountingDirectory.verified


@pytest.fixture
def directory() -> Checks:
    return Checks()


def run(config: Config, store: Store | None, port: int) -> Any:
    """A gateway on ``port`` whose directory (its own, as each process has) counts checks."""
    source = CountingDirectory.from_file(REPO / "config" / "directory.toml")
    # As `roam serve` runs it: uvicorn must not rewrite the client from X-Forwarded-For.
    return serve(create_app(config, store=store, source=source), port, proxy_headers=False)


@pytest.fixture
def gateway_url(directory: Checks) -> Iterator[str]:
    port = free_port()
    config = with_login(config_on_port(port), source_max_failures=LIMIT, source_window=900)
    with run(config, MemoryStore(), port) as url:
        yield url


class Browser:
    """A cookie-keeping client on the login page of one parked request."""

    def __init__(self, gateway_url: str, **headers: str) -> None:
        self.http = httpx.Client(base_url=gateway_url, follow_redirects=False, headers=headers)
        page = self.http.get(self.http.get("/login", params={"next": "/my/logins"})
                             .headers["location"])
        self.form = {"csrf_token": form_field(page.text, "csrf_token"),
                     "r": form_field(page.text, "r")}

    def log_in(self, username: str, password: str) -> httpx.Response:
        return self.http.post("/login", data={**self.form, "username": username,
                                              "password": password})


def test_a_spray_over_many_accounts_is_stopped_before_any_password_is_checked(
        gateway_url: str, directory: Checks,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    browser = Browser(gateway_url)
    for username in ACCOUNTS[:LIMIT]:  # one wrong password on each of three accounts
        assert browser.log_in(username, "Spray@2026").status_code == 401
    assert directory.verified == LIMIT
    for username in ACCOUNTS[LIMIT:]:  # other accounts, even with the right password
        refused = browser.log_in(username, PASSWORD)
        assert refused.status_code == 429
        assert 'role="alert"' in refused.text
        assert "当前网络登录失败次数过多" in refused.text
        assert "15 分钟后再试" in refused.text
        assert 0 < int(refused.headers["retry-after"]) <= 900
        assert form_field(refused.text, "r") == browser.form["r"]  # the deep link is kept
    assert directory.verified == LIMIT, "a throttled attempt checks no password"
    throttled = [r for r in audited(caplog.records, "login", "denied")
                 if getattr(r, "reason", None) == "throttled"]
    assert len(throttled) == len(ACCOUNTS) - LIMIT
    assert all(getattr(r, "source", None) == "127.0.0.1" for r in throttled)
    assert PASSWORD not in caplog.text
    assert "Spray@2026" not in caplog.text


def test_successes_do_not_use_the_window_up(gateway_url: str,
                                            directory: Checks) -> None:
    browser = Browser(gateway_url)
    for _ in range(2):
        assert browser.log_in(ACCOUNTS[0], "wrong-1").status_code == 401
    for username in ACCOUNTS[1:4]:  # people behind one NAT logging in: no slot kept
        assert Browser(gateway_url).log_in(username, PASSWORD).status_code == 303
    assert browser.log_in(ACCOUNTS[0], "wrong-2").status_code == 401  # the third failure
    assert browser.log_in(ACCOUNTS[0], PASSWORD).status_code == 429
    assert directory.verified == 6


def test_an_empty_form_costs_nothing(gateway_url: str) -> None:
    browser = Browser(gateway_url)
    for _ in range(LIMIT + 2):
        refused = browser.log_in(ACCOUNTS[0], "")
        assert refused.status_code == 401
        assert "请输入用户名和密码" in refused.text
    assert browser.log_in(ACCOUNTS[0], PASSWORD).status_code == 303


def test_parallel_spray_across_processes_checks_at_most_the_limit(
        directory: Checks, redis_url: str, redis_prefix: str) -> None:
    """Two gateway processes on one Redis; 20 wrong passwords on 20 accounts at once from
    one client (the accounts differ, so only the address window can stop them)."""
    ports = [free_port(), free_port()]
    configs = [with_login(config_on_port(port, backend="redis", redis_url=redis_url,
                                         prefix=redis_prefix), source_max_failures=5)
               for port in ports]
    with run(configs[0], None, ports[0]) as first, run(configs[1], None, ports[1]) as second:
        browsers = [Browser(first), Browser(second)]

        def spray(n: int) -> int:
            browser = browsers[n % 2]
            with httpx.Client(base_url=browser.http.base_url,
                              cookies=browser.http.cookies) as http:
                return http.post("/login", data={**browser.form, "username": f"1380000{n:04d}",
                                                 "password": "x"}).status_code

        with ThreadPoolExecutor(max_workers=20) as pool:
            statuses = list(pool.map(spray, range(20)))
    assert sorted(statuses) == [401] * 5 + [429] * 15
    assert directory.verified == 5


def test_forwarded_for_counts_only_from_a_trusted_proxy(directory: Checks) -> None:
    port = free_port()
    plain = with_login(config_on_port(port), source_max_failures=LIMIT)
    with run(plain, MemoryStore(), port) as url:
        # A client cannot escape its window by naming another address.
        for n in range(LIMIT):
            spoofed = Browser(url, **{"X-Forwarded-For": f"198.51.100.{n}"})
            assert spoofed.log_in(ACCOUNTS[n], "wrong").status_code == 401
        last = Browser(url, **{"X-Forwarded-For": "198.51.100.99"})
        assert last.log_in(ACCOUNTS[4], "wrong").status_code == 429

    port = free_port()
    behind_proxy = trusting(with_login(config_on_port(port), source_max_failures=LIMIT),
                            "127.0.0.0/8")
    with run(behind_proxy, MemoryStore(), port) as url:
        sprayer = Browser(url, **{"X-Forwarded-For": "203.0.113.7, 127.0.0.2"})
        for username in ACCOUNTS[:LIMIT]:
            assert sprayer.log_in(username, "wrong").status_code == 401
        assert sprayer.log_in(ACCOUNTS[4], "wrong").status_code == 429
        # another client behind the same proxy is counted on its own
        neighbour = Browser(url, **{"X-Forwarded-For": "203.0.113.8"})
        assert neighbour.log_in(ACCOUNTS[5], PASSWORD).status_code == 303


def test_source_key_counts_ipv6_by_its_64() -> None:
    assert source_key("192.0.2.4") == "192.0.2.4"
    assert source_key("2001:db8:1:2:aaaa::1") == source_key("2001:db8:1:2:bbbb::9")
    assert source_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert source_key("2001:db8:1:3::1") != source_key("2001:db8:1:2::1")
    assert source_key("") == "unknown"
