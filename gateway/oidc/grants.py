"""authlib's grants and OIDC extensions, configured the way Roam runs them.

They never touch the store: what they look up was read into ``request.work`` before
authlib ran, and what they decide is queued there for afterwards (``gateway.oidc.work``).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749 import (
    AuthorizationCodeGrant,
    InvalidRequestError,
    OAuth2Request,
    RefreshTokenGrant,
)
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode, OpenIDToken

from gateway.oidc.clients import Client
from gateway.oidc.grant import Grant, new_id
from gateway.oidc.records import StoredCode
from gateway.oidc.refresh import PresentedToken

if TYPE_CHECKING:
    from gateway.oidc.server import RoamAuthorizationServer


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


class OpenIDCodeExtension(OpenIDCode):  # type: ignore[misc]
    def __init__(self, bridge: RoamAuthorizationServer) -> None:
        super().__init__(require_nonce=False)
        self.bridge = bridge

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return False  # nonce replay is the RP's check; codes are single use anyway

    encode_id_token = IdTokens.encode_id_token


class CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
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
        store, ttl = self.server.store, self.server.ttl.code_ttl
        request.work.then.append(partial(store.upsert, "code", code, stored.to_dict(), ttl))

    def query_authorization_code(self, code: str, client: Client) -> StoredCode | None:
        stored: StoredCode | None = self.request.work.codes.get(code)
        if stored is None or stored.client_id != client.client_id:
            return None
        return stored

    def authenticate_user(self, authorization_code: StoredCode) -> Grant:
        # Every check has passed: the code is used up before any answer leaves.
        self.request.work.use_once.append(
            ("code", authorization_code.code, authorization_code.grant))
        return authorization_code.grant

    def delete_authorization_code(self, authorization_code: StoredCode) -> None:
        """Consumed instead; the used record stays until its TTL so replays are caught."""


class RefreshGrant(RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]  # noqa: RUF012
    INCLUDE_NEW_REFRESH_TOKEN = True
    server: RoamAuthorizationServer

    def authenticate_refresh_token(self, refresh_token: str) -> PresentedToken | None:
        # Read (and its session checked) before authlib ran; absent means dead or unknown.
        found: PresentedToken | None = self.request.work.refresh_tokens.get(refresh_token)
        return found

    def authenticate_user(self, refresh_token: PresentedToken) -> Grant:
        return refresh_token.grant

    def revoke_old_credential(self, refresh_token: PresentedToken) -> None:
        """Retired by the rotation ``save_token`` queued: one swap on the grant record."""
