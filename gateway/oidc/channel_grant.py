"""The mini-program's login at ``/token``: an extension grant (RFC 6749 §4.5).

``grant_type=urn:roam:params:oauth:grant-type:channel-code`` with ``channel`` (``wechat``
or ``alipay``), ``code`` (from ``wx.login`` / ``my.getAuthCode``) and optionally
``phone_code`` (the ``getPhoneNumber`` button's). The platform redeemed the codes before
authlib ran (``RoamAuthorizationServer._read_for_token``); this grant only checks the
client and the scope and issues tokens for the identity found. No browser session: the
grant stands alone, and a refresh token comes with ``offline_access``.
"""

from __future__ import annotations

import time
from typing import Any

from authlib.oauth2.rfc6749 import (
    BaseGrant,
    InvalidGrantError,
    TokenEndpointMixin,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.hooks import hooked

from gateway.ids import new_id
from gateway.oidc.grant import Grant
from gateway.oidc.grant_types import GrantServer, RefreshTokensOfRoam
from gateway.oidc.refresh import token_digest

__all__ = ["CHANNEL_GRANT", "ChannelCodeGrant"]

CHANNEL_GRANT = "urn:roam:params:oauth:grant-type:channel-code"


class ChannelCodeGrant(RefreshTokensOfRoam, BaseGrant, TokenEndpointMixin):  # type: ignore[misc]
    GRANT_TYPE = CHANNEL_GRANT
    TOKEN_ENDPOINT_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post"]  # noqa: RUF012
    server: GrantServer

    def validate_token_request(self) -> None:
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError(
                f"The client is not allowed to use grant_type {self.GRANT_TYPE!r}.")
        self.request.client = client
        self.validate_requested_scope()
        identity = self.request.work.channel_identity
        if identity is None:  # no platform call was made for this request
            raise InvalidGrantError("The channel code was not redeemed; log in again.")
        scope = client.get_allowed_scope(self.request.payload.scope or "openid")
        self.request.user = Grant(
            grant_id=new_id(16), client_id=client.client_id, identity=identity, scope=scope,
            expires_at=int(time.time()) + self.server.refresh_token_ttl,
            offline="offline_access" in scope.split())

    @hooked  # type: ignore[untyped-decorator]
    def create_token_response(self) -> tuple[int, dict[str, Any], Any]:
        grant: Grant = self.request.user
        token: dict[str, Any] = self.generate_token(
            user=grant, scope=grant.scope, include_refresh_token=grant.offline)
        refresh_token = token.get("refresh_token")
        self.request.work.created = grant, token_digest(refresh_token) if refresh_token else ""
        return 200, token, self.TOKEN_RESPONSE_HEADER

    def refresh_token_for(self, grant: Grant) -> str:
        # RFC 9449 §5, as for a code: a public client's refresh token is bound to its key
        jkt = self.request.work.jkt if self.request.client.public else None
        return self.server.refresh.first(grant, jkt=jkt)
