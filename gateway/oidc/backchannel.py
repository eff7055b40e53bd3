"""OpenID Connect Back-Channel Logout 1.0: tell every RP of a session that it ended.

Browsers block third-party cookies, so front-channel iframes cannot log a person out of
the city and county systems; the gateway POSTs a signed logout token to each RP's
``backchannel_logout_uri`` instead. Delivery runs in the background (the person's logout
never waits for an RP), to all RPs at once, with retries and exponential backoff, and
every state change goes to the store (kind ``bcl_delivery``) and the audit trail
(``backchannel.deliver``: delivered, each failed attempt, given up, refused) so an
operator can see which systems were told. URLs pass the SSRF guard before every attempt.

Neither the logout token nor the subject is ever logged: the token is a bearer credential
for ending sessions and the ``sub`` is personal data. The store record keeps the ``sub``
(ops may need to know whose logout failed); logs and the audit trail name only client,
``sid`` (the ``logout`` event before them names the subject) and ``jti``.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import anyio
import anyio.abc
import httpx

from gateway.audit import Outcome, audit_event
from gateway.errors import RoamError
from gateway.keys import KeyRing
from gateway.metrics.recorder import Metrics
from gateway.oidc.clients import Client
from gateway.outbound import OutboundPolicy, OutboundRefused
from gateway.store.base import Kind, Store

__all__ = ["EVENT", "BackchannelLogout", "Delivery", "Status", "logout_token"]

EVENT = "http://schemas.openid.net/event/backchannel-logout"
RECORD_TTL = 7 * 24 * 3600  # long enough for an operator to look into a failed delivery
_MAX_ERROR = 200

Status = Literal["pending", "delivered", "failed", "refused"]
_OUTCOMES: dict[str, str] = {"delivered": "delivered", "failed": "given_up",
                             "refused": "refused", "pending": "retry"}  # the metric's words
_AUDIT_OUTCOMES: dict[Status, Outcome] = {"pending": "failure", "delivered": "success",
                                          "failed": "failure", "refused": "denied"}
Target = tuple[Client, str, str | None]

log = logging.getLogger("roam.backchannel")
_jitter = random.Random()  # noqa: S311 - spreads retries; not a security use


def _mint(
    keys: KeyRing,
    *,
    issuer: str,
    client: Client,
    sub: str,
    sid: str | None,
    now: int | None,
    ttl: int,
) -> tuple[str, str]:
    """The logout token and its ``jti``."""
    if sid is None and client.config.backchannel_logout_session_required:
        raise ValueError(f"client {client.client_id} requires a sid in its logout tokens")
    if not sub:
        raise ValueError("a logout token needs the subject")
    iat = int(time.time()) if now is None else int(now)
    jti = secrets.token_urlsafe(16)
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": client.client_id,
        "iat": iat,
        "exp": iat + ttl,
        "jti": jti,
        "sub": sub,
        "events": {EVENT: {}},
    }
    if sid is not None:
        claims["sid"] = sid
    # Section 2.4: a logout token must never carry a nonce (it would pass as an ID token).
    alg = client.config.id_token_signed_response_alg
    return keys.sign(claims, alg=alg, typ="logout+jwt"), jti


def logout_token(
    keys: KeyRing,
    *,
    issuer: str,
    client: Client,
    sub: str,
    sid: str | None,
    now: int | None = None,
    ttl: int = 120,
) -> str:
    """A signed logout token (``typ: logout+jwt``) for one RP, short-lived and unique.

    ``sub`` must be the subject as this client knows it. Signed with the client's ID
    token algorithm, since RPs verify both with the same configuration. A client that
    requires a ``sid`` but gets none is a caller bug: ``ValueError``.
    """
    token, _ = _mint(keys, issuer=issuer, client=client, sub=sub, sid=sid, now=now, ttl=ttl)
    return token


@dataclass
class Delivery:
    """One logout token's journey to one RP, as recorded in the store.

    ``jti`` is the first token's; retries send fresh tokens but keep this record id.
    ``sub`` is kept out of ``repr`` so a stray log line cannot leak it.
    """

    jti: str
    client_id: str
    sid: str | None
    uri: str
    sub: str = field(repr=False)
    attempts: int = 0
    status: Status = "pending"
    last_error: str | None = None
    created: float = 0.0
    updated: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Delivery:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class BackchannelLogout:
    """Delivers logout tokens to RPs: concurrently, retried, guarded, recorded.

    ``clock`` and ``sleep`` are injectable so tests can drive the backoff schedule;
    ``jitter`` is the largest fraction added to each delay so many gateways restarting
    together do not retry in lockstep.
    """

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        keys: KeyRing,
        issuer: str,
        store: Store,
        policy: OutboundPolicy,
        retry_for: float,
        initial_delay: float = 1.0,
        max_delay: float = 60.0,
        jitter: float = 0.1,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        token_ttl: int = 120,
        metrics: Metrics | None = None,
    ) -> None:
        if retry_for < 0 or initial_delay <= 0 or max_delay < initial_delay or jitter < 0:
            raise ValueError("retry_for >= 0, 0 < initial_delay <= max_delay, jitter >= 0")
        self.http = http
        self.keys = keys
        self.issuer = issuer
        self.store = store
        self.policy = policy
        self.retry_for = retry_for
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        self.jitter = jitter
        self.clock = clock
        self.sleep = sleep
        self.token_ttl = token_ttl
        self.metrics = metrics or Metrics()

    # -- public ------------------------------------------------------------------------

    def start(self, task_group: anyio.abc.TaskGroup, targets: Iterable[Target]) -> None:
        """Deliver in the background of ``task_group`` (owned by the app's lifespan).

        Returns at once so a person's logout never waits for an RP. Nothing raised inside
        reaches the task group: a crash there would take every other background job down.
        """
        batch = list(targets)  # the caller may reuse its list
        task_group.start_soon(self._deliver_safely, batch, name="backchannel-logout")

    async def deliver_all(self, targets: Sequence[Target]) -> list[Delivery]:
        """Deliver to every ``(client, sub, sid)`` whose client has a back-channel URI.

        All RPs are called concurrently; each is retried on its own schedule. Returns the
        final record of each delivery, in the order of ``targets``.
        """
        wanted = [t for t in targets if t[0].config.backchannel_logout_uri]
        results: list[Delivery | None] = [None] * len(wanted)

        async def one(index: int, target: Target) -> None:
            results[index] = await self._deliver(*target)

        async with anyio.create_task_group() as group:
            for index, target in enumerate(wanted):
                group.start_soon(one, index, target)
        return [r for r in results if r is not None]

    async def deliveries(self, jtis: Iterable[str]) -> list[Delivery]:
        """The stored records of these deliveries; unknown or expired ones are left out."""
        found: list[Delivery] = []
        for jti in jtis:
            data = await self.store.find(Kind.BACKCHANNEL_DELIVERY, jti)
            if data is not None:
                found.append(Delivery.from_dict(data))
        return found

    # -- one RP ------------------------------------------------------------------------

    async def _deliver_safely(self, targets: Sequence[Target]) -> None:
        try:
            await self.deliver_all(targets)
        except Exception:
            log.exception("backchannel logout: delivery batch crashed")

    async def _deliver(self, client: Client, sub: str, sid: str | None) -> Delivery:
        uri = cast(str, client.config.backchannel_logout_uri)
        now = self.clock()
        delivery = Delivery(jti=secrets.token_urlsafe(16), client_id=client.client_id,
                            sid=sid, uri=uri, sub=sub, created=now, updated=now)
        try:
            token, delivery.jti = self._token(client, sub, sid)
        except (ValueError, RoamError) as error:
            # A caller bug (sid missing) or a key ring without the client's algorithm.
            log.error("backchannel logout: cannot mint token",
                      extra={"client": client.client_id, "sid": sid, "cause": str(error)})
            return await self._finish(delivery, "failed", "cannot mint logout token")
        await self._record(delivery)
        try:
            return await self._attempts(delivery, client, token)
        except Exception:
            log.exception("backchannel logout: delivery crashed",
                          extra={"client": client.client_id, "sid": sid, "jti": delivery.jti})
            return await self._finish(delivery, "failed", "internal error")

    async def _attempts(self, delivery: Delivery, client: Client, token: str) -> Delivery:
        first_attempt: float | None = None
        while True:
            try:
                await self.policy.check(delivery.uri)
            except OutboundRefused as error:
                return await self._finish(delivery, "refused", str(error))
            if first_attempt is None:
                first_attempt = self.clock()
            delivery.attempts += 1
            error_text = await self._post(delivery.uri, token)
            if error_text is None:
                return await self._finish(delivery, "delivered", None)
            elapsed = self.clock() - first_attempt
            if elapsed >= self.retry_for:
                return await self._finish(delivery, "failed", error_text)
            delivery.last_error = error_text
            delivery.updated = self.clock()
            await self._record(delivery)
            self.metrics.backchannel(delivery.client_id, "retry")
            audit_event("backchannel.deliver", "failure", client=delivery.client_id,
                        sid=delivery.sid, jti=delivery.jti, attempts=delivery.attempts,
                        status="retrying", error=error_text)
            await self.sleep(min(self._delay(delivery.attempts), self.retry_for - elapsed))
            token, _ = self._token(client, delivery.sub, delivery.sid)  # fresh jti, iat, exp

    def _token(self, client: Client, sub: str, sid: str | None) -> tuple[str, str]:
        return _mint(self.keys, issuer=self.issuer, client=client, sub=sub, sid=sid,
                     now=int(self.clock()), ttl=self.token_ttl)

    def _delay(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failure: doubling, capped, jittered."""
        base = min(self.initial_delay * 2.0 ** (attempts - 1), self.max_delay)
        return base * (1 + _jitter.uniform(0, self.jitter))

    async def _post(self, uri: str, token: str) -> str | None:
        """One attempt: None on 200/204, else a short error text (never the token).

        Redirects are not followed (they would bypass the guard) and the body is never
        read (an RP cannot make the gateway buffer a large answer).
        """
        timeout = self.policy.timeout
        try:
            with anyio.fail_after(timeout):
                async with self.http.stream(
                    "POST",
                    uri,
                    data={"logout_token": token},
                    timeout=timeout,
                    follow_redirects=False,
                ) as response:
                    status = response.status_code
        except (TimeoutError, httpx.TimeoutException):
            return "timed out"
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            return type(error).__name__
        if status in (200, 204):
            return None
        return f"HTTP {status}"

    # -- records -----------------------------------------------------------------------

    async def _finish(self, delivery: Delivery, status: Status, error: str | None) -> Delivery:
        delivery.status = status
        delivery.last_error = None if error is None else error[:_MAX_ERROR]
        delivery.updated = self.clock()
        await self._record(delivery)
        self.metrics.backchannel(delivery.client_id, _OUTCOMES[status])
        audit_event("backchannel.deliver", _AUDIT_OUTCOMES[status], client=delivery.client_id,
                    sid=delivery.sid, jti=delivery.jti, attempts=delivery.attempts,
                    status=status, error=delivery.last_error)
        return delivery

    async def _record(self, delivery: Delivery) -> None:
        """Best effort: a store outage must not stop the RP from being told."""
        try:
            await self.store.upsert(Kind.BACKCHANNEL_DELIVERY, delivery.jti, delivery.to_dict(),
                                    RECORD_TTL)
        except RoamError as error:
            log.warning("backchannel logout: cannot record the delivery",
                        extra={"jti": delivery.jti, "client": delivery.client_id,
                               "cause": str(error)})
