"""The ``sub`` each client sees: the person's own, or one of its sector alone (OIDC Core §8).

A client registered with ``subject_type = "pairwise"`` gets, for each person, an
identifier that no client of another sector can link to its own: HMAC-SHA256 under the
gateway's secret (``[gateway] secret_env``, the same in every process) of the sector and
the person's ``sub``. It is stable across logins and sessions, the same for every client
of one sector (its ``sector_identifier_uri``'s host, or its redirect URIs' one host), and
says nothing about the person to anyone without the secret. Public clients, the
default for systems the province decides may link, get the person's ``sub``.

Everything a client is told carries its view — ID and access tokens, userinfo,
introspection, back-channel logout tokens — and what it sends back (an access token, an
``id_token_hint``) is compared in that view. Inside the gateway the person's own ``sub``
stays the key (grants, sessions, the audit trail).
"""

from __future__ import annotations

from gateway.config import ClientConfig
from gateway.digests import KeyedDigests
from gateway.oidc.clients import ClientRegistry

__all__ = ["Subjects"]


class Subjects:
    def __init__(self, digests: KeyedDigests, clients: ClientRegistry) -> None:
        self.digests = digests
        self.clients = clients

    def of(self, client: ClientConfig, subject: str) -> str:
        """The ``sub`` ``client`` sees for the person ``subject``."""
        if client.subject_type != "pairwise":
            return subject
        return self.digests.pairwise(client.sector, subject)

    def of_client_id(self, client_id: str, subject: str) -> str:
        """As :meth:`of`, for a client by id; an unknown client sees nothing (``""``)."""
        client = self.clients.get(client_id)
        return "" if client is None else self.of(client.config, subject)
