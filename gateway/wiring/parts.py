"""Each part of the gateway opened from the config on its own: the store, the keys,
the operators, the connectors, the identity source, the gateway's secret, the binding
records and verifier. :func:`gateway.wiring.build.build_gateway` calls them; the CLI
calls some alone (``roam clients`` needs only the store)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import httpx

from connectors.base import Connector, ConnectorContext, PresentsIdentity
from gateway.binding.bindings import BOUND_LEVELS, Bindings
from gateway.binding.http_verifier import HttpVerifier
from gateway.binding.identity import ChannelIdentity
from gateway.binding.verifier import DemoVerifier, NoVerifier, Verifier
from gateway.channels.identity import ChannelIdentity as PlatformIdentity
from gateway.channels.login import Resolve, Resolved
from gateway.config import Config, Systems
from gateway.cookies import host_cookie_name
from gateway.csrf import Csrf
from gateway.digests import KeyedDigests
from gateway.errors import ConfigError
from gateway.keys import KeyRing
from gateway.login.directory import TomlDirectory
from gateway.login.source import PasswordSource
from gateway.ops.console_sessions import OPS_COOKIE
from gateway.ops.operators import Operator, load_operators
from gateway.store import Store, open_store
from gateway.urls import is_loopback_host

__all__ = [
    "bound_citizen",
    "configured_store",
    "gateway_cookie_names",
    "key_problems",
    "load_keys",
    "open_binding",
    "open_connectors",
    "open_digests",
    "open_operators",
    "open_source",
]


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
