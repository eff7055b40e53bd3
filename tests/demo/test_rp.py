"""The demo RP and the demo runner without a browser: config moves, pages, error codes,
and the RP's back-channel logout endpoint against every kind of bad logout token."""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest
from joserfc import jws, jwt
from joserfc.jwk import KeySet, OctKey, RSAKey
from starlette.applications import Starlette

from demo import DEMO_SECRETS
from demo.backchannel import BackchannelReceiver
from demo.rp import create_rp_app
from demo.run import demo_banner, demo_config, demo_rp_apps, run_demo
from gateway.app import create_app
from gateway.config import Config, load_config
from gateway.keys import KeyRing
from gateway.oidc.backchannel import EVENT, logout_token
from gateway.oidc.clients import Client, ClientRegistry
from tests.support.gateway import CITIZEN, DEMO_PASSWORD, REPO, form_field
from tests.support.servers import free_port, serve


@pytest.fixture(scope="module")
def shipped() -> Config:
    return load_config(REPO / "config" / "roam.toml", env={})


def _ports(*names: str) -> dict[str, int]:
    return {name: free_port() for name in names}


# --- demo_config ---------------------------------------------------------------------


def test_demo_config_moves_issuer_and_demo_clients(shipped: Config) -> None:
    moved = demo_config(shipped, gateway_port=18000,
                        rp_ports={"changsha-gov": 18001, "yueyang-gov": 18002})
    assert moved.issuer == "http://127.0.0.1:18000"
    assert moved.client("xiangtan-gov") == shipped.client("xiangtan-gov")  # not named
    assert moved.settings.gateway.port == 18000
    changsha, yueyang = moved.client("changsha-gov"), moved.client("yueyang-gov")
    assert changsha is not None
    assert yueyang is not None
    assert changsha.redirect_uris == ("http://127.0.0.1:18001/callback",)
    assert changsha.post_logout_redirect_uris == ("http://127.0.0.1:18001/",)
    assert yueyang.redirect_uris == ("http://127.0.0.1:18002/callback",)
    assert yueyang.post_logout_redirect_uris == ("http://127.0.0.1:18002/",)
    assert changsha.backchannel_logout_uri == "http://127.0.0.1:18001/backchannel-logout"
    assert yueyang.backchannel_logout_uri == "http://127.0.0.1:18002/backchannel-logout"
    assert changsha.initiate_login_uri == "http://127.0.0.1:18001/login"
    # Everything else is as shipped: other clients, other client fields, other settings.
    assert moved.client("hunan-miniapp") == shipped.client("hunan-miniapp")
    original = shipped.client("changsha-gov")
    assert original is not None
    assert changsha.model_copy(update={
        "redirect_uris": original.redirect_uris,
        "post_logout_redirect_uris": original.post_logout_redirect_uris,
        "backchannel_logout_uri": original.backchannel_logout_uri,
        "initiate_login_uri": original.initiate_login_uri,
    }) == original
    assert moved.settings.session == shipped.settings.session
    assert moved.base_dir == shipped.base_dir
    # The input is not changed (the models are frozen; the copy is a new object).
    assert shipped.issuer == "http://127.0.0.1:8000"
    assert shipped.client("changsha-gov") == original


def test_demo_config_moves_only_the_named_clients(shipped: Config) -> None:
    moved = demo_config(shipped, gateway_port=18100, rp_ports={"yueyang-gov": 18102})
    assert moved.client("changsha-gov") == shipped.client("changsha-gov")
    yueyang = moved.client("yueyang-gov")
    assert yueyang is not None
    assert yueyang.redirect_uris == ("http://127.0.0.1:18102/callback",)


def test_demo_config_refuses_unknown_clients(shipped: Config) -> None:
    with pytest.raises(ValueError, match="nanjing-gov"):
        demo_config(shipped, gateway_port=18000, rp_ports={"nanjing-gov": 18001})


# --- the RP app on its own -----------------------------------------------------------


async def _get(app: Starlette, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8001") as c:
        return await c.get(path)


async def test_home_page_says_not_logged_in() -> None:
    app = create_rp_app(
        title="长沙市政务服务", issuer="http://127.0.0.1:9", client_id="changsha-gov",
        client_secret=DEMO_SECRETS["changsha-gov"], base_url="http://127.0.0.1:8001",
        token_endpoint_auth_method="client_secret_basic")
    response = await _get(app, "/")
    assert response.status_code == 200
    assert "长沙市政务服务" in response.text
    assert '<p id="status">未登录</p>' in response.text
    assert '<a class="button" id="login" href="/login">登录</a>' in response.text
    assert 'href="http://127.0.0.1:9/my/logins"' in response.text  # 我的登录 at the gateway
    assert 'id="requirement"' not in response.text  # no level is required here
    assert 'id="logged-out-notice"' not in response.text
    assert response.headers["cache-control"] == "no-store"


async def test_required_level_is_shown() -> None:
    app = create_rp_app(
        title="湘潭市住房公积金（演示）", issuer="http://127.0.0.1:9", client_id="xiangtan-gov",
        client_secret=DEMO_SECRETS["xiangtan-gov"], base_url="http://127.0.0.1:8004",
        token_endpoint_auth_method="client_secret_basic", required_acr="L3")
    response = await _get(app, "/")
    assert "本系统要求 L3 实人认证" in response.text


async def test_login_with_gateway_down_shows_chinese_error() -> None:
    dead = free_port()  # nothing listens here
    app = create_rp_app(
        title="岳阳市政务服务", issuer=f"http://127.0.0.1:{dead}", client_id="yueyang-gov",
        client_secret=DEMO_SECRETS["yueyang-gov"], base_url="http://127.0.0.1:8002",
        token_endpoint_auth_method="client_secret_post")
    response = await _get(app, "/login")
    assert response.status_code == 502
    assert "统一身份认证平台暂时无法访问" in response.text
    assert 'id="error-code">temporarily_unavailable<' in response.text


# --- the RP against a real gateway ---------------------------------------------------


@dataclass(frozen=True)
class Stack:
    gateway: str
    rp_a: str  # 长沙
    rp_b: str  # 岳阳
    keys: KeyRing  # the gateway's own signing keys, to mint logout tokens it would send
    clients: ClientRegistry
    receivers: dict[str, BackchannelReceiver]  # client_id -> the RP's receiver


@pytest.fixture(scope="module")
def stack(shipped: Config) -> Iterator[Stack]:
    gateway_port = free_port()
    ports = _ports("changsha-gov", "yueyang-gov")
    config = demo_config(shipped, gateway_port=gateway_port, rp_ports=ports)
    keys = KeyRing.ephemeral()
    rps = {cid: app for cid, (_, app) in demo_rp_apps(config).items()}
    with (serve(create_app(config, keys=keys), gateway_port) as gateway,
          serve(rps["changsha-gov"], ports["changsha-gov"]) as rp_a,
          serve(rps["yueyang-gov"], ports["yueyang-gov"]) as rp_b):
        yield Stack(gateway, rp_a, rp_b, keys, ClientRegistry(config.clients),
                    {cid: app.state.backchannel for cid, app in rps.items()})


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """One cookie jar for the RPs and the gateway, like one browser."""
    with httpx.Client(follow_redirects=True, timeout=10) as client:
        yield client


def _error_code(html: str) -> str:
    match = re.search(r'id="error-code">([^<]*)<', html)
    assert match, html
    return match.group(1)


def _log_in(stack: Stack, http: httpx.Client, rp: str) -> httpx.Response:
    """A password login at ``rp`` through the gateway's login page; the RP's home page."""
    login_page = http.get(f"{rp}/login")
    assert str(login_page.url).startswith(f"{stack.gateway}/login")
    home = http.post(f"{stack.gateway}/login", data={
        "csrf_token": form_field(login_page.text, "csrf_token"),
        "r": form_field(login_page.text, "r"),
        "username": CITIZEN,
        "password": DEMO_PASSWORD,
    })
    assert str(home.url) == f"{rp}/"
    return home


def _dd(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">([^<]*)<', html)
    assert match, f"no #{element_id} on the page"
    return match.group(1)


def test_full_login_through_authlib_client(stack: Stack, http: httpx.Client) -> None:
    home = _log_in(stack, http, stack.rp_a)
    assert '<dd id="who">张*</dd>' in home.text
    assert '<span id="acr">L2</span>' in home.text
    assert '<dd id="amr">pwd</dd>' in home.text
    assert '<dd id="region">430102</dd>' in home.text
    assert f'href="{stack.gateway}/my/logins"' in home.text
    assert "张三" not in home.text
    # The RP's own cookie is named after the client, so the other RP's is untouched.
    assert http.cookies.get("rp_changsha-gov")
    assert not http.cookies.get("rp_yueyang-gov")
    # "仅退出本系统" clears the RP's session only: the next login is silent.
    assert "未登录" in http.post(f"{stack.rp_a}/logout/local").text
    again = http.get(f"{stack.rp_a}/login")
    assert str(again.url) == f"{stack.rp_a}/"
    assert '<dd id="who">张*</dd>' in again.text


def test_prompt_none_without_session_shows_login_required(stack: Stack,
                                                          http: httpx.Client) -> None:
    page = http.get(f"{stack.rp_b}/login", params={"prompt": "none"})
    assert str(page.url).startswith(f"{stack.rp_b}/callback?")
    assert page.status_code == 400
    assert _error_code(page.text) == "login_required"
    assert "没有登录会话" in page.text


def test_callback_without_a_flow_is_refused(stack: Stack, http: httpx.Client) -> None:
    page = http.get(f"{stack.rp_a}/callback",
                    params={"code": "forged", "state": "forged", "iss": stack.gateway})
    assert _error_code(page.text) == "mismatching_state"
    assert "重新登录" in page.text


def test_callback_from_another_issuer_is_refused(stack: Stack, http: httpx.Client) -> None:
    http.get(f"{stack.rp_a}/")  # discovery is loaded lazily; /callback loads it itself
    page = http.get(f"{stack.rp_a}/callback",
                    params={"code": "x", "state": "y", "iss": "http://127.0.0.1:1"})
    assert _error_code(page.text) == "invalid_issuer"


def test_rp_initiated_logout_goes_through_the_gateway(stack: Stack,
                                                      http: httpx.Client) -> None:
    home = _log_in(stack, http, stack.rp_a)
    sid = _dd(home.text, "sid")
    with httpx.Client(timeout=10, cookies=http.cookies) as one_step:
        redirect = one_step.post(f"{stack.rp_a}/logout")
    assert redirect.status_code == 303
    target = urlsplit(redirect.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{stack.gateway}/logout"
    params = parse_qs(target.query)
    assert set(params) == {"id_token_hint", "post_logout_redirect_uri", "state", "client_id"}
    assert params["post_logout_redirect_uri"] == [f"{stack.rp_a}/"]
    assert params["client_id"] == ["changsha-gov"]
    published = KeySet.import_key_set(httpx.get(f"{stack.gateway}/jwks").json())
    hint = jwt.decode(params["id_token_hint"][0], published)
    assert hint.claims["sid"] == sid
    assert hint.claims["aud"] == "changsha-gov"

    done = http.post(f"{stack.rp_a}/logout")  # the whole way, as a browser goes
    assert str(done.url).startswith(f"{stack.rp_a}/?state=")
    assert '<p id="status">未登录</p>' in done.text
    assert 'id="logout-done"' in done.text
    assert 'id="logged-out-notice"' not in done.text  # this RP asked; nobody else did it
    # The gateway session is gone (the next login asks for a password again)...
    assert str(http.get(f"{stack.rp_a}/login").url).startswith(f"{stack.gateway}/login")
    # ...and the gateway told this very RP through the back channel as well.
    _wait_until(lambda: sid in stack.receivers["changsha-gov"].sids)


def test_a_foreign_logout_state_shows_no_logout_message(stack: Stack,
                                                        http: httpx.Client) -> None:
    page = http.get(f"{stack.rp_b}/", params={"state": "made-up"})
    assert '<p id="status">未登录</p>' in page.text
    assert 'id="logout-done"' not in page.text


# --- back-channel logout at the RP (Back-Channel Logout 1.0 §2.6) ---------------------


def _wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _claims(stack: Stack, **changes: Any) -> dict[str, Any]:
    """A correct logout token's claims for 长沙; a change to None removes the claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": stack.gateway, "aud": "changsha-gov", "iat": now, "exp": now + 120,
        "jti": secrets.token_urlsafe(16), "sub": "c-0001", "sid": secrets.token_urlsafe(16),
        "events": {EVENT: {}},
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _signed(stack: Stack, claims: dict[str, Any], *, typ: str = "logout+jwt",
            alg: str = "RS256") -> str:
    """Signed with the gateway's own key: only the claims or header can be wrong."""
    return stack.keys.sign(claims, alg=alg, typ=typ)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _valid(stack: Stack, client_id: str = "changsha-gov", **kwargs: Any) -> str:
    """What the gateway itself sends: its own minting function and keys."""
    return logout_token(stack.keys, issuer=stack.gateway, client=_client(stack, client_id),
                        **kwargs)


def _post(stack: Stack, token: str | None, **extra: str) -> httpx.Response:
    data = {"logout_token": token} if token is not None else {}
    return httpx.post(f"{stack.rp_a}/backchannel-logout", data={**data, **extra}, timeout=10)


def _forged_with_gateway_kid(stack: Stack) -> str:
    """Claims and header just like the gateway's, signed by another RSA key."""
    impostor = RSAKey.generate_key(2048, private=True)
    kid = stack.keys.signing_key("RS256").kid
    return jws.serialize_compact({"alg": "RS256", "kid": kid, "typ": "logout+jwt"},
                                 json.dumps(_claims(stack)).encode(), impostor)


#: case -> (how to make the token, what the RP's log must give as the reason)
BAD_TOKENS: dict[str, tuple[Callable[[Stack], str], str]] = {
    "forged: another key ring (unknown kid)": (lambda s: logout_token(
        KeyRing.ephemeral(["RS256"]), issuer=s.gateway, client=_client(s), sub="c-0001",
        sid="s1"), "key the gateway does not publish"),
    "forged: another key under the gateway's kid": (_forged_with_gateway_kid,
                                                    "signature check failed"),
    "expired: exp in the past": (lambda s: _valid(
        s, sub="c-0001", sid="s1", now=int(time.time()) - 200, ttl=100), "expired"),
    "expired: iat too old (exp still ahead)": (lambda s: _valid(
        s, sub="c-0001", sid="s1", now=int(time.time()) - 600, ttl=900), "iat too old"),
    "iat in the future": (lambda s: _signed(s, _claims(s, iat=int(time.time()) + 600)),
                          "issued in the future"),
    "no iat": (lambda s: _signed(s, _claims(s, iat=None)), "'iat'"),
    "no jti": (lambda s: _signed(s, _claims(s, jti=None)), "'jti'"),
    "nonce": (lambda s: _signed(s, _claims(s, nonce="n-123")), "nonce"),
    "wrong aud (岳阳's token)": (lambda s: _valid(s, "yueyang-gov", sub="c-0001", sid="s1"),
                                "'aud'"),
    "wrong iss": (lambda s: _signed(s, _claims(s, iss="http://127.0.0.1:1")), "'iss'"),
    "wrong typ (an ID token's)": (lambda s: _signed(s, _claims(s), typ="JWT"),
                                  "typ 'JWT' is not logout+jwt"),
    "no typ": (lambda s: jws.serialize_compact(
        {"alg": "RS256", "kid": s.keys.signing_key("RS256").kid},
        json.dumps(_claims(s)).encode(), s.keys.signing_key("RS256").key),
               "typ None is not logout+jwt"),
    "alg none": (lambda s: f"{_b64({'alg': 'none', 'typ': 'logout+jwt'})}."
                           f"{_b64(_claims(s))}.", "algorithm 'none' not allowed"),
    "alg HS256 keyed with the public key": (lambda s: jws.serialize_compact(
        {"alg": "HS256", "kid": s.keys.signing_key("RS256").kid, "typ": "logout+jwt"},
        json.dumps(_claims(s)).encode(),
        OctKey.import_key(json.dumps(s.keys.jwks()["keys"][0]).encode()),
        algorithms=["HS256"]), "algorithm 'HS256' not allowed"),
    "no events": (lambda s: _signed(s, _claims(s, events=None)), "events"),
    "events without the logout event": (lambda s: _signed(
        s, _claims(s, events={"http://schemas.openid.net/event/other": {}})), "events"),
    "neither sid nor sub": (lambda s: _signed(s, _claims(s, sid=None, sub=None)),
                            "neither sid nor sub"),
    "not a JWT at all": (lambda s: "logout-please", "not a compact JWS"),
}


def _client(stack: Stack, client_id: str = "changsha-gov") -> Client:
    client = stack.clients.get(client_id)
    assert client is not None
    return client


@pytest.mark.parametrize("case", list(BAD_TOKENS))
def test_backchannel_refuses_bad_logout_tokens(stack: Stack, case: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="roam.demo.backchannel")
    receiver = stack.receivers["changsha-gov"]
    make, reason = BAD_TOKENS[case]
    token = make(stack)
    before = (list(receiver.tokens), dict(receiver.sids), dict(receiver.subs))
    response = _post(stack, token)
    assert response.status_code == 400, case
    assert response.json() == {"error": "invalid_request"}
    assert response.headers["cache-control"] == "no-store"
    assert (receiver.tokens, receiver.sids, receiver.subs) == before  # nothing recorded
    # Refused for the reason the case is about, not some other flaw of the test token.
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1, refusals
    assert reason in refusals[0], refusals


@pytest.mark.parametrize("data", [
    {"other": "x"},  # no logout_token
    {"logout_token": ""},
    {"logout_token": "a.b.c", "other": "x", "logout_token2": "y"},
], ids=["missing", "empty", "garbage"])
def test_backchannel_refuses_bad_requests(stack: Stack, data: dict[str, str]) -> None:
    response = httpx.post(f"{stack.rp_a}/backchannel-logout", data=data, timeout=10)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request"}


def test_backchannel_refuses_two_tokens_and_json(stack: Stack) -> None:
    token = _valid(stack, sub="c-0001", sid=secrets.token_urlsafe(8))
    twice = httpx.post(f"{stack.rp_a}/backchannel-logout", timeout=10,
                       content=f"logout_token={token}&logout_token={token}",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert twice.status_code == 400
    as_json = httpx.post(f"{stack.rp_a}/backchannel-logout", json={"logout_token": token},
                         timeout=10)
    assert as_json.status_code == 400
    assert token not in stack.receivers["changsha-gov"].tokens  # still unused


def test_backchannel_accepts_the_gateways_token_once(stack: Stack) -> None:
    receiver = stack.receivers["changsha-gov"]
    sid = secrets.token_urlsafe(16)
    token = _valid(stack, sub="c-0001", sid=sid)
    response = _post(stack, token)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert sid in receiver.sids
    assert receiver.tokens[-1] == token
    # The same token again is a replay: refused, and nothing new is recorded.
    replay = _post(stack, token)
    assert replay.status_code == 400
    assert replay.json() == {"error": "invalid_request"}
    assert receiver.tokens.count(token) == 1
    # ES256 (岳阳's algorithm) is accepted just the same, at 岳阳.
    es256 = _valid(stack, "yueyang-gov", sub="c-0001", sid=sid)
    assert httpx.post(f"{stack.rp_b}/backchannel-logout", data={"logout_token": es256},
                      timeout=10).status_code == 200


def test_backchannel_logout_ends_the_rp_session_on_its_next_request(
        stack: Stack, http: httpx.Client) -> None:
    home = _log_in(stack, http, stack.rp_a)
    sid = _dd(home.text, "sid")
    assert _post(stack, _valid(stack, sub="c-0001", sid=sid)).status_code == 200
    page = http.get(f"{stack.rp_a}/")
    assert '<p id="status">未登录</p>' in page.text
    notice = re.search(r'id="logged-out-notice"[^>]*>([^<]*)<', page.text)
    assert notice, page.text
    assert re.fullmatch(r"您已于 \d\d:\d\d:\d\d 在其他系统退出登录（统一身份认证单点退出）",
                        notice.group(1)), notice.group(1)
    assert "已登录" not in http.get(f"{stack.rp_a}/").text  # the notice stays until login


def test_subject_only_logout_ends_older_sessions_only(stack: Stack,
                                                     http: httpx.Client) -> None:
    _log_in(stack, http, stack.rp_b)
    token = _signed(stack, _claims(stack, aud="yueyang-gov", sid=None), alg="ES256")
    response = httpx.post(f"{stack.rp_b}/backchannel-logout", data={"logout_token": token},
                          timeout=10)
    assert response.status_code == 200
    assert "c-0001" in stack.receivers["yueyang-gov"].subs
    assert 'id="logged-out-notice"' in http.get(f"{stack.rp_b}/").text
    # A login after that logout is a new session: it stays logged in.
    again = http.get(f"{stack.rp_b}/login")
    assert '<p id="status">已登录</p>' in again.text
    assert '<p id="status">已登录</p>' in http.get(f"{stack.rp_b}/").text


async def test_backchannel_without_the_gateway_is_refused() -> None:
    dead = free_port()
    app = create_rp_app(
        title="长沙市政务服务", issuer=f"http://127.0.0.1:{dead}", client_id="changsha-gov",
        client_secret=DEMO_SECRETS["changsha-gov"], base_url="http://127.0.0.1:8001",
        token_endpoint_auth_method="client_secret_basic")
    keys = KeyRing.ephemeral(["RS256"])
    claims = {"iss": f"http://127.0.0.1:{dead}", "aud": "changsha-gov",
              "iat": int(time.time()), "jti": "j1", "sid": "s1", "events": {EVENT: {}}}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8001") as c:
        response = await c.post("/backchannel-logout", data={
            "logout_token": keys.sign(claims, alg="RS256", typ="logout+jwt")})
    assert response.status_code == 400
    assert app.state.backchannel.sids == {}


# --- run_demo ------------------------------------------------------------------------


def test_banner_names_urls_accounts_and_password(shipped: Config) -> None:
    text = demo_banner(shipped)
    for expected in (
        "http://127.0.0.1:8001/", "http://127.0.0.1:8002/", "http://127.0.0.1:8004/",
        "RP C  湘潭市住房公积金（演示） (xiangtan-gov)", "需要 L3 实人认证", "step-up",
        "http://127.0.0.1:8000/my/logins", "退出登录", "back channel",
        "http://127.0.0.1:8000/.well-known/openid-configuration",
        "长沙市政务服务", "岳阳市政务服务",
        "15000000003  L1", "13800000004  L2", "13800000001  L3", "Roam@2026",
        "no second login", "无需再次登录",
        "http://127.0.0.1:8003/", "实名绑定 L2", "人脸核验 L3", "无感切换",
    ):
        assert expected in text, expected
    assert "430102199001010016" not in text  # ID numbers are never printed
    assert "张三" not in text


async def test_run_demo_serves_everything_and_stops(shipped: Config,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    ports = _ports(*DEMO_SECRETS, "hunan-miniapp")  # the RPs and the mini-program page
    config = demo_config(shipped, gateway_port=free_port(), rp_ports=ports)
    stop = anyio.Event()
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: run_demo(config, stop=stop))
            async with httpx.AsyncClient(timeout=2) as client:
                urls = [f"{config.issuer}/.well-known/openid-configuration",
                        *(f"http://127.0.0.1:{p}/" for p in ports.values())]
                for url in urls:
                    while True:
                        try:
                            response = await client.get(url)
                            break
                        except httpx.TransportError:
                            await anyio.sleep(0.05)
                    assert response.status_code == 200, url
            stop.set()
    banner = capsys.readouterr().out
    assert f"{config.issuer}/.well-known/openid-configuration" in banner
    assert f"http://127.0.0.1:{ports['hunan-miniapp']}/" in banner
    assert "verification service (mock): http://127.0.0.1:" in banner


async def test_run_demo_stops_everything_when_a_port_is_taken(shipped: Config) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = _ports("changsha-gov", "xiangtan-gov")
        ports["yueyang-gov"] = taken.getsockname()[1]
        config = demo_config(shipped, gateway_port=free_port(), rp_ports=ports)
        with anyio.fail_after(20), pytest.raises(SystemExit):
            await run_demo(config)
