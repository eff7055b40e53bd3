"""Key material: the signing key record, and key files (generate, load, check).

A key file's name carries its time and algorithm (``20261127T044439Z-es256-1a2b3c4d.pem``);
it is written 0600 from the start, and loading refuses anything group- or world-readable,
too weak, of another curve, or not what its name says. ``gateway.keys`` builds the ring.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc.jwk import ECKey, RSAKey

from gateway.errors import KeyError_

__all__ = [
    "ALGORITHMS",
    "MAX_KEY_FILE_BYTES",
    "PUBLIC_MEMBERS",
    "RSA_GENERATE_BITS",
    "RSA_MIN_BITS",
    "JoseKey",
    "PrivateKey",
    "SigningKey",
    "generate_key_file",
    "load_key_file",
    "new_private_key",
    "wrap_key",
]

#: The only JWS algorithms Roam signs or accepts.
ALGORITHMS: frozenset[str] = frozenset({"RS256", "ES256"})

RSA_MIN_BITS = 2048
RSA_GENERATE_BITS = 2048
MAX_KEY_FILE_BYTES = 64 * 1024

_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_NAME_RE = re.compile(r"^(?P<stamp>\d{8}T\d{6}Z)-(?P<alg>[a-z0-9]+)-[0-9a-f]+\.pem$")
PUBLIC_MEMBERS = {
    "RSA": ("kty", "kid", "use", "alg", "n", "e"),
    "EC": ("kty", "kid", "use", "alg", "crv", "x", "y"),
}

JoseKey = RSAKey | ECKey
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class SigningKey:
    """One private signing key and the facts the ring sorts and publishes it by.

    ``created`` is the epoch time from the file name (or its mtime when the name has none):
    the key signs from then on, so a future time means "published, not signing yet".
    """

    kid: str
    alg: str
    created: float
    key: JoseKey = field(repr=False, compare=False)
    path: Path | None = field(default=None, compare=False)

    def public_jwk(self) -> dict[str, Any]:
        """The public half as a JWK; built from an allow-list so no private member leaks."""
        data = self.key.as_dict(private=False)
        return {name: data[name] for name in PUBLIC_MEMBERS[self.key.key_type]}


def generate_key_file(
    directory: Path | str,
    alg: str = "RS256",
    *,
    not_before: float | None = None,
) -> Path:
    """Write a new PKCS#8 private key into the key directory and return its path.

    The file is created 0600 (never readable by others, not even for an instant) under a
    temporary name and linked into place, so a gateway starting meanwhile never reads half
    a key. ``not_before`` (default now) goes into the name: a future time publishes the
    key first and lets it sign from then on.
    """
    directory = Path(directory)
    private_key = new_private_key(alg)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    stamp = datetime.fromtimestamp(time.time() if not_before is None else not_before, UTC)
    name = f"{stamp.strftime(_STAMP_FORMAT)}-{alg.lower()}-{secrets.token_hex(4)}.pem"
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True)
        os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask
    path = directory / name
    temporary = directory / f".{name}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            view = memoryview(pem)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(temporary, path)  # unlike rename, never replaces an existing file
    finally:
        temporary.unlink(missing_ok=True)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


# -- helpers ----------------------------------------------------------------------------


def new_private_key(alg: str) -> PrivateKey:
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_GENERATE_BITS)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    raise KeyError_(f"unsupported signing algorithm {alg!r}; use one of {sorted(ALGORITHMS)}")


def wrap_key(
    private_key: PrivateKey, alg: str, created: float, path: Path | None = None
) -> SigningKey:
    """Import a checked cryptography key into joserfc once, with its kid and alg fixed."""
    jose_key: JoseKey
    if isinstance(private_key, rsa.RSAPrivateKey):
        jose_key = RSAKey.import_key(private_key, {"alg": alg, "use": "sig"})
    else:
        jose_key = ECKey.import_key(private_key, {"alg": alg, "use": "sig"})
    kid = jose_key.thumbprint()  # RFC 7638, over the public members only
    jose_key.ensure_kid()  # sets the same thumbprint as the JWK's "kid"
    return SigningKey(kid=kid, alg=alg, created=created, key=jose_key, path=path)


def load_key_file(path: Path) -> tuple[SigningKey | None, list[str]]:
    """Read and check one key file; return the key or every problem found with it."""
    problems: list[str] = []
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as error:
        return None, [f"unreadable ({error.strerror})"]
    try:
        info = os.fstat(fd)  # the opened file itself: no race with a swapped path
        if not stat.S_ISREG(info.st_mode):
            return None, ["not a regular file"]
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            problems.append(f"mode {mode:04o} lets group or others read it; chmod 600")
        if info.st_size > MAX_KEY_FILE_BYTES:
            return None, [*problems, "too large to be a key"]
        data = os.read(fd, MAX_KEY_FILE_BYTES + 1)
    except OSError as error:
        return None, [f"unreadable ({error.strerror})"]
    finally:
        os.close(fd)

    try:
        private_key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        return None, [*problems, "private key is encrypted; store it unencrypted with mode 600"]
    except (ValueError, UnsupportedAlgorithm):
        return None, [*problems, "not a PEM private key"]

    alg: str | None = None
    checked: PrivateKey | None = None
    if isinstance(private_key, rsa.RSAPrivateKey):
        alg, checked = "RS256", private_key
        if private_key.key_size < RSA_MIN_BITS:
            problems.append(f"RSA key has {private_key.key_size} bits; at least {RSA_MIN_BITS}")
    elif isinstance(private_key, ec.EllipticCurvePrivateKey):
        alg, checked = "ES256", private_key
        if not isinstance(private_key.curve, ec.SECP256R1):
            problems.append(f"EC key on curve {private_key.curve.name}; only P-256 is allowed")
    else:
        problems.append(f"{type(private_key).__name__} keys are not used; RSA or EC P-256 only")

    match = _NAME_RE.match(path.name)
    created = info.st_mtime
    if match:
        named_alg = match["alg"].upper()
        if alg is not None and named_alg != alg:
            problems.append(f"file name says {named_alg} but the key is for {alg}")
        stamp = datetime.strptime(match["stamp"], _STAMP_FORMAT).replace(tzinfo=UTC)
        created = stamp.timestamp()

    if problems or alg is None or checked is None:
        return None, problems
    return wrap_key(checked, alg, created, path), []


