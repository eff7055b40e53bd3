"""A replayed authorization code kills every token it produced, however the redemptions
interleave: N parallel redemptions of one code, on Redis, through two gateway instances
sharing it (two processes' worth), many times over.

RFC 6749 §4.1.2: if a code is used more than once, the server must deny the request and
should revoke every token already issued from it. Whoever wins the race, once a replay
was seen nothing that code produced may still work.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import uuid4

import httpx
import pytest
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import OAuth2Client

from gateway.app import create_app
from gateway.keys import KeyRing
from tests.support.gateway import SECRETS, config_on_port
from tests.support.redis_server import delete_prefixed
from tests.support.rp import authorize_url, full_login, rp_client
from tests.support.servers import free_port, serve

TRIALS = 50


@pytest.fixture(scope="module")
def instances(redis_url: str) -> Iterator[list[str]]:
    """Two gateway instances of one issuer, one Redis, one key directory's worth of keys."""
    prefix = f"roamtest:{uuid4().hex}:"
    port = free_port()
    config = config_on_port(port, backend="redis", redis_url=redis_url, prefix=prefix)
    keys = KeyRing.ephemeral()
    try:
        with serve(create_app(config, keys=keys), port) as first, \
                serve(create_app(config, keys=keys)) as second:
            yield [first, second]
    finally:
        delete_prefixed(redis_url, prefix)


def redeem_in_parallel(instances: list[str], n: int, browser: httpx.Client
                       ) -> list[dict[str, Any] | str]:
    """One code, ``n`` redemptions released together; each a token or an error code."""
    issuer = instances[0]
    url, verifier = authorize_url(rp_client("changsha-gov", issuer), issuer,
                                  nonce=secrets.token_urlsafe(8))
    callback = browser.get(url).headers["location"]  # silent: the session is there
    clients: list[OAuth2Client] = [rp_client("changsha-gov", issuer) for _ in range(n)]
    start = threading.Barrier(n)

    def redeem(i: int) -> dict[str, Any] | str:
        client = clients[i]
        start.wait()
        try:
            token = client.fetch_token(f"{instances[i % 2]}/token",
                                       authorization_response=callback,
                                       code_verifier=verifier)
        except OAuthError as error:
            return str(error.error)
        return dict(token)

    try:
        with ThreadPoolExecutor(max_workers=n) as pool:
            return list(pool.map(redeem, range(n)))
    finally:
        for client in clients:
            client.close()


def still_working(instances: list[str], token: dict[str, Any]) -> list[str]:
    """What of a token response still works anywhere (empty: all of it is dead)."""
    alive = []
    for gateway in instances:
        bearer = {"Authorization": f"Bearer {token['access_token']}"}
        if httpx.get(f"{gateway}/userinfo", headers=bearer).status_code != 401:
            alive.append(f"access token at {gateway}/userinfo")
        for kind in ("access_token", "refresh_token"):
            body = httpx.post(f"{gateway}/introspect", data={"token": token[kind]},
                              auth=("hunan-data-api", SECRETS["hunan-data-api"])).json()
            if body != {"active": False}:
                alive.append(f"{kind} introspected active at {gateway}")
    refreshed = httpx.post(f"{instances[1]}/token", data={
        "grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
        auth=("changsha-gov", SECRETS["changsha-gov"]))
    if refreshed.status_code != 400 or refreshed.json().get("error") != "invalid_grant":
        alive.append(f"refresh token at /token: {refreshed.status_code}")
    return alive


@pytest.mark.parametrize("n", [4, 8])
def test_after_a_replay_no_token_of_the_code_works(instances: list[str], n: int) -> None:
    issuer = instances[0]
    with httpx.Client(base_url=issuer) as browser:
        full_login(issuer, browser)
        problems = []
        for trial in range(TRIALS):
            outcomes = redeem_in_parallel(instances, n, browser)
            tokens = [o for o in outcomes if isinstance(o, dict)]
            errors = [o for o in outcomes if isinstance(o, str)]
            assert len(tokens) <= 1, outcomes  # single use: never two winners
            assert set(errors) <= {"invalid_grant"}, errors
            for token in tokens:
                problems += [f"trial {trial}: {what}"
                             for what in still_working(instances, token)]
    assert problems == []
