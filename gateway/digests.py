"""Digests kept in the store instead of what they are made of.

Secrets the gateway made or that clients hold (a session cookie's secret, a client
secret, an initial access token) are high-entropy random strings: a plain SHA-256 of
one is kept (:func:`secret_digest`) and compared in constant time
(:func:`secret_matches`). A slow KDF is for human passwords only.

Keyed digests: store ids made from values a reader of the store could guess.

A resident ID number has little entropy (an area, a birth date, three digits and a check
character), so a plain SHA-256 of one in a Redis key is as good as the number to anyone
who can list the keys and try candidates. HMAC-SHA-256 under the gateway's own secret
(``[gateway] secret_env`` / ``secret_file``, the same in every process) is not.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["KeyedDigests", "secret_digest", "secret_matches"]

MIN_SECRET_BYTES = 32


def secret_digest(secret: str) -> str:
    """What the store keeps of a high-entropy secret: hex SHA-256 (a cookie's secret, an
    operator's console session, ``client_secret_sha256``, an initial access token)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(stored_digest: str, secret: str) -> bool:
    """Whether ``secret`` is the one ``stored_digest`` was made of (constant time)."""
    return hmac.compare_digest(stored_digest, secret_digest(secret))


class KeyedDigests:
    def __init__(self, secret: bytes, *, lasting: bool = True) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the gateway secret must be at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret
        self.lasting = lasting  # the same secret in every process and after a restart

    @classmethod
    def ephemeral(cls) -> KeyedDigests:
        """A random secret of this process alone (the embedded demo, tests)."""
        return cls(secrets.token_bytes(MIN_SECRET_BYTES), lasting=False)

    def of(self, purpose: str, value: str) -> str:
        """Hex HMAC of ``value``; ``purpose`` keeps digests of one value for two uses apart."""
        message = f"{purpose}\x1f{value}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def pairwise(self, sector: str, subject: str) -> str:
        """The ``sub`` a sector sees for the person ``subject`` (OIDC Core §8): the same for
        every client and system of the sector, unlinkable by any other."""
        return "p" + self.of("pairwise-sub", f"{sector}\x1f{subject}")[:52]

    def __repr__(self) -> str:
        return "KeyedDigests(<secret>)"
