"""The application factory: every dependency is passed in or built here, never global."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from connectors.base import Connector, ConnectorContext, PresentsIdentity, RedirectsLogin
from connectors.registry import check_connector, load_entry_points, parse_connector
from gateway.background import Background
from gateway.cas import CasServer
from gateway.config import Config
from gateway.csrf import COOKIE as CSRF_COOKIE
from gateway.csrf import Csrf
from gateway.errors import ConfigError, PageError, ProtocolError, StoreError, new_reference
from gateway.keys import KeyRing
from gateway.login.directory import DemoDirectory
from gateway.login.my_logins import MyLogins
from gateway.login.pages import LoginPages
from gateway.login.source import PasswordSource
from gateway.login.stepup import StepUpPages, simulated_factors
from gateway.oidc.active import ActiveTokens
from gateway.oidc.authorize import Authorizer
from gateway.oidc.backchannel import BackchannelLogout
from gateway.oidc.clients import ClientRegistry
from gateway.oidc.discovery import Discovery
from gateway.oidc.end_session import EndSession
from gateway.oidc.lifecycle import LifecycleEndpoints, TokenLookup
from gateway.oidc.logout import SessionLogout
from gateway.oidc.minter import TokenMinter
from gateway.oidc.server import RoamAuthorizationServer
from gateway.oidc.token_endpoint import TokenEndpoint
from gateway.oidc.userinfo import UserinfoEndpoint
from gateway.outbound import OutboundPolicy
from gateway.pages import Pages
from gateway.proxy.dispatch import ProxyFirst
from gateway.proxy.h1 import H1Upstream
from gateway.proxy.health import PassiveHealth
from gateway.proxy.proxy import PREFIX as PROXY_PREFIX
from gateway.proxy.proxy import Proxy
from gateway.regions import RegionDirectory
from gateway.routing.go import GoPages
from gateway.routing.resolve import AlwaysHealthy, Health, Resolver
from gateway.routing.systems import Systems, load_systems
from gateway.sessions import SessionManager
from gateway.store import Store, open_store
from gateway.ticket import TicketEndpoints

log = logging.getLogger("roam.app")

# Paths whose errors are for programs (JSON), not for people (a page).
API_PATHS = ("/token", "/userinfo", "/jwks", "/.well-known/", "/revoke", "/introspect",
             "/cas/serviceValidate", "/cas/p3/serviceValidate", "/ticket/redeem")


def _check_connector(type_name: str, settings: Mapping[str, Any]) -> list[str]:
    """``oidc`` systems are RPs of this gateway; every other type is a registered connector."""
    if type_name == "oidc":
        return [] if not settings or set(settings) <= {"login_path"} else [
            "an oidc system takes only connector_settings.login_path"]
    return check_connector(type_name, settings)


def load_routing(config: Config, regions: RegionDirectory | None = None, *,
                 health: Health | None = None) -> Resolver:
    """The systems registry and its resolver; a bad systems file is a ConfigError."""
    health = health or AlwaysHealthy()
    regions = regions or RegionDirectory.load()
    load_entry_points()  # third-party connector types (entry-point group roam.connectors)
    if not config.settings.routing.systems_file:  # routing switched off: no systems
        return Resolver(Systems((), ()), regions, health=health)
    systems, problems = load_systems(
        config.path(config.settings.routing.systems_file), regions=regions,
        validate_connector=_check_connector, client_ids={c.client_id for c in config.clients},
        cookie_domain=config.settings.session.cookie_domain,
        gateway_host=urlsplit(config.issuer).hostname)
    if problems:
        raise ConfigError(problems)
    return Resolver(systems, regions, health=health)


def open_connectors(systems: Systems, context: ConnectorContext) -> dict[str, Connector]:
    """Each non-OIDC system's connector, opened once (``oidc`` systems are RPs)."""
    return {system.id: parse_connector(system.connector, system.connector_settings).open(context)
            for system in systems if system.connector != "oidc"}


def load_keys(config: Config) -> KeyRing:
    """Keys from ``gateway.key_dir``; ephemeral only where config allows (loopback http)."""
    key_dir = config.settings.gateway.key_dir
    if key_dir:
        return KeyRing.from_directory(config.path(key_dir))
    return KeyRing.ephemeral()


def create_app(
    config: Config,
    *,
    store: Store | None = None,
    http: httpx.AsyncClient | None = None,
    keys: KeyRing | None = None,
    source: PasswordSource | None = None,
) -> Starlette:
    settings = config.settings
    owns_store = store is None
    if store is None:
        store = open_store(settings.store.backend, redis_url=settings.store.redis_url,
                           prefix=settings.store.prefix)
    keys = keys or load_keys(config)
    if source is None:
        source = DemoDirectory.from_file(
            config.path(settings.login.directory_file), store=store,
            max_failures=settings.login.max_failures,
            lockout_seconds=settings.login.lockout_seconds)
    clients = ClientRegistry(config.clients)
    health = PassiveHealth(failures=3, cooldown=30)
    resolver = load_routing(config, health=health)
    missing = {c.config.id_token_signed_response_alg for c in clients} - keys.algs
    if missing:
        raise ConfigError([f"{config.source}: gateway.key_dir: no signing key for {sorted(missing)}"
                           " (run `roam keys generate --alg ...`)"])
    issuer = config.issuer
    owns_http = http is None
    http_client = http or httpx.AsyncClient(timeout=settings.outbound.timeout,
                                            follow_redirects=False)
    minter = TokenMinter(keys, issuer=issuer, access_token_ttl=settings.tokens.access_token_ttl,
                         id_token_ttl=settings.tokens.id_token_ttl)
    sessions = SessionManager(store, settings.session, issuer=issuer,
                              link_ttl=settings.tokens.refresh_token_ttl)
    active = ActiveTokens(store, sessions)
    server = RoamAuthorizationServer(clients=clients, store=store, minter=minter,
                                     ttl=settings.tokens, active=active)
    pages = Pages()
    csrf = Csrf(secure=sessions.secure_cookie)
    background = Background()
    backchannel = BackchannelLogout(http=http_client, keys=keys, issuer=issuer, store=store,
                                    policy=OutboundPolicy(settings.outbound),
                                    retry_for=settings.outbound.retry_for)
    logout = SessionLogout(sessions=sessions, active=active, clients=clients,
                           backchannel=backchannel, background=background)
    authorizer = Authorizer(server=server, clients=clients, sessions=sessions, store=store,
                            issuer=issuer, system_hosts=frozenset(resolver.systems.by_host()))
    login = LoginPages(source=source, authorizer=authorizer, sessions=sessions, logout=logout,
                       pages=pages, csrf=csrf)
    factors = simulated_factors(store) if settings.login.simulated_step_up else []
    stepup = StepUpPages(authorizer=authorizer, sessions=sessions, pages=pages, csrf=csrf,
                         factors=factors)
    end_session = EndSession(server=server, keys=keys, issuer=issuer, sessions=sessions,
                             logout=logout, pages=pages, csrf=csrf)
    my_logins = MyLogins(sessions=sessions, logout=logout, clients=clients, pages=pages,
                         csrf=csrf)
    connectors = open_connectors(resolver.systems, ConnectorContext(keys=keys, issuer=issuer))
    go = GoPages(resolver=resolver, sessions=sessions, pages=pages, login_redirects={
        sid: c for sid, c in connectors.items() if isinstance(c, RedirectsLogin)})
    cas = CasServer(systems=resolver.systems, sessions=sessions, store=store, pages=pages)
    tickets = TicketEndpoints(systems=resolver.systems, sessions=sessions, store=store,
                              pages=pages, issuer=issuer)
    upstream = H1Upstream()  # one connection pool per process for the proxy
    proxy = Proxy(upstream, systems=resolver.systems, health=health, sessions=sessions,
                  connectors={sid: c for sid, c in connectors.items()
                              if isinstance(c, PresentsIdentity)},
                  cookie_names={CSRF_COOKIE}, pages=pages, issuer=issuer)
    discovery = Discovery(issuer, keys)
    token = TokenEndpoint(server, issuer=issuer)
    userinfo = UserinfoEndpoint(keys=keys, clients=clients, active=active, issuer=issuer)
    lifecycle = LifecycleEndpoints(
        server=server, issuer=issuer,
        lookup=TokenLookup(keys=keys, issuer=issuer, refresh=server.refresh))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            async with background.running():
                yield
        finally:
            await upstream.aclose()
            if owns_http:
                await http_client.aclose()
            if owns_store:
                await store.close()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

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
        Route("/login", login.show, methods=["GET"]),
        Route("/login", login.submit, methods=["POST"]),
        Route("/stepup", stepup.show, methods=["GET"]),
        Route("/stepup", stepup.submit, methods=["POST"]),
        Route("/logout", end_session.handle, methods=["GET", "POST"]),
        Route("/my/logins", my_logins.show, methods=["GET"]),
        Route("/my/logins/logout", my_logins.logout_all, methods=["POST"]),
        Route("/go/{item}", go.handle, methods=["GET"]),
        Route("/items", go.items, methods=["GET"]),
        Route("/cas/login", cas.login, methods=["GET"]),
        Route("/cas/serviceValidate", cas.service_validate, methods=["GET"]),
        Route("/cas/p3/serviceValidate", cas.p3_service_validate, methods=["GET"]),
        Route("/cas/logout", cas.logout, methods=["GET"]),
        Route("/ticket/issue", tickets.issue, methods=["GET"]),
        Route("/ticket/redeem", tickets.redeem, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/", home, methods=["GET"]),
    ]

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
        page = PageError(title, detail, status=status)
        page.ref = ref
        return pages.error(page)

    async def store_error(request: Request, exc: Exception) -> Response:
        ref = new_reference()
        log.error("store failure ref=%s path=%s: %s", ref, request.url.path, exc)
        return failure(request, ref, 503, "temporarily_unavailable", "Storage unavailable",
                       "服务暂时不可用", "认证服务的存储暂时不可用，请稍后再试。",
                       headers={"Retry-After": "5"})

    async def unexpected(request: Request, exc: Exception) -> Response:
        ref = new_reference()
        log.exception("unhandled error ref=%s path=%s", ref, request.url.path)
        return failure(request, ref, 500, "server_error", "Internal error",
                       "系统错误", "认证服务出现内部错误，请稍后再试。")

    # A system's own host names and /s/… go straight to the proxy (ProxyFirst).
    app = ProxyFirst(
        proxy=proxy,
        prefix=PROXY_PREFIX,
        hosts=resolver.systems.by_host(),
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            PageError: page_error,
            ProtocolError: protocol_error,
            StoreError: store_error,
            Exception: unexpected,
        },
    )
    app.state.config = config
    app.state.store = store
    app.state.keys = keys
    app.state.http = http_client
    app.state.logout = logout
    app.state.sessions = sessions
    app.state.resolver = resolver
    return app
