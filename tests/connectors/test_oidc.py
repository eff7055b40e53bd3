"""``oidc``: a system that is a relying party of the gateway is reached through its login."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from connectors.base import ConnectorContext, RedirectsLogin, RelyingParty, Route
from connectors.oidc import OidcConfig
from connectors.registry import parse_connector
from gateway.identity import Identity, PersonKind
from gateway.keys import KeyRing

IDENTITY = Identity(subject="c-0001", kind=PersonKind.NATURAL, acr="L2", amr=("pwd",),
                    auth_time=0, region="430102")


async def test_it_redirects_to_the_systems_own_login_on_the_chosen_instance() -> None:
    config = parse_connector("oidc", {"client_id": "xiangtan-gov", "login_path": "/sso/in"})
    assert isinstance(config, RelyingParty)
    assert config.client_id == "xiangtan-gov"
    opened = config.open(ConnectorContext(keys=KeyRing.ephemeral(), issuer="http://x"))
    assert isinstance(opened, RedirectsLogin)
    assert isinstance(opened, RelyingParty)
    route = Route(system_id="xiangtan-gov", system_name="湘潭", base_url="https://gjj.b/")
    assert await opened.login_url(IDENTITY, route, "https://gjj.b/") == "https://gjj.b/sso/in"


def test_the_default_login_path_and_bad_settings() -> None:
    assert OidcConfig(client_id="city-rp").login_path == "/login"
    for bad in ({}, {"client_id": "x"}, {"client_id": "city-rp", "login_path": "login"},
                {"client_id": "city-rp", "login_path": "//evil.example/"},
                {"client_id": "city-rp", "other": 1}):
        with pytest.raises(ValidationError):
            OidcConfig.model_validate(bad)
