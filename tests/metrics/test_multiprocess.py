"""Several worker processes, one picture: two real ``roam serve`` processes sharing a
``PROMETHEUS_MULTIPROC_DIR`` each answer ``/metrics`` with the sum over both, and only to
the holder of the metrics token."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx

from tests.support.gateway import gateway_process
from tests.support.metrics import scrape, value
from tests.support.rp import full_login
from tests.support.servers import free_port


def test_two_processes_sharing_a_directory_report_their_sum(tmp_path: Path) -> None:
    shared = tmp_path / "prometheus"
    shared.mkdir()
    token = secrets.token_urlsafe(32)
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared), "ROAM_METRICS_TOKEN": token}
    with gateway_process(free_port(), env=env) as (first, one), \
            gateway_process(free_port(), env=env) as (second, other):
        for url, logins in ((first, 1), (second, 2)):  # one person logs in at each
            with httpx.Client(base_url=url, follow_redirects=False) as browser:
                full_login(url, browser)
            for _ in range(logins):
                assert httpx.get(f"{url}/items").status_code == 200
        assert one.pid != other.pid
        for url in (first, second):  # either process answers for both
            samples = scrape(url, token)
            assert value(samples, "roam_logins_total", channel="web", level="L2") == 2
            assert value(samples, "roam_tokens_issued_total",
                         grant_type="authorization_code") == 2
            assert value(samples, "roam_http_requests_total", route="/items") == 3
        written = {path.name for path in shared.iterdir()}
        assert {f"counter_{one.pid}.db", f"counter_{other.pid}.db"} <= written

        # Without the token, or with another, nothing is told.
        assert httpx.get(f"{first}/metrics").status_code == 401
        wrong = httpx.get(f"{second}/metrics",
                          headers={"Authorization": f"Bearer {token[:-1]}x"})
        assert wrong.status_code == 401
        assert wrong.headers["www-authenticate"].startswith("Bearer")
        assert "roam_" not in wrong.text
