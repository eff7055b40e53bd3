"""authlib's grants and OIDC extensions, configured the way Roam runs them.

They never touch the store: what they look up was read into ``request.work`` before
authlib ran, and what they decide is queued there for afterwards (``gateway.oidc.work``).
Of the authorization server that runs them they need only :class:`GrantServer`.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Protocol

from authlib.oauth2.rfc6749 import (
    AuthorizationCodeGrant,
    InvalidGrantError,
    InvalidRequestError,
    OAuth2Request,
    RefreshTokenGrant,
)
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode, OpenIDToken

from gateway.ids import new_id
from gateway.oidc.client_grants import ClientGrants
from gateway.oidc.clients import TOKEN_AUTH_METHODS, Client
from gateway.oidc.codes import StoredCode
from gateway.oidc.grant import Grant
from gateway.oidc.minter import TokenMinter
from gateway.oidc.refresh import PresentedToken, RefreshTokens
from gateway.store.base import Store

__all__ = [
    "PENDING_GRACE",
    "CodeGrant",
    "GrantServer",
    "IdTokens",
    "OpenIDCodeExtension",
    "RefreshGrant",
    "RefreshTokensOfRoam",
    "S256Only",
]


PENDING_GRACE = 30
"""Seconds a code's pending grant outlives the code: time for a redemption that consumed
the code at its last moment to write the grant (a slower one is refused, never let in)."""


class GrantServer(Protocol):
    """What Roam's grant types use of the authorization server that runs them."""

    @property
    def store(self) -> Store: ...

    @property
    def code_ttl(self) -> int: ...

    @property
    def refresh(self) -> RefreshTokens: ...

    @property
    def refresh_token_ttl(self) -> int: ...

    @property
    def client_grants(self) -> ClientGrants: ...

    def tokens_for(self, grant: Grant, client: Client, scope: str, *,
                   jkt: str | None = None) -> dict[str, Any]: ...


class S256Only(CodeChallenge):  # type: ignore[misc]
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


class IdTokens(OpenIDToken):  # type: ignore[misc]
    """Adds the ID token to token responses for ``openid`` grants (code and refresh)."""

    def __init__(self, minter: TokenMinter) -> None:
        self.minter = minter

    def encode_id_token(self, token: dict[str, Any], request: OAuth2Request) -> str:
        grant: Grant = request.user
        return self.minter.id_token(
            grant,
            request.client,
            access_token=token.get("access_token"),
            include_nonce=request.authorization_code is not None,
        )


class OpenIDCodeExtension(OpenIDCode):  # type: ignore[misc]
    def __init__(self, minter: TokenMinter) -> None:
        super().__init__(require_nonce=False)
        self.minter = minter

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return False  # nonce replay is the RP's check; codes are single use anyway

    encode_id_token = IdTokens.encode_id_token


class RefreshTokensOfRoam:
    """authlib decides *whether* a refresh token is issued; Roam makes it
    (``gateway.oidc.refresh``), which the server's generic token generator cannot."""

    def generate_token(self, user: Grant | None = None, scope: str | None = None,
                       grant_type: str | None = None, expires_in: int | None = None,
                       include_refresh_token: bool = True) -> dict[str, Any]:
        if user is None:  # pragma: no cover - both grants always pass the grant
            raise InvalidGrantError("No grant to issue tokens for.")
        request: OAuth2Request = self.request  # type: ignore[attr-defined]
        server: GrantServer = self.server  # type: ignore[attr-defined]
        token = server.tokens_for(user, request.client, scope or "", jkt=request.work.jkt)
        if include_refresh_token and user is not None:
            token["refresh_token"] = self.refresh_token_for(user)
        return token

    def refresh_token_for(self, grant: Grant) -> str:
        raise NotImplementedError


class CodeGrant(RefreshTokensOfRoam, AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = list(TOKEN_AUTH_METHODS)  # noqa: RUF012
    server: GrantServer

    def generate_authorization_code(self) -> str:
        # authlib draws its 48 characters one SystemRandom call each (~70 µs, 1.6 % of a
        # silent hop's CPU); one draw of 36 bytes gives as many characters and more bits
        return new_id(36)

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        pending: Grant = request.user
        data = request.payload.data
        grant = Grant(
            grant_id="",  # the client's grant in the session: ``ClientGrants.place`` finds it
            client_id=request.client.client_id,
            identity=pending.identity,
            scope=request.scope,
            sid=pending.sid,
            nonce=data.get("nonce"),
            offline="offline_access" in request.scope.split(),
            until=pending.until,
        )
        stored = StoredCode(
            code=code,
            client_id=request.client.client_id,
            redirect_uri=request.payload.redirect_uri,
            scope=request.scope,
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            grant=grant,
        )
        request.work.then.append(partial(self.server.client_grants.place, stored,
                                         request.work.link_ahead))

    def query_authorization_code(self, code: str, client: Client) -> StoredCode | None:
        stored: StoredCode | None = self.request.work.codes.get(code)
        if stored is None or stored.client_id != client.client_id:
            return None
        return stored

    def authenticate_user(self, authorization_code: StoredCode) -> Grant:
        # Consumed already: the server does that between authlib's checks and issuing.
        return authorization_code.grant

    def refresh_token_for(self, grant: Grant) -> str:
        # RFC 9449 §5: a public client's refresh token is bound to its DPoP key; a
        # confidential client's is bound to its authentication already
        jkt = self.request.work.jkt if self.request.client.public else None
        return self.server.refresh.first(grant, jkt=jkt)

    def delete_authorization_code(self, authorization_code: StoredCode) -> None:
        """Consumed instead; the used record stays until its TTL so replays are caught."""


class RefreshGrant(RefreshTokensOfRoam, RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = list(TOKEN_AUTH_METHODS)  # noqa: RUF012
    INCLUDE_NEW_REFRESH_TOKEN = True
    server: GrantServer

    def authenticate_refresh_token(self, refresh_token: str) -> PresentedToken | None:
        # Parsed (its session checked if need be) before authlib ran; None: dead or junk.
        found: PresentedToken | None = self.request.work.refresh_tokens.get(refresh_token)
        return found

    def authenticate_user(self, refresh_token: PresentedToken) -> Grant | None:
        # The grant the swap returned, once it proved the token current (the server
        # swaps between authlib's checks and issuing).
        refreshed: Grant | None = self.request.work.refreshed
        return refreshed

    def refresh_token_for(self, grant: Grant) -> str:
        made: str | None = self.request.work.next_refresh_token  # made for the swap
        if made is None:  # pragma: no cover - the server swaps before authlib issues
            raise InvalidGrantError("The refresh token was not rotated.")
        return made

    def revoke_old_credential(self, refresh_token: PresentedToken) -> None:
        """Retired by the swap that made its successor current."""
