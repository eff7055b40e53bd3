"""The /token endpoint's HTTP side (gateway/oidc/token_endpoint.py, gateway/oidc/bridge.py)."""

from __future__ import annotations

import httpx

from gateway.app import create_app
from tests.support.gateway import SECRETS, config_on_port
from tests.support.servers import free_port, serve


def test_behind_a_proxy_that_ends_tls_oauth_endpoints_still_work() -> None:
    # The issuer is https, but the request reaches the gateway as plain http for an
    # internal host name, as it does behind a TLS-terminating proxy: authlib must judge
    # the published URL, not this one.
    port = free_port()
    config = config_on_port(port)
    gateway = config.settings.gateway.model_copy(update={"issuer": "https://sso.example.test"})
    config = config.model_copy(
        update={"settings": config.settings.model_copy(update={"gateway": gateway})})
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
