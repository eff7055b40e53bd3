"""The clients file (``config/clients.toml``): the relying parties and their registrations.

A client's secret is never in the file, only its SHA-256 (``roam clients secret`` makes
both). Cross-field rules (public clients use PKCE and no secret, resource servers are
confidential) are checked per client and reported with the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator

from gateway.config.files import ClaimNames, Strict, problems_of, read_toml
from gateway.identity import SCOPE_CLAIMS
from gateway.urls import check_url

__all__ = ["Alg", "AuthMethod", "ClientConfig", "load_clients"]

Alg = Literal["RS256", "ES256"]
AuthMethod = Literal["client_secret_basic", "client_secret_post", "none", "private_key_jwt"]


class ClientConfig(Strict):
    """One relying party, as registered by its operator."""

    client_id: str = Field(pattern=r"^[A-Za-z0-9._\-]{3,64}$")
    client_name: str
    public: bool = False
    client_secret_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ("openid",)
    claims: ClaimNames = ()
    token_endpoint_auth_method: AuthMethod = "client_secret_basic"
    id_token_signed_response_alg: Alg = "RS256"
    # its access tokens' algorithm, for a resource server that verifies only one;
    # None: [tokens] access_token_alg (ES256: one RSA signature per token response less)
    access_token_signed_response_alg: Alg | None = None
    # The mini-program's login (gateway/oidc/channel_grant.py) is an extension grant.
    grant_types: tuple[Literal["authorization_code", "refresh_token",
                               "urn:roam:params:oauth:grant-type:channel-code"], ...] = (
        "authorization_code",
        "refresh_token",
    )
    backchannel_logout_uri: str | None = None
    backchannel_logout_session_required: bool = True
    default_acr_values: tuple[Literal["L1", "L2", "L3", "L4"], ...] = ()
    resource_server: bool = False  # an API that may introspect any client's tokens
    # OIDC Registration's initiate_login_uri: the RP's page that starts its own login. A
    # one-time transfer URL (/sso/transfer) may lead to it or to a page under it.
    initiate_login_uri: str | None = None
    # May ask /sso/transfer-ticket for one-time URLs into a browser (无感切换): the
    # mini-program's client, never an RP by default.
    transfer_tickets: bool = False
    # RFC 8693: the systems (systems.toml ids) this client may exchange its access tokens
    # for a token whose audience is one of them; empty: no token exchange
    token_exchange_audiences: tuple[str, ...] = ()
    # RFC 9449: /token requires a DPoP proof and binds every token it issues to that key
    dpop_bound_access_tokens: bool = False
    dpop_nonce: bool = False  # and the proof at /token must carry a nonce of the gateway's
    # private_key_jwt (RFC 7523): the client's public keys, inline or at a URL of its own
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    # OIDC Core §8: "pairwise": a sub of the client's sector alone, which no other sector
    # can link (gateway/oidc/subjects.py); "public": the person's one sub
    subject_type: Literal["public", "pairwise"] = "public"
    # §8.1: the sector is this URI's host; without it, the one host of the redirect_uris
    sector_identifier_uri: str | None = None

    def access_token_alg(self, default: str) -> str:
        """The algorithm of this client's access tokens (``default``: the server's)."""
        return self.access_token_signed_response_alg or default

    @property
    def sector(self) -> str:
        """The host that names the client's sector (OIDC Core §8.1)."""
        if self.sector_identifier_uri:
            return (urlsplit(self.sector_identifier_uri).hostname or "").lower()
        hosts = {(urlsplit(uri).hostname or "").lower() for uri in self.redirect_uris}
        return hosts.pop() if len(hosts) == 1 else ""

    @field_validator("backchannel_logout_uri", "initiate_login_uri", "sector_identifier_uri",
                     "jwks_uri")
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


    def consistency_problems(self) -> list[str]:
        """Cross-field rules pydantic field validators cannot see one at a time."""
        problems = []
        if "authorization_code" in self.grant_types and not self.redirect_uris:
            problems.append("redirect_uris: at least one is needed for the authorization code flow")
        if self.resource_server and self.public:
            problems.append("a resource server must be confidential: it authenticates to "
                            "introspect")
        if self.initiate_login_uri and _origin(self.initiate_login_uri) not in {
                _origin(uri) for uri in self.redirect_uris}:
            problems.append("initiate_login_uri: must be on the origin of one of the "
                            "client's redirect_uris (a transfer may lead only to the RP)")
        if self.dpop_nonce and not self.dpop_bound_access_tokens:
            problems.append("dpop_nonce needs dpop_bound_access_tokens = true")
        if self.subject_type == "pairwise" and not self.sector:
            problems.append("subject_type 'pairwise': the redirect_uris are on several hosts, "
                            "so a sector_identifier_uri must name the client's sector")
        if len(set(self.token_exchange_audiences)) != len(self.token_exchange_audiences):
            problems.append("token_exchange_audiences: a system is listed twice")
        keyed = self.token_endpoint_auth_method == "private_key_jwt"
        if keyed and (self.jwks is None) == (self.jwks_uri is None):
            problems.append("private_key_jwt: give the client's keys as jwks or jwks_uri, "
                            "one of them")
        if not keyed and (self.jwks is not None or self.jwks_uri):
            problems.append("jwks and jwks_uri are for token_endpoint_auth_method "
                            "'private_key_jwt'")
        if keyed and self.client_secret_sha256:
            problems.append("private_key_jwt: the client has keys, not a secret "
                            "(no client_secret_sha256)")
        if self.public:
            if self.token_endpoint_auth_method != "none":
                problems.append("public clients must use token_endpoint_auth_method = 'none'")
            if self.client_secret_sha256:
                problems.append("public clients must not have client_secret_sha256")
        else:
            if self.token_endpoint_auth_method == "none":
                problems.append("confidential clients cannot use token_endpoint_auth_method 'none'")
            if not self.client_secret_sha256 and not keyed:
                problems.append("confidential clients need client_secret_sha256 (or keys: "
                                "private_key_jwt)")
        return problems


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{(parts.netloc or '').lower()}"


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
            problems.extend(problems_of(str(path), exc, where))
            continue
        for problem in client.consistency_problems():
            problems.append(f"{path}: {where}{client.client_id}: {problem}")
        if client.client_id in seen:
            problems.append(f"{path}: {where}client_id: duplicate {client.client_id!r}")
        seen.add(client.client_id)
        clients.append(client)
    return tuple(clients)
