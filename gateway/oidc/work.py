"""The store I/O of one authlib call, done on the event loop around it.

authlib's server core is synchronous. Rather than hop to a worker thread and back for
every store call — measured at about 1.3 ms of CPU per refresh grant, most of the gap to
the floor (docs/performance.md) — what authlib will look up is read *before* it runs,
and what it decides is written *after*, single-use things first. authlib itself then
runs inline: with no I/O left it is a few dozen microseconds of pure computation.

Order after authlib: every ``use_once`` code is consumed atomically and a refresh token's
``rotation`` is swapped in on its grant; if either was used before (a replay, or the
loser of a race) nothing else is written, the grant is revoked and the client gets
``invalid_grant`` — the tokens authlib made are never sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.oidc.grant import Grant
    from gateway.oidc.records import StoredCode
    from gateway.oidc.refresh import PresentedToken


@dataclass(frozen=True)
class Rotation:
    """Retire ``presented`` in favour of the grant version ``new``."""

    presented: PresentedToken
    new: str


@dataclass
class StoreWork:
    # read before authlib runs
    codes: dict[str, StoredCode] = field(default_factory=dict)
    refresh_tokens: dict[str, PresentedToken] = field(default_factory=dict)
    found: dict[str, Any] = field(default_factory=dict)  # revocation / introspection
    # decided by authlib, done after it
    use_once: list[tuple[str, str, Grant]] = field(default_factory=list)
    rotation: Rotation | None = None
    then: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)
