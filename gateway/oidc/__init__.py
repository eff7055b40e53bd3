"""The OpenID Connect provider: authlib's protocol logic, Roam's store and tokens.

Endpoints: ``authorize``, ``token_endpoint``, ``userinfo``, ``lifecycle`` (revocation,
introspection), ``discovery`` (and JWKS), ``end_session``. Around authlib: ``server`` (its
authorization server, with the store's single-use step), ``grant_types``, ``bridge``
(Starlette ↔ authlib), ``work`` (store I/O around authlib). The records: ``grant``,
``codes``, ``refresh``; ``minter`` signs tokens, ``active`` says whether one still holds,
``id_token_hint`` whether a token is an ID token ``/logout`` may take as a hint.
``logout`` ends a session everywhere, ``backchannel`` tells the RPs.
"""

from gateway.oidc.active import ActiveTokens
from gateway.oidc.authorize import Authorizer
from gateway.oidc.backchannel import BackchannelLogout
from gateway.oidc.clients import Client, ClientRegistry
from gateway.oidc.delivery import Delivery
from gateway.oidc.discovery import Discovery
from gateway.oidc.end_session import EndSession
from gateway.oidc.grant import Grant
from gateway.oidc.lifecycle import LifecycleEndpoints, TokenLookup
from gateway.oidc.logout import SessionLogout
from gateway.oidc.minter import TokenMinter
from gateway.oidc.refresh import RefreshTokens
from gateway.oidc.server import RoamAuthorizationServer
from gateway.oidc.token_endpoint import TokenEndpoint
from gateway.oidc.userinfo import UserinfoEndpoint

__all__ = [
    "ActiveTokens",
    "Authorizer",
    "BackchannelLogout",
    "Client",
    "ClientRegistry",
    "Delivery",
    "Discovery",
    "EndSession",
    "Grant",
    "LifecycleEndpoints",
    "RefreshTokens",
    "RoamAuthorizationServer",
    "SessionLogout",
    "TokenEndpoint",
    "TokenLookup",
    "TokenMinter",
    "UserinfoEndpoint",
]
