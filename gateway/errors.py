"""Roam's one exception tree.

Every error the gateway raises on purpose derives from ``RoamError``; errors from
redis, httpx and joserfc are converted into it at the module that calls them::

    RoamError
    ├── ConfigError            bad configuration; the CLI prints every problem and exits 2
    ├── StoreError             the store is unreachable or answered nonsense (wraps redis errors)
    ├── AuditError             the audit trail's sink cannot be written or read (wraps
    │                          PostgreSQL and file errors; gateway/audit/)
    ├── KeyError_              a signing key is missing, unreadable or of a refused algorithm
    ├── TokenError             a JWT failed verification (signature, alg, iss, aud, exp, typ)
    ├── LoginError             an identity source refused the credentials
    │   └── LockedOut          too many failures: the account or source is locked for a while
    ├── ProtocolError          an OAuth 2 / OIDC error with its RFC code
    │   ├── is ``redirectable`` only once client_id and redirect_uri are known to be registered
    │   └── carries ``status`` for JSON endpoints (400, or 401 for client authentication)
    ├── PageError              a browser-facing error rendered as a Chinese page with a reference id
    ├── OutboundRefused        a client-registered URL the SSRF guard refuses (gateway/outbound.py)
    └── RouteError             no system for a service item and region (gateway/routing/resolve.py)
        ├── UnknownItem        with suggestions of items that exist
        ├── UnknownRegion      with suggestions of regions that exist
        └── NoRoute            with the systems nearby that handle the item

Browser-facing errors always carry a reference id (``ref``), logged beside the cause so
support can find it; the page never shows secrets or unmasked personal data.
"""

from __future__ import annotations

import secrets

__all__ = [
    "AuditError",
    "ConfigError",
    "KeyError_",
    "LockedOut",
    "LoginError",
    "PageError",
    "ProtocolError",
    "RoamError",
    "StoreError",
    "TokenError",
    "new_reference",
]


def new_reference() -> str:
    """A short id a citizen can read out to support; it is logged with the cause."""
    return secrets.token_hex(6).upper()


class RoamError(Exception):
    """Base of every error Roam raises on purpose."""


class ConfigError(RoamError):
    """One or more configuration problems, each naming its file and key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class StoreError(RoamError):
    """The store failed; the request cannot be completed safely."""


class AuditError(RoamError):
    """The audit sink failed (unreachable, not writable, unreadable). The message names
    the sink and the cause, never a password. ``retry``: the same write may succeed
    later (an outage); False: these events can never be stored as they are."""

    def __init__(self, message: str, *, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


class KeyError_(RoamError):
    """A signing key problem."""


class TokenError(RoamError):
    """A token failed verification. The message is safe to show to the caller."""


class LoginError(RoamError):
    """The identity source refused the credentials (message is safe to show)."""


class LockedOut(LoginError):
    """Too many failed attempts; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProtocolError(RoamError):
    """An OAuth 2 / OIDC error, with the RFC error code and how it may be delivered."""

    def __init__(
        self,
        error: str,
        description: str,
        *,
        status: int = 400,
        redirectable: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status
        self.redirectable = redirectable
        self.headers = headers or {}


class PageError(RoamError):
    """An error shown to a person as a Chinese page with a reference id."""

    def __init__(self, title: str, detail: str, *, status: int = 400,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{title}: {detail}")
        self.title = title
        self.detail = detail
        self.status = status
        self.headers = headers or {}  # e.g. Retry-After on a 503
        self.ref = new_reference()
