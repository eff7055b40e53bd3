"""``/authorize`` while the store does not answer: a silent request goes back to its client
with ``temporarily_unavailable``; a person gets the error page with ``Retry-After``; an
unregistered redirect URI is never followed, outage or not."""

from __future__ import annotations

import os
import signal
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from gateway.app import create_app
from tests.support.gateway import config_on_port
from tests.support.redis_server import started_redis_server
from tests.support.rp import CHANGSHA_CALLBACK, authorize_url, full_login, rp_client
from tests.support.servers import free_port, serve


@pytest.mark.parametrize("outage", ["stopped", "frozen"])
def test_while_the_store_is_down_a_silent_request_returns_to_its_client(
        outage: str, caplog: pytest.LogCaptureFixture) -> None:
    """Stopped: connections refused. Frozen (SIGSTOP): nothing answers, and each request
    waits ``[store] timeout`` (1 s) — the browser here gives up after 4 s, where the
    5 s an unconfigured Redis client waited would not do."""
    with started_redis_server() as redis:
        port = free_port()
        config = config_on_port(port, backend="redis", redis_url=redis.url,
                                prefix="roam-test-outage:")
        with serve(create_app(config), port) as url, \
                httpx.Client(base_url=url, timeout=4) as browser:
            full_login(url, browser)  # a session, kept in the Redis about to fail
            if outage == "stopped":
                redis.stop()
            else:
                os.kill(redis.process.pid, signal.SIGSTOP)
            try:
                client = rp_client("changsha-gov", url)
                silent, _ = authorize_url(client, url, prompt="none", state="s-1",
                                          nonce="n")
                answer = browser.get(silent)
                interactive, _ = authorize_url(client, url, state="s-2", nonce="n")
                page = browser.get(interactive)
                forged = browser.get("/authorize?" + urlencode({
                    "client_id": "changsha-gov", "redirect_uri": "https://evil.example/cb",
                    "response_type": "code", "scope": "openid", "prompt": "none",
                    "state": "s-3"}))
            finally:
                if outage == "frozen":
                    os.kill(redis.process.pid, signal.SIGCONT)

    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(CHANGSHA_CALLBACK + "?")
    params = parse_qs(urlsplit(location).query)
    assert params["error"] == ["temporarily_unavailable"]
    assert params["state"] == ["s-1"]
    assert params["iss"] == [url]
    assert "code" not in params
    ref = params["error_description"][0].rsplit("ref ", 1)[1].rstrip(").")
    assert any(getattr(r, "ref", None) == ref and r.getMessage() == "store failure"
               for r in caplog.records)

    assert page.status_code == 503  # someone may be looking: a page, and when to retry
    assert page.headers["retry-after"] == "5"
    assert "服务暂时不可用" in page.text

    assert forged.status_code == 400
    assert "location" not in forged.headers
    assert "evil.example" not in forged.text
