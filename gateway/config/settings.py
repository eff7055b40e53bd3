"""The main file (``config/roam.toml``): one section per concern, every key with a default.

docs/configuration.md documents every key. ``ROAM_<SECTION>_<KEY>`` in the environment
overrides ``[section] key`` (:func:`apply_env`).
"""

from __future__ import annotations

import ipaddress
import typing
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gateway.config.files import Strict
from gateway.config.health import HealthSection
from gateway.config.registration import RegistrationSection
from gateway.urls import HOST_NAME, check_url, within_domain

__all__ = [
    "AlipayChannel",
    "AuditSection",
    "BindingSection",
    "ChannelsSection",
    "GatewaySection",
    "KeysSection",
    "LegacySection",
    "LoginSection",
    "MetricsSection",
    "OpsSection",
    "OutboundSection",
    "ProxySection",
    "RoutingSection",
    "SessionSection",
    "Settings",
    "StoreSection",
    "TokensSection",
    "WeChatChannel",
    "apply_env",
    "check_metrics_token",
]

MiB = 1024 * 1024


def _networks(value: tuple[str, ...]) -> tuple[str, ...]:
    """CIDR networks; ``ValueError`` names the first bad one."""
    for network in value:
        ipaddress.ip_network(network, strict=False)
    return value


class GatewaySection(Strict):
    issuer: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    key_dir: str = ""  # empty: ephemeral in-memory keys (demo and tests only)
    clients_file: str = "clients.toml"
    workers: int = Field(default=1, ge=1, le=64)  # processes `roam serve` runs on one port
    # Request heads, as nginx's large_client_header_buffers 4 8k: past them 431 (414 for
    # the request line), read no further, never forwarded.
    max_header_line: int = Field(default=8192, ge=1024, le=65536)  # one line, bytes
    max_header_size: int = Field(default=32768, ge=1024, le=MiB)  # all header lines
    max_headers: int = Field(default=100, ge=16, le=1000)  # header lines

    @field_validator("max_header_size")
    @classmethod
    def _holds_a_line(cls, value: int, info: ValidationInfo) -> int:
        line = info.data.get("max_header_line")
        if line is not None and value < line:
            raise ValueError(f"{value} is smaller than max_header_line ({line})")
        return value

    # Load balancers / reverse proxies in front (CIDR) whose X-Forwarded-For is believed
    # when the gateway needs the client's address (the failed-login throttle).
    trusted_proxies: tuple[str, ...] = ()
    # The gateway's own secret for keyed digests (gateway/digests.py), the same in every
    # process: from this environment variable, or a file (relative to the config file).
    # Unset: a random one per process, refused where binding is on in production.
    secret_env: str = "ROAM_SECRET"
    secret_file: str = ""

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        check_url(value)
        if urlsplit(value).query or value.endswith("/"):
            raise ValueError("issuer must have no query and no trailing slash")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _networks(value)


class SessionSection(Strict):
    cookie_name: str = Field(default="roam_session", pattern=r"^[A-Za-z0-9_\-]+$")
    # Unset (the default): the cookie is the issuer host's alone (__Host- under https).
    cookie_domain: str | None = Field(default=None, pattern=HOST_NAME, max_length=253)
    idle_timeout: int = Field(default=1800, ge=60)
    absolute_timeout: int = Field(default=28800, ge=60)


class TokensSection(Strict):
    code_ttl: int = Field(default=60, ge=5, le=600)
    access_token_ttl: int = Field(default=600, ge=30)
    id_token_ttl: int = Field(default=600, ge=30)
    refresh_token_ttl: int = Field(default=1209600, ge=60)
    # seconds a refresh token just rotated may be presented again and get the same new
    # token (a retry after a lost answer, concurrent copies) instead of ending the grant
    refresh_reuse_interval: int = Field(default=30, ge=0, le=300)
    # RFC 9068 §2.1: the server picks the access tokens' algorithm (a client's
    # access_token_signed_response_alg overrides it); ID tokens keep the client's own
    access_token_alg: Literal["RS256", "ES256"] = "ES256"


class StoreSection(Strict):
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"  # one node (redis://, rediss://, unix://)
    # A Redis Cluster instead: seed nodes (redis:// or rediss://host:port; any reachable
    # one tells the client the rest), or a master watched by Sentinel: the sentinels
    # (host:port) and the name they know it by. Either replaces redis_url.
    cluster_nodes: tuple[str, ...] = ()
    sentinels: tuple[str, ...] = ()
    sentinel_service: str = ""
    # the data nodes' password (Cluster, or Sentinel's master) and the sentinels' own, from
    # these environment variables (empty: none, or in the cluster nodes' URLs)
    password_env: str = ""
    sentinel_password_env: str = ""
    prefix: str = "roam:"
    # seconds a Redis command's answer, and a new connection, may take: short, so that a
    # frozen or unreachable Redis answers requests with 503 quickly instead of holding them
    timeout: float = Field(default=1.0, ge=0.05, le=30)
    connect_timeout: float = Field(default=1.0, ge=0.05, le=30)
    # after a command timed out, calls fail at once for this many seconds (0: never)
    circuit_open: float = Field(default=2.0, ge=0, le=60)

    @field_validator("redis_url")
    @classmethod
    def _one_node(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"scheme {parts.scheme or '(none)'!r} is not redis://, rediss:// "
                             "or unix:// (a Cluster is store.cluster_nodes, Sentinel "
                             "store.sentinels)")
        if "cluster" in parts.query.lower() or "sentinel" in parts.query.lower():
            raise ValueError("a Cluster or Sentinel is not a URL option: set "
                             "store.cluster_nodes, or store.sentinels and sentinel_service")
        return value

    @field_validator("cluster_nodes")
    @classmethod
    def _seed_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for node in value:
            parts = urlsplit(node)
            try:
                port = parts.port
            except ValueError:
                port = None
            if parts.scheme not in ("redis", "rediss") or not parts.hostname or port is None \
                    or parts.path not in ("", "/", "/0") or parts.query:
                shown = node.rpartition("@")[2] if "@" in node else node  # no password
                raise ValueError(f"{shown!r} is not redis://host:port or rediss://host:port "
                                 "(a Cluster has database 0 only)")
        return value

    @field_validator("sentinels")
    @classmethod
    def _host_ports(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{address!r} is not host:port")
        return value

    @model_validator(mode="after")
    def _one_topology(self) -> StoreSection:
        if self.cluster_nodes and self.sentinels:
            raise ValueError("cluster_nodes and sentinels both set: a store is one or the other")
        if bool(self.sentinels) != bool(self.sentinel_service):
            raise ValueError("sentinels and sentinel_service go together")
        return self


class LoginSection(Strict):
    # Where people prove who they are. None: not named; only a loopback (demo) issuer may
    # leave it out, and then gets the TOML directory (load_config enforces this).
    source: Literal["toml-directory"] | None = None
    directory_file: str = "directory.toml"  # the people of source "toml-directory"
    max_failures: int = Field(default=5, ge=1)  # password checks per account per window
    lockout_seconds: int = Field(default=900, ge=1)  # that window
    source_max_failures: int = Field(default=100, ge=1)  # failed logins per client address
    source_window: int = Field(default=900, ge=1)  # that window
    request_ttl: int = Field(default=1800, ge=60, le=86400)  # how long a login page may stay open
    simulated_step_up: bool = False  # demo factors (SMS code shown on the page, face check)
    stepup_ttl: int = Field(default=300, ge=30, le=3600)  # a step-up code or challenge
    stepup_max_failures: int = Field(default=5, ge=1, le=20)  # SMS codes per person per window
    stepup_lock_seconds: int = Field(default=60, ge=1, le=86400)  # that window
    stepup_max_sends: int = Field(default=10, ge=1, le=100)  # SMS codes sent to a person
    stepup_send_window: int = Field(default=3600, ge=60, le=86400)  # per this many seconds
    transfer_ttl: int = Field(default=60, ge=5, le=60)  # a one-time transfer ticket, seconds


class BindingSection(Strict):
    """Binding mini-program identities to citizens: real name (L2), face check (L3)."""

    # demo: the directory's people, face checks that always pass (loopback issuers only);
    # None: demo on a loopback issuer, otherwise binding is refused (503) until named.
    verifier: Literal["demo", "http"] | None = None
    base_url: str = ""  # the verification service (verifier "http")
    credential_env: str = "ROAM_VERIFICATION_CREDENTIAL"  # its bearer credential, or:
    credential_file: str = ""  # a file holding it (relative to the config file)
    record_ttl: int = Field(default=10 * 365 * 86400, ge=86400)  # a binding, seconds
    max_attempts: int = Field(default=5, ge=1, le=100)  # per channel identity per window
    attempt_window: int = Field(default=3600, ge=60, le=86400)
    max_id_attempts: int = Field(default=5, ge=1, le=100)  # naming one ID number
    id_attempt_window: int = Field(default=86400, ge=60, le=7 * 86400)
    face_ttl: int = Field(default=600, ge=60, le=3600)  # a started face check

    @model_validator(mode="after")
    def _http_needs_a_url(self) -> BindingSection:
        if self.verifier == "http":
            if not self.base_url:
                raise ValueError("binding.base_url is required for verifier \"http\"")
            check_url(self.base_url)
        return self


class OutboundSection(Strict):
    """Calls to URLs that clients register (back-channel logout) are an SSRF channel."""

    allowed_networks: tuple[str, ...] = ()  # special-use networks allowed anyway (CIDR)
    timeout: float = Field(default=5.0, gt=0, le=60)
    retry_for: int = Field(default=300, ge=0, le=86400)  # seconds to keep retrying a delivery
    # seconds a gateway process holds a delivery past its next attempt: if it stops,
    # another takes the delivery over this long after (longer than an attempt may take)
    lease: float = Field(default=15.0, ge=1, le=600)

    @model_validator(mode="after")
    def _lease_outlasts_an_attempt(self) -> OutboundSection:
        if self.lease <= self.timeout:
            raise ValueError(f"lease ({self.lease} s) must be longer than timeout "
                             f"({self.timeout} s): a delivery is held while it is attempted")
        return self

    @field_validator("allowed_networks")
    @classmethod
    def _allowed(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _networks(value)


class RoutingSection(Strict):
    systems_file: str = "systems.toml"  # city and county systems, service items (精准到达)


class ProxySection(Strict):
    max_body: int = Field(default=10 * MiB, ge=1024, le=1024 * MiB)  # request bodies, bytes
    # Serve proxied systems without hosts of their own under /s/<id>/ on the issuer's
    # origin (they then share it: an explicit opt-in only; docs/security.md).
    path_mode: bool = False
    handover_ttl: int = Field(default=60, ge=5, le=300)  # a hand-over code, seconds
    # Open connections to one instance (scheme, host, port), busy and idle: a request
    # finding all busy waits up to the system's timeout, then gets 503 with Retry-After.
    max_connections_per_instance: int = Field(default=64, ge=1, le=4096)


class LegacySection(Strict):
    cas_ticket_ttl: int = Field(default=60, ge=5, le=300)  # a CAS service ticket, seconds


class AuditSection(Strict):
    """The audit trail (docs/operations.md): where it is kept, how long, how it is written."""

    sink: Literal["file", "postgresql"] = "file"  # "file": the demo; a cluster: "postgresql"
    path: str = "audit.jsonl"  # sink "file" (relative to the config file)
    # sink "postgresql": a libpq connection string, best from ROAM_AUDIT_DSN or dsn_file
    # (the password stays out of this file; libpq's PGPASSWORD and ~/.pgpass work too)
    dsn: SecretStr = SecretStr("")
    dsn_file: str = ""  # a file holding the connection string (relative to the config file)
    schema_name: str = Field(default="public", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    connect_timeout: float = Field(default=5.0, gt=0, le=60)  # seconds
    # days events are kept (网络安全法 Art. 21: at least six months); 0: never pruned
    retention_days: int = Field(default=180, ge=0, le=36500)
    queue_size: int = Field(default=10000, ge=100, le=1_000_000)  # events waiting, at most
    batch_size: int = Field(default=200, ge=1, le=10000)  # events per write
    batch_interval: float = Field(default=1.0, ge=0.01, le=60)  # seconds between writes
    # which kept events are also a JSON log line: "failures" (every outcome but success),
    # "all", or "none" (the trail alone)
    log_events: Literal["all", "failures", "none"] = "failures"

    @field_validator("retention_days")
    @classmethod
    def _six_months(cls, value: int) -> int:
        if 0 < value < 180:
            raise ValueError("at least 180 (网络安全法 Art. 21: six months), or 0 to keep "
                             "every event")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> AuditSection:
        if self.batch_size > self.queue_size:
            raise ValueError(f"audit.batch_size ({self.batch_size}) is larger than "
                             f"audit.queue_size ({self.queue_size})")
        dsn = self.dsn.get_secret_value()
        if self.sink == "postgresql" and not dsn and not self.dsn_file:
            raise ValueError("sink \"postgresql\" needs a connection string: ROAM_AUDIT_DSN, "
                             "audit.dsn or audit.dsn_file")
        if dsn and self.dsn_file:
            raise ValueError("audit.dsn and audit.dsn_file: set one of them")
        if self.sink == "file" and not self.path:
            raise ValueError("sink \"file\" needs audit.path")
        return self


class WeChatChannel(Strict):
    """A WeChat mini-program: its appid, its AppSecret (from the environment, never the
    file) and the platform's base URL (the demo's mock in config/roam.toml)."""

    appid: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    secret_env: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")  # variable holding the AppSecret
    base_url: str = "https://api.weixin.qq.com"
    token_margin: int = Field(default=300, ge=30, le=3600)  # refresh the access token this early

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value).rstrip("/")


class AlipayChannel(Strict):
    """An Alipay mini-program: its app_id, its RSA2 private key and the platform's public
    key (PEM files, relative to the config directory) and the gateway URL."""

    app_id: str = Field(pattern=r"^[0-9A-Za-z_\-]{1,64}$")
    private_key_file: str  # the app's private key (PKCS#8 or PKCS#1 PEM)
    platform_public_key_file: str  # Alipay's public key, to verify its answers
    gateway_url: str = "https://openapi.alipay.com/gateway.do"

    @field_validator("gateway_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value)


class ChannelsSection(Strict):
    """Mini-program login channels; a channel left out is refused at /token."""

    wechat: WeChatChannel | None = None
    alipay: AlipayChannel | None = None
    code_ttl: int = Field(default=600, ge=60, le=86400)  # remember a used platform code


class MetricsSection(Strict):
    """``/metrics`` for Prometheus (docs/operations.md). Without a token it answers only
    connections from loopback that no proxy forwarded."""

    enabled: bool = True  # false: nothing is recorded and there is no /metrics
    # The bearer secret scrapers send: from the environment (ROAM_METRICS_TOKEN) or
    # token_file, never written in the file itself (load_config refuses it there).
    token: SecretStr | None = None
    token_file: str = ""  # a file holding it (relative to the config file)

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_metrics_token(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _one_source(self) -> MetricsSection:
        if self.token is not None and self.token_file:
            raise ValueError("metrics.token and metrics.token_file: set one, not both")
        return self


def check_metrics_token(value: str) -> str:
    """A bearer secret worth the name: ``ValueError`` says why not (never what it is)."""
    if len(value) < 24 or any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError("the metrics token must be at least 24 printable characters "
                         "without spaces (e.g. python -c 'import secrets; "
                         "print(secrets.token_urlsafe(32))')")
    return value


class KeysSection(Strict):
    """The signing keys' rotation schedule (``roam keys rotate``, gateway/key_rotation.py):
    every process follows it from the shared key directory."""

    # seconds a new key is in the JWKS before it signs: longer than any RP caches the JWKS
    publish_ahead: int = Field(default=3600, ge=2, le=30 * 86400)
    # seconds an old key stays published once its successor signs: its tokens' lifetime
    retire_after: int = Field(default=3600, ge=1, le=30 * 86400)
    # seconds between two looks at the key directory, in every process
    reload_interval: int = Field(default=10, ge=1, le=3600)

    @model_validator(mode="after")
    def _published_before_signing(self) -> KeysSection:
        if self.publish_ahead <= self.reload_interval:
            raise ValueError(f"keys.publish_ahead ({self.publish_ahead} s) must be longer "
                             f"than keys.reload_interval ({self.reload_interval} s): every "
                             "process must publish a new key before any signs with it")
        return self

    @property
    def jwks_max_age(self) -> int:
        """How long an RP may cache the JWKS: a key published now reaches every process
        within ``reload_interval``, and must reach every RP before it signs."""
        return min(300, self.publish_ahead - self.reload_interval)


class OpsSection(Strict):
    """The operators' console (/ops): its accounts and how long their sessions live."""

    # Operators with password and TOTP (gateway/ops/operators.py); "": no console (404).
    operators_file: str = ""
    idle_timeout: int = Field(default=900, ge=60, le=900)  # 等保 2.0: 15 min at most
    absolute_timeout: int = Field(default=28800, ge=900, le=86400)
    max_failures: int = Field(default=5, ge=1, le=20)  # login attempts per operator
    lockout_seconds: int = Field(default=900, ge=60, le=86400)  # per window


class Settings(Strict):
    gateway: GatewaySection = GatewaySection()
    session: SessionSection = SessionSection()
    tokens: TokensSection = TokensSection()
    store: StoreSection = StoreSection()
    login: LoginSection = LoginSection()
    outbound: OutboundSection = OutboundSection()
    routing: RoutingSection = RoutingSection()
    proxy: ProxySection = ProxySection()
    health: HealthSection = HealthSection()
    legacy: LegacySection = LegacySection()
    binding: BindingSection = BindingSection()
    channels: ChannelsSection = ChannelsSection()
    metrics: MetricsSection = MetricsSection()
    ops: OpsSection = OpsSection()
    audit: AuditSection = AuditSection()
    keys: KeysSection = KeysSection()
    registration: RegistrationSection = RegistrationSection()

    @model_validator(mode="after")
    def _old_keys_outlive_their_tokens(self) -> Settings:
        longest = max(self.tokens.access_token_ttl, self.tokens.id_token_ttl)
        if self.keys.retire_after < longest:
            raise ValueError(f"keys.retire_after ({self.keys.retire_after} s) is shorter than "
                             f"the longest token lifetime ({longest} s, tokens.*_ttl): "
                             "tokens signed by a retired key would fail to verify")
        return self

    @model_validator(mode="after")
    def _cookie_domain_covers_the_issuer(self) -> Settings:
        domain = self.session.cookie_domain
        host = urlsplit(self.gateway.issuer).hostname or ""
        if domain is not None and not within_domain(host, domain):
            raise ValueError(f"session.cookie_domain {domain!r} does not cover the issuer's "
                             f"host {host!r}: the session cookie would never come back")
        return self


def _secret_variables(model: type[BaseModel], data: object) -> set[str]:
    """The environment variables the config names as holding secrets (every ``*_env``
    key: its default and the file's value, nested sections too). They may start with
    ``ROAM_`` (``ROAM_SECRET``, ``ROAM_VERIFICATION_CREDENTIAL``) and are not overrides."""
    names: set[str] = set()
    values = data if isinstance(data, dict) else {}
    for key, field in model.model_fields.items():
        if key.endswith("_env"):
            for candidate in (field.default, values.get(key)):
                if isinstance(candidate, str):
                    names.add(candidate)
        for inner in typing.get_args(field.annotation) or (field.annotation,):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                names |= _secret_variables(inner, values.get(key))
    return names


def apply_env(data: dict[str, Any], env: Mapping[str, str], problems: list[str]) -> dict[str, str]:
    """``ROAM_<SECTION>_<KEY>=value`` overrides ``[section] key``; types follow the model,
    and a list is comma-separated (``ROAM_STORE_SENTINELS=10.0.0.1:26379,10.0.0.2:26379``).

    Returns which dotted keys came from which variable, so errors can name it.
    """
    applied: dict[str, str] = {}
    sections = Settings.model_fields
    secrets = _secret_variables(Settings, data)
    for name, raw in env.items():
        if not name.startswith("ROAM_") or name in ("ROAM_CONFIG",) or name in secrets:
            continue
        rest = name[len("ROAM_") :].lower()
        section, _, key = rest.partition("_")
        if section not in sections:
            problems.append(f"environment: {name}: no section [{section}]")
            continue
        model = sections[section].annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):  # pragma: no cover
            continue
        if key not in model.model_fields:
            problems.append(f"environment: {name}: no key {section}.{key}")
            continue
        target = data.setdefault(section, {})
        if not isinstance(target, dict):
            problems.append(f"environment: {name}: [{section}] is not a table in the file")
            continue
        if typing.get_origin(model.model_fields[key].annotation) is tuple:
            # a list from the environment: comma-separated ("a:1,b:2"; empty: none)
            target[key] = [item.strip() for item in raw.split(",") if item.strip()]
        else:
            target[key] = raw  # pydantic coerces "8080" -> 8080 in lax mode
        applied[f"{section}.{key}"] = name
    return applied
