"""signed-header, verified by a small real upstream that checks signatures as a system would."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route as StarletteRoute

from connectors import signed_header
from connectors.base import ConnectorContext, Outgoing, Route, strip_client_identity
from connectors.registry import parse_connector
from connectors.signed_header import SignatureError, SignedHeader, verify
from gateway.identity import Identity, PersonKind
from gateway.keys import KeyRing
from tests.support.servers import serve

SECRET = "k7Qv9-upstream-shared-secret-0123456789"
WINDOW = 300


def upstream_app(secret: str) -> Starlette:
    """A legacy system: trusts the gateway only through the signature."""
    seen_nonces: dict[str, float] = {}

    async def endpoint(request: Request) -> JSONResponse:
        path = request.scope["raw_path"].decode("latin-1")
        if request.scope["query_string"]:
            path += "?" + request.scope["query_string"].decode("latin-1")
        try:
            seen = verify(request.headers.items(), request.method, path, secret=secret,
                          window=WINDOW, now=time.time(), seen_nonces=seen_nonces)
        except SignatureError as error:
            return JSONResponse({"error": str(error)}, status_code=401)
        return JSONResponse({"sub": seen.sub, "acr": seen.acr, "claims": seen.claims,
                             "path": path})

    return Starlette(routes=[StarletteRoute("/{rest:path}", endpoint,
                                            methods=["GET", "POST"])])


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with serve(upstream_app(SECRET)) as url:
        yield url


@pytest.fixture
def connector() -> SignedHeader:
    cfg = parse_connector("signed-header", {"secret": SECRET, "window": WINDOW})
    opened = cfg.open(ConnectorContext(keys=KeyRing.ephemeral(("ES256",)), issuer="http://gw"))
    assert isinstance(opened, SignedHeader)
    return opened


def citizen() -> Identity:
    return Identity(
        subject="u-1001", kind=PersonKind.NATURAL, acr="L2", amr=("pwd",),
        auth_time=1_700_000_000, region="430102",
        claims={"name": "欧阳娜娜", "id_number": "430102199001011234",
                "phone_number": "13812341234", "gender": "female"},
    )


def route(url: str, *, privileged: bool = False) -> Route:
    return Route(system_id="cs-gjj", system_name="长沙住房公积金", base_url=url,
                 claims=frozenset({"name", "id_number", "phone_number", "region"}),
                 privileged=privileged)


def prepared(connector: SignedHeader, url: str, *, path: str = "/api/profile?tab=a%20b",
             method: str = "GET", now: float | None = None,
             client_headers: list[tuple[str, str]] | None = None,
             privileged: bool = False) -> Outgoing:
    """What the proxy does: strip the client's identity headers, then present."""
    out = Outgoing(method, path, strip_client_identity(client_headers or []))
    connector.present(citizen(), out, route(url, privileged=privileged),
                      now=time.time() if now is None else now)
    return out


def send(url: str, out: Outgoing) -> httpx.Response:
    with httpx.Client(base_url=url) as client:
        return client.request(out.method, out.path, headers=out.headers)


def test_valid_request_is_accepted_with_masked_claims(upstream: str,
                                                      connector: SignedHeader) -> None:
    response = send(upstream, prepared(connector, upstream))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["sub"] == "u-1001"
    assert body["acr"] == "L2"
    assert body["path"] == "/api/profile?tab=a%20b"
    assert body["claims"] == {
        "sub": "u-1001", "acr": "L2", "name": "欧阳娜娜", "region": "430102",
        "id_number": "430***********1234", "phone_number": "138****1234",
    }


def test_privileged_system_sees_full_numbers(upstream: str, connector: SignedHeader) -> None:
    response = send(upstream, prepared(connector, upstream, method="POST", privileged=True))
    assert response.status_code == 200, response.text
    claims = response.json()["claims"]
    assert claims["id_number"] == "430102199001011234"
    assert claims["phone_number"] == "13812341234"
    assert "gender" not in claims  # not registered for the system


def test_tampered_claims_header_is_refused(upstream: str, connector: SignedHeader) -> None:
    out = prepared(connector, upstream)
    forged = {"sub": "u-1001", "acr": "L4", "name": "欧阳娜娜"}
    text = json.dumps(forged, ensure_ascii=False, separators=(",", ":")).encode()
    value = base64.urlsafe_b64encode(text).rstrip(b"=").decode()
    out.headers = [(n, value if n == "X-Roam-Claims" else v) for n, v in out.headers]
    response = send(upstream, out)
    assert response.status_code == 401
    assert response.json() == {"error": "bad signature"}


def test_signature_binds_method_and_path(upstream: str, connector: SignedHeader) -> None:
    out = prepared(connector, upstream, path="/api/profile")
    out.path = "/api/admin"
    assert send(upstream, out).status_code == 401
    out = prepared(connector, upstream, method="GET")
    out.method = "POST"
    assert send(upstream, out).status_code == 401


def test_old_timestamp_is_refused(upstream: str, connector: SignedHeader) -> None:
    response = send(upstream, prepared(connector, upstream, now=time.time() - WINDOW - 60))
    assert response.status_code == 401
    assert "window" in response.json()["error"]


def test_replayed_nonce_is_refused(upstream: str, connector: SignedHeader) -> None:
    out = prepared(connector, upstream)
    assert send(upstream, out).status_code == 200
    response = send(upstream, out)
    assert response.status_code == 401
    assert response.json() == {"error": "nonce already used"}


def test_nonces_never_repeat_within_or_across_processes(upstream: str,
                                                        connector: SignedHeader) -> None:
    """A restarted gateway (a newly opened connector) must not reuse an earlier nonce."""
    def nonce(c: SignedHeader) -> str:
        return dict(prepared(c, upstream).headers)["X-Roam-Nonce"]

    reopened = parse_connector("signed-header", {"secret": SECRET}).open(
        ConnectorContext(keys=KeyRing.ephemeral(("ES256",)), issuer="http://gw"))
    assert isinstance(reopened, SignedHeader)
    first = [nonce(connector) for _ in range(100)]
    again = [nonce(reopened) for _ in range(100)]
    assert len(set(first) | set(again)) == 200
    for out in (prepared(connector, upstream), prepared(reopened, upstream)):
        assert send(upstream, out).status_code == 200  # one replay memory, both accepted


def test_claims_header_is_the_documented_json(connector: SignedHeader) -> None:
    """docs/connectors.md: base64url of json.dumps(claims, ensure_ascii=False,
    separators=(",", ":"), sort_keys=True) — nested objects sorted too, Chinese as UTF-8."""
    legal = Identity(
        subject="e-2001", kind=PersonKind.LEGAL, acr="L3", amr=("pwd", "face"),
        auth_time=1_700_000_000, region="430104",
        claims={"uscc": "91430100MA4L0XXX1X", "name": "湖南某某科技有限公司", "level": 3},
        agent={"phone_number": "13912345678", "name": "王五", "id_number": "430104198001011234"})
    out = Outgoing("GET", "/", [])
    connector.present(legal, out, Route(
        system_id="s", system_name="s", base_url="http://s",
        claims=frozenset({"uscc", "name", "agent", "level", "region"})), now=time.time())
    header = dict(out.headers)["X-Roam-Claims"]
    decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    assert decoded["agent"]["id_number"] == "430***********1234"  # masked, not privileged
    expected = json.dumps(decoded, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    assert base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)) == expected.encode()


def test_client_sent_identity_headers_are_stripped(upstream: str,
                                                   connector: SignedHeader) -> None:
    client = [("X-Roam-Sub", "admin"), ("x-roam-acr", "L4"), ("Accept", "application/json")]
    out = prepared(connector, upstream, client_headers=client)
    assert [v for n, v in out.headers if n.lower() == "x-roam-sub"] == ["u-1001"]
    assert ("Accept", "application/json") in out.headers
    response = send(upstream, out)
    assert response.status_code == 200
    assert response.json()["sub"] == "u-1001"
    assert response.json()["acr"] == "L2"


def test_forged_headers_alone_are_refused(upstream: str) -> None:
    response = send(upstream, Outgoing("GET", "/", [("X-Roam-Sub", "admin")]))
    assert response.status_code == 401
    assert "missing" in response.json()["error"]


def test_wrong_secret_is_refused(upstream: str) -> None:
    other = SignedHeader(secret=b"another-secret-of-at-least-32-characters")
    assert send(upstream, prepared(other, upstream)).status_code == 401


# -- verify() on its own ----------------------------------------------------------------


def test_verify_refuses_duplicate_signed_headers(connector: SignedHeader) -> None:
    out = prepared(connector, "http://127.0.0.1:1")
    duplicated = [*out.headers, ("x-roam-sub", "admin")]
    with pytest.raises(SignatureError, match="duplicate"):
        verify(duplicated, out.method, out.path, secret=SECRET, now=time.time(),
               seen_nonces={})


def test_verify_forgets_nonces_after_the_window(connector: SignedHeader) -> None:
    now = time.time()
    seen: dict[str, float] = {}
    out = prepared(connector, "http://127.0.0.1:1", now=now)
    verify(out.headers, out.method, out.path, secret=SECRET, window=10, now=now,
           seen_nonces=seen)
    assert len(seen) == 1
    other = prepared(connector, "http://127.0.0.1:1", now=now + 30)
    verify(other.headers, other.method, other.path, secret=SECRET, window=10, now=now + 30,
           seen_nonces=seen)
    assert len(seen) == 1  # the first nonce expired with its timestamp


def test_custom_prefix(connector: SignedHeader) -> None:
    cfg = parse_connector("signed-header", {"secret": SECRET, "header_prefix": "X-Gov-"})
    gov = cfg.open(ConnectorContext(keys=KeyRing.ephemeral(("ES256",)), issuer="http://gw"))
    assert isinstance(gov, SignedHeader)
    out = prepared(gov, "http://127.0.0.1:1", client_headers=[("X-Gov-Sub", "admin")])
    assert [v for n, v in out.headers if n == "X-Gov-Sub"] == ["u-1001"]
    seen = verify(dict(out.headers), out.method, out.path, secret=SECRET, now=time.time(),
                  seen_nonces={}, prefix="X-Gov-")
    assert seen.claims["name"] == "欧阳娜娜"


def test_unsafe_subject_is_refused(connector: SignedHeader) -> None:
    person = Identity(subject="u 1\n", kind=PersonKind.NATURAL, acr="L1", amr=(),
                      auth_time=0, region="430000")
    with pytest.raises(ValueError, match="sub"):
        connector.present(person, Outgoing("GET", "/"), route("http://x"), now=0)


def test_identity_headers_follow_the_identity_object(connector: SignedHeader,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Made once per (identity, route) pair of objects; another identity — a step-up, a
    different person — gets its own, and the kept ones are bounded."""
    def claims_of(identity: Identity, r: Route) -> tuple[str, str]:
        out = Outgoing("GET", "/", [])
        connector.present(identity, out, r, now=time.time())
        headers = dict(out.headers)
        return headers["X-Roam-Acr"], headers["X-Roam-Claims"]

    r = route("http://s")
    person = citizen()
    assert claims_of(person, r) == claims_of(person, r)
    stepped = person.with_auth(acr="L3", amr=("pwd", "face"), auth_time=1_700_000_100)
    assert claims_of(stepped, r)[0] == "L3"
    other = Identity(subject="u-2002", kind=PersonKind.NATURAL, acr="L2", amr=("pwd",),
                     auth_time=1, region="430102", claims={"name": "李四"})
    assert claims_of(other, r) != claims_of(person, r)
    privileged = route("http://s", privileged=True)
    assert claims_of(person, privileged) != claims_of(person, r)  # unmasked numbers

    monkeypatch.setattr(signed_header, "MADE_KEPT", 2)
    for n in range(5):
        claims_of(Identity(subject=f"u-{n}", kind=PersonKind.NATURAL, acr="L2", amr=("pwd",),
                           auth_time=1, region="430102"), r)
    assert len(connector._made) <= 2
