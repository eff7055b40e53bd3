"""Signing-key rotation on one schedule in every process (gateway/key_rotation.py): the
schedule itself on a fake clock, a process adopting its key directory, and two real
``roam serve`` processes rotated under an RP that caches their JWKS as told."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jws, jwt
from joserfc.jwk import KeySet

from gateway.key_rotation import KeyWatcher, rotate
from gateway.keyfiles import generate_key_file
from gateway.keys import KeyRing
from tests.support.cli import roam
from tests.support.gateway import SECRETS, gateway_process, processes_env
from tests.support.rp import full_login
from tests.support.servers import free_port

AUTH = ("changsha-gov", SECRETS["changsha-gov"])


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def kids(ring: KeyRing, now: float) -> list[str]:
    return [jwk["kid"] for jwk in ring.jwks(now=now)["keys"]]


def test_a_rotated_key_is_published_first_signs_later_and_retires_the_old(
        tmp_path: Path) -> None:
    clock = Clock()
    first = generate_key_file(tmp_path, "ES256", not_before=clock.now - 10)
    done = rotate(tmp_path, "ES256", publish_ahead=60, retire_after=120, clock=clock)
    assert done.deleted == ()
    ring = KeyRing.from_directory(tmp_path, retire_after=120)
    old, new = sorted(ring.keys, key=lambda k: k.created)
    assert old.path == first
    assert new.path == done.added
    # published at once, by both; the old one signs until the new one's time
    assert kids(ring, clock.now) == [new.kid, old.kid]
    assert ring.signing_key("ES256", now=clock.now).kid == old.kid
    assert ring.signing_key("ES256", now=clock.now + 61).kid == new.kid
    # the old one stays published while its tokens may live, then is retired
    assert kids(ring, clock.now + 60 + 119) == [new.kid, old.kid]
    assert kids(ring, clock.now + 60 + 121) == [new.kid]
    # the next rotation deletes what is retired, and nothing else
    clock.now += 60 + 121
    again = rotate(tmp_path, "ES256", publish_ahead=60, retire_after=120, clock=clock)
    assert again.deleted == (first,)
    assert not first.exists()
    assert done.added.exists()


def test_retirement_is_per_algorithm_and_never_takes_the_signing_key(tmp_path: Path) -> None:
    now = time.time()
    generate_key_file(tmp_path, "RS256", not_before=now - 10_000)
    generate_key_file(tmp_path, "ES256", not_before=now - 5_000)
    ring = KeyRing.from_directory(tmp_path, retire_after=60)
    assert len(ring.jwks(now=now)["keys"]) == 2  # old, but each is its algorithm's newest


def test_a_process_adopts_the_directory_and_keeps_its_keys_when_a_file_is_bad(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    generate_key_file(tmp_path, "ES256", not_before=time.time() - 10)
    ring = KeyRing.from_directory(tmp_path, retire_after=60)
    watcher = KeyWatcher(ring, tmp_path, interval=1)
    assert watcher.check()  # the first look adopts what is there
    assert not watcher.check()  # nothing changed
    added = generate_key_file(tmp_path, "ES256", not_before=time.time() + 30)
    assert watcher.check()
    assert len(ring.keys) == 2
    assert ring.find(KeyRing.from_directory(tmp_path).keys[0].kid) is not None
    bad = tmp_path / "20260101T000000Z-es256-deadbeef.pem"
    bad.write_text("not a key")
    bad.chmod(0o600)
    with caplog.at_level(logging.ERROR, logger="roam.keys"):
        assert not watcher.check()
    assert "signing keys not reloaded" in caplog.text
    assert len(ring.keys) == 2, "the ring in use is kept"
    bad.unlink()
    added.unlink()
    assert watcher.check()
    assert len(ring.keys) == 1


def test_a_process_keeps_an_algorithm_whose_last_key_file_went_missing(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    generate_key_file(tmp_path, "ES256")
    rsa = generate_key_file(tmp_path, "RS256")
    ring = KeyRing.from_directory(tmp_path, retire_after=60)
    watcher = KeyWatcher(ring, tmp_path, interval=1)
    assert watcher.check()
    rsa.unlink()  # deleted by mistake: RS256 clients could sign no token
    with caplog.at_level(logging.ERROR, logger="roam.keys"):
        assert not watcher.check()
    assert any("no RS256 key left" in str(getattr(r, "cause", "")) for r in caplog.records)
    assert ring.algs == {"RS256", "ES256"}


class CachingRp:
    """An RP's JWKS cache: kept as long as ``Cache-Control: max-age`` says, fetched
    again when it runs out — and, like most RP libraries, at once on an unknown ``kid``
    (which a rotation published ahead never causes: counted)."""

    def __init__(self, jwks_uri: str) -> None:
        self.jwks_uri = jwks_uri
        self.keys: KeySet | None = None
        self.until = 0.0
        self.fetches = 0
        self.unknown_kid = 0
        self.max_age = -1

    def _fetch(self) -> None:
        answer = httpx.get(self.jwks_uri)
        match = re.search(r"max-age=(\d+)", answer.headers.get("cache-control", ""))
        assert match, answer.headers
        self.max_age = int(match.group(1))
        self.keys = KeySet.import_key_set(answer.json())
        self.until = time.monotonic() + self.max_age
        self.fetches += 1

    def verify(self, token: str) -> dict[str, Any]:
        if self.keys is None or time.monotonic() >= self.until:
            self._fetch()
        kid = jws.extract_compact(token.encode()).headers()["kid"]
        assert self.keys is not None
        if all(key.kid != kid for key in self.keys.keys):
            self.unknown_kid += 1
            self._fetch()
        return dict(jwt.decode(token, self.keys).header)


def test_two_processes_rotate_under_a_caching_rp_without_a_failed_verification(
        tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    env = {**processes_env(tmp_path, redis_url, redis_prefix),
           "ROAM_KEYS_PUBLISH_AHEAD": "4", "ROAM_KEYS_RELOAD_INTERVAL": "1"}
    with gateway_process(free_port(), env=env, log=tmp_path / "a.log") as (a, _), \
            gateway_process(free_port(), env=env, log=tmp_path / "b.log") as (b, _), \
            httpx.Client(base_url=a) as browser:
        _, token, _ = full_login(a, browser)
        rp = CachingRp(f"{a}/jwks")
        refresh = token["refresh_token"]
        seen: list[str] = [rp.verify(token["id_token"])["kid"]]
        assert rp.max_age == 3  # publish_ahead less the reload interval
        rotated_at = time.monotonic()
        done = roam("keys", "rotate", "--alg", "RS256", env=env)
        assert done.returncode == 0, done.stderr
        assert "signing from" in done.stdout
        while time.monotonic() < rotated_at + 7:
            for url in (a, b):  # the RP's refreshes land on either process
                answer = httpx.post(f"{url}/token", auth=AUTH, data={
                    "grant_type": "refresh_token", "refresh_token": refresh})
                assert answer.status_code == 200, answer.text
                refresh = answer.json()["refresh_token"]
                seen.append(rp.verify(answer.json()["id_token"])["kid"])
            time.sleep(0.2)
    assert rp.unknown_kid == 0, "an RP saw a kid its cache (as told) did not hold"
    assert len(set(seen)) == 2, "the new key signed once its time came, in both"
    first_new = seen.index(seen[-1])
    assert set(seen[first_new:]) == {seen[-1]}, "no process went back to the old key"


def test_rotate_refuses_ephemeral_keys_and_a_bad_directory(tmp_path: Path) -> None:
    ephemeral = roam("keys", "rotate", "--alg", "ES256")  # the demo's config: no key_dir
    assert ephemeral.returncode == 2
    assert "gateway.key_dir: not set" in ephemeral.stderr
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    generate_key_file(keys, "ES256")
    bad = keys / "20260101T000000Z-es256-deadbeef.pem"
    bad.write_text("not a key")
    bad.chmod(0o600)
    refused = roam("keys", "rotate", "--alg", "ES256", env={"ROAM_GATEWAY_KEY_DIR": str(keys)})
    assert refused.returncode == 2, refused.stderr
    assert "key problem" in refused.stderr
    assert len(list(keys.glob("*.pem"))) == 2, "nothing written"
