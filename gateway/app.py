"""The HTTP surface: the gateway's routes over the parts :func:`gateway.wiring.build_gateway`
made, with errors turned into the protocol's JSON or a Chinese page."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from gateway.binding.api import BindEndpoints, BindLimits
from gateway.config import Config
from gateway.csrf import Csrf
from gateway.errors import PageError, ProtocolError, StoreError, new_reference
from gateway.keys import KeyRing
from gateway.legacy.cas import CasServer
from gateway.legacy.handover import HANDOVER_PATH
from gateway.legacy.ticket import TicketEndpoints
from gateway.login.factors import simulated_factors
from gateway.login.my_logins import MyLogins
from gateway.login.pages import LoginPages
from gateway.login.source import PasswordSource
from gateway.login.stepup import StepUpPages
from gateway.login.throttle import SourceThrottle
from gateway.login.transfer import TICKET_PATH, TRANSFER_PATH, Transfer
from gateway.login.transfer_tickets import TransferTickets
from gateway.metrics.endpoint import MetricsEndpoint, metrics_token
from gateway.metrics.recorder import Metrics
from gateway.metrics.routes import RouteMetrics
from gateway.oidc.authorize import Authorizer
from gateway.oidc.bearer import BearerTokens
from gateway.oidc.client_review import ApprovalPolicy, ClientReview
from gateway.oidc.discovery import Discovery
from gateway.oidc.end_session import EndSession
from gateway.oidc.invites import Invites
from gateway.oidc.lifecycle import LifecycleEndpoints, TokenLookup
from gateway.oidc.registration import MetadataRules, statement_keys
from gateway.oidc.registration_endpoint import RegistrationDeps, RegistrationEndpoint
from gateway.oidc.token_endpoint import TokenEndpoint
from gateway.oidc.userinfo import UserinfoEndpoint
from gateway.ops.board import HealthBoard
from gateway.ops.client_console import ClientConsole
from gateway.ops.console import Console
from gateway.ops.console_sessions import ConsoleSessions
from gateway.ops.operators import OperatorLogin
from gateway.ops.probes import Probes
from gateway.outbound import OutboundPolicy
from gateway.pages import Pages
from gateway.proxy.dispatch import HeadLimits, ProxyFirst
from gateway.proxy.proxy import PREFIX as PROXY_PREFIX
from gateway.routing.go import GoPages
from gateway.store import Store
from gateway.urls import is_loopback_host
from gateway.wiring import Gateway, build_gateway

__all__ = ["API_PATHS", "create_app", "gateway_app"]

log = logging.getLogger("roam.app")

# Paths whose errors are for programs (JSON), not for people (a page).
API_PATHS = ("/token", "/userinfo", "/channel/", "/jwks", "/.well-known/", "/revoke",
             "/introspect", "/cas/serviceValidate", "/cas/p3/serviceValidate", "/ticket/redeem",
             "/healthz", "/readyz", TICKET_PATH, "/ops/api/", "/register")


def create_app(
    config: Config,
    *,
    store: Store | None = None,
    http: httpx.AsyncClient | None = None,
    keys: KeyRing | None = None,
    source: PasswordSource | None = None,
    metrics: Metrics | None = None,
) -> Starlette:
    """The gateway's ASGI app for ``config``; dependencies passed in are used instead."""
    return gateway_app(build_gateway(config, store=store, http=http, keys=keys, source=source,
                                     metrics=metrics))


def console_routes(gateway: Gateway, *, pages: Pages, csrf: Csrf) -> list[Route]:
    """``/ops``: the operators' console over the shared health (gateway/ops/console.py)
    and the registered clients' review (gateway/ops/client_console.py)."""
    section = gateway.config.settings.ops
    sessions = ConsoleSessions(gateway.store, secure=gateway.sessions.secure_cookie,
                               idle_timeout=section.idle_timeout,
                               absolute_timeout=section.absolute_timeout)
    console = Console(
        login=OperatorLogin(gateway.operators, gateway.store,
                            max_failures=section.max_failures,
                            lockout_seconds=section.lockout_seconds),
        sessions=sessions,
        board=HealthBoard(gateway.health.shared, systems=gateway.config.systems,
                          regions=gateway.config.regions, metrics=gateway.metrics),
        pages=pages, csrf=csrf)
    clients = ClientConsole(sessions=sessions, pages=pages, csrf=csrf,
                            registrations=ClientReview(gateway.directory,
                                                       Invites(gateway.store)))
    return [
        Route("/ops", console.page, methods=["GET"]),
        Route("/ops/login", console.login_page, methods=["GET"]),
        Route("/ops/login", console.log_in, methods=["POST"]),
        Route("/ops/logout", console.log_out, methods=["POST"]),
        Route("/ops/rotation", console.rotation_form, methods=["POST"]),
        Route("/ops/clients", clients.page, methods=["GET"]),
        Route("/ops/clients/decide", clients.decide_form, methods=["POST"]),
        Route("/ops/clients/invite", clients.invite_form, methods=["POST"]),
        Route("/ops/api/status", console.api_status, methods=["GET"]),
        Route("/ops/api/rotation", console.api_rotation, methods=["POST"]),
        Route("/ops/api/clients", clients.api_list, methods=["GET"]),
        Route("/ops/api/clients/decide", clients.api_decide, methods=["POST"]),
        Route("/ops/api/clients/invite", clients.api_invite, methods=["POST"]),
    ]


def registration_routes(gateway: Gateway) -> list[Route]:
    """``/register`` (RFC 7591) and ``/register/{client_id}`` (RFC 7592)."""
    config = gateway.config
    section = config.settings.registration
    loopback = is_loopback_host(config.issuer)
    endpoint = RegistrationEndpoint(RegistrationDeps(
        directory=gateway.directory, invites=Invites(gateway.store),
        policy=ApprovalPolicy(section),
        rules=MetadataRules(algs=frozenset(gateway.keys.algs), loopback_issuer=loopback,
                            pairwise=gateway.digests.lasting or loopback,
                            statement_keys=statement_keys(config)),
        outbound=OutboundPolicy(config.settings.outbound), http=gateway.http,
        secret_overlap=section.secret_overlap), issuer=gateway.issuer)
    return [
        Route("/register", endpoint.register, methods=["POST"]),
        Route("/register/{client_id}", endpoint.read, methods=["GET"]),
        Route("/register/{client_id}", endpoint.update, methods=["PUT"]),
        Route("/register/{client_id}", endpoint.delete, methods=["DELETE"]),
        Route("/register/{client_id}/secret", endpoint.rotate_secret, methods=["POST"]),
    ]


def gateway_app(gateway: Gateway) -> Starlette:
    """The routes over ``gateway``'s parts; the app's lifespan is ``gateway.running()``."""
    settings = gateway.config.settings
    issuer, keys, sessions, pages = gateway.issuer, gateway.keys, gateway.sessions, gateway.pages
    metrics = gateway.metrics
    csrf = Csrf(secure=sessions.secure_cookie)
    login = settings.login
    authorizer = Authorizer(server=gateway.server, clients=gateway.clients, sessions=sessions,
                            store=gateway.store, issuer=issuer,
                            request_ttl=login.request_ttl, metrics=metrics)
    throttle = SourceThrottle(gateway.store, limit=login.source_max_failures,
                              window=login.source_window,
                              trusted_proxies=settings.gateway.trusted_proxies)
    login_pages = LoginPages(source=gateway.source, authorizer=authorizer, sessions=sessions,
                             logout=gateway.logout, pages=pages, csrf=csrf, throttle=throttle,
                             metrics=metrics, source_name=gateway.config.identity_source)
    factors = (simulated_factors(gateway.store, ttl=login.stepup_ttl,
                                 max_failures=login.stepup_max_failures,
                                 lock_seconds=login.stepup_lock_seconds,
                                 max_sends=login.stepup_max_sends,
                                 send_window=login.stepup_send_window)
               if login.simulated_step_up else [])
    stepup = StepUpPages(authorizer=authorizer, sessions=sessions, pages=pages, csrf=csrf,
                         factors=factors)
    end_session = EndSession(server=gateway.server, keys=keys, issuer=issuer,
                             sessions=sessions, logout=gateway.logout, pages=pages, csrf=csrf)
    my_logins = MyLogins(sessions=sessions, logout=gateway.logout, clients=gateway.clients,
                         pages=pages, csrf=csrf, hosts=gateway.handover.hosts,
                         proxied=gateway.config.systems, bindings=gateway.bindings)
    go = GoPages(resolver=gateway.resolver, sessions=sessions, gate=gateway.gate,
                 connectors=gateway.connectors, pages=pages, proxy_prefix=PROXY_PREFIX,
                 issuer=issuer)
    cas = CasServer(systems=gateway.config.systems, connectors=gateway.connectors,
                    gate=gateway.gate, store=gateway.store, pages=pages,
                    ticket_ttl=settings.legacy.cas_ticket_ttl,
                    login_ttl=settings.login.request_ttl, failover=gateway.failover)
    tickets = TicketEndpoints(systems=gateway.config.systems, connectors=gateway.connectors,
                              gate=gateway.gate, store=gateway.store, pages=pages,
                              failover=gateway.failover)
    bearer = BearerTokens(keys=keys, clients=gateway.clients, active=gateway.active,
                          issuer=issuer, dpop=gateway.server.dpop)
    binding = settings.binding
    bind = BindEndpoints(bindings=gateway.bindings, verifier=gateway.verifier,
                         store=gateway.store, bearer=bearer, digests=gateway.digests,
                         known_area=gateway.config.regions.known_area,
                         limits=BindLimits(max_attempts=binding.max_attempts,
                                           window=binding.attempt_window,
                                           max_id_attempts=binding.max_id_attempts,
                                           id_window=binding.id_attempt_window,
                                           face_ttl=binding.face_ttl))
    transfer = Transfer(tickets=TransferTickets(gateway.store, ttl=login.transfer_ttl),
                        bearer=bearer, clients=gateway.clients, active=gateway.active,
                        sessions=sessions, systems=gateway.config.systems, issuer=issuer,
                        metrics=metrics)
    discovery = Discovery(issuer, keys, gateway.server.grant_types,
                          jwks_max_age=gateway.config.settings.keys.jwks_max_age,
                          registration=settings.registration.enabled)
    token = TokenEndpoint(gateway.server, issuer=issuer, metrics=metrics)
    userinfo = UserinfoEndpoint(bearer)
    probes = Probes(config=gateway.config, store=gateway.store, keys=keys, audit=gateway.audit)
    lifecycle = LifecycleEndpoints(
        server=gateway.server, issuer=issuer,
        lookup=TokenLookup(keys=keys, issuer=issuer, refresh=gateway.refresh,
                           clients=gateway.clients))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with gateway.running(checks=True):
            yield

    async def home(request: Request) -> Response:
        return RedirectResponse("/items", status_code=303)  # the 事项 page is the entrance

    routes = [
        Route("/.well-known/openid-configuration", discovery.configuration, methods=["GET"]),
        Route("/jwks", discovery.jwks, methods=["GET"]),
        Route("/authorize", authorizer.authorize, methods=["GET", "POST"]),
        Route("/authorize/resume", authorizer.resume, methods=["GET"]),
        Route("/token", token.handle, methods=["POST"]),
        Route("/userinfo", userinfo.handle, methods=["GET", "POST"]),
        Route("/revoke", lifecycle.revoke, methods=["POST"]),
        Route("/introspect", lifecycle.introspect, methods=["POST"]),
        Route("/channel/bind", bind.bind, methods=["POST"]),
        Route("/channel/bind/face", bind.face, methods=["POST"]),
        Route("/login", login_pages.show, methods=["GET"]),
        Route("/login", login_pages.submit, methods=["POST"]),
        Route("/stepup", stepup.show, methods=["GET"]),
        Route("/stepup", stepup.submit, methods=["POST"]),
        Route("/logout", end_session.handle, methods=["GET", "POST"]),
        Route("/my/logins", my_logins.show, methods=["GET"]),
        Route("/my/logins/logout", my_logins.logout_all, methods=["POST"]),
        Route("/my/logins/bindings/remove", my_logins.unbind, methods=["POST"]),
        Route(HANDOVER_PATH, gateway.handover.start, methods=["GET"]),
        Route(TICKET_PATH, transfer.mint, methods=["POST"]),
        Route(TRANSFER_PATH, transfer.enter, methods=["GET"]),
        Route("/go/{item}", go.handle, methods=["GET"]),
        Route("/items", go.items, methods=["GET"]),
        Route("/cas/login", cas.login, methods=["GET"]),
        Route("/cas/serviceValidate", cas.service_validate, methods=["GET"]),
        Route("/cas/p3/serviceValidate", cas.p3_service_validate, methods=["GET"]),
        Route("/cas/logout", cas.logout, methods=["GET"]),
        Route("/ticket/issue", tickets.issue, methods=["GET"]),
        Route("/ticket/redeem", tickets.redeem, methods=["POST"]),
        Route("/healthz", probes.healthz, methods=["GET"]),
        Route("/readyz", probes.readyz, methods=["GET"]),
        Route("/", home, methods=["GET"]),
    ]
    middleware = []
    if settings.registration.enabled:
        routes += registration_routes(gateway)
    if gateway.operators:  # the operators' console; without operators, none (404)
        routes += console_routes(gateway, pages=pages, csrf=csrf)
    if metrics.enabled:  # off: no /metrics, no timing of routes
        scrape = MetricsEndpoint(metrics, token=metrics_token(gateway.config))
        routes.append(Route("/metrics", scrape.handle, methods=["GET"]))
        middleware.append(Middleware(RouteMetrics, metrics=metrics))

    async def page_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, PageError):  # pragma: no cover - Starlette routes by type
            raise exc
        return pages.error(exc)

    async def protocol_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, ProtocolError):  # pragma: no cover - Starlette routes by type
            raise exc
        body = {"error": exc.error, "error_description": exc.description}
        headers = {"Cache-Control": "no-store", **exc.headers}
        return JSONResponse(body, status_code=exc.status, headers=headers)

    def failure(request: Request, ref: str, status: int, error: str, description: str,
                title: str, detail: str, headers: dict[str, str] | None = None) -> Response:
        """JSON for programs (API paths), a Chinese page for people; both carry the ref."""
        if request.url.path.startswith(API_PATHS):
            body = {"error": error, "error_description": f"{description} (ref {ref})."}
            return JSONResponse(body, status_code=status, headers=headers)
        page = PageError(title, detail, status=status, headers=headers)
        page.ref = ref
        return pages.error(page)

    async def store_error(request: Request, exc: Exception) -> Response:
        ref = new_reference()
        log.error("store failure", extra={"ref": ref, "path": request.url.path,
                                          "cause": str(exc)})
        return failure(request, ref, 503, "temporarily_unavailable", "Storage unavailable",
                       "服务暂时不可用", "认证服务的存储暂时不可用，请稍后再试。",
                       headers={"Retry-After": "5"})

    async def unexpected(request: Request, exc: Exception) -> Response:
        ref = new_reference()
        log.exception("unhandled error", extra={"ref": ref, "path": request.url.path})
        return failure(request, ref, 500, "server_error", "Internal error",
                       "系统错误", "认证服务出现内部错误，请稍后再试。")

    # A system's own host names and /s/… go straight to the proxy (ProxyFirst).
    app = ProxyFirst(
        proxy=gateway.proxy,
        prefix=PROXY_PREFIX,
        hosts=gateway.config.systems.by_host(),
        limits=HeadLimits.of(settings.gateway),
        pages=pages,
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            PageError: page_error,
            ProtocolError: protocol_error,
            StoreError: store_error,
            Exception: unexpected,
        },
    )
    app.state.gateway = gateway
    return app
