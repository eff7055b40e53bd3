"""``/logout`` takes as a hint only an ID token of ours for a registered client, naming
this browser's session: any other token the gateway signed — an access token, a logout
token, an assertion a legacy system received — gets the confirmation page and ends
nothing by itself, and after a rejected hint nobody is redirected."""

from __future__ import annotations

import ast
import inspect
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from authlib.oidc.rpinitiated import EndSessionEndpoint
from joserfc import jwt
from joserfc.jwk import KeySet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.app import create_app
from gateway.errors import TokenError
from gateway.keys import KeyRing
from gateway.oidc.clients import ClientRegistry
from gateway.oidc.id_token_hint import IdTokenHints
from gateway.store.memory import MemoryStore
from tests.support.gateway import config_on_port, form_field, query, with_systems
from tests.support.rp import authorize_url, full_login, rp_client
from tests.support.servers import free_port, serve

CHANGSHA_HOME = "http://127.0.0.1:8001/"
YUEYANG_HOME = "http://127.0.0.1:8002/"
CONFIRM = "确认退出登录"
LOGGED_OUT = "您已退出登录"

SYSTEMS = """
[[item]]
code = "430000-BDC-001"
name = "不动产登记查询"

[[system]]
id = "legacy-bdc"
name = "旧系统"
region = "430000"
level = "province"
instances = ["{upstream}"]
connector = "jwt-assertion"
items = ["430000-BDC-001"]
"""


@pytest.fixture(scope="module")
def keys() -> KeyRing:
    return KeyRing.ephemeral()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, keys: KeyRing) -> Iterator[str]:
    """The gateway, proxying ``legacy-bdc`` (jwt-assertion) to a system that echoes what
    it received: a legacy system's log, in effect."""

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"authorization": request.headers.get("authorization", "")})

    systems = tmp_path_factory.mktemp("end_session") / "systems.toml"
    with serve(Starlette(routes=[Route("/{rest:path}", echo)])) as upstream:
        systems.write_text(SYSTEMS.format(upstream=upstream), "utf-8")
        port = free_port()
        config = config_on_port(port)
        config = with_systems(config, systems, path_mode=True)  # /s/legacy-bdc/
        with serve(create_app(config, store=MemoryStore(), keys=keys), port) as url:
            yield url


@pytest.fixture
def browser(gw: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw, follow_redirects=False) as client:
        yield client


def log_in(gw: str, browser: httpx.Client) -> dict[str, Any]:
    """A password login at 长沙; its token response, the ID token's claims under "claims"."""
    token = full_login(gw, browser, "changsha-gov")[1]
    published = KeySet.import_key_set(httpx.get(f"{gw}/jwks").json())
    return {**token, "claims": dict(jwt.decode(token["id_token"], published).claims)}


def logged_in(gw: str, browser: httpx.Client) -> bool:
    url, _ = authorize_url(rp_client("changsha-gov", gw), gw, prompt="none")
    return "code" in query(browser.get(url).headers["location"])


def assertion_seen_by_the_legacy_system(browser: httpx.Client) -> str:
    seen = browser.get("/s/legacy-bdc/").json()["authorization"]
    assert seen.startswith("Bearer ")
    return str(seen.removeprefix("Bearer "))


def asks_and_ends_nothing(gw: str, browser: httpx.Client, **params: str) -> httpx.Response:
    page = browser.get("/logout", params=params)
    assert page.status_code == 200, page.text
    assert CONFIRM in page.text
    assert logged_in(gw, browser), "a hint that is no ID token logged the person out"
    return page


def id_token_like(keys: KeyRing, gw: str, claims: dict[str, Any], typ: str = "JWT",
                  **changes: Any) -> str:
    """A token signed with the gateway's own keys, shaped like its ID token but changed."""
    now = int(time.time())
    shaped = {"iss": gw, "sub": "c-0001", "aud": "changsha-gov", "azp": "changsha-gov",
              "iat": now, "exp": now + 600, "auth_time": now, "acr": "L2",
              "amr": ["pwd"], "sid": claims["sid"]}
    shaped.update(changes)
    return keys.sign({k: v for k, v in shaped.items() if v is not None}, alg="RS256", typ=typ)


def test_an_access_token_is_no_hint_and_sends_nobody_anywhere(gw: str,
                                                               browser: httpx.Client) -> None:
    token = log_in(gw, browser)
    page = asks_and_ends_nothing(gw, browser, id_token_hint=token["access_token"],
                                 client_id="changsha-gov",
                                 post_logout_redirect_uri=CHANGSHA_HOME, state="s")
    assert 'name="id_token_hint"' not in page.text
    assert 'name="post_logout_redirect_uri"' not in page.text
    done = browser.post("/logout", data={"confirm": "yes", "client_id": "changsha-gov",
                                         "csrf_token": form_field(page.text, "csrf_token")})
    assert done.status_code == 200
    assert "location" not in done.headers
    assert LOGGED_OUT in done.text
    assert not logged_in(gw, browser)


def test_an_assertion_a_legacy_system_captured_ends_no_later_session(
        gw: str, browser: httpx.Client) -> None:
    first = log_in(gw, browser)
    captured = assertion_seen_by_the_legacy_system(browser)
    asks_and_ends_nothing(gw, browser, id_token_hint=captured)
    ended = browser.get("/logout", params={"id_token_hint": first["id_token"]})
    assert ended.status_code == 200
    assert LOGGED_OUT in ended.text
    log_in(gw, browser)  # a later session of the same person
    asks_and_ends_nothing(gw, browser, id_token_hint=captured)
    asks_and_ends_nothing(gw, browser, id_token_hint=captured, client_id="changsha-gov",
                          post_logout_redirect_uri=CHANGSHA_HOME)


def test_an_id_token_of_an_older_session_asks(gw: str, browser: httpx.Client) -> None:
    old = log_in(gw, browser)
    browser.get("/logout", params={"id_token_hint": old["id_token"]})
    assert not logged_in(gw, browser)
    log_in(gw, browser)
    asks_and_ends_nothing(gw, browser, id_token_hint=old["id_token"])


@pytest.mark.parametrize(("typ", "changes"), [
    ("logout+jwt", {}),                                  # a back-channel logout token
    ("at+jwt", {}),                                      # an access token's type
    ("JWT", {"sid": None}),                              # names no session
    ("JWT", {"aud": "legacy-bdc", "azp": None}),          # a system's audience
    ("JWT", {"aud": "no-such-client", "azp": None}),      # no registered client
    ("JWT", {"azp": "yueyang-gov"}),                      # issued to another party
    ("JWT", {"aud": ["changsha-gov"]}),                   # never a list from this issuer
    ("JWT", {"sub": None}),
])
def test_a_token_of_ours_that_is_no_id_token_for_this_session_asks(
        gw: str, browser: httpx.Client, keys: KeyRing, typ: str,
        changes: dict[str, Any]) -> None:
    claims = log_in(gw, browser)["claims"]
    hint = id_token_like(keys, gw, claims, typ, **changes)
    asks_and_ends_nothing(gw, browser, id_token_hint=hint)


def test_a_proper_id_token_logs_out_silently_even_expired(gw: str, browser: httpx.Client,
                                                          keys: KeyRing) -> None:
    token = log_in(gw, browser)
    done = browser.get("/logout", params={"id_token_hint": token["id_token"],
                                          "post_logout_redirect_uri": CHANGSHA_HOME,
                                          "state": "bye"})
    assert done.status_code == 303
    assert done.headers["location"] == f"{CHANGSHA_HOME}?state=bye"
    assert not logged_in(gw, browser)
    # RP-Initiated Logout §2: an expired ID token still names its session
    claims = log_in(gw, browser)["claims"]
    expired = id_token_like(keys, gw, claims, iat=claims["iat"] - 7200,
                            exp=claims["iat"] - 3600)
    done = browser.get("/logout", params={"id_token_hint": expired})
    assert done.status_code == 200
    assert LOGGED_OUT in done.text
    assert not logged_in(gw, browser)


def test_the_redirect_is_only_ever_to_the_hints_client(gw: str, browser: httpx.Client) -> None:
    token = log_in(gw, browser)
    for extra in ({}, {"client_id": "yueyang-gov"}):
        refused = browser.get("/logout", params={"id_token_hint": token["id_token"],
                                                 "post_logout_redirect_uri": YUEYANG_HOME,
                                                 **extra})
        assert refused.status_code == 400
        assert "location" not in refused.headers
        assert "参考编号" in refused.text
        assert logged_in(gw, browser)


def test_a_hint_signed_by_other_keys_is_an_error(gw: str, browser: httpx.Client) -> None:
    claims = log_in(gw, browser)["claims"]
    forged = id_token_like(KeyRing.ephemeral(("RS256",)), gw, claims)
    refused = browser.get("/logout", params={"id_token_hint": forged})
    assert refused.status_code == 400
    assert "参考编号" in refused.text
    assert logged_in(gw, browser)


def test_hints_of_another_issuer_are_not_ours(keys: KeyRing) -> None:
    hints = IdTokenHints(keys=keys, issuer="http://gw", clients=ClientRegistry(()))
    with pytest.raises(TokenError, match="not issued here"):
        hints.claims(keys.sign({"iss": "http://elsewhere", "sub": "x", "aud": "a"},
                               alg="ES256"))


def test_authlib_still_asks_the_hooks_roam_overrides() -> None:
    """``_Validator`` replaces authlib's signature-only hint check through these hooks;
    a release that stops calling them would let any signed token through again."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(EndSessionEndpoint.validate_request)))
    calls = {ast.unparse(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    assert {"self._validate_id_token_hint", "self.resolve_client_from_id_token_claims"} <= calls
