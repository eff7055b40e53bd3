"""The /token endpoint's HTTP side (gateway/oidc/token_endpoint.py, gateway/oidc/bridge.py)."""

from __future__ import annotations

from pathlib import Path

import httpx

from gateway.app import create_app
from gateway.keys import generate_key_file
from tests.support.gateway import SECRETS, config_on_port
from tests.support.servers import free_port, serve


def test_behind_a_proxy_that_ends_tls_oauth_endpoints_still_work(tmp_path: Path) -> None:
    # The issuer is https, but the request reaches the gateway as plain http for an
    # internal host name, as it does behind a TLS-terminating proxy: authlib must judge
    # the published URL, not this one.
    port = free_port()
    config = config_on_port(port)
    for alg in ("RS256", "ES256"):  # an https issuer keeps its keys in a directory
        generate_key_file(tmp_path / "keys", alg)
    settings = config.settings
    config = config.revised(settings=settings.model_copy(update={
        "gateway": settings.gateway.model_copy(update={
            "issuer": "https://sso.example.test", "key_dir": str(tmp_path / "keys")}),
        "login": settings.login.model_copy(update={"source": "toml-directory",
                                                   "simulated_step_up": False}),
        "ops": settings.ops.model_copy(update={"operators_file": ""})}))  # demo's: loopback
    with serve(create_app(config), port) as url:
        answer = httpx.post(f"{url}/token", auth=("changsha-gov", SECRETS["changsha-gov"]),
                            headers={"Host": "gateway.internal"},
                            data={"grant_type": "authorization_code", "code": "nope",
                                  "redirect_uri": "http://127.0.0.1:8001/callback"})
        revoked = httpx.post(f"{url}/revoke", auth=("changsha-gov", SECRETS["changsha-gov"]),
                             headers={"Host": "gateway.internal"}, data={"token": "nope"})
        authorize = httpx.get(f"{url}/authorize", headers={"Host": "gateway.internal"},
                              params={"client_id": "changsha-gov", "response_type": "code",
                                      "redirect_uri": "http://127.0.0.1:8001/callback",
                                      "scope": "openid", "prompt": "none", "state": "s"})
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"
    assert revoked.status_code == 200  # RFC 7009: an unknown token is not an error
    assert authorize.status_code == 302
    assert "error=login_required" in authorize.headers["location"]
