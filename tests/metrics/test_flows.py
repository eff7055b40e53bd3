"""The metrics a running gateway exports (gateway/metrics/recorder.py), scraped over HTTP
and read with prometheus-client's parser: each flow moves its counters, and no label
carries a subject, a token or anything else a client sent."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.samples import Sample
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from gateway.app import create_app
from gateway.config import Config
from gateway.metrics.recorder import PrometheusMetrics
from tests.support.gateway import config_on_port, with_systems
from tests.support.metrics import scrape, value
from tests.support.receiver import Receiver
from tests.support.rp import YUEYANG_CALLBACK, authorize_url, full_login, rp_client
from tests.support.servers import free_port, serve

SYSTEM = "metrics-legacy"
SYSTEMS = """
[[item]]
code = "430000-GJJ-001"
name = "住房公积金提取"

[[system]]
id = "{system}"
name = "指标测试系统"
region = "430100"
level = "prefecture"
instances = ["{upstream}"]
connector = "signed-header"
connector_settings = {{ secret = "metrics-test-signed-header-secret-0123456789" }}
items = ["430000-GJJ-001"]
claims = ["name"]
"""


def legacy_app() -> Starlette:
    async def page(request: Request) -> Response:
        return PlainTextResponse(f"hello {request.headers.get('x-roam-sub', '')}")

    return Starlette(routes=[Route("/{rest:path}", page)])


@dataclass
class Running:
    url: str
    receiver: Receiver
    metrics: PrometheusMetrics


def gateway_config(tmp: Path, port: int, upstream: str, receiver: str) -> Config:
    systems = tmp / "systems.toml"
    systems.write_text(SYSTEMS.format(system=SYSTEM, upstream=upstream), encoding="utf-8")
    config = config_on_port(port, clients={
        "changsha-gov": {"backchannel_logout_uri": f"{receiver}/changsha"},
        "yueyang-gov": {"backchannel_logout_uri": f"{receiver}/yueyang"}})
    return with_systems(config, systems, path_mode=True)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    receiver = Receiver()
    port = free_port()
    with serve(legacy_app()) as upstream, serve(receiver.app()) as receiver_url:
        config = gateway_config(tmp_path, port, upstream, receiver_url)
        metrics = PrometheusMetrics(systems=config.systems)
        with serve(create_app(config, metrics=metrics), port) as url:
            yield Running(url, receiver, metrics)


@pytest.fixture
def browser(running: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=running.url, follow_redirects=False) as client:
        yield client


def silent_hop(url: str, browser: httpx.Client) -> dict[str, Any]:
    """岳阳's /authorize in a browser logged in at 长沙: a code at once, then its tokens."""
    yueyang = rp_client("yueyang-gov", url)
    authorize, verifier = authorize_url(yueyang, url, nonce="n2")
    callback = browser.get(authorize)
    assert callback.status_code == 302
    assert callback.headers["location"].startswith(YUEYANG_CALLBACK)
    return dict(yueyang.fetch_token(f"{url}/token", authorization_response=callback.headers[
        "location"], code_verifier=verifier))


def test_each_flow_moves_its_counters(running: Running, browser: httpx.Client) -> None:
    url = running.url
    before = scrape(url)
    assert value(before, "roam_logins_total") == 0

    _, changsha, _ = full_login(url, browser)  # the login page, then /token
    after_login = scrape(url)
    assert value(after_login, "roam_logins_total", source="toml-directory", channel="web",
                 level="L2") == 1
    assert value(after_login, "roam_tokens_issued_total", grant_type="authorization_code") == 1
    assert value(after_login, "roam_sso_silent_hops_total") == 0  # a page was shown
    assert value(after_login, "roam_http_requests_total", route="/login", method="POST",
                 status="303") == 1
    assert value(after_login, "roam_http_request_duration_seconds_count",
                 route="/authorize") == 1
    assert value(after_login, "roam_store_operation_duration_seconds_count",
                 operation="upsert") > 0  # the session, the code, the grant

    silent_hop(url, browser)
    after_hop = scrape(url)
    assert value(after_hop, "roam_sso_silent_hops_total", client="yueyang-gov") == 1
    assert value(after_hop, "roam_tokens_issued_total", grant_type="authorization_code") == 2
    assert value(after_hop, "roam_logins_total") == 1  # no second login

    refreshed = httpx.post(f"{url}/token", data={
        "grant_type": "refresh_token", "refresh_token": "not-a-refresh-token",
        "client_id": "changsha-gov"}, auth=("changsha-gov", "wrong-secret"))
    assert refreshed.status_code in (400, 401)
    assert value(scrape(url), "roam_token_errors_total", grant_type="refresh_token") == 1

    page = browser.get(f"/s/{SYSTEM}/hello?id=7")  # the proxy, to a real upstream
    assert page.status_code == 200
    assert page.text == "hello c-0001"
    assert browser.get("/s/no-such-system/").status_code == 404
    after_proxy = scrape(url)
    assert value(after_proxy, "roam_proxy_requests_total", system=SYSTEM, region="430100",
                 status="200") == 1
    assert value(after_proxy, "roam_proxy_request_duration_seconds_count", system=SYSTEM,
                 region="430100") == 1
    assert value(after_proxy, "roam_proxy_requests_total", system="unknown",
                 status="404") == 1

    logout = browser.get("/logout", params={
        "id_token_hint": changsha["id_token"], "client_id": "changsha-gov",
        "post_logout_redirect_uri": "http://127.0.0.1:8001/"})
    assert logout.status_code == 303
    running.receiver.wait_for("changsha")
    running.receiver.wait_for("yueyang")
    after_logout = wait_for(url, "roam_backchannel_deliveries_total", 2, outcome="delivered")
    assert value(after_logout, "roam_logouts_total", reason="rp_initiated") == 1
    assert value(after_logout, "roam_backchannel_deliveries_total", client="changsha-gov",
                 outcome="delivered") == 1


def wait_for(url: str, name: str, wanted: float, **labels: str) -> list[Sample]:
    """Scrape until ``name`` reaches ``wanted`` (a background delivery records it after
    the RP answered); fails after 100 scrapes."""
    for _ in range(100):
        samples = scrape(url)
        if value(samples, name, **labels) >= wanted:
            return samples
        httpx.get(f"{url}/healthz")  # a turn of the gateway's loop between scrapes
    raise AssertionError(f"{name}{labels} never reached {wanted}")


def test_no_label_carries_a_subject_a_token_or_a_path(running: Running,
                                                      browser: httpx.Client) -> None:
    url = running.url
    _, token, _ = full_login(url, browser)
    hop = silent_hop(url, browser)
    browser.get(f"/s/{SYSTEM}/c-0001/secret-path?ticket=ST-42")
    browser.get("/go/430000-NOT-AN-ITEM?region=430100")
    browser.get("/s/c-0001-evil/")
    session = browser.cookies.get("roam_session") or ""
    forbidden = {"c-0001", "13800000001", "ST-42", "secret-path", "430000-NOT-AN-ITEM",
                 session, *session.split("."),
                 *(t[k] for t in (token, hop) for k in ("access_token", "id_token")
                   if k in t),
                 *(t["refresh_token"] for t in (token, hop) if "refresh_token" in t)}
    forbidden.discard("")
    samples = scrape(url)
    labels = {v for s in samples for v in s.labels.values()}
    assert labels, "no labels at all"
    leaked = {v for v in labels for f in forbidden if f in v}
    assert leaked == set()
    routes = {s.labels["route"] for s in samples if s.name == "roam_http_requests_total"}
    assert "/go/{item}" in routes  # the template, not the path asked for
    assert all(not r.startswith("/go/4") for r in routes)


def test_metrics_off_records_nothing_and_serves_no_metrics(tmp_path: Path) -> None:
    port = free_port()
    with serve(legacy_app()) as upstream:
        config = gateway_config(tmp_path, port, upstream, "http://127.0.0.1:9")
        settings = config.settings
        config = config.revised(settings=settings.model_copy(update={
            "metrics": settings.metrics.model_copy(update={"enabled": False})}))
        with serve(create_app(config), port) as url:
            assert httpx.get(f"{url}/items").status_code == 200
            assert httpx.get(f"{url}/metrics").status_code == 404


def test_two_apps_in_one_process_count_apart(tmp_path: Path) -> None:
    """A registry per app: each gateway counts its own requests only."""
    first, second = free_port(), free_port()
    registry = CollectorRegistry()
    with serve(legacy_app()) as upstream:
        one = gateway_config(tmp_path, first, upstream, "http://127.0.0.1:9")
        other = PrometheusMetrics(systems=one.systems, registry=registry)
        with serve(create_app(one), first) as a, \
                serve(create_app(config_on_port(second), metrics=other), second) as b:
            for _ in range(3):
                assert httpx.get(f"{a}/items").status_code == 200
            assert httpx.get(f"{b}/items").status_code == 200
            assert value(scrape(a), "roam_http_requests_total", route="/items") == 3
            assert value(scrape(b), "roam_http_requests_total", route="/items") == 1
    assert registry.get_sample_value(
        "roam_http_requests_total", {"route": "/items", "method": "GET", "status": "200"}) == 1


def test_the_health_code_reports_instances_through_two_calls() -> None:
    metrics = PrometheusMetrics()
    instance = "https://ops:pw@gjj.xiangtan.gov.cn:8443/app"
    metrics.instance_state("xt-gjj", instance, healthy=False, circuit="open")
    metrics.health_check("xt-gjj", instance, "timeout", 2.5)
    metrics.instance_state("xt-gjj", instance, healthy=True, circuit="half_open")
    metrics.health_check("xt-gjj", instance, "success", 0.02)
    shown = {"system": "xt-gjj", "upstream": "https://gjj.xiangtan.gov.cn:8443/app"}
    sample = metrics.registry.get_sample_value
    assert sample("roam_instance_healthy", shown) == 1
    assert {state: sample("roam_instance_circuit_state", {**shown, "state": state})
            for state in ("closed", "open", "half_open")} == {
        "closed": 0, "open": 0, "half_open": 1}
    assert sample("roam_health_checks_total", {**shown, "result": "timeout"}) == 1
    assert sample("roam_health_check_duration_seconds_count", shown) == 2
    with pytest.raises(ValueError, match="circuit"):
        metrics.instance_state("xt-gjj", instance, healthy=True, circuit="ajar")
    with pytest.raises(ValueError, match="result"):
        metrics.health_check("xt-gjj", instance, "maybe", 1.0)
