"""authlib's authorization server, wired to Roam's clients, store and token minter.

authlib's server core is synchronous, so the HTTP layer runs these methods in a worker
thread (``anyio.to_thread``) and every store call made from here hops back to the event
loop with ``anyio.from_thread.run``. Single use is enforced by the store's atomic
``consume``, never by authlib's look-up-then-delete: codes and refresh tokens are first
*found* (so bad input changes nothing), checked by authlib, and only then consumed; the
loser of a race — or a replay — revokes the whole grant.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio.from_thread
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeGrant,
    AuthorizationServer,
    InvalidGrantError,
    InvalidRequestError,
    OAuth2Payload,
    OAuth2Request,
    RefreshTokenGrant,
)
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode, OpenIDToken

from gateway.config import SCOPE_CLAIMS, TokensSection
from gateway.identity import Identity
from gateway.oidc.clients import Client, ClientRegistry
from gateway.oidc.grant import Grant, new_id
from gateway.oidc.tokens import TokenMinter
from gateway.store.base import Store

T = TypeVar("T")


# --- requests and responses authlib understands --------------------------------------


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            self._datalist[key].append(value)
        self._data = {key: values[0] for key, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class HttpRequest(OAuth2Request):  # type: ignore[misc]
    """An already-read HTTP request: authlib must not touch the ASGI stream from a thread."""

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Mapping[str, str],
        *,
        query: Sequence[tuple[str, str]] = (),
        form: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(method, uri, headers=headers)
        self.issued_grant: Grant | None = None  # set when /authorize made a code
        self._args = dict(query)
        self._form = dict(form)
        self.payload = _Payload([*query, *form])

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


@dataclass
class Reply:
    """What authlib hands back: status, JSON-able body (or ""), and headers."""

    status: int
    body: Any
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def location(self) -> str | None:
        for name, value in self.headers:
            if name.lower() == "location":
                return value
        return None


def add_query(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query.extend(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


# --- the authorization code as authlib wants to see it -------------------------------


@dataclass(frozen=True)
class StoredCode:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str | None
    code_challenge_method: str | None
    grant: Grant

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.grant.nonce

    def get_auth_time(self) -> int:
        return self.grant.identity.auth_time

    def get_acr(self) -> str:
        return self.grant.identity.acr

    def get_amr(self) -> list[str]:
        return list(self.grant.identity.amr)

    def to_dict(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": self.scope,
            "code_challenge": self.code_challenge,
            "code_challenge_method": self.code_challenge_method,
            "grant": self.grant.to_dict(),
            "grant_id": self.grant.grant_id,
        }

    @classmethod
    def from_dict(cls, code: str, data: dict[str, Any]) -> StoredCode:
        return cls(
            code=code,
            client_id=data["client_id"],
            redirect_uri=data["redirect_uri"],
            scope=data["scope"],
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            grant=Grant.from_dict(data["grant"]),
        )


@dataclass(frozen=True)
class StoredRefreshToken:
    token: str
    grant: Grant
    scope: str

    def check_client(self, client: Client) -> bool:
        return bool(client.client_id == self.grant.client_id)

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return False  # the store's TTL already hides expired tokens

    def is_revoked(self) -> bool:
        return False  # revoked tokens are removed from the store


# --- grants ----------------------------------------------------------------------------


class _S256Only(CodeChallenge):  # type: ignore[misc]
    """PKCE with S256 only; required for public clients, honoured for confidential ones."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]  # noqa: RUF012 - authlib's class attribute
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        request = grant.request
        challenge = request.payload.data.get("code_challenge")
        method = request.payload.data.get("code_challenge_method")
        if request.client.public and not challenge:
            raise InvalidRequestError(
                "Public clients must use PKCE (code_challenge with S256).",
                redirect_uri=redirect_uri,
            )
        if challenge and method != "S256":
            raise InvalidRequestError(
                "code_challenge_method must be S256 ('plain' is refused).",
                redirect_uri=redirect_uri,
            )
        super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge(self, authorization_code: StoredCode) -> str | None:
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(
        self, authorization_code: StoredCode
    ) -> str | None:
        return authorization_code.code_challenge_method


class _IdTokens(OpenIDToken):  # type: ignore[misc]
    """Adds the ID token to token responses for ``openid`` grants (code and refresh)."""

    def __init__(self, bridge: RoamAuthorizationServer) -> None:
        self.bridge = bridge

    def encode_id_token(self, token: dict[str, Any], request: OAuth2Request) -> str:
        grant: Grant = request.user
        return self.bridge.minter.id_token(
            grant,
            request.client,
            access_token=token.get("access_token"),
            include_nonce=request.authorization_code is not None,
        )


class _OpenIDCode(OpenIDCode):  # type: ignore[misc]
    def __init__(self, bridge: RoamAuthorizationServer) -> None:
        super().__init__(require_nonce=False)
        self.bridge = bridge

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return False  # nonce replay is the RP's check; codes are single use anyway

    encode_id_token = _IdTokens.encode_id_token


class _CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]  # noqa: RUF012
    server: RoamAuthorizationServer

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        pending: Grant = request.user
        data = request.payload.data
        grant = Grant(
            grant_id=new_id(16),
            client_id=request.client.client_id,
            identity=pending.identity,
            scope=request.scope,
            sid=pending.sid,
            nonce=data.get("nonce"),
            offline="offline_access" in request.scope.split(),
        )
        request.issued_grant = grant
        stored = StoredCode(
            code=code,
            client_id=request.client.client_id,
            redirect_uri=request.payload.redirect_uri,
            scope=request.scope,
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            grant=grant,
        )
        self.server.call(self.server.store.upsert, "code", code, stored.to_dict(),
                         self.server.ttl.code_ttl)

    def query_authorization_code(self, code: str, client: Client) -> StoredCode | None:
        data = self.server.call(self.server.store.find, "code", code)
        if data is None or data.get("client_id") != client.client_id:
            return None
        return StoredCode.from_dict(code, data)

    def authenticate_user(self, authorization_code: StoredCode) -> Grant:
        # Every check has passed: now, and only now, use the code up.
        self.server.use_once("code", authorization_code.code, authorization_code.grant)
        return authorization_code.grant

    def delete_authorization_code(self, authorization_code: StoredCode) -> None:
        """Consumed already; the used record stays until its TTL so replays are caught."""


class _RefreshGrant(RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]  # noqa: RUF012
    INCLUDE_NEW_REFRESH_TOKEN = True
    server: RoamAuthorizationServer

    def authenticate_refresh_token(self, refresh_token: str) -> StoredRefreshToken | None:
        data = self.server.call(self.server.store.find, "refresh_token", refresh_token)
        if data is None:
            return None
        grant = Grant.from_dict(data["grant"])
        if not self.server.call(self.server.session_alive, grant):
            return None
        return StoredRefreshToken(token=refresh_token, grant=grant, scope=data["scope"])

    def authenticate_user(self, refresh_token: StoredRefreshToken) -> Grant:
        self.server.use_once("refresh_token", refresh_token.token, refresh_token.grant)
        return refresh_token.grant

    def revoke_old_credential(self, refresh_token: StoredRefreshToken) -> None:
        """Consumed already; kept until its TTL so a reuse revokes the grant."""


# --- the server --------------------------------------------------------------------------


class RoamAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(
        self,
        *,
        clients: ClientRegistry,
        store: Store,
        minter: TokenMinter,
        ttl: TokensSection,
        session_alive: Callable[[Grant], Coroutine[Any, Any, bool]],
    ) -> None:
        super().__init__(scopes_supported=list(SCOPE_CLAIMS))
        self.clients = clients
        self.store = store
        self.session_alive = session_alive
        self.minter = minter
        self.ttl = ttl
        self.register_token_generator("default", self._generate_token)
        self.register_grant(_CodeGrant, [_S256Only(required=True), _OpenIDCode(self)])
        self.register_grant(_RefreshGrant, [_IdTokens(self)])

    # Event-loop bridge ------------------------------------------------------------------

    def call(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """Run a store coroutine on the event loop from authlib's worker thread."""
        return anyio.from_thread.run(fn, *args)

    def use_once(self, kind: str, id: str, grant: Grant) -> None:
        result = self.call(self.store.consume, kind, id)
        if result is None:
            raise InvalidGrantError("The grant has expired or was revoked.")
        _, first_use = result
        if not first_use:
            # A replay: whoever holds the other copy may be an attacker. End the grant.
            self.call(self.store.revoke_by_grant, grant.grant_id)
            raise InvalidGrantError("This grant was already used; its tokens are revoked.")

    # authlib's framework hooks ------------------------------------------------------------

    def query_client(self, client_id: str) -> Client | None:
        return self.clients.get(client_id)

    def create_oauth2_request(self, request: HttpRequest) -> HttpRequest:
        return request

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError("Roam has no JSON endpoints through authlib yet")

    def handle_response(self, status: int, body: Any, headers: Any) -> Reply:
        return Reply(status, body, list(headers or []))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """authlib's signals are unused: Roam audits at the HTTP layer."""

    def _generate_token(
        self,
        grant_type: str,
        client: Client,
        user: Grant | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        if user is None:  # pragma: no cover - both grants always pass the grant
            raise InvalidGrantError("No grant to issue tokens for.")
        scope = scope or ""
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": self.minter.access_token(user, client, scope),
            "expires_in": self.minter.access_token_ttl,
            "scope": scope,
        }
        if include_refresh_token:
            token["refresh_token"] = new_id(32)
        return token

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        grant: Grant = request.user
        now = int(time.time())
        if request.authorization_code is not None:
            # First redemption: the grant record is what access tokens are checked against.
            grant = Grant(**{**grant.__dict__, "expires_at": now + self.ttl.refresh_token_ttl})
            request.user = grant
            self.call(self.store.upsert, "grant", grant.grant_id, grant.to_dict(),
                      self.ttl.refresh_token_ttl)
        refresh_token = token.get("refresh_token")
        if refresh_token:
            ttl = min(self.ttl.refresh_token_ttl, max(grant.expires_at - now, 1))
            payload = {"grant": grant.to_dict(), "grant_id": grant.grant_id,
                       "scope": token.get("scope", "")}
            self.call(self.store.upsert, "refresh_token", refresh_token, payload, ttl)


def pending_grant(identity: Identity, client_id: str, sid: str | None) -> Grant:
    """The "user" handed to authlib at /authorize; the real grant id is made with the code."""
    return Grant(grant_id="", client_id=client_id, identity=identity, scope="", sid=sid)
