"""Behind a real TLS-terminating load balancer: nginx with a certificate from a CA this
test makes, in front of two ``roam serve`` processes on one Redis. The issuer is https,
so cookies are ``__Host-`` and every answer carries HSTS; the client address the audit
trail and the throttles use comes from ``X-Forwarded-For`` only when the peer is the
balancer (``[gateway] trusted_proxies``), so neither a header a client adds through the
balancer nor one sent straight to a gateway can name another address."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.gateway import audit_file, gateway_process, processes_env
from tests.support.redis_server import RedisServer
from tests.support.rp import full_login
from tests.support.servers import free_port
from tests.support.tls import LocalCA, make_ca

BALANCER = "127.0.0.2"  # nginx talks to the gateways from here: the one trusted proxy
SPOOFED = "203.0.113.7"

NGINX_CONF = """\
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream gateways {{
        server 127.0.0.1:{a};
        server 127.0.0.1:{b};
    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{
            proxy_pass http://gateways;
            proxy_bind {balancer};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
        }}
    }}
}}
"""


def nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                      else None)
    if found is None:
        # Fail, never skip: `make system-packages` installs it.
        raise RuntimeError("no nginx: apt-get install nginx")
    return found


def sources(port: int, request_id: str) -> list[str]:
    """The ``source`` of the audit events of one request, from the trail of the gateway
    on ``port`` (written in batches: waited for)."""
    deadline = time.monotonic() + 10
    while True:
        path = audit_file(port)
        lines = path.read_text("utf-8").splitlines() if path.exists() else []
        found = [event["source"] for event in map(json.loads, lines)
                 if event.get("request_id") == request_id]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def bad_client_secret(url: str, ca: LocalCA | None, **headers: str) -> httpx.Response:
    answer = httpx.post(f"{url}/token", auth=("changsha-gov", "wrong"), headers=headers,
                        verify=ca.trust() if ca else True,
                        data={"grant_type": "refresh_token", "refresh_token": "x"})
    assert answer.status_code == 401, answer.text
    return answer


@pytest.fixture
def ca(tmp_path: Path) -> LocalCA:
    return make_ca(tmp_path)


def test_two_gateways_behind_a_tls_balancer(tmp_path: Path, own_redis: RedisServer,
                                            ca: LocalCA) -> None:
    a, b, port = free_port(), free_port(), free_port()
    env = {**processes_env(tmp_path, own_redis.url, "roam-test-lb:"),
           # the issuer is where people reach it: the balancer's https address
           "ROAM_GATEWAY_ISSUER": f"https://localhost:{port}",
           "ROAM_GATEWAY_TRUSTED_PROXIES": f"{BALANCER}/32"}
    trust = ca.trust()
    with gateway_process(a, env=env, log=tmp_path / "a.log") as (direct, _), \
            gateway_process(b, env=env, log=tmp_path / "b.log"), \
            balancer_at(tmp_path / "nginx", ca, a, b, port) as url:
        with httpx.Client(base_url=url, verify=trust) as browser:
            _, token, _ = full_login(url, browser, verify=trust)
            cookies = list(browser.cookies.jar)
            assert cookies, "no cookie set"
            assert all(c.name.startswith("__Host-") and c.secure for c in cookies), cookies
            answer = browser.get("/items")
            assert answer.headers["strict-transport-security"].startswith("max-age=")
            userinfo = httpx.get(f"{url}/userinfo", verify=trust, headers={
                "Authorization": f"Bearer {token['access_token']}"})
            assert userinfo.status_code == 200
        for _ in range(6):  # round robin: both gateways answer
            bad_client_secret(url, ca)

        # through the balancer, a client's own X-Forwarded-For names nobody
        through = bad_client_secret(url, ca, **{"X-Forwarded-For": SPOOFED})
        request_id = through.headers["x-request-id"]
        assert sources(a, request_id) + sources(b, request_id) == ["127.0.0.1"]
        # straight to a gateway, past the balancer: the header is not believed at all
        bypass = bad_client_secret(direct, None, **{"X-Forwarded-For": SPOOFED})
        assert sources(a, bypass.headers["x-request-id"]) == ["127.0.0.1"]
        for served in (a, b):
            assert audit_file(served).exists(), f"the gateway on {served} served nothing"


@contextlib.contextmanager
def balancer_at(tmp: Path, ca: LocalCA, a: int, b: int, port: int) -> Iterator[str]:
    """nginx on ``port`` (TLS), round robin over the gateways on ``a`` and ``b``."""
    tmp.mkdir()
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, a=a, b=b, port=port, cert=ca.cert_file,
                                      key=ca.key_file, balancer=BALANCER), "utf-8")
    process = subprocess.Popen(  # noqa: S603 - fixed argv
        [nginx(), "-p", str(tmp), "-e", str(tmp / "nginx-error.log"), "-c", str(conf),
         "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"https://localhost:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"{url}/healthz", verify=ca.trust())
                break
            except httpx.TransportError:
                assert process.poll() is None, (tmp / "nginx-error.log").read_text()
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
