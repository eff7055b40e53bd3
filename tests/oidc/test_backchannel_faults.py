"""Back-channel logout outlives the process that took the logout: two real ``roam serve``
processes on a redis-server of the test's own, the RPs down, the process that answered
the logout killed (SIGKILL) or stopped (SIGTERM) right after its answer; once the RPs are
back, each gets its logout token from the other process."""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis
from joserfc import jwt
from joserfc.jwk import KeySet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.oidc.backchannel import EVENT
from gateway.oidc.delivery_queue import PENDING
from tests.support.gateway import REPO, form_field, gateway_process, processes_env
from tests.support.redis_server import RedisServer
from tests.support.rp import YUEYANG_CALLBACK, authorize_url, full_login, rp_client
from tests.support.servers import free_port, serve

PREFIX = "roam-test-bcl-faults:"
RPS = ("changsha-gov", "yueyang-gov")


class Receivers:
    """The RPs' back-channel endpoints: every logout token each received."""

    def __init__(self) -> None:
        self.tokens: dict[str, list[str]] = {name: [] for name in RPS}
        self.lock = threading.Lock()
        self.ports = {name: free_port() for name in RPS}

    async def endpoint(self, request: Request) -> Response:
        form = await request.form()
        with self.lock:
            self.tokens[request.path_params["name"]].append(str(form["logout_token"]))
        return Response(status_code=200)

    @contextmanager
    def up(self) -> Iterator[None]:
        app = Starlette(routes=[Route("/bcl/{name}", self.endpoint, methods=["POST"])])
        with serve(app, self.ports["changsha-gov"]), serve(app, self.ports["yueyang-gov"]):
            yield


@pytest.fixture
def receivers() -> Receivers:
    return Receivers()


@pytest.fixture
def env(tmp_path: Path, own_redis: RedisServer, receivers: Receivers) -> dict[str, str]:
    clients = (REPO / "config" / "clients.toml").read_text("utf-8")
    for name, port in (("8001", receivers.ports["changsha-gov"]),
                       ("8002", receivers.ports["yueyang-gov"])):
        rp = "changsha-gov" if name == "8001" else "yueyang-gov"
        clients = re.sub(rf'backchannel_logout_uri = "http://127.0.0.1:{name}/[^"]*"',
                         f'backchannel_logout_uri = "http://127.0.0.1:{port}/bcl/{rp}"',
                         clients)
    (tmp_path / "clients.toml").write_text(clients, "utf-8")
    return {**processes_env(tmp_path, own_redis.url, PREFIX),
            "ROAM_GATEWAY_CLIENTS_FILE": str(tmp_path / "clients.toml"),
            "ROAM_OUTBOUND_TIMEOUT": "1", "ROAM_OUTBOUND_LEASE": "3",
            "ROAM_OUTBOUND_RETRY_FOR": "120"}


def log_in_to_both(url: str, browser: httpx.Client) -> None:
    full_login(url, browser, "changsha-gov")
    yueyang = rp_client("yueyang-gov", url)
    auth_url, verifier = authorize_url(yueyang, url, prompt="none", nonce="n")
    callback = browser.get(auth_url).headers["location"]
    assert callback.startswith(YUEYANG_CALLBACK), callback
    yueyang.fetch_token(f"{url}/token", authorization_response=callback,
                        code_verifier=verifier)


def log_out_everywhere(browser: httpx.Client) -> None:
    page = browser.get("/my/logins")
    out = browser.post("/my/logins/logout",
                       data={"csrf_token": form_field(page.text, "csrf_token")})
    assert out.status_code == 200, out.text


def pending_in_store(redis_url: str) -> int:
    with redis.Redis.from_url(redis_url) as raw:
        return int(raw.scard(f"{PREFIX}grant:{{{PENDING}}}"))


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM])
def test_deliveries_survive_the_process_that_took_the_logout(
        env: dict[str, str], own_redis: RedisServer, receivers: Receivers,
        stop: signal.Signals, tmp_path: Path) -> None:
    with gateway_process(free_port(), env=env, log=tmp_path / "other.log") as (other, _):
        with gateway_process(free_port(), env=env,
                             log=tmp_path / "taker.log") as (taker, process), \
                httpx.Client(base_url=taker) as browser:
            log_in_to_both(taker, browser)
            log_out_everywhere(browser)
            process.send_signal(stop)  # right after its answer, the RPs still down
            process.wait(timeout=30)
        # recorded before the answer: both deliveries are there, unfinished
        assert pending_in_store(own_redis.url) == 2
        with receivers.up():
            deadline = time.monotonic() + 30
            while not all(receivers.tokens[name] for name in RPS):
                assert time.monotonic() < deadline, f"not delivered: {receivers.tokens}"
                time.sleep(0.1)
            jwks = httpx.get(f"{other}/jwks").json()
        keys = KeySet.import_key_set(jwks)
        for name in RPS:  # as an RP checks it, against the gateway's published keys
            token = jwt.decode(receivers.tokens[name][-1], keys, algorithms=["RS256", "ES256"])
            assert token.header["typ"] == "logout+jwt"
            assert token.claims["aud"] == name
            assert token.claims["events"] == {EVENT: {}}
        deadline = time.monotonic() + 10
        while pending_in_store(own_redis.url):  # finished: out of the pending index
            assert time.monotonic() < deadline, "delivered deliveries still pending"
            time.sleep(0.1)
