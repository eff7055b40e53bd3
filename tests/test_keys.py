"""Tests for gateway.keys: key files, the key ring, sign/verify and claim checks.

Attack tokens and cross-checks are built by hand (base64url + json + hmac, and
``cryptography`` directly) so they do not lean on the JOSE library under test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from joserfc import jws

from gateway import keys as keys_module
from gateway.errors import KeyError_, TokenError
from gateway.keys import KeyRing, SigningKey, generate_key_file, validate_claims

ISSUER = "https://sso.hunan.example.gov.cn"
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


# -- helpers independent of the code under test -------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def segment(obj: dict[str, Any]) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def hand_token(header: dict[str, Any], claims: dict[str, Any], sign: Any = None) -> str:
    """A compact JWS; ``sign`` maps the signing input to signature bytes (None: empty)."""
    signing_input = f"{segment(header)}.{segment(claims)}"
    signature = b"" if sign is None else sign(signing_input.encode("ascii"))
    return f"{signing_input}.{b64url(signature)}"


def rs256_signer(key: rsa.RSAPrivateKey) -> Any:
    return lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def es256_signer(key: ec.EllipticCurvePrivateKey) -> Any:
    def sign(data: bytes) -> bytes:
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return sign


def load_private(path: Path) -> Any:
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 by hand: required members only, sorted, no whitespace, SHA-256."""
    names = ("e", "kty", "n") if jwk["kty"] == "RSA" else ("crv", "kty", "x", "y")
    canonical = json.dumps({n: jwk[n] for n in names}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def write_pem(path: Path, key: Any, mode: int = 0o600) -> Path:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(mode)
    return path


def fresh_claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "sub": "u1", "aud": "rp-1", "iat": now, "exp": now + 300, **extra}


@pytest.fixture(scope="module")
def ring() -> KeyRing:
    return KeyRing.ephemeral()


@pytest.fixture
def zero_umask() -> Iterator[None]:
    """A umask of 0 proves the modes come from the code, not from the environment."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


# -- key files --------------------------------------------------------------------------


@pytest.mark.usefixtures("zero_umask")
@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_generate_key_file_modes_and_name(tmp_path: Path, alg: str) -> None:
    directory = tmp_path / "keys" / "signing"
    path = generate_key_file(directory, alg)
    assert path.parent == directory
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert path.name.endswith(".pem")
    assert f"-{alg.lower()}-" in path.name
    assert [p.name for p in directory.iterdir()] == [path.name]  # no temporary left behind
    key = load_private(path)
    if alg == "RS256":
        assert isinstance(key, rsa.RSAPrivateKey)
        assert key.key_size == 2048
    else:
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert isinstance(key.curve, ec.SECP256R1)
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8


def test_generate_refuses_other_algs(tmp_path: Path) -> None:
    with pytest.raises(KeyError_):
        generate_key_file(tmp_path, "HS256")
    assert list(tmp_path.iterdir()) == []


def test_load_back_kid_is_thumbprint_and_stable(tmp_path: Path) -> None:
    rs = generate_key_file(tmp_path, "RS256")
    es = generate_key_file(tmp_path, "ES256")
    first = KeyRing.from_directory(tmp_path)
    second = KeyRing.from_directory(tmp_path)
    assert first.algs == {"RS256", "ES256"}
    assert [k.kid for k in first.keys] == [k.kid for k in second.keys]
    jwks = {jwk["alg"]: jwk for jwk in first.jwks()["keys"]}
    for alg, path in (("RS256", rs), ("ES256", es)):
        key = first.signing_key(alg)
        assert key.path == path
        assert key.kid == thumbprint(jwks[alg]) == jwks[alg]["kid"]
        assert first.find(key.kid) is key
        # the published key is the public half of the file's key
        public = load_private(path).public_key()
        numbers = public.public_numbers()
        if alg == "RS256":
            assert int.from_bytes(b64url_decode(jwks[alg]["n"]), "big") == numbers.n
        else:
            assert int.from_bytes(b64url_decode(jwks[alg]["x"]), "big") == numbers.x
    assert first.find("no-such-kid") is None


def test_created_comes_from_file_name(tmp_path: Path) -> None:
    when = 1_800_000_000.0
    path = generate_key_file(tmp_path, "ES256", not_before=when)
    assert path.name.startswith("20270115T080000Z-es256-")
    assert KeyRing.from_directory(tmp_path).keys[0].created == when


def test_unnamed_file_uses_mtime_and_key_type(tmp_path: Path) -> None:
    path = write_pem(tmp_path / "legacy.pem", ec.generate_private_key(ec.SECP256R1()))
    os.utime(path, (1_700_000_000, 1_700_000_000))
    key = KeyRing.from_directory(tmp_path).keys[0]
    assert (key.alg, key.created) == ("ES256", 1_700_000_000)


def test_newest_key_of_each_alg_signs_and_all_are_published(tmp_path: Path) -> None:
    now = time.time()
    older = generate_key_file(tmp_path, "ES256", not_before=now - 7200)
    newer = generate_key_file(tmp_path, "ES256", not_before=now - 60)
    rsa_key = generate_key_file(tmp_path, "RS256", not_before=now - 3600)
    ring = KeyRing.from_directory(tmp_path)
    assert ring.signing_key("ES256").path == newer
    assert ring.signing_key("RS256").path == rsa_key
    header, _ = ring.verify(ring.sign(fresh_claims(), alg="ES256"))
    newer_kid = ring.signing_key("ES256").kid
    assert header["kid"] == newer_kid
    published = {jwk["kid"] for jwk in ring.jwks()["keys"]}
    older_kid = next(k.kid for k in ring.keys if k.path == older)
    assert published == {k.kid for k in ring.keys}
    assert {older_kid, newer_kid} <= published
    # tokens signed earlier by the older key still verify
    old_token = hand_token(
        {"alg": "ES256", "kid": older_kid, "typ": "JWT"},
        fresh_claims(),
        es256_signer(load_private(older)),
    )
    assert ring.verify(old_token)[0]["kid"] == older_kid


def test_future_key_is_published_before_it_signs(tmp_path: Path) -> None:
    now = time.time()
    current = generate_key_file(tmp_path, "RS256", not_before=now - 60)
    upcoming = generate_key_file(tmp_path, "RS256", not_before=now + 3600)
    ring = KeyRing.from_directory(tmp_path)
    upcoming_kid = next(k.kid for k in ring.keys if k.path == upcoming)
    assert upcoming_kid in {jwk["kid"] for jwk in ring.jwks()["keys"]}
    assert ring.signing_key("RS256").path == current
    assert ring.signing_key("RS256", now=now + 3601).path == upcoming


def test_only_future_keys_still_sign(tmp_path: Path) -> None:
    """A clock behind the key maker's must not stop token issuance."""
    generate_key_file(tmp_path, "ES256", not_before=time.time() + 5)
    ring = KeyRing.from_directory(tmp_path)
    assert ring.verify(ring.sign(fresh_claims(), alg="ES256"))


def test_jwks_has_only_public_members(tmp_path: Path) -> None:
    generate_key_file(tmp_path, "RS256")
    generate_key_file(tmp_path, "ES256")
    for ring in (KeyRing.from_directory(tmp_path), KeyRing.ephemeral()):
        jwks = ring.jwks()
        assert len(jwks["keys"]) == 2
        for jwk in jwks["keys"]:
            assert not PRIVATE_MEMBERS & set(jwk)
            assert jwk["use"] == "sig"
            if jwk["kty"] == "RSA":
                assert set(jwk) == {"kty", "kid", "use", "alg", "n", "e"}
                assert jwk["alg"] == "RS256"
            else:
                assert set(jwk) == {"kty", "kid", "use", "alg", "crv", "x", "y"}
                assert (jwk["alg"], jwk["crv"]) == ("ES256", "P-256")
        jwks["keys"][0]["kid"] = "mutated"  # callers cannot corrupt the cached set
        assert ring.jwks()["keys"][0]["kid"] != "mutated"


def test_bad_files_are_reported_all_at_once(tmp_path: Path) -> None:
    good = generate_key_file(tmp_path, "ES256")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    garbage.chmod(0o600)
    readable = write_pem(tmp_path / "readable.pem", ec.generate_private_key(ec.SECP256R1()), 0o644)
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - on purpose
    small = write_pem(tmp_path / "small.pem", weak)
    p384 = write_pem(tmp_path / "p384.pem", ec.generate_private_key(ec.SECP384R1()))
    edwards = write_pem(tmp_path / "edwards.pem", ed25519.Ed25519PrivateKey.generate())
    public_only = tmp_path / "public.pem"
    public_only.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    public_only.chmod(0o600)
    mislabelled = write_pem(
        tmp_path / "20260101T000000Z-rs256-00000000.pem", ec.generate_private_key(ec.SECP256R1())
    )

    with pytest.raises(KeyError_) as caught:
        KeyRing.from_directory(tmp_path)
    message = str(caught.value)
    lines = {line.split(": ", 1)[0]: line for line in message.splitlines()[1:]}
    assert str(good) not in lines
    assert set(lines) == {
        str(p) for p in (garbage, readable, small, p384, edwards, public_only, mislabelled)
    }
    assert "not a PEM private key" in lines[str(garbage)]
    assert "0644" in lines[str(readable)]
    assert "1024 bits" in lines[str(small)]
    assert "secp384r1" in lines[str(p384)]
    assert "Ed25519" in lines[str(edwards)]
    assert "not a PEM private key" in lines[str(public_only)]
    assert "file name says RS256" in lines[str(mislabelled)]


def test_group_readable_is_refused(tmp_path: Path) -> None:
    write_pem(tmp_path / "k.pem", ec.generate_private_key(ec.SECP256R1()), 0o640)
    with pytest.raises(KeyError_, match="0640"):
        KeyRing.from_directory(tmp_path)


def test_empty_or_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyError_, match=r"no \*\.pem"):
        KeyRing.from_directory(tmp_path)
    with pytest.raises(KeyError_, match="does not exist"):
        KeyRing.from_directory(tmp_path / "missing")


def test_same_key_twice_is_refused(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    write_pem(tmp_path / "a.pem", key)
    write_pem(tmp_path / "b.pem", key)
    with pytest.raises(KeyError_, match="same key as"):
        KeyRing.from_directory(tmp_path)


def test_missing_alg_is_a_key_error() -> None:
    ring = KeyRing.ephemeral(algs=("ES256",))
    assert ring.algs == {"ES256"}
    with pytest.raises(KeyError_):
        ring.signing_key("RS256")
    with pytest.raises(KeyError_):
        ring.sign({}, alg="RS256")
    with pytest.raises(KeyError_):
        KeyRing.ephemeral(algs=("HS256",))


def test_signing_key_is_hashable_without_exposing_the_key() -> None:
    key = KeyRing.ephemeral(algs=("ES256",)).keys[0]
    assert isinstance(key, SigningKey)
    assert hash(key) == hash(key)
    assert "key=" not in repr(key)


# -- sign and verify ----------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_round_trip(ring: KeyRing, alg: str) -> None:
    claims = fresh_claims(name="张三", amr=["pwd"], nested={"a": 1})
    token = ring.sign(claims, alg=alg)
    header, got = ring.verify(token)
    assert header == {"alg": alg, "kid": ring.signing_key(alg).kid, "typ": "JWT"}
    assert got == claims
    validate_claims(got, issuer=ISSUER, audience="rp-1")


def test_claims_are_written_as_compact_utf8_json(ring: KeyRing) -> None:
    claims = fresh_claims(name="张三", amr=["pwd"], cnf={"jkt": "x"}, flag=True, none=None)
    payload = ring.sign(claims, alg="ES256").split(".")[1]
    written = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert written == json.dumps(claims, ensure_ascii=False, separators=(",", ":")).encode()


def test_a_claim_json_has_no_form_for_is_refused(ring: KeyRing) -> None:
    from datetime import UTC, datetime

    with pytest.raises(TypeError):
        ring.sign(fresh_claims(auth_time=datetime.now(UTC)), alg="ES256")


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_signature_checks_out_with_plain_cryptography(tmp_path: Path, alg: str) -> None:
    """Interop: a token from the ring verifies with the file's key and no JOSE library."""
    path = generate_key_file(tmp_path, alg)
    ring = KeyRing.from_directory(tmp_path)
    token = ring.sign(fresh_claims(), alg=alg)
    head, body, sig = token.split(".")
    assert json.loads(b64url_decode(head)) == {
        "alg": alg,
        "kid": ring.signing_key(alg).kid,
        "typ": "JWT",
    }
    public = load_private(path).public_key()
    data, signature = f"{head}.{body}".encode(), b64url_decode(sig)
    if alg == "RS256":
        public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    else:
        assert len(signature) == 64
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        public.verify(der, data, ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_hand_signed_token_verifies(tmp_path: Path, alg: str) -> None:
    path = generate_key_file(tmp_path, alg)
    ring = KeyRing.from_directory(tmp_path)
    private = load_private(path)
    signer = rs256_signer(private) if alg == "RS256" else es256_signer(private)
    claims = fresh_claims()
    token = hand_token({"alg": alg, "kid": ring.keys[0].kid}, claims, signer)
    assert ring.verify(token)[1] == claims


def test_typ_check(ring: KeyRing) -> None:
    token = ring.sign(fresh_claims(), alg="ES256", typ="at+jwt")
    assert ring.verify(token, typ="at+jwt")[0]["typ"] == "at+jwt"
    assert ring.verify(token, typ="application/at+jwt")
    assert ring.verify(token, typ="AT+JWT")
    long_form = ring.sign(fresh_claims(), alg="ES256", typ="application/at+jwt")
    assert ring.verify(long_form, typ="at+jwt")
    with pytest.raises(TokenError, match="type"):
        ring.verify(token, typ="logout+jwt")
    with pytest.raises(TokenError, match="type"):
        ring.verify(ring.sign(fresh_claims(), alg="ES256"), typ="at+jwt")


def test_algs_restricts_accepted_algorithms(ring: KeyRing) -> None:
    token = ring.sign(fresh_claims(), alg="RS256")
    with pytest.raises(TokenError, match="algorithm"):
        ring.verify(token, algs=("ES256",))


# -- tokens verified before ---------------------------------------------------------------


def test_a_token_verified_once_is_not_checked_again(ring: KeyRing,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    token = ring.sign(fresh_claims(), alg="ES256", typ="at+jwt")
    _, claims = ring.verify(token, typ="at+jwt")

    def no_signature_check(*args: object, **kwargs: object) -> bool:
        raise AssertionError("the signature was checked again")

    monkeypatch.setattr(jws, "validate_compact", no_signature_check)
    header, again = ring.verify(token, typ="at+jwt")
    assert again == claims
    assert header["alg"] == "ES256"
    with pytest.raises(AssertionError):  # a token not seen before is still checked
        ring.verify(ring.sign(fresh_claims(), alg="ES256"))


def test_a_remembered_token_keeps_its_header_checks(ring: KeyRing) -> None:
    token = ring.sign(fresh_claims(), alg="RS256", typ="at+jwt")
    ring.verify(token, typ="at+jwt")
    with pytest.raises(TokenError, match="algorithm"):
        ring.verify(token, algs=("ES256",))
    with pytest.raises(TokenError, match="type"):
        ring.verify(token, typ="logout+jwt")


def test_a_remembered_token_is_handed_out_as_a_copy(ring: KeyRing) -> None:
    token = ring.sign(fresh_claims(), alg="ES256")
    header, claims = ring.verify(token)
    header["alg"], claims["sub"] = "none", "someone-else"
    again_header, again = ring.verify(token)
    assert again_header["alg"] == "ES256"
    assert again["sub"] == fresh_claims()["sub"]


def test_adopting_other_keys_forgets_the_tokens_verified(tmp_path: Path) -> None:
    ring = KeyRing.ephemeral()
    token = ring.sign(fresh_claims(), alg="ES256")
    ring.verify(token)
    generate_key_file(tmp_path, "ES256")
    generate_key_file(tmp_path, "RS256")
    ring.adopt(KeyRing.from_directory(tmp_path))  # the old key left the directory
    with pytest.raises(TokenError, match="unknown key"):
        ring.verify(token)


def test_only_good_tokens_are_remembered_and_only_so_many(
        monkeypatch: pytest.MonkeyPatch) -> None:
    ring = KeyRing.ephemeral(["ES256"])
    monkeypatch.setattr(keys_module, "VERIFIED_LIMIT", 3)
    tokens = [ring.sign(fresh_claims(jti=str(n)), alg="ES256") for n in range(5)]
    for token in tokens:
        ring.verify(token)
    head, _payload, signature = tokens[0].split(".")
    forged = f"{head}.{b64url(json.dumps(fresh_claims(sub='x')).encode())}.{signature}"
    with pytest.raises(TokenError):
        ring.verify(forged)
    remembered = ring._verified
    assert list(remembered) == tokens[2:]  # the oldest went first; the forgery never came
    with pytest.raises(TokenError):
        ring.verify(forged)


# -- attacks ------------------------------------------------------------------------------


def test_alg_none_is_refused(ring: KeyRing) -> None:
    kid = ring.signing_key("RS256").kid
    for alg in ("none", "None", "NONE"):
        token = hand_token({"alg": alg, "kid": kid, "typ": "JWT"}, fresh_claims())
        with pytest.raises(TokenError, match="algorithm"):
            ring.verify(token)
        with pytest.raises(TokenError, match="algorithm"):
            ring.verify(token, algs=("RS256", "ES256", alg))


@pytest.mark.parametrize("hs", ["HS256", "HS384", "HS512"])
def test_hmac_keyed_with_public_key_is_refused(ring: KeyRing, hs: str) -> None:
    """The classic confusion: HMAC a token with the RSA public key an attacker can fetch."""
    rsa_key = ring.signing_key("RS256")
    public_pem = rsa_key.key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[hs]
    for secret in (public_pem, json.dumps(ring.jwks()).encode()):
        token = hand_token(
            {"alg": hs, "kid": rsa_key.kid, "typ": "JWT"},
            fresh_claims(sub="admin"),
            lambda data, secret=secret: hmac.new(secret, data, digest).digest(),
        )
        with pytest.raises(TokenError, match="algorithm"):
            ring.verify(token)
        with pytest.raises(TokenError):
            ring.verify(token, algs=(hs, "RS256"))


def test_unknown_or_missing_kid_is_refused(ring: KeyRing) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1())
    token = hand_token({"alg": "ES256", "kid": "not-ours"}, fresh_claims(), es256_signer(stranger))
    with pytest.raises(TokenError, match="unknown key"):
        ring.verify(token)
    token = hand_token({"alg": "ES256"}, fresh_claims(), es256_signer(stranger))
    with pytest.raises(TokenError, match="key id"):
        ring.verify(token)


def test_stranger_key_claiming_our_kid_is_refused(ring: KeyRing) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1())
    kid = ring.signing_key("ES256").kid
    token = hand_token({"alg": "ES256", "kid": kid}, fresh_claims(), es256_signer(stranger))
    with pytest.raises(TokenError, match="signature"):
        ring.verify(token)


def test_alg_must_match_the_kid(ring: KeyRing) -> None:
    """An RS256 kid with an ES256 header (or the reverse) is refused before any check."""
    token = ring.sign(fresh_claims(), alg="RS256")
    head, body, sig = token.split(".")
    header = json.loads(b64url_decode(head))
    forged = f"{segment({**header, 'alg': 'ES256'})}.{body}.{sig}"
    with pytest.raises(TokenError, match="does not match"):
        ring.verify(forged)


def test_tampered_token_is_refused(ring: KeyRing) -> None:
    for alg in ("RS256", "ES256"):
        token = ring.sign(fresh_claims(), alg=alg)
        head, _, sig = token.split(".")
        with pytest.raises(TokenError, match="signature"):
            ring.verify(f"{head}.{segment(fresh_claims(sub='admin'))}.{sig}")
        flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
        with pytest.raises(TokenError):
            ring.verify(f"{head}.{token.split('.')[1]}.{flipped}")


def test_crit_header_is_refused(tmp_path: Path) -> None:
    path = generate_key_file(tmp_path, "ES256")
    ring = KeyRing.from_directory(tmp_path)
    header = {"alg": "ES256", "kid": ring.keys[0].kid, "crit": ["exp"], "exp": 1}
    token = hand_token(header, fresh_claims(), es256_signer(load_private(path)))
    with pytest.raises(TokenError, match="critical"):
        ring.verify(token)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "...",
        "eyJhbGciOiJSUzI1NiJ9.e30",
        "eyJhbGciOiJSUzI1NiJ9.e30.",
        "éé.éé.éé",
        segment({"alg": "ES256", "kid": "x"}) + ".!!!.sig",
    ],
)
def test_malformed_tokens_raise_token_error(ring: KeyRing, token: str) -> None:
    with pytest.raises(TokenError):
        ring.verify(token)


def test_non_object_payload_and_nan_are_refused(tmp_path: Path) -> None:
    path = generate_key_file(tmp_path, "ES256")
    ring = KeyRing.from_directory(tmp_path)
    signer = es256_signer(load_private(path))
    head = segment({"alg": "ES256", "kid": ring.keys[0].kid})
    for payload in (b"[1,2]", b'"text"', b'{"exp": NaN}', b"not json"):
        signing_input = f"{head}.{b64url(payload)}"
        token = f"{signing_input}.{b64url(signer(signing_input.encode()))}"
        with pytest.raises(TokenError, match="payload"):
            ring.verify(token)


# -- claims -------------------------------------------------------------------------------


def test_validate_claims_accepts_good_claims() -> None:
    now = 1_800_000_000
    claims = {"iss": ISSUER, "aud": "rp-1", "iat": now, "exp": now + 60, "nbf": now}
    validate_claims(claims, issuer=ISSUER, audience="rp-1", now=now)
    validate_claims({**claims, "aud": ["rp-0", "rp-1"]}, issuer=ISSUER, audience="rp-1", now=now)
    validate_claims({**claims, "aud": "someone"}, issuer=ISSUER, audience=None, now=now)
    # within the leeway on both sides
    validate_claims(claims, issuer=ISSUER, audience="rp-1", now=now + 60 + 29)
    validate_claims(claims, issuer=ISSUER, audience="rp-1", now=now - 29)


@pytest.mark.parametrize(
    ("change", "now_offset", "message"),
    [
        ({}, 60 + 30, "expired"),
        ({"exp": 1_800_000_000 - 100}, 0, "expired"),
        ({"iss": "https://evil.example"}, 0, "'iss'"),
        ({"aud": "rp-2"}, 0, "'aud'"),
        ({"aud": ["rp-2", "rp-3"]}, 0, "'aud'"),
        ({"aud": None}, 0, "aud"),
        ({"nbf": 1_800_000_000 + 300}, 0, "'nbf'"),
        ({"iat": 1_800_000_000 + 300}, 0, "'iat'"),
        ({"exp": "tomorrow"}, 0, "'exp'"),
        ({"exp": True}, 0, "'exp'"),
        ({"exp": None}, 0, "exp"),
        ({"iss": None}, 0, "iss"),
    ],
)
def test_validate_claims_refuses(change: dict[str, Any], now_offset: int, message: str) -> None:
    now = 1_800_000_000
    claims = {"iss": ISSUER, "aud": "rp-1", "iat": now, "exp": now + 60, **change}
    claims = {k: v for k, v in claims.items() if v is not None}
    with pytest.raises(TokenError, match=message):
        validate_claims(claims, issuer=ISSUER, audience="rp-1", now=now + now_offset)


def test_validate_claims_required_and_iss_always_checked() -> None:
    now = 1_800_000_000
    claims = {"iss": ISSUER, "iat": now, "exp": now + 60}
    with pytest.raises(TokenError, match="nonce"):
        validate_claims(
            claims, issuer=ISSUER, audience=None, now=now, required=("iss", "exp", "nonce")
        )
    with pytest.raises(TokenError, match="iss"):
        validate_claims({"exp": now + 60}, issuer=ISSUER, audience=None, now=now, required=())


def test_end_to_end_expired_token(ring: KeyRing) -> None:
    now = int(time.time())
    token = ring.sign(fresh_claims(iat=now - 600, exp=now - 300), alg="RS256")
    _, claims = ring.verify(token)  # the signature alone says nothing about time
    with pytest.raises(TokenError, match="expired"):
        validate_claims(claims, issuer=ISSUER, audience="rp-1")
