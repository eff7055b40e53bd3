"""The proxy: ``/s/{system}/{path}`` forwarded to an instance of a legacy system.

One request, in order:

1. the system must exist and have an opened ``PresentsIdentity`` connector (else 404);
2. the gate (:class:`gateway.legacy.access.Gate`) wants a session at the system's
   ``min_acr``. Refused, a top-level navigation (``Sec-Fetch-Mode: navigate``, or, when the
   browser sends no ``Sec-Fetch-Mode``, ``Accept: text/html`` without ``X-Requested-With``)
   of a GET/HEAD is sent to ``/login?next=<path+query>`` or ``/stepup?next=…&acr=…``;
   anything else (XHR/fetch, API clients) gets ``401`` or ``403`` JSON, never a redirect;
3. a path with a dot segment (``..``, ``%2e%2e``, ``..;``:
   :func:`gateway.urls.has_dot_segment`) is refused with ``400``, never forwarded; the
   request headers lose hop-by-hop headers, ``Host``, ``Expect``, names with ``_``,
   client-sent identity headers (``X-Roam-*``, ``Authorization``:
   :func:`connectors.base.strip_client_identity`) and the gateway's own cookies;
   ``X-Forwarded-*`` are the gateway's own (:mod:`gateway.proxy.forwarding`); then the
   connector adds the identity;
4. an instance is chosen round-robin among those up or half-open in this process's copy
   of the shared health (:mod:`gateway.health`; a half-open one only if this request wins
   its one trial); with none left, a person goes on through ``/go`` a level up
   (:class:`~gateway.legacy.failover.Failover`), a program gets ``503``; the body is
   streamed up, refused with ``413`` past ``max_body`` (``Content-Length`` is checked
   before any upstream is contacted);
5. only idempotent methods are retried, only on a connect failure (nothing was sent), on
   the next instance; every attempt's outcome goes to passive health
   (:class:`~gateway.health.Outliers`: a 5xx, a timeout, a failed connection or a broken
   answer counts against the instance);
6. the response streams back without hop-by-hop headers and without any ``Set-Cookie`` for
   the gateway's cookies; a ``Location`` into the instance is rewritten under ``/s/<system>``.

Upstream timeout → ``504``, connect failure on every instance or a broken upstream →
``502``, every connection the instance may have busy for the whole timeout → ``503`` with
``Retry-After``: a Chinese page with a reference id for navigations, else
``{"error": "gateway_timeout"|"bad_gateway"|"temporarily_unavailable", "ref": ...}``.
Logs carry the ref, the system and the instance, never headers or bodies.

The upstream client is the small :class:`~gateway.proxy.upstream.Upstream` interface,
handed in by the wiring: :class:`~gateway.proxy.h1.H1Upstream` (httptools' parser over
asyncio, chosen by ``bench/proxy_parts.py``: a quarter of aiohttp's CPU per exchange,
which itself is several times faster than httpx's here), or
:class:`~gateway.proxy.aiohttp_upstream.AiohttpUpstream`; the proxy tests run on both.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from connectors.base import Outgoing, PresentsIdentity, Route, strip_client_identity
from gateway.config import SystemConfig, Systems, route_of
from gateway.cookies import cookie_value
from gateway.errors import PageError, StoreError, new_reference
from gateway.health import Outliers
from gateway.host_sessions import CALLBACK_PATH, LOGOUT_PATH
from gateway.identity import Identity
from gateway.legacy.access import NO_STORE, Gate, Refusal
from gateway.legacy.failover import Failover
from gateway.legacy.handover import Handover
from gateway.metrics.recorder import Metrics
from gateway.pages import Pages
from gateway.proxy.answers import MiB, ProxyAnswers, is_navigation
from gateway.proxy.bodies import Body, TooLarge, Whole, small_length
from gateway.proxy.forwarding import (
    Headers,
    client_response_headers,
    path_cookie_prefix,
    upstream_request_headers,
)
from gateway.proxy.hosts import HOST_ROUTED
from gateway.proxy.request_facts import RequestFacts
from gateway.proxy.upstream import (
    Upstream,
    UpstreamBusy,
    UpstreamConnectError,
    UpstreamError,
    UpstreamResponse,
    UpstreamTimeout,
)
from gateway.routing.resolve import Chooser, RoundRobin
from gateway.sessions import Session
from gateway.urls import has_dot_segment, host_name, origin_on

__all__ = ["IDEMPOTENT", "METHODS", "PREFIX", "Proxy"]

log = logging.getLogger("roam.proxy")

PREFIX = "/s/"
"""Every path under it is the proxy's: ``/s/<system>/<path>``."""
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_ROUTABLE = frozenset({"up", "trial"})


# -- the proxy -----------------------------------------------------------------------------

class Proxy:
    """The ``/s/{system}/{path:path}`` endpoint; see the module docstring."""

    def __init__(
        self,
        upstream: Upstream,
        *,
        systems: Systems,
        connectors: Mapping[str, PresentsIdentity],
        health: Outliers,
        gate: Gate,
        handover: Handover | None = None,
        cookie_names: set[str] | frozenset[str] = frozenset(),
        max_body: int = 10 * MiB,
        pages: Pages | None = None,
        choose: Chooser | None = None,
        issuer: str = "",
        failover: Failover | None = None,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        self.upstream = upstream
        self.systems = systems
        self.connectors = connectors
        self.health = health
        self.gate = gate
        self.handover = handover
        self.cookie_name = gate.sessions.cookie_name
        self.cookie_names = frozenset(cookie_names) | {self.cookie_name,
                                                        gate.sessions.settings.cookie_name}
        self.cookie_name_prefixes: tuple[str, ...] = ()
        if handover is not None:
            self.cookie_names |= handover.hosts.cookie_names
            self.cookie_name_prefixes = handover.hosts.state_cookie_prefixes
        self.max_body = max_body
        self.answers = ProxyAnswers(pages=pages or Pages(), max_body=max_body)
        self.choose: Chooser = choose or RoundRobin()
        self.issuer = issuer  # host-routed systems are sent to its login
        self.failover = failover  # a system with no instance left: /go, a level up
        self._targets: dict[tuple[str, str], tuple[Route, str, str]] = {}
        public = urlsplit(issuer.lower())
        # X-Forwarded-Host/-Proto: where the gateway serves a system, never what a client
        # sent: the issuer's host in path mode, a system's own host with the issuer's port
        self._issuer_host = public.netloc
        self._issuer_port = f":{public.port}" if public.port else ""
        self._forwarded_proto = public.scheme
        self.clock = clock
        self._record = metrics.proxied if metrics is not None and metrics.enabled else None

    # -- entry point ----------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI, for every proxied request: :class:`~gateway.proxy.dispatch.ProxyFirst`
        sends them here ahead of Starlette's stack, so nothing above turns an unexpected
        error into a page — this does (500 with a reference id, the traceback logged).

        With metrics on, the request is counted and timed (until its answer was sent) under
        its system: one counter and one histogram, bound once per system and status."""
        record = self._record
        start = time.perf_counter() if record is not None else 0.0
        request = Request(scope, receive)
        try:
            answer = await self.handle(request)
        except Exception:
            answer = self.answers.internal_error(request)
        if record is None:
            await answer(scope, receive, send)
            return
        try:
            await answer(scope, receive, send)
        finally:
            system_id = scope["path"][len(PREFIX):].partition("/")[0]
            record(system_id, getattr(answer, "status_code", 0), time.perf_counter() - start)

    async def handle(self, request: Request) -> ASGIApp:
        system_id, slash, _ = request.scope["path"].removeprefix(PREFIX).partition("/")
        system = self.systems.get(system_id)
        connector = self.connectors.get(system_id)
        if system is None or connector is None:
            return self.answers.fail(request, 404, "not_found", "未找到该系统",
                              "您访问的业务系统不存在或未通过统一身份认证网关接入。")
        raw_path = self._raw_path(request)
        query = request.scope.get("query_string", b"").decode("latin-1")
        if not slash:  # the system's root is /s/<system>/
            return RedirectResponse(raw_path + "/" + (f"?{query}" if query else ""),
                                    status_code=307)
        if request.method not in METHODS:
            return self.answers.not_allowed(request, METHODS)
        host = request.scope.get(HOST_ROUTED)
        if host is None and system.hosts:  # never served on the issuer's origin
            return self._to_own_host(request, system, raw_path, query)
        facts = RequestFacts.of(request.scope["headers"], request.method)
        if facts.foreign:  # another site's page may not act here as the person
            return self.answers.fail(request, 403, "cross_site_request", "请求被拒绝",
                                     "其他网站或系统的页面不能以您的身份访问该系统。")
        prefix = "" if host else f"{PREFIX}{system_id}"  # how the client sees the system's root

        try:
            if host is not None:
                own = await self._own_host_page(request, system, host, raw_path)
                if own is not None:
                    return own
                session = await self._host_session(facts.cookie, system)
            else:
                session = await self.gate.enter(cookie_value(facts.cookie, self.cookie_name),
                                                system)
        except StoreError as exc:
            return self.answers.unavailable(request, exc)
        except PageError as exc:
            return self.answers.pages.error(exc)
        if isinstance(session, Refusal):
            return self._refused(request, session, system, raw_path, query, host)
        identity = session.identity

        rest = self._rest(raw_path, system_id, request)
        if rest is None or has_dot_segment(rest):
            return self.answers.fail(request, 400, "invalid_request", "地址无效",
                              "请求的地址格式不正确。")
        declared = facts.length
        if declared is not None:
            if not declared.isdigit():
                return self.answers.fail(request, 400, "invalid_request", "请求无效",
                                  "请求的长度声明不正确。")
            if int(declared) > self.max_body:
                return self.answers.too_large(request)
        has_body = (declared is not None and int(declared) > 0) or facts.chunked
        body = Body(request, self.max_body) if has_body else None
        headers = self._request_headers(
            request, prefix, host_name(host) + self._issuer_port if host else self._issuer_host)
        return await self._forward(request, system, connector, identity, rest, query,
                                   headers, body, prefix)

    # -- sessions -------------------------------------------------------------------------

    def _to_own_host(self, request: Request, system: SystemConfig, raw_path: str,
                     query: str) -> ASGIApp:
        """A system with hosts of its own is never served on the issuer's origin: the same
        page on its first host (308 keeps the method and body). The page is what follows
        ``/s/<id>/`` and always starts a path (``/s/<id>%2F@evil`` is not a way to put
        text between the host and the path)."""
        rest = self._rest(raw_path, system.id, request) or ""
        url = origin_on(self.issuer, system.hosts[0]) + "/" + rest.lstrip("/")
        return RedirectResponse(url + (f"?{query}" if query else ""), status_code=308,
                                headers=NO_STORE)

    async def _own_host_page(self, request: Request, system: SystemConfig, host: str,
                             raw_path: str) -> ASGIApp | None:
        """The gateway's two pages on a system's own host (the hand-over's end and the
        host's logout), or None for a page of the system."""
        if self.handover is None:
            return None
        path = raw_path.removeprefix(f"{PREFIX}{system.id}")
        if path == CALLBACK_PATH and request.method == "GET":  # a HEAD must not use it up
            return await self.handover.finish(request, system, host_name(host))
        if path == LOGOUT_PATH and request.method in ("GET", "HEAD"):
            return await self.handover.end(request, system)
        return None

    async def _host_session(self, cookie: str, system: SystemConfig) -> Session | Refusal:
        """The gate, for the host session a request on a system's own host carries."""
        if self.handover is None:
            return Refusal("login")
        hosts = self.handover.hosts
        found = await hosts.load(cookie_value(cookie, hosts.cookie_name), system=system.id)
        return self.gate.admit(found.as_session() if found is not None else None, system)

    def _refused(self, request: Request, refusal: Refusal, system: SystemConfig,
                 raw_path: str, query: str, host: str | None) -> ASGIApp:
        """To the login or step-up page and back: on the issuer's origin directly, from a
        system's own host through the hand-over (which logs in or steps up on the way)."""
        if host is None:
            target = raw_path + (f"?{query}" if query else "")
            return self.answers.refused(request, refusal, self.gate.where(refusal, target))
        if (self.handover is not None and request.method in ("GET", "HEAD")
                and is_navigation(request)):
            shown = raw_path.removeprefix(f"{PREFIX}{system.id}") or "/"
            return self.handover.begin(system, host_name(host),
                                       shown + (f"?{query}" if query else ""))
        return self.answers.refused(request, refusal,
                                    self.gate.where(refusal, "/", gateway=self.issuer))

    # -- forwarding -----------------------------------------------------------------------

    async def _forward(self, request: Request, system: SystemConfig,
                       connector: PresentsIdentity, identity: Identity, rest: str, query: str,
                       headers: Headers, body: Body | None, prefix: str) -> ASGIApp:
        method = request.method.upper()
        health = self.health
        order = self._order(system)
        if not order:
            return self.answers.no_instance(request, system, self.failover)
        last: UpstreamError = UpstreamConnectError("no instance")
        instance = ""
        tried = 0
        seen = self.gate.seen_by(system, identity)
        for instance in order:
            if tried and (method not in IDEMPOTENT or (body is not None and body.started)):
                break
            if (health.availability(system.id, instance) == "trial"
                    and not await health.claim_trial(system, instance)):
                continue  # another request is its one trial
            tried += 1
            route, base, base_path = self._target(system, instance)
            tail = "/" + rest + (f"?{query}" if query else "")
            outgoing = Outgoing(method=method, path=base_path + tail, headers=list(headers))
            connector.present(seen, outgoing, route, now=self.clock())
            url = base + tail
            try:
                resp = await self.upstream.send(
                    method, url, outgoing.headers,
                    body.chunks() if body is not None else None, wait=system.timeout)
            except UpstreamConnectError as exc:
                await health.failed(system.id, instance, "connect error")
                last = exc
                continue
            except UpstreamError as exc:
                if body is not None and body.too_large:
                    return self.answers.too_large(request)
                if isinstance(exc, UpstreamBusy):  # this process's own limit, not the instance
                    return self.answers.upstream_error(request, 503, system, instance, exc)
                timed_out = isinstance(exc, UpstreamTimeout)
                await health.failed(system.id, instance, "timeout" if timed_out else "broken")
                return self.answers.upstream_error(request, 504 if timed_out else 502, system,
                                                   instance, exc)
            except TooLarge:  # the client library let the body's own error through
                return self.answers.too_large(request)
            if resp.status >= 500:
                await health.failed(system.id, instance, f"status {resp.status}")
            small = small_length(resp.headers)
            if small is None:
                if resp.status < 500:
                    await health.succeeded(system.id, instance)
                return self._relay(resp, system, instance, prefix)
            try:
                content = await resp.read()
            except UpstreamError as exc:
                status = 504 if isinstance(exc, UpstreamTimeout) else 502
                if resp.status < 500:
                    await health.failed(system.id, instance, "broken")
                return self.answers.upstream_error(request, status, system, instance, exc)
            finally:
                await resp.close()
            if resp.status < 500:
                await health.succeeded(system.id, instance)
            return self._answer(resp, instance, prefix, content)
        if not tried:  # every instance left is half-open, its trial running elsewhere
            return self.answers.no_instance(request, system, None, recovering=True)
        return self.answers.upstream_error(request, 502, system, instance, last)

    def _target(self, system: SystemConfig, instance: str) -> tuple[Route, str, str]:
        """The connector's view of an instance, its base URL and base path (made once)."""
        key = (system.id, instance)
        found = self._targets.get(key)
        if found is None:
            base = instance.rstrip("/")
            found = self._targets[key] = (route_of(system, instance), base,
                                          urlsplit(base).path)
        return found

    def _order(self, system: SystemConfig) -> list[str]:
        """Instances to try: the chosen one first, then the others in turn; those up or
        half-open only (a half-open one takes a trial request now and then, as its turn
        comes). None when every one is down or drained."""
        availability = self.health.availability
        pool = [u for u in system.instances if availability(system.id, u) in _ROUTABLE]
        if len(pool) <= 1:  # the usual case: nothing to choose
            return pool
        first = pool.index(self.choose(system.id, pool))
        return pool[first:] + pool[:first]

    def _request_headers(self, request: Request, prefix: str, host: str) -> Headers:
        """``host``: the one the gateway serves the system on (``X-Forwarded-Host``)."""
        client = request.scope.get("client")
        return strip_client_identity(upstream_request_headers(
            request.scope["headers"], cookie_names=self.cookie_names,
            cookie_name_prefixes=self.cookie_name_prefixes,
            client=client[0] if client else None,
            proto=self._forwarded_proto or str(request.scope["scheme"]), host=host,
            prefix=prefix, cookie_prefix=self._cookie_prefix(prefix)))

    def _response_headers(self, resp: UpstreamResponse, instance: str,
                          prefix: str) -> list[tuple[bytes, bytes]]:
        return client_response_headers(resp.headers, cookie_names=self.cookie_names,
                                       cookie_name_prefixes=self.cookie_name_prefixes,
                                       base=instance.rstrip("/"), prefix=prefix,
                                       cookie_prefix=self._cookie_prefix(prefix))

    @staticmethod
    def _cookie_prefix(prefix: str) -> str:
        """Path mode (``prefix`` is ``/s/<system>``): the system's cookie name prefix."""
        return path_cookie_prefix(prefix[len(PREFIX):]) if prefix else ""

    def _answer(self, resp: UpstreamResponse, instance: str, prefix: str,
                content: bytes) -> ASGIApp:
        """A small body, read whole: one body message instead of streaming's head/body/end
        (measured: Starlette's streaming machinery was ~17 % of the proxy's CPU on 1 KiB
        answers)."""
        return Whole(resp.status, self._response_headers(resp, instance, prefix), content)

    def _relay(self, resp: UpstreamResponse, system: SystemConfig, instance: str,
               prefix: str) -> StreamingResponse:
        rewritten = self._response_headers(resp, instance, prefix)

        async def stream() -> AsyncIterator[bytes]:
            try:
                async for chunk in resp.body:
                    yield chunk
            except UpstreamError as exc:
                ref = new_reference()
                log.warning("proxy response broken", extra={
                    "ref": ref, "system": system.id, "instance": instance,
                    "cause": f"{type(exc).__name__}: {exc}"})
                raise  # abort the connection: the client must not take a cut body as whole
            finally:
                await resp.close()

        response = StreamingResponse(stream(), status_code=resp.status)
        response.raw_headers = rewritten
        return response

    # -- paths ----------------------------------------------------------------------------

    @staticmethod
    def _raw_path(request: Request) -> str:
        raw = request.scope.get("raw_path")
        if isinstance(raw, bytes) and raw:
            return raw.decode("latin-1")
        return quote(request.url.path)

    @staticmethod
    def _rest(raw_path: str, system_id: str, request: Request) -> str | None:
        """The path after ``/s/<system>/``, still percent-encoded as the client sent it."""
        marker = f"{PREFIX}{system_id}/"
        at = raw_path.find(marker)
        if at >= 0:
            return raw_path[at + len(marker):]
        path = str(request.scope["path"])
        return quote(path[len(marker):]) if path.startswith(marker) else None
