"""The connector interface: claim release and masking, header stripping, the registry."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from connectors.base import (
    ConnectorContext,
    Outgoing,
    PresentsIdentity,
    RedirectsLogin,
    Route,
    released_claims,
    strip_client_identity,
)
from connectors.jwt_assertion import JwtAssertion, JwtAssertionConfig
from connectors.registry import (
    Registry,
    UnknownConnectorType,
    config_class,
    known_types,
    parse_connector,
)
from connectors.signed_header import SignedHeader, SignedHeaderConfig
from gateway.errors import ConfigError
from gateway.identity import Identity, PersonKind
from gateway.keys import KeyRing

SECRET = "s" * 40


def citizen() -> Identity:
    return Identity(
        subject="u-1001",
        kind=PersonKind.NATURAL,
        acr="L2",
        amr=("pwd",),
        auth_time=1_700_000_000,
        region="430102",
        claims={
            "name": "张三",
            "id_number": "430102199001011234",
            "phone_number": "13812341234",
            "birthdate": "1990-01-01",
            "gender": "male",
        },
    )


def route(claims: set[str], *, privileged: bool = False) -> Route:
    return Route(system_id="changsha-gjj", system_name="长沙公积金",
                 base_url="http://127.0.0.1:1", claims=frozenset(claims),
                 privileged=privileged)


# -- released_claims --------------------------------------------------------------------


def test_non_privileged_system_gets_masked_id_and_phone() -> None:
    claims = released_claims(citizen(), route({"name", "id_number", "phone_number"}))
    assert claims == {
        "sub": "u-1001",
        "acr": "L2",
        "name": "张三",
        "id_number": "430***********1234",
        "phone_number": "138****1234",
    }


def test_privileged_system_gets_full_values() -> None:
    claims = released_claims(citizen(), route({"id_number", "phone_number"}, privileged=True))
    assert claims["id_number"] == "430102199001011234"
    assert claims["phone_number"] == "13812341234"


def test_unregistered_claims_never_appear() -> None:
    claims = released_claims(citizen(), route({"name"}, privileged=True))
    assert set(claims) == {"sub", "acr", "name"}
    assert "430102199001011234" not in repr(claims)


def test_region_and_missing_claims() -> None:
    claims = released_claims(citizen(), route({"region", "uscc", "sub"}))
    assert claims == {"sub": "u-1001", "acr": "L2", "region": "430102"}


def test_agent_of_a_legal_person_is_masked_too() -> None:
    company = Identity(
        subject="org-7", kind=PersonKind.LEGAL, acr="L3", amr=("pwd",), auth_time=1,
        region="430100", claims={"uscc": "91430100MA4L0000XX", "org_name": "某公司"},
        agent={"name": "李四", "id_number": "430102199001011234",
               "phone_number": "13812341234"},
    )
    claims = released_claims(company, route({"uscc", "agent"}))
    assert claims["uscc"] == "91430100MA4L0000XX"
    assert claims["agent"] == {"name": "李四", "id_number": "430***********1234",
                               "phone_number": "138****1234"}


def test_route_audience_defaults_to_system_id() -> None:
    assert route(set()).audience == "changsha-gjj"
    assert Route("a", "A", "http://x", audience="urn:a").audience == "urn:a"


# -- strip_client_identity --------------------------------------------------------------


def test_strip_client_identity_drops_roam_headers_and_authorization() -> None:
    headers = [
        ("Accept", "text/html"),
        ("X-Roam-Sub", "forged"),
        ("x-roam-claims", "forged"),
        ("AUTHORIZATION", "Bearer forged"),
        ("X-Roaming", "kept: not the X-Roam- prefix"),
        ("Cookie", "a=b"),
    ]
    assert strip_client_identity(headers) == [
        ("Accept", "text/html"),
        ("X-Roaming", "kept: not the X-Roam- prefix"),
        ("Cookie", "a=b"),
    ]


def test_present_strips_client_identity_itself() -> None:
    ctx = ConnectorContext(keys=KeyRing.ephemeral(("ES256",)), issuer="http://gw")
    signed = SignedHeaderConfig.model_validate({"secret": SECRET})
    for cfg in (signed, JwtAssertionConfig(alg="ES256")):
        connector = cfg.open(ctx)
        assert isinstance(connector, PresentsIdentity)
        out = Outgoing("GET", "/", [("x-roam-sub", "forged"), ("authorization", "forged")])
        connector.present(citizen(), out, route(set()), now=1_700_000_000)
        assert ("x-roam-sub", "forged") not in out.headers
        assert ("authorization", "forged") not in out.headers
        assert [n for n, _ in out.headers if n.lower() == "x-roam-sub"] in ([], ["X-Roam-Sub"])


# -- capability protocols ---------------------------------------------------------------


def test_builtins_present_identity_and_do_not_redirect() -> None:
    ctx = ConnectorContext(keys=KeyRing.ephemeral(("RS256",)), issuer="http://gw")
    signed = SignedHeaderConfig.model_validate({"secret": SECRET}).open(ctx)
    jwt = JwtAssertionConfig().open(ctx)
    assert isinstance(signed, SignedHeader)
    assert isinstance(jwt, JwtAssertion)
    for connector in (signed, jwt):
        assert isinstance(connector, PresentsIdentity)
        assert not isinstance(connector, RedirectsLogin)
    assert "secret" not in repr(signed).lower()
    assert SECRET not in repr(signed)


def test_redirects_login_protocol_is_checkable() -> None:
    class Cas:
        type_name = "cas"

        async def login_url(self, identity: Identity, route: Route, target: str) -> str:
            return f"{route.base_url}/login?service={target}"

    assert isinstance(Cas(), RedirectsLogin)
    assert not isinstance(Cas(), PresentsIdentity)


# -- registry ---------------------------------------------------------------------------


def test_builtins_are_registered() -> None:
    assert {"signed-header", "jwt-assertion"} <= set(known_types())
    assert config_class("signed-header") is SignedHeaderConfig
    assert config_class("jwt-assertion") is JwtAssertionConfig


def test_unknown_type_lists_known_ones() -> None:
    with pytest.raises(UnknownConnectorType, match="signed-header"):
        config_class("soap")
    with pytest.raises(ConfigError) as caught:
        parse_connector("soap", {})
    assert caught.value.problems == [
        "type: unknown connector type 'soap'; "
        "known types: cas, jwt-assertion, oidc, signed-header, ticket"]


def test_parse_reports_every_problem_by_key() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_connector("signed-header", {"secret": "short", "windw": 10, "window": -1})
    problems = caught.value.problems
    assert any(p.startswith("secret: ") and "32" in p for p in problems)
    assert any(p.startswith("windw: ") for p in problems)
    assert any(p.startswith("window: ") for p in problems)
    assert all("short" not in p for p in problems), "secret values never reach messages"


def test_signed_header_secret_exactly_one(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        parse_connector("signed-header", {})
    with pytest.raises(ConfigError, match="exactly one"):
        parse_connector("signed-header", {"secret": SECRET, "secret_env": "ROAM_X"})
    monkeypatch.delenv("ROAM_TEST_SH_SECRET", raising=False)
    with pytest.raises(ConfigError, match="secret_env: environment variable ROAM_TEST_SH_SECRET"):
        parse_connector("signed-header", {"secret_env": "ROAM_TEST_SH_SECRET"})
    monkeypatch.setenv("ROAM_TEST_SH_SECRET", "short")
    with pytest.raises(ConfigError, match="at least 32"):
        parse_connector("signed-header", {"secret_env": "ROAM_TEST_SH_SECRET"})
    monkeypatch.setenv("ROAM_TEST_SH_SECRET", SECRET)
    cfg = parse_connector("signed-header", {"secret_env": "ROAM_TEST_SH_SECRET"})
    ctx = ConnectorContext(keys=KeyRing.ephemeral(("ES256",)), issuer="http://gw")
    connector = cfg.open(ctx)
    assert isinstance(connector, SignedHeader)
    assert connector.secret == SECRET.encode()


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"ttl": 301}, "ttl: "),
        ({"alg": "HS256"}, "alg: "),
        ({"header": "Bad Header"}, "header: "),
        ({"claim_map": {"name": "sub"}}, "claim_map: "),
        ({"claim_map": {"name": "xm", "gender": "xm"}}, "claim_map: "),
        ({"claim_map": {"nickname": "nc"}}, "claim_map: "),
        ({"claim_map": {"name": "phone_number"}}, "claim_map: "),
        ({"claim_map": {"name": "azp"}}, "claim_map: "),  # never an ID token look-alike
    ],
)
def test_jwt_assertion_settings_are_checked(settings: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_connector("jwt-assertion", settings)
    assert caught.value.problems[0].startswith(fragment)


def test_jwt_assertion_needs_a_key_for_its_alg() -> None:
    cfg = JwtAssertionConfig(alg="ES256")
    with pytest.raises(ConfigError, match="ES256"):
        cfg.open(ConnectorContext(keys=KeyRing.ephemeral(("RS256",)), issuer="http://gw"))


def test_registry_refuses_unsafe_classes_and_hijacks() -> None:
    class Loose(BaseModel):
        def open(self, ctx: ConnectorContext) -> Any:
            return None

    class NoOpen(BaseModel):
        model_config = ConfigDict(extra="forbid")

    class Other(BaseModel):
        model_config = ConfigDict(extra="forbid")

        def open(self, ctx: ConnectorContext) -> Any:
            return None

    registry = Registry()
    with pytest.raises(TypeError, match="extra='forbid'"):
        registry.register("loose", Loose)
    with pytest.raises(TypeError, match="open"):
        registry.register("no-open", NoOpen)
    with pytest.raises(TypeError, match="pydantic"):
        registry.register("plain", dict)
    registry.register("other", Other)
    registry.register("other", Other)  # the same class again is fine
    registry.register("signed-header", SignedHeaderConfig)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("signed-header", Other)
    assert registry.known_types() == ["other", "signed-header"]
