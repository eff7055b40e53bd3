"""OpenID Connect Back-Channel Logout 1.0: tell every RP of a session that it ended.

Browsers block third-party cookies, so front-channel iframes cannot log a person out of
the city and county systems; the gateway POSTs a signed logout token to each RP's
``backchannel_logout_uri`` instead. Delivery runs in the background (the person's logout
never waits for an RP), to all RPs at once, with retries and exponential backoff; each is
in the store before the logout answers, and survives the process that took it
(``gateway.oidc.delivery_queue``). Every state change goes to the store (kind
``bcl_delivery``) and the audit trail
(``backchannel.deliver``: delivered, each failed attempt, given up, refused) so an
operator can see which systems were told. URLs pass the SSRF guard before every attempt.

Neither the logout token nor the subject is ever logged: the token is a bearer credential
for ending sessions and the ``sub`` is personal data. The store record keeps the ``sub``
(ops may need to know whose logout failed); logs and the audit trail name only client,
``sid`` (the ``logout`` event before them names the subject) and ``jti``.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import anyio
import anyio.abc
import httpx

from gateway.audit import Outcome, audit_event, node_name
from gateway.errors import RoamError
from gateway.keys import KeyRing
from gateway.metrics.recorder import Metrics
from gateway.oidc.clients import Client
from gateway.oidc.delivery import Delivery, Status
from gateway.oidc.delivery_queue import DeliveryQueue
from gateway.outbound import OutboundPolicy, OutboundRefused, Pinned
from gateway.store.base import Kind, Store

__all__ = ["EVENT", "BackchannelLogout", "Delivery", "Status", "logout_token"]

EVENT = "http://schemas.openid.net/event/backchannel-logout"
_MAX_ERROR = 200
_OUTCOMES: dict[str, str] = {"delivered": "delivered", "failed": "given_up",
                             "refused": "refused", "pending": "retry"}  # the metric's words
_AUDIT_OUTCOMES: dict[Status, Outcome] = {"pending": "failure", "delivered": "success",
                                          "failed": "failure", "refused": "denied"}
Target = tuple[Client, str, str | None]
Started = tuple[Delivery, Client, "str | None", "str | None"]  # + version, first token

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


class BackchannelLogout:
    """Delivers logout tokens to RPs: concurrently, retried, guarded, recorded — and
    durably: each delivery is in the store before the logout answers, and any gateway
    process carries on with one whose process stopped (``gateway.oidc.delivery_queue``).

    ``clock`` and ``sleep`` are injectable so tests can drive the backoff schedule;
    ``jitter`` is the largest fraction added to each delay so many gateways restarting
    together do not retry in lockstep. ``clients`` finds the RP of a delivery taken over
    from another process; ``lease`` is how long a process holds a delivery past its next
    attempt (more than an attempt's timeout), and every ``lease`` / 3 seconds each process
    looks for deliveries whose lease ran out.
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
        clients: Callable[[str], Client | None] | None = None,
        node: str | None = None,
        lease: float = 15.0,
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
        self.clients = clients or (lambda client_id: None)
        self.queue = DeliveryQueue(store, node=node or node_name(), lease=lease,
                                   clock=clock)
        self._held: dict[str, tuple[Delivery, str | None, anyio.CancelScope]] = {}
        self._closing = False

    # -- public ------------------------------------------------------------------------

    async def start(self, task_group: anyio.abc.TaskGroup,
                    targets: Iterable[Target]) -> list[Delivery]:
        """Record a delivery to every target with a back-channel URI, then deliver them in
        the background of ``task_group`` (owned by the app's lifespan). Returns once they
        are in the store, before any RP is called: a person's logout never waits for an
        RP, and a process stopped right after still leaves them to the others. Nothing
        raised inside reaches the task group."""
        started = await self._record_all(targets)
        for delivery, client, version, token in started:
            if token is not None:
                task_group.start_soon(self._work_safely, delivery, client, version, token,
                                      name="backchannel-logout")
        return [delivery for delivery, _, _, _ in started]

    async def deliver_all(self, targets: Sequence[Target]) -> list[Delivery]:
        """Record and deliver to every ``(client, sub, sid)`` whose client has a
        back-channel URI, waiting for the outcome (the CLI).

        All RPs are called concurrently; each is retried on its own schedule. Returns the
        final record of each delivery, in the order of ``targets``.
        """
        async with anyio.create_task_group() as group:
            started = await self.start(group, targets)
        return started  # each updated by its delivery, which the group waited for

    async def run(self) -> None:
        """In every gateway process's lifespan: take over deliveries whose process
        stopped, and work on them here."""
        async with anyio.create_task_group() as group:
            while not self._closing:
                await self.sleep(self.queue.lease / 3 * (1 + _jitter.uniform(0, 0.2)))
                try:
                    claimed = await self.queue.claim_expired()
                except RoamError as error:
                    log.warning("backchannel logout: cannot look for deliveries to take over",
                                extra={"cause": str(error)})
                    continue
                for delivery, version in claimed:
                    client = self.clients(delivery.client_id)
                    if client is None or not client.config.backchannel_logout_uri:
                        await self._finish(delivery, "failed", "client no longer registered")
                        continue
                    group.start_soon(self._work_safely, delivery, client, version)

    async def hand_over(self) -> None:
        """Stopping on purpose (SIGTERM): stop working and release every delivery held,
        so another process takes them over at once instead of after the lease."""
        self._closing = True
        held = list(self._held.values())
        self._held.clear()
        for delivery, version, scope in held:
            scope.cancel()
            with anyio.move_on_after(2):
                await self.queue.release(delivery, version)
        if held:
            log.info("backchannel logout: deliveries handed over",
                     extra={"count": len(held)})

    async def deliveries(self, jtis: Iterable[str]) -> list[Delivery]:
        """The stored records of these deliveries; unknown or expired ones are left out."""
        found: list[Delivery] = []
        for jti in jtis:
            data = await self.store.find(Kind.BACKCHANNEL_DELIVERY, jti)
            if data is not None:
                found.append(Delivery.from_dict(data))
        return found

    # -- one RP ------------------------------------------------------------------------

    async def _record_all(self, targets: Iterable[Target]) -> list[Started]:
        """A delivery per target with a back-channel URI, recorded with the ``jti`` of
        its first token (minted now); one whose token cannot be made is recorded failed."""
        started: list[Started] = []
        for client, sub, sid in targets:
            uri = client.config.backchannel_logout_uri
            if not uri:
                continue
            now = self.clock()
            delivery = Delivery(jti=secrets.token_urlsafe(16), client_id=client.client_id,
                                sid=sid, uri=uri, sub=sub, created=now, updated=now,
                                next_attempt=now)
            try:
                token, delivery.jti = self._token(client, sub, sid)
            except (ValueError, RoamError) as error:
                # A caller bug (sid missing) or a key ring without the client's algorithm.
                log.error("backchannel logout: cannot mint token",
                          extra={"client": client.client_id, "sid": sid, "cause": str(error)})
                await self._finish(delivery, "failed", "cannot mint logout token")
                started.append((delivery, client, None, None))
                continue
            started.append((delivery, client, await self.queue.add(delivery), token))
        return started

    async def _work_safely(self, delivery: Delivery, client: Client, version: str | None,
                           token: str | None = None) -> None:
        with anyio.CancelScope() as scope:
            self._held[delivery.jti] = (delivery, version, scope)
            try:
                await self._work(delivery, client, version, token)
            except Exception:
                log.exception("backchannel logout: delivery crashed",
                              extra={"client": client.client_id, "sid": delivery.sid,
                                     "jti": delivery.jti})
                await self._finish(delivery, "failed", "internal error")
            finally:
                self._held.pop(delivery.jti, None)

    async def _work(self, delivery: Delivery, client: Client, version: str | None,
                    token: str | None) -> None:
        """Attempts until delivered, refused or ``retry_for`` after the first; ``token``
        for the first of them (None: a fresh one, as for every retry)."""
        while True:
            wait = delivery.next_attempt - self.clock()
            if wait > 0:
                await self.sleep(wait)
            if token is None:
                token, _ = self._token(client, delivery.sub, delivery.sid)  # fresh jti, exp
            try:
                pinned = await self.policy.pin(delivery.uri)
            except OutboundRefused as error:
                await self._finish(delivery, "refused", str(error))
                return
            if delivery.first_attempt is None:
                delivery.first_attempt = self.clock()
            delivery.attempts += 1
            error_text = await self._post(pinned, token)
            token = None
            if error_text is None:
                await self._finish(delivery, "delivered", None)
                return
            now = self.clock()
            elapsed = now - delivery.first_attempt
            if elapsed >= self.retry_for:
                await self._finish(delivery, "failed", error_text)
                return
            delivery.last_error = error_text
            delivery.updated = now
            delivery.next_attempt = now + min(self._delay(delivery.attempts),
                                              self.retry_for - elapsed)
            self.metrics.backchannel(delivery.client_id, "retry")
            audit_event("backchannel.deliver", "failure", client=delivery.client_id,
                        sid=delivery.sid, jti=delivery.jti, attempts=delivery.attempts,
                        status="retrying", error=error_text)
            if self._closing:
                return  # handed over with its new schedule
            version = await self.queue.keep(delivery, version)
            if version is None:
                log.warning("backchannel logout: delivery taken over by another process",
                            extra={"jti": delivery.jti, "client": delivery.client_id})
                return
            held = self._held.get(delivery.jti)
            if held is not None:
                self._held[delivery.jti] = (delivery, version, held[2])

    def _token(self, client: Client, sub: str, sid: str | None) -> tuple[str, str]:
        return _mint(self.keys, issuer=self.issuer, client=client, sub=sub, sid=sid,
                     now=int(self.clock()), ttl=self.token_ttl)

    def _delay(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failure: doubling, capped, jittered."""
        base = min(self.initial_delay * 2.0 ** (attempts - 1), self.max_delay)
        return base * (1 + _jitter.uniform(0, self.jitter))

    async def _post(self, pinned: Pinned, token: str) -> str | None:
        """One attempt, to the address the guard checked: None on 200/204, else a short
        error text (never the token).

        Redirects are not followed (they would bypass the guard) and the body is never
        read (an RP cannot make the gateway buffer a large answer).
        """
        try:
            with anyio.fail_after(self.policy.timeout):
                async with self.policy.stream(self.http, "POST", pinned,
                                              data={"logout_token": token}) as response:
                    status = response.status_code
        except (TimeoutError, httpx.TimeoutException):
            return "timed out"
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            return type(error).__name__
        if status in (200, 204):
            return None
        return f"HTTP {status}"

    # -- records -----------------------------------------------------------------------

    async def _finish(self, delivery: Delivery, status: Status, error: str | None) -> None:
        delivery.status = status
        delivery.last_error = None if error is None else error[:_MAX_ERROR]
        delivery.updated = self.clock()
        delivery.owner, delivery.lease_until = "", 0.0
        await self.queue.finish(delivery)
        self.metrics.backchannel(delivery.client_id, _OUTCOMES[status])
        audit_event("backchannel.deliver", _AUDIT_OUTCOMES[status], client=delivery.client_id,
                    sid=delivery.sid, jti=delivery.jti, attempts=delivery.attempts,
                    status=status, error=delivery.last_error)

