"""Tests for gateway.oidc.backchannel: logout tokens and their delivery to real RPs.

The RPs' back-channel endpoints are a real Starlette app served by uvicorn in a thread;
httpx is never mocked. The server runs on its own event loop, so RP handlers coordinate
with the test through ``threading.Event``s awaited off-loop.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from gateway.config import ClientConfig, OutboundSection
from gateway.errors import TokenError
from gateway.keys import KeyRing, validate_claims
from gateway.oidc.backchannel import EVENT, BackchannelLogout, logout_token
from gateway.oidc.clients import Client
from gateway.oidc.delivery import Delivery
from gateway.oidc.delivery_queue import DeliveryQueue
from gateway.outbound import OutboundPolicy
from gateway.store.base import Kind
from gateway.store.memory import MemoryStore
from tests.support.audit import audited
from tests.support.servers import free_port, serve

ISSUER = "https://sso.hunan.example.gov.cn"
SUB = "c-0001-pairwise-5d41402a"
SID = "sid-8f14e45fceea167a"
WAIT = 10.0  # seconds a handler waits for its cue before the test counts as failed

Handler = Callable[[int], Awaitable[Response]]


# -- a relying party's back-channel endpoint ----------------------------------------------


@dataclass
class Received:
    content_type: str
    form: dict[str, str]


@dataclass
class RelyingParties:
    """Records every POST to ``/bcl/{name}``; ``handlers[name]`` decides the answer."""

    requests: dict[str, list[Received]] = field(default_factory=dict)
    handlers: dict[str, Handler] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def got(self, name: str) -> list[Received]:
        with self.lock:
            return list(self.requests.get(name, []))

    def tokens(self, name: str) -> list[str]:
        return [r.form["logout_token"] for r in self.got(name)]

    async def endpoint(self, request: Request) -> Response:
        name = request.path_params["name"]
        form = await request.form()
        received = Received(request.headers.get("content-type", ""),
                            {k: str(v) for k, v in form.items()})
        with self.lock:
            seen = self.requests.setdefault(name, [])
            seen.append(received)
            count = len(seen)
        handler = self.handlers.get(name)
        return await handler(count) if handler else Response(status_code=200)


async def wait_for(event: threading.Event) -> bool:
    """Wait (at most ``WAIT`` s) for a cross-thread event without blocking the loop."""
    return await anyio.to_thread.run_sync(event.wait, WAIT)


@pytest.fixture(scope="module")
def rp_server() -> Iterator[tuple[RelyingParties, str]]:
    rps = RelyingParties()
    app = Starlette(routes=[Route("/bcl/{name}", rps.endpoint, methods=["POST"])])
    with serve(app) as url:
        yield rps, url


@pytest.fixture
def rps(rp_server: tuple[RelyingParties, str]) -> RelyingParties:
    rp = rp_server[0]
    with rp.lock:
        rp.requests.clear()
        rp.handlers.clear()
    return rp


@pytest.fixture
def rp_url(rp_server: tuple[RelyingParties, str], rps: RelyingParties) -> str:
    return rp_server[1]


# -- the gateway side ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def ring() -> KeyRing:
    return KeyRing.ephemeral()


@pytest.fixture
def memory() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def client(
    client_id: str,
    uri: str | None = None,
    *,
    alg: str = "RS256",
    session_required: bool = True,
) -> Client:
    return Client(ClientConfig.model_validate({
        "client_id": client_id,
        "client_name": f"{client_id} 政务服务",
        "redirect_uris": [f"https://{client_id}.example.gov.cn/cb"],
        "id_token_signed_response_alg": alg,
        "backchannel_logout_uri": uri,
        "backchannel_logout_session_required": session_required,
    }))


def loopback_policy(timeout: float = 5.0) -> OutboundPolicy:
    return OutboundPolicy(OutboundSection(allowed_networks=("127.0.0.0/8",), timeout=timeout))


def bcl(
    http: httpx.AsyncClient,
    ring: KeyRing,
    store: MemoryStore,
    *,
    policy: OutboundPolicy | None = None,
    retry_for: float = 0,
    **options: Any,
) -> BackchannelLogout:
    return BackchannelLogout(
        http=http, keys=ring, issuer=ISSUER, store=store,
        policy=policy or loopback_policy(), retry_for=retry_for,
        **options,
    )


def check_token(ring: KeyRing, token: str, client_id: str) -> dict[str, Any]:
    """Verify a received logout token the way an RP must (OIDC BCL 1.0 section 2.6)."""
    header, claims = ring.verify(token, typ="logout+jwt")
    assert header["typ"] == "logout+jwt"
    validate_claims(claims, issuer=ISSUER, audience=client_id,
                    required=("iss", "aud", "iat", "exp", "jti", "events"))
    assert claims["events"] == {EVENT: {}}
    assert "nonce" not in claims
    return claims


# -- the logout token ---------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_logout_token_validates_against_the_jwks(ring: KeyRing, alg: str) -> None:
    rp = client("changsha-gov", "https://changsha-gov.example.gov.cn/bcl", alg=alg)
    token = logout_token(ring, issuer=ISSUER, client=rp, sub=SUB, sid=SID, ttl=90)

    # An RP's view: only the published JWKS (as JSON), a JOSE library, the claim rules.
    jwks = KeySet.import_key_set(json.loads(json.dumps(ring.jwks())))
    decoded = jwt.decode(token, jwks, algorithms=[alg])
    assert decoded.header["typ"] == "logout+jwt"
    assert decoded.header["alg"] == alg
    claims = decoded.claims
    assert set(claims) == {"iss", "aud", "iat", "exp", "jti", "sub", "sid", "events"}
    assert claims["iss"] == ISSUER
    assert claims["aud"] == "changsha-gov"
    assert claims["sub"] == SUB
    assert claims["sid"] == SID
    assert claims["events"] == {EVENT: {}}
    assert claims["exp"] - claims["iat"] == 90
    assert "nonce" not in claims
    assert check_token(ring, token, "changsha-gov") == claims

    # The typ keeps it from passing as any other kind of token, and aud binds it.
    with pytest.raises(TokenError, match="wrong token type"):
        ring.verify(token, typ="JWT")
    with pytest.raises(TokenError):
        validate_claims(claims, issuer=ISSUER, audience="yueyang-gov")


def test_logout_tokens_are_unique_and_dated(ring: KeyRing) -> None:
    rp = client("changsha-gov", "https://changsha-gov.example.gov.cn/bcl")
    first = logout_token(ring, issuer=ISSUER, client=rp, sub=SUB, sid=SID, now=1_800_000_000)
    second = logout_token(ring, issuer=ISSUER, client=rp, sub=SUB, sid=SID, now=1_800_000_000)
    a = ring.verify(first, typ="logout+jwt")[1]
    b = ring.verify(second, typ="logout+jwt")[1]
    assert a["jti"] != b["jti"]
    assert (a["iat"], a["exp"]) == (1_800_000_000, 1_800_000_120)


def test_sid_is_left_out_when_not_given(ring: KeyRing) -> None:
    rp = client("changsha-gov", "https://changsha-gov.example.gov.cn/bcl",
                session_required=False)
    token = logout_token(ring, issuer=ISSUER, client=rp, sub=SUB, sid=None)
    claims = check_token(ring, token, "changsha-gov")
    assert "sid" not in claims
    assert claims["sub"] == SUB


def test_session_required_without_sid_is_a_programming_error(ring: KeyRing) -> None:
    rp = client("changsha-gov", "https://changsha-gov.example.gov.cn/bcl")
    with pytest.raises(ValueError, match="requires a sid"):
        logout_token(ring, issuer=ISSUER, client=rp, sub=SUB, sid=None)


# -- delivery -----------------------------------------------------------------------------


async def test_delivers_to_two_rps_concurrently(
    http: httpx.AsyncClient, ring: KeyRing, memory: MemoryStore, rps: RelyingParties,
    rp_url: str,
) -> None:
    b_received = threading.Event()
    a_saw_b: list[bool] = []

    async def a(count: int) -> Response:
        # A answers only once B has its request: sequential delivery could never finish.
        a_saw_b.append(await wait_for(b_received))
        return Response(status_code=200 if a_saw_b[-1] else 503)

    async def b(count: int) -> Response:
        b_received.set()
        return Response(status_code=204)

    rps.handlers.update(a=a, b=b)
    changsha = client("changsha-gov", f"{rp_url}/bcl/a")
    yueyang = client("yueyang-gov", f"{rp_url}/bcl/b", alg="ES256")
    done = await bcl(http, ring, memory).deliver_all(
        [(changsha, SUB, SID), (yueyang, "yy-" + SUB, SID)])

    assert a_saw_b == [True]
    assert [(d.client_id, d.status, d.attempts) for d in done] == [
        ("changsha-gov", "delivered", 1), ("yueyang-gov", "delivered", 1)]
    for name, rp, sub in (("a", changsha, SUB), ("b", yueyang, "yy-" + SUB)):
        (got,) = rps.got(name)
        assert got.content_type == "application/x-www-form-urlencoded"
        assert set(got.form) == {"logout_token"}
        claims = check_token(ring, got.form["logout_token"], rp.client_id)
        assert (claims["sub"], claims["sid"]) == (sub, SID)
    assert done[0].jti == check_token(ring, rps.tokens("a")[0], "changsha-gov")["jti"]


async def test_retries_until_delivered_with_fresh_tokens(
    http: httpx.AsyncClient, ring: KeyRing, memory: MemoryStore, rps: RelyingParties,
    rp_url: str,
) -> None:
    async def flaky(count: int) -> Response:
        return Response(status_code=500 if count <= 2 else 200)

    rps.handlers["flaky"] = flaky
    rp = client("changsha-gov", f"{rp_url}/bcl/flaky")
    sender = bcl(http, ring, memory, retry_for=30, initial_delay=0.01, max_delay=0.05)
    (done,) = await sender.deliver_all([(rp, SUB, SID)])

    assert (done.status, done.attempts) == ("delivered", 3)
    assert done.last_error is None
    jtis = [check_token(ring, t, "changsha-gov")["jti"] for t in rps.tokens("flaky")]
    assert len(jtis) == len(set(jtis)) == 3
    assert done.jti == jtis[0]
    (stored,) = await sender.deliveries([done.jti])
    assert stored == done
    assert stored.sub == SUB  # the record may hold it; logs never do


async def test_endpoint_down_is_retried_then_failed_and_recorded(
    http: httpx.AsyncClient, ring: KeyRing, memory: MemoryStore,
) -> None:
    rp = client("changsha-gov", f"http://127.0.0.1:{free_port()}/bcl")  # nothing listens
    sender = bcl(http, ring, memory, retry_for=0.2, initial_delay=0.01, max_delay=0.05)
    (done,) = await sender.deliver_all([(rp, SUB, SID)])

    assert done.status == "failed"
    assert done.attempts >= 2
    assert done.last_error == "ConnectError"
    record = await memory.find(Kind.BACKCHANNEL_DELIVERY, done.jti)
    assert record is not None
    assert Delivery.from_dict(record) == done
    assert record["status"] == "failed"


async def test_backoff_doubles_caps_and_stops_at_retry_for(
    http: httpx.AsyncClient, ring: KeyRing, memory: MemoryStore,
) -> None:
    now = [1_800_000_000.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds
        await anyio.lowlevel.checkpoint()

    rp = client("changsha-gov", f"http://127.0.0.1:{free_port()}/bcl")
    sender = bcl(http, ring, memory, retry_for=10, initial_delay=1, max_delay=4, jitter=0,
                 clock=lambda: now[0], sleep=sleep)
    (done,) = await sender.deliver_all([(rp, SUB, SID)])

    # Attempts at t = 0, 1, 3, 7 and a last one at the 10 s deadline.
    assert slept == [1, 2, 4, 3]
    assert (done.status, done.attempts) == ("failed", 5)
    assert (done.created, done.updated) == (1_800_000_000.0, 1_800_000_010.0)


async def test_no_retry_when_retry_for_is_zero(
    http: httpx.AsyncClient, ring: KeyRing, memory: MemoryStore, rps: RelyingParties,
    rp_url: str,
) -> None:
    async def broken(count: int) -> Response:
        return Response(status_code=400)

    rps.handlers["broken"] = broken
    rp = client("changsha-gov", f"{rp_url}/bcl/broken")
    (done,) = await bcl(http, ring, memory).deliver_all([(rp, SUB, SID)])
    assert (done.status, done.attempts, done.last_error) == ("failed", 1, "HTTP 400")
    assert len(rps.got("broken")) == 1


async def test_redirects_are_not_followed(
    http: httpx.AsyncClient, ring: KeyRing, memory: MemoryStore, rps: RelyingParties,
    rp_url: str,
) -> None:
    async def redirect(count: int) -> Response:
        return RedirectResponse(f"{rp_url}/bcl/elsewhere", status_code=307)

    rps.handlers["redirect"] = redirect
    rp = client("changsha-gov", f"{rp_url}/bcl/redirect")
    (done,) = await bcl(http, ring, memory).deliver_all([(rp, SUB, SID)])
    assert (done.status, done.last_error) == ("failed", "HTTP 307")
    assert rps.got("elsewhere") == []


async def test_refused_url_is_never_called(
    http: httpx.AsyncClient, ring: KeyRing, memory: MemoryStore, rps: RelyingParties,
    rp_url: str,
) -> None:
    rp = client("changsha-gov", f"{rp_url}/bcl/guarded")
    sender = bcl(http, ring, memory, policy=OutboundPolicy(OutboundSection()), retry_for=30)
    (done,) = await sender.deliver_all([(rp, SUB, SID)])

    assert (done.status, done.attempts) == ("refused", 0)
    assert done.last_error is not None
    assert "special-use" in done.last_error
    assert rps.got("guarded") == []
    (stored,) = await sender.deliveries([done.jti])
    assert stored.status == "refused"


async def test_clients_without_backchannel_uri_are_skipped(
    http: httpx.AsyncClient, ring: KeyRing, memory: MemoryStore, rps: RelyingParties,
    rp_url: str,
) -> None:
    silent = client("zhuzhou-gov")
    rp = client("changsha-gov", f"{rp_url}/bcl/a")
    done = await bcl(http, ring, memory).deliver_all([(silent, SUB, SID), (rp, SUB, SID)])
    assert [d.client_id for d in done] == ["changsha-gov"]
    assert await bcl(http, ring, memory).deliver_all([(silent, SUB, SID)]) == []


async def test_a_bad_target_fails_alone(
    http: httpx.AsyncClient, ring: KeyRing, memory: MemoryStore, rps: RelyingParties,
    rp_url: str,
) -> None:
    needs_sid = client("changsha-gov", f"{rp_url}/bcl/a")
    fine = client("yueyang-gov", f"{rp_url}/bcl/b", session_required=False)
    done = await bcl(http, ring, memory).deliver_all([(needs_sid, SUB, None),
                                                      (fine, SUB, None)])
    assert [(d.status, d.last_error) for d in done] == [
        ("failed", "cannot mint logout token"), ("delivered", None)]
    assert rps.got("a") == []


async def test_start_returns_at_once_and_delivers_in_the_background(
    http: httpx.AsyncClient, ring: KeyRing, memory: MemoryStore, rps: RelyingParties,
    rp_url: str,
) -> None:
    release = threading.Event()
    received = threading.Event()

    async def slow(count: int) -> Response:
        received.set()
        ok = await wait_for(release)
        return Response(status_code=200 if ok else 503)

    rps.handlers["slow"] = slow
    rp = client("changsha-gov", f"{rp_url}/bcl/slow")
    sender = bcl(http, ring, memory)
    async with anyio.create_task_group() as group:
        await sender.start(group, [(rp, SUB, SID)])
        # start() has returned while the RP still holds the request open.
        assert await wait_for(received)
        assert not release.is_set()
        release.set()
    (token,) = rps.tokens("slow")
    jti = check_token(ring, token, "changsha-gov")["jti"]
    (stored,) = await sender.deliveries([jti, "no-such-jti"])
    assert (stored.status, stored.attempts) == ("delivered", 1)


async def test_start_never_crashes_the_task_group(
    ring: KeyRing, memory: MemoryStore, rp_url: str, caplog: pytest.LogCaptureFixture,
) -> None:
    closed = httpx.AsyncClient()
    await closed.aclose()  # sending on it raises RuntimeError, not an httpx error
    rp = client("changsha-gov", f"{rp_url}/bcl/a")
    sender = bcl(closed, ring, memory)
    with caplog.at_level(logging.INFO, logger="roam.audit"):
        async with anyio.create_task_group() as group:
            await sender.start(group, [(rp, SUB, SID)])
            await sender.start(group, [(rp, SUB, None)])
    statuses = sorted(r["status"] for _, _, r in await _records(memory))
    assert statuses == ["failed", "failed"]
    assert any(getattr(r, "error", None) == "internal error"
               for r in audited(caplog.records, "backchannel.deliver", "failure"))


async def test_logs_name_client_and_status_but_never_token_or_sub(
    http: httpx.AsyncClient, ring: KeyRing, memory: MemoryStore, rps: RelyingParties,
    rp_url: str, caplog: pytest.LogCaptureFixture,
) -> None:
    async def flaky(count: int) -> Response:
        return Response(status_code=503 if count == 1 else 204)

    rps.handlers["flaky"] = flaky
    rp = client("changsha-gov", f"{rp_url}/bcl/flaky")
    refused = client("yueyang-gov", "https://10.0.0.9/bcl")
    with caplog.at_level(logging.DEBUG):
        done = await bcl(http, ring, memory, retry_for=30, initial_delay=0.01).deliver_all(
            [(rp, SUB, SID), (refused, SUB, SID)])
    assert [d.status for d in done] == ["delivered", "refused"]

    deliveries = audited(caplog.records, "backchannel.deliver")
    fields = [(getattr(r, "client", None), getattr(r, "status", None), getattr(r, "attempts", 0))
              for r in deliveries]
    assert ("changsha-gov", "retrying", 1) in fields
    assert ("changsha-gov", "delivered", 2) in fields
    assert ("yueyang-gov", "refused", 0) in fields
    assert all(getattr(r, "sid", None) == SID for r in deliveries)
    assert any(r.levelno == logging.WARNING and getattr(r, "status", None) == "refused"
               for r in deliveries)
    everything = caplog.text + "\n".join(repr(r.args) for r in caplog.records)
    for token in rps.tokens("flaky"):
        assert token not in everything
        assert token.split(".")[1] not in everything
    assert SUB not in everything
    assert SUB not in repr(done[0])


async def _records(store: MemoryStore) -> list[tuple[str, str, dict[str, Any]]]:
    """Every bcl_delivery record in the store."""
    found = []
    for kind, record_id in store.snapshot():
        payload = await store.find(kind, record_id) if kind == Kind.BACKCHANNEL_DELIVERY else None
        if payload is not None:
            found.append((kind, record_id, payload))
    return found


async def test_a_stopping_process_hands_its_deliveries_over_at_once(
    http: httpx.AsyncClient, ring: KeyRing, memory: MemoryStore,
) -> None:
    rp = client("changsha-gov", f"http://127.0.0.1:{free_port()}/bcl")  # nothing listens
    sender = bcl(http, ring, memory, retry_for=300, initial_delay=60, node="a:1")
    async with anyio.create_task_group() as group:
        (started,) = await sender.start(group, [(rp, SUB, SID)])
        for _ in range(200):  # its first attempt fails, then it waits a minute
            stored = await memory.find(Kind.BACKCHANNEL_DELIVERY, started.jti)
            if stored and stored["attempts"] == 1:
                break
            await anyio.sleep(0.01)
        assert stored is not None
        assert (stored["owner"], stored["attempts"]) == ("a:1", 1)
        await sender.hand_over()
    other = DeliveryQueue(memory, node="b:2", lease=15)
    [(taken, _)] = await other.claim_expired()  # no lease to wait out
    assert (taken.jti, taken.attempts, taken.owner) == (started.jti, 1, "b:2")
    assert taken.first_attempt is not None
    assert taken.next_attempt > taken.first_attempt, "the schedule goes on"
