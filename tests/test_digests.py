"""gateway/digests.py: SHA-256 of high-entropy secrets, and HMACs under the gateway's
secret for guessable store ids."""

from __future__ import annotations

import hashlib

import pytest

from gateway.digests import KeyedDigests, secret_digest, secret_matches

NUMBER = "430102199001010016"


def test_a_digest_depends_on_the_secret_and_the_purpose() -> None:
    one, other = KeyedDigests(b"a" * 32), KeyedDigests(b"b" * 32)
    assert one.of("bind-id", NUMBER) == KeyedDigests(b"a" * 32).of("bind-id", NUMBER)
    assert one.of("bind-id", NUMBER) != other.of("bind-id", NUMBER)
    assert one.of("bind-id", NUMBER) != one.of("face-id", NUMBER)
    assert one.of("bind-id", NUMBER) != hashlib.sha256(NUMBER.encode()).hexdigest()
    assert len(one.of("bind-id", NUMBER)) == 64


def test_a_short_secret_is_refused_and_none_is_ever_printed() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        KeyedDigests(b"short")
    assert "secret" in repr(KeyedDigests(b"c" * 32))
    assert "ccc" not in repr(KeyedDigests(b"c" * 32))
    assert KeyedDigests.ephemeral().of("x", "1") != KeyedDigests.ephemeral().of("x", "1")


def test_a_secret_is_kept_as_its_sha256_and_matched_against_it() -> None:
    secret = "Zm9vYmFyYmF6cXV4cXV1eHh5enp5eHd2dXRzcnFwb25t"
    kept = secret_digest(secret)
    assert kept == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in kept
    assert secret_matches(kept, secret)
    assert not secret_matches(kept, secret[:-1])
    assert not secret_matches(kept, "")
