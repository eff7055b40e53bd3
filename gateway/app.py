"""The application factory: every dependency is passed in or built here, never global."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.config import Config
from gateway.errors import PageError, ProtocolError, StoreError, new_reference
from gateway.keys import KeyRing
from gateway.login.directory import DemoDirectory
from gateway.login.pages import LoginPages
from gateway.login.source import PasswordSource
from gateway.oidc.authorize import Authorizer
from gateway.oidc.clients import ClientRegistry
from gateway.oidc.discovery import Discovery
from gateway.oidc.server import RoamAuthorizationServer
from gateway.oidc.token import TokenEndpoint
from gateway.oidc.tokens import TokenMinter
from gateway.oidc.userinfo import UserinfoEndpoint
from gateway.pages import Pages
from gateway.sessions import SessionManager
from gateway.store import Store, open_store

log = logging.getLogger("roam.app")

# Paths whose errors are for programs (JSON), not for people (a page).
API_PATHS = ("/token", "/userinfo", "/jwks", "/.well-known/")


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
    missing = {c.config.id_token_signed_response_alg for c in clients} - keys.algs
    if missing:
        from gateway.errors import ConfigError

        raise ConfigError([f"{config.source}: gateway.key_dir: no signing key for {sorted(missing)}"
                           " (run `roam keys generate --alg ...`)"])
    issuer = config.issuer
    minter = TokenMinter(keys, issuer=issuer, access_token_ttl=settings.tokens.access_token_ttl,
                         id_token_ttl=settings.tokens.id_token_ttl)
    server = RoamAuthorizationServer(clients=clients, store=store, minter=minter,
                                     ttl=settings.tokens)
    sessions = SessionManager(store, settings.session, issuer=issuer)
    pages = Pages()
    authorizer = Authorizer(server=server, clients=clients, sessions=sessions, store=store,
                            issuer=issuer)
    login = LoginPages(source=source, authorizer=authorizer, sessions=sessions, pages=pages)
    discovery = Discovery(issuer, keys)
    token = TokenEndpoint(server)
    userinfo = UserinfoEndpoint(keys=keys, clients=clients, store=store, issuer=issuer)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        client = http or httpx.AsyncClient(timeout=10.0)
        app.state.http = client
        try:
            yield
        finally:
            if http is None:
                await client.aclose()
            if owns_store:
                await store.close()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes = [
        Route("/.well-known/openid-configuration", discovery.configuration, methods=["GET"]),
        Route("/jwks", discovery.jwks, methods=["GET"]),
        Route("/authorize", authorizer.authorize, methods=["GET", "POST"]),
        Route("/authorize/resume", authorizer.resume, methods=["GET"]),
        Route("/token", token.handle, methods=["POST"]),
        Route("/userinfo", userinfo.handle, methods=["GET", "POST"]),
        Route("/login", login.show, methods=["GET"]),
        Route("/login", login.submit, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
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

    async def store_error(request: Request, exc: Exception) -> Response:
        ref = new_reference()
        log.error("store failure ref=%s path=%s: %s", ref, request.url.path, exc)
        if request.url.path.startswith(API_PATHS):
            return JSONResponse({"error": "temporarily_unavailable",
                                 "error_description": f"Storage unavailable (ref {ref})."},
                                status_code=503, headers={"Retry-After": "5"})
        page = PageError("服务暂时不可用", "认证服务的存储暂时不可用，请稍后再试。", status=503)
        page.ref = ref
        return pages.error(page)

    async def unexpected(request: Request, exc: Exception) -> Response:
        ref = new_reference()
        log.exception("unhandled error ref=%s path=%s", ref, request.url.path)
        if request.url.path.startswith(API_PATHS):
            return JSONResponse({"error": "server_error",
                                 "error_description": f"Internal error (ref {ref})."},
                                status_code=500)
        page = PageError("系统错误", "认证服务出现内部错误，请稍后再试。", status=500)
        page.ref = ref
        return pages.error(page)

    app = Starlette(
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
    return app
