"""Configuration: TOML files under ``config/`` with ``ROAM_*`` environment overrides.

Loading validates everything and reports every problem at once, each naming its file and
key, so an operator fixes a bad config in one pass. ``roam`` turns ``ConfigError`` into
exit status 2 without a traceback.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway.errors import ConfigError
from gateway.identity import KNOWN_CLAIMS, SCOPE_CLAIMS
from gateway.urls import HOST_NAME, check_url, is_loopback_http, within_domain

Alg = Literal["RS256", "ES256"]
AuthMethod = Literal["client_secret_basic", "client_secret_post", "none"]



class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GatewaySection(_Strict):
    issuer: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    key_dir: str = ""  # empty: ephemeral in-memory keys (demo and tests only)
    clients_file: str = "clients.toml"

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        check_url(value)
        if urlsplit(value).query or value.endswith("/"):
            raise ValueError("issuer must have no query and no trailing slash")
        return value


class SessionSection(_Strict):
    cookie_name: str = Field(default="roam_session", pattern=r"^[A-Za-z0-9_\-]+$")
    # Shared with systems served on host names of their own ([[system]] hosts).
    cookie_domain: str | None = Field(default=None, pattern=HOST_NAME, max_length=253)
    idle_timeout: int = Field(default=1800, ge=60)
    absolute_timeout: int = Field(default=28800, ge=60)


class TokensSection(_Strict):
    code_ttl: int = Field(default=60, ge=5, le=600)
    access_token_ttl: int = Field(default=600, ge=30)
    id_token_ttl: int = Field(default=600, ge=30)
    refresh_token_ttl: int = Field(default=1209600, ge=60)


class StoreSection(_Strict):
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "roam:"


class LoginSection(_Strict):
    directory_file: str = "directory.toml"
    max_failures: int = Field(default=5, ge=1)
    lockout_seconds: int = Field(default=900, ge=1)
    simulated_step_up: bool = False  # demo factors (SMS code shown on the page, face check)


class OutboundSection(_Strict):
    """Calls to URLs that clients register (back-channel logout) are an SSRF channel."""

    allowed_networks: tuple[str, ...] = ()  # special-use networks allowed anyway (CIDR)
    timeout: float = Field(default=5.0, gt=0, le=60)
    retry_for: int = Field(default=300, ge=0, le=86400)  # seconds to keep retrying a delivery

    @field_validator("allowed_networks")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for network in value:
            ipaddress.ip_network(network, strict=False)  # ValueError names the bad one
        return value


class RoutingSection(_Strict):
    systems_file: str = "systems.toml"  # city and county systems, service items (精准到达)


class Settings(_Strict):
    gateway: GatewaySection = GatewaySection()
    session: SessionSection = SessionSection()
    tokens: TokensSection = TokensSection()
    store: StoreSection = StoreSection()
    login: LoginSection = LoginSection()
    outbound: OutboundSection = OutboundSection()
    routing: RoutingSection = RoutingSection()

    @model_validator(mode="after")
    def _cookie_domain_covers_the_issuer(self) -> Settings:
        domain = self.session.cookie_domain
        host = urlsplit(self.gateway.issuer).hostname or ""
        if domain is not None and not within_domain(host, domain):
            raise ValueError(f"session.cookie_domain {domain!r} does not cover the issuer's "
                             f"host {host!r}: the session cookie would never come back")
        return self


class ClientConfig(_Strict):
    """One relying party, as registered by its operator."""

    client_id: str = Field(pattern=r"^[A-Za-z0-9._\-]{3,64}$")
    client_name: str
    public: bool = False
    client_secret_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ("openid",)
    claims: tuple[str, ...] = ()
    token_endpoint_auth_method: AuthMethod = "client_secret_basic"
    id_token_signed_response_alg: Alg = "RS256"
    grant_types: tuple[Literal["authorization_code", "refresh_token"], ...] = (
        "authorization_code",
        "refresh_token",
    )
    backchannel_logout_uri: str | None = None
    backchannel_logout_session_required: bool = True
    default_acr_values: tuple[Literal["L1", "L2", "L3", "L4"], ...] = ()
    resource_server: bool = False  # an API that may introspect any client's tokens

    @field_validator("backchannel_logout_uri")
    @classmethod
    def _backchannel(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value)

    @field_validator("redirect_uris", "post_logout_redirect_uris")
    @classmethod
    def _uris(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for uri in value:
            check_url(uri)
        return value

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - SCOPE_CLAIMS.keys())
        if unknown:
            raise ValueError(f"unknown scopes {unknown}; known: {sorted(SCOPE_CLAIMS)}")
        if "openid" not in value:
            raise ValueError("scopes must include 'openid'")
        return value

    @field_validator("claims")
    @classmethod
    def _claims(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - KNOWN_CLAIMS)
        if unknown:
            raise ValueError(f"unknown claims {unknown}; known: {sorted(KNOWN_CLAIMS)}")
        return value

    def consistency_problems(self) -> list[str]:
        """Cross-field rules pydantic field validators cannot see one at a time."""
        problems = []
        if self.grant_types and not self.redirect_uris:
            problems.append("redirect_uris: at least one is needed for the authorization code flow")
        if self.resource_server and self.public:
            problems.append("a resource server must be confidential: it authenticates to "
                            "introspect")
        if self.public:
            if self.token_endpoint_auth_method != "none":
                problems.append("public clients must use token_endpoint_auth_method = 'none'")
            if self.client_secret_sha256:
                problems.append("public clients must not have client_secret_sha256")
        else:
            if self.token_endpoint_auth_method == "none":
                problems.append("confidential clients cannot use token_endpoint_auth_method 'none'")
            if not self.client_secret_sha256:
                problems.append("confidential clients need client_secret_sha256")
        return problems


class Config(BaseModel):
    """Everything the gateway needs, resolved and validated."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    settings: Settings
    clients: tuple[ClientConfig, ...]
    base_dir: Path  # relative paths in the files are resolved against this
    source: str = "<defaults>"

    def path(self, value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else self.base_dir / p

    @property
    def issuer(self) -> str:
        return self.settings.gateway.issuer

    def client(self, client_id: str) -> ClientConfig | None:
        for client in self.clients:
            if client.client_id == client_id:
                return client
        return None


def _format(
    source: str, error: ValidationError, prefix: str = "", env_keys: Mapping[str, str] | None = None
) -> list[str]:
    """One line per problem; a value that came from the environment names its variable."""
    problems = []
    for item in error.errors():
        key = prefix + ".".join(str(part) for part in item["loc"])
        if env_keys and key in env_keys:
            problems.append(f"environment: {env_keys[key]} ({key}): {item['msg']}")
        else:
            problems.append(f"{source}: {key}: {item['msg']}")
    return problems


def read_toml(path: Path, problems: list[str]) -> dict[str, Any]:
    """A TOML file's tables; a missing or broken file is one more problem, not an exception."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        problems.append(f"{path}: file not found")
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{path}: not valid TOML: {exc}")
    except OSError as exc:
        problems.append(f"{path}: cannot read: {exc.strerror}")
    return {}


def _apply_env(
    data: dict[str, Any], env: Mapping[str, str], problems: list[str]
) -> dict[str, str]:
    """``ROAM_<SECTION>_<KEY>=value`` overrides ``[section] key``; types follow the model.

    Returns which dotted keys came from which variable, so errors can name it.
    """
    applied: dict[str, str] = {}
    sections = Settings.model_fields
    for name, raw in env.items():
        if not name.startswith("ROAM_") or name in ("ROAM_CONFIG",):
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
        target[key] = raw  # pydantic coerces "8080" -> 8080 in lax mode
        applied[f"{section}.{key}"] = name
    return applied


def load_config(path: Path | str, *, env: Mapping[str, str] | None = None) -> Config:
    """Read the main file and the clients file it names; raise ConfigError with all problems."""
    path = Path(path)
    env = os.environ if env is None else env
    problems: list[str] = []
    data = read_toml(path, problems)
    from_env = _apply_env(data, env, problems)
    settings = Settings()
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems.extend(_format(str(path), exc, env_keys=from_env))

    base_dir = path.parent
    raw_gateway = data.get("gateway")
    clients_file = settings.gateway.clients_file
    if isinstance(raw_gateway, dict) and isinstance(raw_gateway.get("clients_file"), str):
        clients_file = raw_gateway["clients_file"]  # read it even if another key is bad
    clients_path = Path(clients_file)
    if not clients_path.is_absolute():
        clients_path = base_dir / clients_path
    clients = load_clients(clients_path, problems)
    config = Config(settings=settings, clients=clients, base_dir=base_dir, source=str(path))
    if settings.gateway.key_dir == "" and not is_loopback_http(settings.gateway.issuer):
        problems.append(
            f"{path}: gateway.key_dir: required unless the issuer is plain http on loopback "
            "(ephemeral keys would change on every restart)"
        )
    directory = config.path(settings.login.directory_file)
    if not directory.is_file():
        problems.append(f"{path}: login.directory_file: {directory} not found")
    if problems:
        raise ConfigError(problems)
    return config


def load_clients(path: Path, problems: list[str]) -> tuple[ClientConfig, ...]:
    """The ``[[client]]`` tables of a clients file; problems are appended, not raised."""
    data = read_toml(path, problems)
    unknown = sorted(set(data) - {"client"})
    for key in unknown:
        problems.append(f"{path}: {key}: unknown key (expected [[client]] tables)")
    clients: list[ClientConfig] = []
    seen: set[str] = set()
    for index, raw in enumerate(data.get("client", [])):
        where = f"client[{index}]."
        try:
            client = ClientConfig.model_validate(raw)
        except ValidationError as exc:
            problems.extend(_format(str(path), exc, where))
            continue
        for problem in client.consistency_problems():
            problems.append(f"{path}: {where}{client.client_id}: {problem}")
        if client.client_id in seen:
            problems.append(f"{path}: {where}client_id: duplicate {client.client_id!r}")
        seen.add(client.client_id)
        clients.append(client)
    return tuple(clients)
