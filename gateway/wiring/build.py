"""Every long-lived part of one gateway process (:class:`Gateway`), built once from the
config and wired by hand (:func:`build_gateway`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

import anyio
import httpx

from connectors.base import Connector, ConnectorContext, PresentsIdentity
from gateway import __version__
from gateway.audit import AuditTrail, open_trail
from gateway.background import Background
from gateway.binding.bindings import Bindings
from gateway.binding.verifier import Verifier
from gateway.channels.setup import open_channels
from gateway.config import Config
from gateway.digests import KeyedDigests
from gateway.errors import ConfigError, StoreError
from gateway.health import HealthChecks, HealthObserver, MetricsObserver
from gateway.host_sessions import HostSessions
from gateway.key_rotation import KeyWatcher
from gateway.keys import KeyRing
from gateway.legacy.access import Gate
from gateway.legacy.failover import Failover
from gateway.legacy.handover import Handover
from gateway.login.source import PasswordSource
from gateway.metrics.recorder import Metrics, open_metrics
from gateway.oidc.active import ActiveTokens
from gateway.oidc.backchannel import BackchannelLogout
from gateway.oidc.client_assertions import ClientAssertions, ClientKeys
from gateway.oidc.client_directory import ClientDirectory
from gateway.oidc.clients import ClientRegistry
from gateway.oidc.logout import SessionLogout
from gateway.oidc.minter import TokenMinter
from gateway.oidc.people import People
from gateway.oidc.refresh import RefreshTokens
from gateway.oidc.server import RoamAuthorizationServer
from gateway.oidc.subjects import Subjects
from gateway.ops.operators import Operator
from gateway.outbound import OutboundPolicy
from gateway.pages import Pages
from gateway.proxy.h1 import H1Upstream
from gateway.proxy.proxy import Proxy
from gateway.proxy.upstream import Upstream
from gateway.routing.resolve import Resolver
from gateway.sessions import SessionManager
from gateway.store import Store
from gateway.store.measured import MeasuredStore
from gateway.store.redis import RedisStore
from gateway.wiring import parts

__all__ = ["Gateway", "build_gateway"]


@dataclass(frozen=True, eq=False)
class Gateway:
    """Every long-lived part of one gateway process; :meth:`running` owns their lifetime."""

    config: Config
    store: Store
    keys: KeyRing
    http: httpx.AsyncClient  # outbound calls: back-channel logout
    pages: Pages
    clients: ClientRegistry
    directory: ClientDirectory  # registered clients (RFC 7591), shared through the store
    sessions: SessionManager
    active: ActiveTokens
    refresh: RefreshTokens
    minter: TokenMinter
    server: RoamAuthorizationServer
    background: Background
    backchannel: BackchannelLogout
    logout: SessionLogout
    source: PasswordSource
    resolver: Resolver
    health: HealthChecks  # every instance's, shared through the store
    failover: Failover  # a way into a system whose instances are out: elsewhere
    connectors: Mapping[str, Connector]  # every system's, opened
    gate: Gate
    handover: Handover
    upstream: Upstream
    proxy: Proxy
    bindings: Bindings  # channel identity → citizen (the channel login's resolve)
    verifier: Verifier  # real name and face checks for binding
    digests: KeyedDigests  # HMAC under the gateway's secret, for guessable store ids
    operators: Mapping[str, Operator]  # the console's accounts (gateway/ops)
    metrics: Metrics  # what the parts record for /metrics (does nothing when off)
    audit: AuditTrail  # roam.audit's records → the audit sink, in batches
    owns_store: bool = True
    owns_http: bool = True

    @property
    def issuer(self) -> str:
        return self.config.issuer

    @contextlib.asynccontextmanager
    async def running(self, *, checks: bool = False) -> AsyncIterator[None]:
        """The app's lifespan (or a CLI command): the audit trail's writer and background
        work run inside — with ``checks`` (the app's, not a CLI command's) reading the
        shared health, probing instances and taking over back-channel deliveries whose
        process stopped; on the way out deliveries still held are handed over (released
        in the store for another process), the proxy's connections are
        closed, and the outbound HTTP client and the store if the gateway made them, and
        last what the audit trail still holds is written."""
        async with self.audit.running():
            try:
                async with self.background.running():
                    if checks:
                        with contextlib.suppress(StoreError, ValueError):  # run() retries
                            await self.directory.refresh(force=True)
                        self.background.group.start_soon(self.directory.run)
                        self.background.group.start_soon(self.health.run)
                        self.background.group.start_soon(self.backchannel.run)
                        key_dir = self.config.settings.gateway.key_dir
                        if key_dir:  # rotations reach this process without a restart
                            watcher = KeyWatcher(
                                self.keys, self.config.path(key_dir),
                                interval=self.config.settings.keys.reload_interval)
                            self.background.group.start_soon(watcher.run)
                    try:
                        yield
                    finally:  # before the group is cancelled: no delivery waits a lease
                        with anyio.CancelScope(shield=True):
                            await self.backchannel.hand_over()
            finally:
                await self.upstream.aclose()
                if self.owns_http:
                    await self.http.aclose()
                if self.owns_store:
                    await self.store.close()


def build_gateway(
    config: Config,
    *,
    store: Store | None = None,
    http: httpx.AsyncClient | None = None,
    keys: KeyRing | None = None,
    source: PasswordSource | None = None,
    upstream: Upstream | None = None,
    metrics: Metrics | None = None,
    observers: Sequence[HealthObserver] = (),
    audit: AuditTrail | None = None,
) -> Gateway:
    """Every part, from ``config``; what is passed in is used instead (a store or HTTP
    client passed in is not closed by :meth:`Gateway.running`). ``metrics``: by default a
    registry of this gateway's own (``[metrics]``); with metrics on, the store is timed
    and instance health is recorded. ``observers`` are told of health transitions and
    probes too.

    Nothing connects yet: the store and the HTTP clients open connections on first use.
    """
    settings = config.settings
    keys = keys or parts.load_keys(config)
    problems = parts.key_problems(config, keys)
    if problems:
        raise ConfigError(problems)
    clients = ClientRegistry(config.clients)
    connectors = parts.open_connectors(config.systems,
                                       ConnectorContext(keys=keys, issuer=config.issuer),
                                       path_mode=settings.proxy.path_mode)
    owns_store, owns_http = store is None, http is None
    if store is None:
        store = parts.configured_store(config)
    if http is None:
        http = httpx.AsyncClient(timeout=settings.outbound.timeout, follow_redirects=False)
    if metrics is None:
        metrics = open_metrics(settings.metrics, config.systems, version=__version__)
    if owns_store and isinstance(store, RedisStore):
        store.breaker.on_change = metrics.store_circuit  # roam_store_circuit_open
    if metrics.enabled:
        store = MeasuredStore(store, metrics)
    audit = audit or open_trail(config, metrics)
    issuer = config.issuer
    pages = Pages()
    sessions = SessionManager(store, settings.session, issuer=issuer)
    digests = parts.open_digests(config)
    directory = ClientDirectory(store, clients,
                                reload_interval=settings.registration.reload_interval)
    subjects = Subjects(digests, clients)
    active = ActiveTokens(store, sessions,
                          People(store, digests, ttl=settings.tokens.refresh_token_ttl),
                          subjects)
    refresh = RefreshTokens(active, reuse_interval=settings.tokens.refresh_reuse_interval)
    minter = TokenMinter(keys, issuer=issuer, access_token_ttl=settings.tokens.access_token_ttl,
                         id_token_ttl=settings.tokens.id_token_ttl, subjects=subjects,
                         access_token_alg=settings.tokens.access_token_alg)
    source = source or parts.open_source(config, store)
    bindings, verifier = parts.open_binding(config, store, http, source)
    channels = open_channels(settings.channels, http=http, store=store, path=config.path,
                             account_ttl=settings.tokens.refresh_token_ttl,
                             resolve=parts.bound_citizen(bindings, source))
    assertions = ClientAssertions(
        clients, ClientKeys(http, OutboundPolicy(settings.outbound)), store,
        audiences=frozenset({f"{issuer}/token", issuer}))
    server = RoamAuthorizationServer(clients=clients, store=store, minter=minter,
                                     refresh=refresh, ttl=settings.tokens, channels=channels,
                                     systems=config.systems, assertions=assertions)
    background = Background()
    backchannel = BackchannelLogout(http=http, keys=keys, issuer=issuer, store=store,
                                    policy=OutboundPolicy(settings.outbound),
                                    retry_for=settings.outbound.retry_for, metrics=metrics,
                                    clients=clients.get, lease=settings.outbound.lease)
    logout = SessionLogout(sessions=sessions, active=active, clients=clients,
                           backchannel=backchannel, background=background, metrics=metrics)
    proxied = {sid: c for sid, c in connectors.items() if isinstance(c, PresentsIdentity)}
    health = HealthChecks(store, config.systems, settings.health, http=http, passive=proxied,
                          observers=[MetricsObserver(metrics), *observers])
    resolver = Resolver(config.systems, config.regions, health=health)
    failover = Failover(systems=config.systems, pages=pages, issuer=issuer, health=health)
    gate = Gate(sessions, digests=digests)
    handover = Handover(systems=config.systems, gate=gate, issuer=issuer,
                        hosts=HostSessions(store, sessions,
                                           handover_ttl=settings.proxy.handover_ttl))
    upstream = upstream or H1Upstream(  # one connection pool per process
        max_connections=settings.proxy.max_connections_per_instance)
    proxy = Proxy(upstream, systems=config.systems, health=health.outliers, gate=gate,
                  pages=pages, connectors=proxied, failover=failover, handover=handover,
                  cookie_names=parts.gateway_cookie_names(sessions.secure_cookie),
                  max_body=settings.proxy.max_body, issuer=issuer, metrics=metrics)
    return Gateway(
        config=config, store=store, keys=keys, http=http, pages=pages, clients=clients,
        directory=directory, sessions=sessions, active=active, refresh=refresh,
        minter=minter, server=server,
        background=background, backchannel=backchannel, logout=logout,
        source=source, resolver=resolver, health=health, failover=failover,
        connectors=connectors, gate=gate, handover=handover, upstream=upstream, proxy=proxy,
        bindings=bindings, verifier=verifier, digests=digests,
        operators=parts.open_operators(config), metrics=metrics, audit=audit,
        owns_store=owns_store, owns_http=owns_http)
