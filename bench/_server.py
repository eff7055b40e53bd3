"""The server side of ``bench/token.py``: the real gateway app plus a floor route.

Run by the bench as ``python -m bench._server --store memory|redis --port N …``; it serves
one uvicorn worker, configured as ``roam serve`` configures it (``gateway/server.py``:
uvloop, httptools), until it is terminated.

The app is ``gateway.app.create_app`` itself, built from ``config/roam.toml`` with two
bench clients added (one per signing algorithm). Two routes are added to that same
Starlette app, so the floor shares the server, process, event loop and middleware:

* ``POST /floor/token``: the least a token endpoint must do. It parses the form, signs an
  access token (``typ: at+jwt``, ``[tokens] access_token_alg``) and an ID token (the
  client's algorithm) with the claim shapes of
  ``gateway/oidc/minter.py`` through the same ``KeyRing.sign``, makes a random refresh
  token, and answers with the JSON shape and headers of ``/token``. No client
  authentication, no store, no worker thread.
* ``GET /bench/info``: what this process really runs (loop, HTTP parser, versions, pid).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib.metadata
import importlib.util
import logging
import os
import platform
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import uvicorn
from authlib.oidc.core.util import create_half_hash
from psycopg import sql
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench._audit_stages import stop_audit_at
from bench._platforms import channels_section
from bench.processes import SECRET_ENV, audit_file  # the bench picks the secret per run
from gateway.app import gateway_app
from gateway.audit import AuditTrail, open_trail
from gateway.config import ClientConfig, Config, load_config
from gateway.config.settings import AuditSection
from gateway.digests import secret_digest
from gateway.ids import new_id
from gateway.keys import KeyRing
from gateway.metrics import Metrics
from gateway.oidc.bridge import NO_STORE
from gateway.oidc.minter import ACCESS_TOKEN_TYP
from gateway.server import LOOP, freeze_startup_objects, uvicorn_config
from gateway.wiring import build_gateway
from gateway.workers import Supervisor, bind_socket

ROOT = Path(__file__).resolve().parent.parent
CONFIG_FILE = ROOT / "config" / "roam.toml"

#: One confidential client per algorithm; the bench authenticates as these.
ALGS = ("RS256", "ES256")
REDIRECT_URI = "http://127.0.0.1:9/callback"  # never contacted: the bench reads Location
LOGIN_URI = "http://127.0.0.1:9/login"  # the RP's own login page: where a transfer leads


def client_id(alg: str) -> str:
    return f"bench-{alg.lower()}"


RESOURCE_SERVER = "bench-api"  # introspects any client's tokens (bench/introspect.py)


def bench_clients(secret: str) -> tuple[ClientConfig, ...]:
    api = ClientConfig(client_id=RESOURCE_SERVER, client_name="Bench API (resource server)",
                       client_secret_sha256=secret_digest(secret), resource_server=True,
                       grant_types=(), token_endpoint_auth_method="client_secret_basic")
    return (api, *(
        ClientConfig(
            client_id=client_id(alg),
            client_name=f"Bench client ({alg})",
            client_secret_sha256=secret_digest(secret),
            redirect_uris=(REDIRECT_URI,),
            initiate_login_uri=LOGIN_URI,
            scopes=("openid", "profile"),
            claims=("name",),
            token_endpoint_auth_method="client_secret_basic",
            id_token_signed_response_alg=alg,  # type: ignore[arg-type]
        )
        for alg in ALGS
    ))


def bench_config(*, store: str, redis_url: str, prefix: str, port: int, secret: str,
                 systems: str | None = None, path_mode: bool = False,
                 ops: bool = True, platforms: tuple[str, Path] | None = None,
                 by_request: bool = False) -> Config:
    """``config/roam.toml`` (environment overrides ignored) plus the bench's changes;
    ``systems`` (an absolute path) replaces the systems file (``bench/proxy.py``);
    ``path_mode`` serves systems without hosts under ``/s/<id>/`` (``bench/proxy_ab.py``);
    ``ops=False`` turns off what operators watch the gateway through — metrics and active
    health checks here, the audit trail in :func:`build_app` — as ``--ops on,off`` of
    ``bench/proxy.py`` and ``bench/sso.py`` compare. (Passive health stays: the proxy
    routes by it, it is not an option.) ``platforms`` (base URL, key directory) are mock
    platforms to log in with (``bench/_platforms.py``, for ``bench/miniprogram.py``).
    ``by_request`` leaves out the work a gateway does by the clock rather than by request —
    no active health probes, the audit trail written in full batches only (or when
    flushed) — for ``bench/instructions.py``, which counts a request's own work."""
    config = load_config(CONFIG_FILE, env={})
    settings = config.settings
    update: dict[str, Any] = {
        "gateway": settings.gateway.model_copy(
            update={"issuer": f"http://127.0.0.1:{port}", "port": port}),
        "store": settings.store.model_copy(
            update={"backend": store, "redis_url": redis_url, "prefix": prefix}),
        "audit": audit_section(settings.audit, port),
    }
    if systems is not None:
        update["routing"] = settings.routing.model_copy(update={"systems_file": systems})
    if path_mode:
        update["proxy"] = settings.proxy.model_copy(update={"path_mode": True})
    if not ops and "metrics" in off_parts():
        update["metrics"] = settings.metrics.model_copy(update={"enabled": False})
    if by_request or (not ops and "health" in off_parts()):
        update["health"] = settings.health.model_copy(update={"active": False})
    if platforms is not None:
        update["channels"] = channels_section(*platforms)
    if by_request:
        update["audit"] = update["audit"].model_copy(update={"batch_interval": 60.0})
    settings = settings.model_copy(update=update)
    return config.revised(settings=settings, clients=(*config.clients, *bench_clients(secret)))


def runtime() -> dict[str, str]:
    """The event loop and HTTP protocol this process runs (gateway/server.py's)."""
    return {"loop": LOOP, "http": "httptools, writes sent per loop turn"}


class Floor:
    """``POST /floor/token``: form parse + the same two signatures (the access token in
``[tokens] access_token_alg``, the ID token in the client's), nothing else."""

    def __init__(self, config: Config, keys: KeyRing) -> None:
        self.keys = keys
        self.issuer = config.issuer
        self.access_token_ttl = config.settings.tokens.access_token_ttl
        self.id_token_ttl = config.settings.tokens.id_token_ttl
        self.algs = {client_id(alg): alg for alg in ALGS}
        self.access_alg = config.settings.tokens.access_token_alg  # as the minter signs
        # Stand-ins of the same sizes as a demo login's grant (tokens.py's inputs).
        self.subject = "c-0001"
        self.auth_time = int(time.time())
        self.sid = new_id(16)
        self.grant_id = new_id(16)

    async def handle(self, request: Request) -> Response:
        form = await request.form()
        # Which client (hence which algorithm): from Basic auth, as /token learns it, but
        # without checking the secret.
        basic = request.headers.get("authorization", "")[6:]
        cid = base64.b64decode(basic).partition(b":")[0].decode() if basic else ""
        alg = self.algs.get(cid, "RS256")
        refresh_token = form.get("refresh_token")
        if not isinstance(refresh_token, str):
            return JSONResponse({"error": "invalid_request"}, status_code=400, headers=NO_STORE)
        now = int(time.time())
        scope = "openid profile"
        access_claims: dict[str, Any] = {
            "iss": self.issuer, "sub": self.subject, "aud": cid, "client_id": cid,
            "iat": now, "exp": now + self.access_token_ttl, "jti": new_id(16),
            "scope": scope, "auth_time": self.auth_time, "acr": "L2", "gid": self.grant_id,
            "sid": self.sid,
        }
        access_token = self.keys.sign(access_claims, alg=self.access_alg, typ=ACCESS_TOKEN_TYP)
        id_claims: dict[str, Any] = {
            "iss": self.issuer, "sub": self.subject, "aud": cid, "azp": cid,
            "iat": now, "exp": now + self.id_token_ttl, "auth_time": self.auth_time,
            "acr": "L2", "amr": ["pwd"], "sid": self.sid,
        }
        at_hash = create_half_hash(access_token, alg)
        if at_hash is not None:
            id_claims["at_hash"] = at_hash.decode()
        id_token = self.keys.sign(id_claims, alg=alg, typ="JWT")
        body = {
            "token_type": "Bearer", "access_token": access_token,
            "expires_in": self.access_token_ttl, "scope": scope,
            "refresh_token": new_id(32), "id_token": id_token,
        }
        return JSONResponse(body, headers=NO_STORE)


AUDIT_DSN_ENV = "ROAMBENCH_AUDIT_DSN"


def audit_schema(port: int) -> str:
    return f"roambench_{port}"


def audit_section(section: AuditSection, port: int) -> AuditSection:
    """The trail as in the demo (a file, but not into the checkout), or in PostgreSQL when
    ``$ROAMBENCH_AUDIT_DSN`` names a database (a schema of this server's own, which the
    bench drops once the server stopped: :func:`drop_audit_schema`; uvicorn ends the
    process by the signal it was stopped with, so the server cannot)."""
    dsn = os.environ.get(AUDIT_DSN_ENV)
    if dsn:
        return section.model_copy(update={"sink": "postgresql", "dsn": SecretStr(dsn),
                                           "schema_name": audit_schema(port)})
    return section.model_copy(update={"path": str(audit_file(port))})


def drop_audit_schema(port: int) -> None:
    dsn = os.environ.get(AUDIT_DSN_ENV)
    if dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(audit_schema(port))))


OFF_PARTS_ENV = "ROAMBENCH_OFF_PARTS"
OPS_PARTS = ("metrics", "health", "audit")


def off_parts() -> frozenset[str]:
    """What ``--ops off`` turns off: ``$ROAMBENCH_OFF_PARTS`` (comma-separated, of
    metrics, health, audit; all three by default), to tell the parts' costs apart."""
    raw = os.environ.get(OFF_PARTS_ENV)
    parts = frozenset(p.strip() for p in raw.split(",") if p.strip()) if raw else frozenset(
        OPS_PARTS)
    unknown = parts - set(OPS_PARTS)
    if unknown:
        raise SystemExit(f"{OFF_PARTS_ENV}: unknown parts {sorted(unknown)}")
    return parts


class Unheard(AuditTrail):
    """An audit trail that never takes ``roam.audit``'s records (``--ops off``)."""

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        yield


def build_app(*, store: str, redis_url: str, prefix: str, port: int, secret: str,
              systems: str | None = None, path_mode: bool = False,
              ops: bool = True, platforms: tuple[str, Path] | None = None,
              by_request: bool = False) -> Starlette:
    """The gateway app for ``store``, with ``/floor/token`` and ``/bench/info`` added."""
    config = bench_config(store=store, redis_url=redis_url, prefix=prefix, port=port,
                          secret=secret, systems=systems, path_mode=path_mode, ops=ops,
                          platforms=platforms, by_request=by_request)
    keys = KeyRing.ephemeral(ALGS)
    if ops:
        stop_audit_at()  # $ROAMBENCH_AUDIT_UPTO: the trail's cost stage by stage
    # the store comes from config, as in production; ops off: an audit trail not listening
    audit = None if ops or "audit" not in off_parts() else Unheard(
        open_trail(config, Metrics()).sink)
    app = gateway_app(build_gateway(config, keys=keys, audit=audit))
    floor = Floor(config, keys)
    info: dict[str, Any] = {
        **runtime(),
        "clients": {alg: client_id(alg) for alg in ALGS},
        "resource_server": RESOURCE_SERVER,
        "redirect_uri": REDIRECT_URI,
        "login_uri": LOGIN_URI,
        "store": store,
        "ops": "on" if ops else "off",
        "pid": str(os.getpid()),
        "python": platform.python_version(),
        **{name: importlib.metadata.version(name)
           for name in ("starlette", "uvicorn", "authlib", "joserfc", "cryptography", "redis")},
    }

    async def bench_info(request: Request) -> Response:
        return JSONResponse(info)

    app.router.routes.extend([
        Route("/floor/token", floor.handle, methods=["POST"]),
        Route("/bench/info", bench_info, methods=["GET"]),
    ])
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--store", choices=("memory", "redis"), required=True)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--prefix", default="roambench:")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--systems", default=None,
                        help="absolute path of a systems file to use instead of "
                             "config/systems.toml (bench/proxy.py)")
    parser.add_argument("--path-mode", action="store_true",
                        help="serve systems without hosts under /s/<id>/ (bench/proxy_ab.py)")
    parser.add_argument("--ops", choices=("on", "off"), default="on",
                        help="off: no metrics, active health checks or audit trail "
                             "(bench/proxy.py and bench/sso.py --ops on,off)")
    parser.add_argument("--platforms", default=None,
                        help="base URL of bench/_platforms.py's mocks: log in with them "
                             "(bench/miniprogram.py)")
    parser.add_argument("--key-dir", type=Path, default=None,
                        help="the mocks' key directory (with --platforms)")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes on the port, forked as roam serve --workers "
                             "does (the app built once before: one key ring for all)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    secret = os.environ.get(SECRET_ENV)
    if not secret:
        parser.error(f"{SECRET_ENV} must hold the bench clients' secret")
    if (args.platforms is None) != (args.key_dir is None):
        parser.error("--platforms and --key-dir go together")
    app = build_app(store=args.store, redis_url=args.redis_url, prefix=args.prefix,
                    port=args.port, secret=secret, systems=args.systems,
                    path_mode=args.path_mode, ops=args.ops == "on",
                    platforms=(args.platforms, args.key_dir) if args.platforms else None)
    # As `roam serve` runs it (gateway/server.py), without the access log (nginx has none).
    freeze_startup_objects()
    config = uvicorn_config(app, host="127.0.0.1", port=args.port, access_log=False,
                            log_level="warning")
    if args.workers <= 1:
        uvicorn.Server(config).run()
        return
    Supervisor(args.workers, bind_socket("127.0.0.1", args.port),
               lambda sock: uvicorn.Server(config).run([sock])).run()


if __name__ == "__main__":
    main()
