"""The gateway's long-lived parts, built once from the config and wired by hand.

:func:`build_gateway` is the one place that decides which object gets which: the store,
the key ring, sessions, the authorization server and its tokens, logout, the identity
source, routing, the opened connectors, the gate into systems and the proxy.
``gateway.app`` maps HTTP routes onto a :class:`Gateway`; the CLI uses one without any app.
Tests pass their own store, HTTP client, keys or identity source.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

import anyio
import httpx

from connectors.base import Connector, ConnectorContext, PresentsIdentity
from gateway import __version__
from gateway.audit import AuditTrail, open_trail
from gateway.background import Background
from gateway.binding.bindings import BOUND_LEVELS, Bindings
from gateway.binding.http_verifier import HttpVerifier
from gateway.binding.identity import ChannelIdentity
from gateway.binding.verifier import DemoVerifier, NoVerifier, Verifier
from gateway.channels.identity import ChannelIdentity as PlatformIdentity
from gateway.channels.login import Resolve, Resolved
from gateway.channels.setup import open_channels
from gateway.config import Config, Systems
from gateway.cookies import host_cookie_name
from gateway.csrf import Csrf
from gateway.digests import KeyedDigests
from gateway.errors import ConfigError, StoreError
from gateway.health import HealthChecks, HealthObserver, MetricsObserver
from gateway.host_sessions import HostSessions
from gateway.key_rotation import KeyWatcher
from gateway.keys import KeyRing
from gateway.legacy.access import Gate
from gateway.legacy.failover import Failover
from gateway.legacy.handover import Handover
from gateway.login.directory import TomlDirectory
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
from gateway.ops.console_sessions import OPS_COOKIE
from gateway.ops.operators import Operator, load_operators
from gateway.outbound import OutboundPolicy
from gateway.pages import Pages
from gateway.proxy.h1 import H1Upstream
from gateway.proxy.proxy import Proxy
from gateway.proxy.upstream import Upstream
from gateway.routing.resolve import Resolver
from gateway.sessions import SessionManager
from gateway.store import Store, open_store
from gateway.store.measured import MeasuredStore
from gateway.store.redis import RedisStore
from gateway.urls import is_loopback_host

__all__ = [
    "Gateway",
    "bound_citizen",
    "build_gateway",
    "gateway_cookie_names",
    "key_problems",
    "load_keys",
    "open_binding",
    "open_connectors",
    "open_digests",
    "open_operators",
    "open_source",
]


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


def gateway_cookie_names(secure: bool) -> frozenset[str]:
    """The gateway's cookies besides the session (whose name the proxy knows from the
    gate) and the host sessions': under both spellings, never forwarded to a system."""
    return frozenset({Csrf(secure=secure).cookie_name, Csrf(secure=False).cookie_name,
                      host_cookie_name(OPS_COOKIE, secure=True), OPS_COOKIE})


def configured_store(config: Config, env: Mapping[str, str] | None = None) -> Store:
    """The store ``[store]`` names (passwords from the variables it names)."""
    section = config.settings.store
    named = os.environ if env is None else env

    def variable(name: str) -> str:
        return named.get(name, "") if name else ""

    return open_store(section.backend, redis_url=section.redis_url, prefix=section.prefix,
                      timeout=section.timeout, connect_timeout=section.connect_timeout,
                      circuit_open=section.circuit_open, cluster_nodes=section.cluster_nodes,
                      sentinels=section.sentinels, sentinel_service=section.sentinel_service,
                      password=variable(section.password_env),
                      sentinel_password=variable(section.sentinel_password_env))


def open_operators(config: Config) -> dict[str, Operator]:
    """The console's operators (``[ops] operators_file``; none: no console). The demo's
    file, whose secrets are public, only on a loopback issuer."""
    name = config.settings.ops.operators_file
    if not name:
        return {}
    return load_operators(config.path(name), allow_demo=is_loopback_host(config.issuer))


def load_keys(config: Config) -> KeyRing:
    """Keys from ``gateway.key_dir``; ephemeral only where config allows (loopback http)."""
    key_dir = config.settings.gateway.key_dir
    if key_dir:
        return KeyRing.from_directory(config.path(key_dir),
                                      retire_after=config.settings.keys.retire_after)
    return KeyRing.ephemeral()


def key_problems(config: Config, keys: KeyRing) -> list[str]:
    """A client signs with an algorithm no key in ``keys`` has: one line per algorithm."""
    missing = config.signing_algs - keys.algs
    return [f"{config.source}: gateway.key_dir: no signing key for {alg} "
            f"(run `roam keys generate --alg {alg}`)" for alg in sorted(missing)]


def open_connectors(systems: Systems, context: ConnectorContext, *,
                    path_mode: bool = False) -> dict[str, Connector]:
    """Each system's connector, opened once from the settings the config loader parsed.

    ``ConfigError`` if a system is served on hosts of its own but its connector gives the
    proxy nothing to present (only the proxy answers on a system's hosts), or if a system
    the proxy serves has no host of its own and ``path_mode`` (``[proxy] path_mode``, an
    explicit opt-in) is off: it would share the issuer's origin."""
    opened = {system.id: systems.connector_config(system.id).open(context)
              for system in systems}
    problems = [f"systems file: system {system.id!r}: hosts: only for systems the proxy "
                f"serves (connector {system.connector!r} does not present identity)"
                for system in systems
                if system.hosts and not isinstance(opened[system.id], PresentsIdentity)]
    if not path_mode:
        problems.extend(
            f"systems file: system {system.id!r}: hosts: a proxied system needs a host of "
            "its own (or [proxy] path_mode = true to serve it under /s/<id>/ on the "
            "issuer's origin: an explicit opt-in only)"
            for system in systems
            if not system.hosts and isinstance(opened[system.id], PresentsIdentity))
    if problems:
        raise ConfigError(problems)
    return opened


def open_source(config: Config, store: Store) -> PasswordSource:
    """The identity source ``[login] source`` names (the loader refused anything else)."""
    login = config.settings.login
    if config.identity_source == "toml-directory":
        return TomlDirectory.from_file(config.path(login.directory_file), store=store,
                                       max_failures=login.max_failures,
                                       lockout_seconds=login.lockout_seconds)
    raise ConfigError([f"{config.source}: login.source: unknown {config.identity_source!r}"])


def bound_citizen(bindings: Bindings, source: PasswordSource) -> Resolve:
    """The channel login's way to the binding records: a bound identity logs in as its
    citizen (same ``sub`` from WeChat and Alipay) with the citizen's claims from the
    identity source, an unbound one as itself with none."""

    async def resolve(found: PlatformIdentity) -> Resolved:
        channel = ChannelIdentity(found.channel, found.appid, found.openid, found.unionid)
        subject, level = await bindings.resolve(channel)
        citizen = await source.lookup(subject) if level in BOUND_LEVELS else None
        if citizen is None:
            return Resolved(subject, level, channel_subject=channel.subject)
        return Resolved(subject, level, channel_subject=channel.subject,
                        claims=citizen.claims, region=citizen.region)

    return resolve


def open_digests(config: Config) -> KeyedDigests:
    """The gateway's secret (``[gateway] secret_env`` or ``secret_file``). Without one, a
    random secret of this process: fine on a loopback issuer (the demo, tests) or where
    nothing keyed by it is kept, refused in production where binding to real names is on
    (``verifier = "http"``: its limits must hold across processes and restarts) or a client
    has pairwise subjects (they must not change with a restart)."""
    section = config.settings.gateway
    secret = os.environ.get(section.secret_env, "")
    if section.secret_file:
        secret = config.path(section.secret_file).read_text("utf-8").strip()
    if not secret:
        needs = [what for what, used in (
            ("binding", config.settings.binding.verifier == "http"),
            ("pairwise subjects", any(c.subject_type == "pairwise" for c in config.clients)
             or any(s.subject_type == "pairwise" for s in config.systems)))
            if used]
        if needs and not is_loopback_host(config.issuer):  # else they change every restart
            raise ConfigError([f"{config.source}: gateway: {what} needs the gateway's secret "
                               f"(${section.secret_env} or gateway.secret_file), the same in "
                               "every process" for what in needs])
        return KeyedDigests.ephemeral()
    try:
        return KeyedDigests(secret.encode())
    except ValueError as error:
        raise ConfigError([f"{config.source}: gateway: {error}"]) from None


def open_binding(config: Config, store: Store, http: httpx.AsyncClient,
                 source: PasswordSource) -> tuple[Bindings, Verifier]:
    """The binding records and the verifier ``[binding] verifier`` names. A citizen's
    ``sub`` is the identity source's for that ID number (the TOML directory's entries)."""
    section = config.settings.binding
    entries = source.entries if isinstance(source, TomlDirectory) else ()
    by_number = {entry.id_number: entry.subject for entry in entries}
    bindings = Bindings(store, ttl=section.record_ttl, citizen_of=by_number.get)
    if section.verifier is None and not is_loopback_host(config.issuer):
        return bindings, NoVerifier()
    if section.verifier in ("demo", None):  # load_config allows demo on loopback only
        return bindings, DemoVerifier((str(e.claims.get("name", "")), e.id_number)
                                      for e in entries)
    credential = os.environ.get(section.credential_env, "")
    if section.credential_file:
        credential = config.path(section.credential_file).read_text("utf-8").strip()
    if not credential:
        raise ConfigError([f"{config.source}: binding: verifier \"http\" needs a credential "
                           f"(${section.credential_env} or binding.credential_file)"])
    return bindings, HttpVerifier(http, base_url=section.base_url, credential=credential)


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
    keys = keys or load_keys(config)
    problems = key_problems(config, keys)
    if problems:
        raise ConfigError(problems)
    clients = ClientRegistry(config.clients)
    connectors = open_connectors(config.systems, ConnectorContext(keys=keys, issuer=config.issuer),
                                 path_mode=settings.proxy.path_mode)
    owns_store, owns_http = store is None, http is None
    if store is None:
        store = configured_store(config)
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
    digests = open_digests(config)
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
    source = source or open_source(config, store)
    bindings, verifier = open_binding(config, store, http, source)
    channels = open_channels(settings.channels, http=http, store=store, path=config.path,
                             account_ttl=settings.tokens.refresh_token_ttl,
                             resolve=bound_citizen(bindings, source))
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
                  cookie_names=gateway_cookie_names(sessions.secure_cookie),
                  max_body=settings.proxy.max_body, issuer=issuer, metrics=metrics)
    return Gateway(
        config=config, store=store, keys=keys, http=http, pages=pages, clients=clients,
        directory=directory, sessions=sessions, active=active, refresh=refresh,
        minter=minter, server=server,
        background=background, backchannel=backchannel, logout=logout,
        source=source, resolver=resolver, health=health, failover=failover,
        connectors=connectors, gate=gate, handover=handover, upstream=upstream, proxy=proxy,
        bindings=bindings, verifier=verifier, digests=digests,
        operators=open_operators(config), metrics=metrics, audit=audit,
        owns_store=owns_store, owns_http=owns_http)
