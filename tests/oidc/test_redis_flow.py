"""The same protocol on RedisStore: what scale-out deployments run."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import redis.asyncio as aioredis

from tests.support.gateway import SECRETS
from tests.support.rp import YUEYANG_CALLBACK, authorize_url, full_login, rp_client


def test_sso_refresh_and_replay_on_redis(redis_gateway: str, redis_url: str,
                                         redis_prefix: str) -> None:
    with httpx.Client(base_url=redis_gateway) as browser:
        client, token, _ = full_login(redis_gateway, browser)
        between = client.refresh_token(f"{redis_gateway}/token",
                                       refresh_token=token["refresh_token"])
        assert between["refresh_token"] != token["refresh_token"]
        rotated = client.refresh_token(f"{redis_gateway}/token",
                                       refresh_token=between["refresh_token"])
        # a second RP, silently, from the session kept in Redis
        yueyang = rp_client("yueyang-gov", redis_gateway)
        url, verifier = authorize_url(yueyang, redis_gateway, prompt="none", nonce="n")
        callback = browser.get(url).headers["location"]
        assert callback.startswith(YUEYANG_CALLBACK)
        assert "code=" in callback
        yueyang.fetch_token(f"{redis_gateway}/token", authorization_response=callback,
                            code_verifier=verifier)
    reuse = httpx.post(f"{redis_gateway}/token", data={
        "grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
        auth=("changsha-gov", SECRETS["changsha-gov"]))
    assert reuse.json()["error"] == "invalid_grant"
    gone = httpx.get(f"{redis_gateway}/userinfo",
                     headers={"Authorization": f"Bearer {rotated['access_token']}"})
    assert gone.status_code == 401


async def test_every_key_the_gateway_wrote_has_a_ttl(redis_gateway: str, redis_url: str,
                                                     redis_prefix: str) -> None:
    with httpx.Client(base_url=redis_gateway) as browser:
        full_login(redis_gateway, browser)
    raw = aioredis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in raw.scan_iter(match=f"{redis_prefix}*")]
        assert keys, "the login wrote nothing to Redis"
        for key in keys:
            assert await raw.pttl(key) > 0, key
    finally:
        await raw.aclose()


def test_concurrent_copies_of_a_refresh_token_on_redis_share_one_rotation(
        redis_gateway: str) -> None:
    with httpx.Client(base_url=redis_gateway) as browser:
        _, token, _ = full_login(redis_gateway, browser)
    form = {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]}

    def use(_: int) -> httpx.Response:
        return httpx.post(f"{redis_gateway}/token", data=form,
                          auth=("changsha-gov", SECRETS["changsha-gov"]))

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(use, range(16)))
    assert [a.status_code for a in answers] == [200] * 16
    new = {a.json()["refresh_token"] for a in answers}
    assert len(new) == 1, "one rotation; every other copy got its token (the reuse window)"
    onward = httpx.post(f"{redis_gateway}/token", auth=("changsha-gov", SECRETS["changsha-gov"]),
                        data={"grant_type": "refresh_token", "refresh_token": new.pop()})
    assert onward.status_code == 200
