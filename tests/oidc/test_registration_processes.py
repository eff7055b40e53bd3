"""Registered clients across two ``roam serve`` processes on one Redis: an operator's
invitation from the CLI, a registration at one process served by the other at once, and
an update and a deletion there within a second — no restart anywhere."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from authlib.integrations.httpx_client import OAuth2Client

from tests.support.cli import roam
from tests.support.gateway import SECRETS, gateway_process, log_in, processes_env
from tests.support.rp import authorize_url
from tests.support.servers import free_port

CALLBACK = "http://127.0.0.1:8031/cb"
MOVED = "http://127.0.0.1:8032/cb"
WITHIN = 1.0  # seconds: [registration] reload_interval is 0.5 by default


def introspect(url: str, token: str) -> bool:
    answer = httpx.post(f"{url}/introspect", data={"token": token},
                        auth=("hunan-data-api", SECRETS["hunan-data-api"]))
    assert answer.status_code == 200, answer.text
    return bool(answer.json()["active"])


def test_a_client_registered_at_one_process_is_served_by_the_other_and_changes_reach_it(
        tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    env = processes_env(tmp_path, redis_url, redis_prefix)
    invited = roam("clients", "invite", "--region", "4306", "--uses", "1", env={
        **env, "ROAM_AUDIT_PATH": str(tmp_path / "cli-audit.jsonl")})
    assert invited.returncode == 0, invited.stderr
    token = invited.stdout.splitlines()[1].strip()
    assert "operator.clients.invite" in (tmp_path / "cli-audit.jsonl").read_text()
    with gateway_process(free_port(), env=env) as (first, _), \
            gateway_process(free_port(), env=env) as (second, _):
        created = httpx.post(f"{first}/register", headers={"Authorization": f"Bearer {token}"},
                             json={"client_name": "岳阳市公积金中心", "redirect_uris": [CALLBACK],
                                   "scope": "openid profile"})
        assert created.status_code == 201, created.text
        answer: dict[str, Any] = created.json()
        # the other process has not reloaded yet: it looks the new id up and serves it
        client = OAuth2Client(answer["client_id"], answer["client_secret"],
                              redirect_uri=CALLBACK, scope="openid profile",
                              code_challenge_method="S256")
        with httpx.Client(base_url=second) as browser:
            url, verifier = authorize_url(client, second)
            callback = log_in(browser, url)
        tokens = client.fetch_token(f"{second}/token", authorization_response=callback,
                                    code_verifier=verifier)
        assert introspect(second, tokens["access_token"])

        updated = httpx.put(answer["registration_client_uri"], headers={
            "Authorization": f"Bearer {answer['registration_access_token']}"}, json={
            "client_id": answer["client_id"], "client_name": "岳阳市公积金中心",
            "redirect_uris": [MOVED], "scope": "openid profile"})
        assert updated.status_code == 200, updated.text
        time.sleep(WITHIN)
        old_way, _ = authorize_url(client, second)
        assert "回调地址未登记" in httpx.get(old_way).text
        moved = OAuth2Client(answer["client_id"], answer["client_secret"],
                             redirect_uri=MOVED, scope="openid profile",
                             code_challenge_method="S256")
        new_way, _ = authorize_url(moved, second)
        assert httpx.get(new_way).status_code == 303  # to the login page

        deleted = httpx.delete(answer["registration_client_uri"], headers={
            "Authorization": f"Bearer {updated.json()['registration_access_token']}"})
        assert deleted.status_code == 204
        time.sleep(WITHIN)
        assert not introspect(second, tokens["access_token"])
        refused = httpx.post(f"{second}/token", data={
            "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            auth=(answer["client_id"], answer["client_secret"]))
        assert refused.status_code == 401
        assert refused.json()["error"] == "invalid_client"
