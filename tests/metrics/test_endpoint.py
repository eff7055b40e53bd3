"""Who may read ``/metrics`` (gateway/metrics/endpoint.py): a token's holder, or
without a token a direct loopback connection only."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr, ValidationError
from starlette.requests import Request

from gateway.app import create_app
from gateway.config import Config, MetricsSection, load_config
from gateway.errors import ConfigError
from gateway.metrics.endpoint import MetricsEndpoint, metrics_token
from gateway.metrics.recorder import PrometheusMetrics, open_metrics
from tests.support.gateway import REPO, config_on_port
from tests.support.servers import free_port, serve

TOKEN = secrets.token_urlsafe(32)


def with_metrics(config: Config, **changes: object) -> Config:
    settings = config.settings
    return config.revised(settings=settings.model_copy(update={
        "metrics": settings.metrics.model_copy(update=changes)}))


def request_from(host: str, headers: dict[str, str] | None = None) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request({"type": "http", "method": "GET", "path": "/metrics", "headers": raw,
                    "client": (host, 40000)})


def refused_with(endpoint: MetricsEndpoint, request: Request) -> int:
    """The status of the endpoint's refusal, 0 if it would answer."""
    refusal = endpoint.refusal(request)
    return 0 if refusal is None else refusal.status_code


def test_without_a_token_only_direct_loopback_connections_are_answered() -> None:
    endpoint = MetricsEndpoint(PrometheusMetrics(), token=None)
    for host in ("127.0.0.1", "127.8.0.3", "::1", "::ffff:127.0.0.1"):
        assert endpoint.refusal(request_from(host)) is None, host
    for host in ("10.1.2.3", "192.168.0.9", "2001:db8::1", "::ffff:10.0.0.1", "not-an-ip"):
        assert refused_with(endpoint, request_from(host)) == 403, host
    # a load balancer on this host forwards the internet's requests from loopback
    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
        assert refused_with(endpoint, request_from("127.0.0.1", {header: "203.0.113.9"})) \
            == 403, header


def test_with_a_token_everyone_needs_it() -> None:
    endpoint = MetricsEndpoint(PrometheusMetrics(), token=TOKEN)
    assert endpoint.refusal(request_from("10.1.2.3", {"Authorization": f"Bearer {TOKEN}"})) \
        is None
    assert endpoint.refusal(request_from("::1", {"Authorization": f"bearer {TOKEN}"})) is None
    for presented in ("", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer ", TOKEN):
        assert refused_with(endpoint, request_from("127.0.0.1", {"Authorization": presented})) \
            == 401, presented


def test_a_served_gateway_answers_the_scraper_and_refuses_others() -> None:
    port = free_port()
    config = with_metrics(config_on_port(port), token=SecretStr(TOKEN))
    with serve(create_app(config), port) as url:
        refused = httpx.get(f"{url}/metrics")
        assert refused.status_code == 401
        assert refused.json()["error"] == "invalid_token"
        assert refused.headers["cache-control"] == "no-store"
        scraped = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert scraped.status_code == 200
        assert scraped.headers["content-type"].startswith("text/plain")
        assert 'roam_build_info{version="' in scraped.text
        openmetrics = httpx.get(f"{url}/metrics", headers={
            "Authorization": f"Bearer {TOKEN}",
            "Accept": "application/openmetrics-text; version=1.0.0"})
        assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
        assert openmetrics.text.rstrip().endswith("# EOF")


def test_the_token_comes_from_the_environment_or_a_file(tmp_path: Path) -> None:
    config = load_config(REPO / "config" / "roam.toml", env={"ROAM_METRICS_TOKEN": TOKEN})
    assert metrics_token(config) == TOKEN
    assert TOKEN not in repr(config.settings)  # a secret is never printed
    (tmp_path / "metrics-token").write_text(TOKEN + "\n", "utf-8")
    from_file = with_metrics(config_on_port(8000), token_file=str(tmp_path / "metrics-token"))
    assert metrics_token(from_file) == TOKEN
    (tmp_path / "metrics-token").write_text("short\n", "utf-8")
    with pytest.raises(ConfigError, match=r"metrics\.token_file"):
        metrics_token(from_file)
    missing = with_metrics(config_on_port(8000), token_file=str(tmp_path / "nothing"))
    with pytest.raises(ConfigError, match="cannot read"):
        metrics_token(missing)


def test_bad_metrics_settings_are_refused(tmp_path: Path) -> None:
    main = (REPO / "config" / "roam.toml").read_text("utf-8")
    for name in ("clients", "directory", "systems"):
        main = main.replace(f'"{name}.toml"', f'"{REPO / "config" / name}.toml"')
    path = tmp_path / "roam.toml"
    path.write_text(main + f'token = "{TOKEN}"\n', "utf-8")  # in [metrics], the last table
    with pytest.raises(ConfigError) as written:
        load_config(path, env={})
    assert any("metrics.token: a secret is never written" in p for p in written.value.problems)
    assert all(TOKEN not in p for p in written.value.problems)
    path.write_text(main, "utf-8")
    for env, key in (({"ROAM_METRICS_TOKEN": "too-short"}, "ROAM_METRICS_TOKEN"),
                     ({"ROAM_METRICS_ENABLED": "perhaps"}, "ROAM_METRICS_ENABLED")):
        with pytest.raises(ConfigError) as bad:
            load_config(path, env=env)
        assert any(key in p for p in bad.value.problems), bad.value.problems
    with pytest.raises(ValidationError, match="not both"):
        MetricsSection.model_validate({"token": TOKEN, "token_file": "x"})


def test_the_multiprocess_directory_must_be_usable(tmp_path: Path) -> None:
    config = config_on_port(8000)
    for env in ({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "missing")},
                {"PROMETHEUS_MULTIPROC_DIR": ""}):
        with pytest.raises(ConfigError, match="PROMETHEUS_MULTIPROC_DIR"):
            open_metrics(config.settings.metrics, config.systems, env=env)
    # this process chose in-memory values when it imported prometheus-client
    with pytest.raises(ConfigError, match="set after the process started"):
        open_metrics(config.settings.metrics, config.systems,
                     env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
    off = with_metrics(config, enabled=False).settings.metrics
    assert not open_metrics(off, config.systems, env={}).enabled
