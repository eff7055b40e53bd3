"""jwt-assertion, verified by a small real upstream against the gateway's published JWKS."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route as StarletteRoute

from connectors.base import ConnectorContext, Outgoing, Route, strip_client_identity
from connectors.jwt_assertion import JwtAssertion
from connectors.registry import parse_connector
from gateway.identity import Identity, PersonKind
from gateway.keys import KeyRing
from tests.support.servers import serve

ISSUER = "http://127.0.0.1:8000"
AUDIENCE = "cs-gjj"


def jwks_app(keys: KeyRing) -> Starlette:
    """Stands in for the gateway's ``/jwks`` endpoint."""

    async def jwks(request: Request) -> JSONResponse:
        return JSONResponse(keys.jwks())

    return Starlette(routes=[StarletteRoute("/jwks", jwks)])


def upstream_app(jwks_url: str, *, header: str = "Authorization") -> Starlette:
    """A legacy system: fetches the JWKS as JSON, checks signature, iss, aud, exp."""

    async def endpoint(request: Request) -> JSONResponse:
        value = request.headers.get(header, "")
        if header.lower() == "authorization":
            scheme, _, value = value.partition(" ")
            if scheme.lower() != "bearer":
                return JSONResponse({"error": "no bearer token"}, status_code=401)
        async with httpx.AsyncClient() as client:
            keyset = KeySet.import_key_set((await client.get(jwks_url)).json())
        try:
            token = jwt.decode(value, keyset, algorithms=["RS256", "ES256"])
            JWTClaimsRegistry(
                leeway=30,
                iss={"essential": True, "value": ISSUER},
                aud={"essential": True, "value": AUDIENCE},
                exp={"essential": True},
                iat={"essential": True},
                sub={"essential": True},
                jti={"essential": True},
            ).validate(token.claims)
        except (JoseError, ValueError) as error:
            return JSONResponse({"error": type(error).__name__}, status_code=401)
        return JSONResponse({"header": dict(token.header), "claims": token.claims})

    return Starlette(routes=[StarletteRoute("/{rest:path}", endpoint,
                                            methods=["GET", "POST"])])


@pytest.fixture(scope="module")
def keys() -> KeyRing:
    return KeyRing.ephemeral()


@pytest.fixture(scope="module")
def jwks_url(keys: KeyRing) -> Iterator[str]:
    with serve(jwks_app(keys)) as url:
        yield url + "/jwks"


@pytest.fixture(scope="module")
def upstream(jwks_url: str) -> Iterator[str]:
    with serve(upstream_app(jwks_url)) as url:
        yield url


def open_connector(keys: KeyRing, **settings: Any) -> JwtAssertion:
    cfg = parse_connector("jwt-assertion", settings)
    connector = cfg.open(ConnectorContext(keys=keys, issuer=ISSUER))
    assert isinstance(connector, JwtAssertion)
    return connector


def citizen() -> Identity:
    return Identity(
        subject="u-1001", kind=PersonKind.NATURAL, acr="L3", amr=("pwd", "face"),
        auth_time=1_700_000_000, region="430102",
        claims={"name": "张三", "id_number": "430102199001011234",
                "phone_number": "13812341234", "birthdate": "1990-01-01"},
    )


def route(url: str, *, audience: str = "", privileged: bool = False) -> Route:
    return Route(system_id=AUDIENCE, system_name="长沙住房公积金", base_url=url,
                 claims=frozenset({"name", "id_number", "phone_number"}),
                 privileged=privileged, audience=audience)


def send(url: str, connector: JwtAssertion, *, now: float | None = None, audience: str = "",
         privileged: bool = False, client_headers: list[tuple[str, str]] | None = None,
         ) -> httpx.Response:
    out = Outgoing("GET", "/api/profile?x=1", strip_client_identity(client_headers or []))
    connector.present(citizen(), out, route(url, audience=audience, privileged=privileged),
                      now=time.time() if now is None else now)
    with httpx.Client(base_url=url) as client:
        return client.request(out.method, out.path, headers=out.headers)


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_valid_assertion_is_accepted(upstream: str, keys: KeyRing, alg: str) -> None:
    connector = open_connector(keys, alg=alg, ttl=120)
    response = send(upstream, connector)
    assert response.status_code == 200, response.text
    header, claims = response.json()["header"], response.json()["claims"]
    assert header["alg"] == alg
    assert header["typ"] == "JWT"
    assert header["kid"] == keys.signing_key(alg).kid
    assert claims["iss"] == ISSUER
    assert claims["aud"] == AUDIENCE
    assert claims["sub"] == "u-1001"
    assert claims["acr"] == "L3"
    assert claims["exp"] - claims["iat"] == 120
    assert claims["jti"]
    assert claims["name"] == "张三"
    assert claims["id_number"] == "430***********1234"
    assert claims["phone_number"] == "138****1234"
    assert "birthdate" not in claims  # not registered for the system


def test_claims_are_renamed_per_system(upstream: str, keys: KeyRing) -> None:
    connector = open_connector(keys, claim_map={"name": "xm", "id_number": "sfzh"})
    response = send(upstream, connector, privileged=True)
    assert response.status_code == 200, response.text
    claims = response.json()["claims"]
    assert claims["xm"] == "张三"
    assert claims["sfzh"] == "430102199001011234"
    assert claims["phone_number"] == "13812341234"
    assert "name" not in claims
    assert "id_number" not in claims


def test_expired_assertion_is_refused(upstream: str, keys: KeyRing) -> None:
    response = send(upstream, open_connector(keys), now=time.time() - 3600)
    assert response.status_code == 401
    assert response.json() == {"error": "ExpiredTokenError"}


def test_wrong_audience_is_refused(upstream: str, keys: KeyRing) -> None:
    response = send(upstream, open_connector(keys), audience="zz-other-system")
    assert response.status_code == 401
    assert response.json() == {"error": "InvalidClaimError"}


def test_foreign_key_is_refused(upstream: str) -> None:
    response = send(upstream, open_connector(KeyRing.ephemeral(("RS256",))))
    assert response.status_code == 401


def test_client_authorization_is_replaced(upstream: str, keys: KeyRing) -> None:
    connector = open_connector(keys)
    out = Outgoing("GET", "/", [("Authorization", "Bearer client-token")])
    connector.present(citizen(), out, route(upstream), now=time.time())
    values = [v for n, v in out.headers if n.lower() == "authorization"]
    assert len(values) == 1
    assert values[0].startswith("Bearer ey")
    assert send(upstream, connector,
                client_headers=[("authorization", "Bearer x")]).status_code == 200


def test_every_assertion_has_its_own_jti(keys: KeyRing) -> None:
    connector = open_connector(keys)
    seen = set()
    for _ in range(3):
        out = Outgoing("GET", "/")
        connector.present(citizen(), out, route("http://x"), now=time.time())
        _, claims = keys.verify(out.headers[0][1].removeprefix("Bearer "))
        seen.add(claims["jti"])
    assert len(seen) == 3


def test_custom_header_carries_the_bare_jwt(jwks_url: str, keys: KeyRing) -> None:
    connector = open_connector(keys, header="X-Gov-Token", alg="ES256")
    with serve(upstream_app(jwks_url, header="X-Gov-Token")) as url:
        response = send(url, connector)
    assert response.status_code == 200, response.text
    assert response.json()["header"]["alg"] == "ES256"
