"""A citizen's day through a real gateway, then its audit trail read back: every step is
an event with who, what, outcome, the client's address and the request id, the chain
verifies, and no secret, token or unmasked personal number reached the trail or the logs."""

from __future__ import annotations

import logging
from pathlib import Path

import anyio
import httpx
import pytest

from gateway.app import create_app
from gateway.audit.file_sink import FileSink
from gateway.audit.verify import verify_trail
from gateway.server import uvicorn_config
from tests.support.audit import trail_lines
from tests.support.gateway import CITIZEN, DEMO_PASSWORD, SECRETS, config_on_port, form_field
from tests.support.rp import authorize_url, full_login, rp_client
from tests.support.servers import free_port, serve_config

ID_NUMBER = "430102199001010016"  # c-0001's, config/directory.toml


@pytest.fixture
def trail_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.jsonl"


def test_every_step_is_audited_and_nothing_secret_is_kept(
        trail_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)  # what `roam serve` logs at
    port = free_port()
    config = config_on_port(port)
    config = config.revised(settings=config.settings.model_copy(update={
        "audit": config.settings.audit.model_copy(update={"path": str(trail_path)})}))
    secrets: list[str] = [DEMO_PASSWORD, "Wrong-Pass-1", *SECRETS.values()]
    server = uvicorn_config(create_app(config), host="127.0.0.1", port=port, access_log=False)
    with serve_config(server) as url, httpx.Client(base_url=url) as browser:
        # a wrong password first, typed as the phone number
        client = rp_client("changsha-gov", url)
        auth_url, _ = authorize_url(client, url, nonce="n")
        page = browser.get(browser.get(auth_url).headers["location"])
        failed = browser.post("/login", data={
            "csrf_token": form_field(page.text, "csrf_token"), "r": form_field(page.text, "r"),
            "username": CITIZEN, "password": "Wrong-Pass-1"})
        assert failed.status_code == 401
        request_ids = {"login failure": failed.headers["x-request-id"]}
        # then the right one, a code, tokens, a refresh, the same refresh again (a retry
        # within the reuse window), one more, and a replay of the first refresh token
        client, token, _ = full_login(url, browser)
        secrets += [token["access_token"], token["refresh_token"], token["id_token"]]
        refreshed = client.refresh_token(f"{url}/token", refresh_token=token["refresh_token"])
        secrets += [refreshed["access_token"], refreshed["refresh_token"]]
        form = {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]}
        retry = httpx.post(f"{url}/token", auth=("changsha-gov", SECRETS["changsha-gov"]),
                           data=form)
        assert retry.status_code == 200
        secrets.append(retry.json()["access_token"])
        retry_id = retry.headers["x-request-id"]
        onward = client.refresh_token(f"{url}/token",
                                      refresh_token=refreshed["refresh_token"])
        secrets += [onward["access_token"], onward["refresh_token"]]
        replay = httpx.post(f"{url}/token", auth=("changsha-gov", SECRETS["changsha-gov"]),
                            data=form)
        assert replay.status_code == 400
        request_ids["token.refresh failure"] = replay.headers["x-request-id"]
        revoked = httpx.post(f"{url}/revoke", auth=("changsha-gov", SECRETS["changsha-gov"]),
                             data={"token": refreshed["access_token"]})
        assert revoked.status_code == 200
        # a routing decision, then logging out everywhere
        assert browser.get("/go/430000-SB-001?region=430602").status_code == 303
        page = browser.get("/my/logins")
        out = browser.post("/my/logins/logout",
                           data={"csrf_token": form_field(page.text, "csrf_token")})
        assert out.status_code == 200
        secrets += [c.value for c in browser.cookies.jar if c.value]
    stored = trail_lines(trail_path)  # the server stopped: the trail was written out

    seen = {(e["action"], e["outcome"]) for e in stored}
    assert {("login", "failure"), ("login", "success"), ("authorize.code", "success"),
            ("token.issue", "success"), ("token.refresh", "success"),
            ("token.refresh", "failure"), ("grant.revoke", "success"),
            ("token.revoke", "success"), ("route.resolve", "success"),
            ("logout", "success")} <= seen
    for event in stored:
        assert event["source"] == "127.0.0.1", event
        assert event["request_id"], event
        assert event["node"], event
    by_name = {f"{e['action']} {e['outcome']}": e for e in stored}
    for name, request_id in request_ids.items():
        assert by_name[name]["request_id"] == request_id
    assert by_name["login failure"]["subject"] == "138****0001"
    assert by_name["login success"]["subject"] == "c-0001"
    assert by_name["token.issue success"]["client"] == "changsha-gov"
    assert by_name["token.issue success"]["details"]["grant_type"] == "authorization_code"
    assert by_name["token.issue success"]["details"]["id_token_issued"] is True
    assert by_name["route.resolve success"]["system"]
    reused = [e["details"]["reused"] for e in stored if e["action"] == "token.refresh"
              and e["outcome"] == "success"]
    assert reused == [False, True, False]
    assert next(e for e in stored if e["request_id"] == retry_id)["details"]["reused"]
    assert anyio.run(verify_trail, FileSink(trail_path)).ok

    everything = trail_path.read_text("utf-8") + caplog.text + "".join(
        str(r.__dict__) for r in caplog.records if r.name.startswith("roam"))
    for secret in secrets:
        assert secret not in everything
    assert CITIZEN not in trail_path.read_text("utf-8")
    assert ID_NUMBER not in everything
    assert "张三" not in everything
