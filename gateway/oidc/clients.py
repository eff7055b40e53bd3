"""Relying parties as authlib sees them: a thin adapter over ``ClientConfig``.

Client secrets are high-entropy random strings, so a SHA-256 digest compared in
constant time is the right check; a slow password KDF here would cap token throughput.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable, Iterator

from authlib.oauth2.rfc6749 import ClientMixin

from gateway.config import ClientConfig
from gateway.digests import secret_digest
from gateway.identity import SCOPE_CLAIMS

__all__ = ["TOKEN_AUTH_METHODS", "TOKEN_EXCHANGE", "Client", "ClientRegistry"]

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # RFC 8693 §2.1
TOKEN_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none", "private_key_jwt")
"""How a client may authenticate at /token (each client: the one it registered)."""


class Client(ClientMixin):  # type: ignore[misc]
    def __init__(self, config: ClientConfig, *,
                 secret_digests: Callable[[], tuple[str, ...]] | None = None) -> None:
        self.config = config
        self.client_id = config.client_id
        # a registered client's: the digests its secret may match now (the current one,
        # and the one before a rotation while the overlap lasts; RegisteredClient's rule)
        self.secret_digests = secret_digests

    def __repr__(self) -> str:
        return f"Client({self.client_id!r})"

    @property
    def client_metadata(self) -> dict[str, list[str]]:
        """The registration metadata authlib's endpoints read."""
        return {"post_logout_redirect_uris": list(self.config.post_logout_redirect_uris)}

    @property
    def public(self) -> bool:
        return self.config.public

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # OIDC requires redirect_uri on every request; never guess one.
        return None

    def get_allowed_scope(self, scope: str) -> str:
        if not scope:
            return ""
        allowed = set(self.config.scopes)
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.config.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        expected = self.config.client_secret_sha256
        if not expected or self.public:
            return False
        digest = secret_digest(client_secret)
        digests = (expected,) if self.secret_digests is None else self.secret_digests()
        return any(hmac.compare_digest(digest, known) for known in digests)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        # One registered method for every endpoint that authenticates clients.
        return bool(method == self.config.token_endpoint_auth_method)

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type == TOKEN_EXCHANGE:  # allowed by naming the systems it may reach
            return bool(self.config.token_exchange_audiences)
        return grant_type in self.config.grant_types

    def released_claims(self, scopes: Iterable[str]) -> frozenset[str]:
        """Claims this client may receive for these scopes: scope claims ∩ approved claims."""
        approved = set(self.config.claims)
        wanted = {c for s in scopes if s in self.config.scopes for c in SCOPE_CLAIMS.get(s, ())}
        return frozenset(wanted & approved)


class ClientRegistry:
    """Every client by id: the static ones of clients.toml, and those that registered
    themselves, which ``gateway.oidc.client_directory`` keeps in step with the store.

    A look-up is a dict read (authlib asks synchronously, on every request); a static
    client's id cannot be taken by a registered one."""

    def __init__(self, configs: Iterable[ClientConfig]) -> None:
        self._static = {c.client_id: Client(c) for c in configs}
        self._registered: dict[str, Client] = {}
        # set by gateway.oidc.client_directory: reads one registered client from the store
        self.loader: Callable[[str], Awaitable[None]] | None = None

    async def ensure(self, client_id: str | None) -> None:
        """Before an async entry point looks ``client_id`` up: if this process does not
        know it, read it from the store (another process registered it a moment ago)."""
        if self.loader is not None and client_id and self.get(client_id) is None:
            await self.loader(client_id)

    def get(self, client_id: str | None) -> Client | None:
        if not client_id:
            return None
        return self._static.get(client_id) or self._registered.get(client_id)

    def is_static(self, client_id: str) -> bool:
        return client_id in self._static

    def put(self, client: Client) -> None:
        if client.client_id not in self._static:
            self._registered[client.client_id] = client

    def drop(self, client_id: str) -> None:
        self._registered.pop(client_id, None)

    def replace_registered(self, clients: Iterable[Client]) -> None:
        """The registered clients, all at once (a reload from the store)."""
        self._registered = {c.client_id: c for c in clients if c.client_id not in self._static}

    def __iter__(self) -> Iterator[Client]:
        return iter([*self._static.values(), *self._registered.values()])

    def __len__(self) -> int:
        return len(self._static) + len(self._registered)
