"""Registered clients exported and restored (gateway/oidc/client_backup.py) on the test
Redis: after the store lost them, an import brings back clients whose secrets and
registration access tokens still work; a file that is no export restores nothing."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest

from gateway.config import RegistrationSection
from gateway.digests import secret_digest
from gateway.oidc.client_backup import (
    FORMAT,
    BackupError,
    read_backup,
    restore,
    write_backup,
)
from gateway.oidc.client_directory import ClientDirectory
from gateway.oidc.client_review import ApprovalPolicy, ClientReview
from gateway.oidc.clients import ClientRegistry
from gateway.oidc.registered import RegisteredClient, StoredSecret
from gateway.store import RedisStore
from tests.support.redis_server import delete_prefixed

SECRET = "client-secret-only-the-rp-knows"
ACCESS_TOKEN = "registration-access-token-of-the-rp"


def registered(client_id: str, name: str = "株洲市政务服务网") -> RegisteredClient:
    now = int(time.time())
    return ApprovalPolicy(RegistrationSection()).registered(RegisteredClient(
        client_id=client_id, status="pending", region="430200", issued_at=now,
        updated_at=now, access_digest=secret_digest(ACCESS_TOKEN),
        metadata={"client_name": name, "redirect_uris": ["https://zz.example.cn/cb"],
                  "scope": "openid profile", "token_endpoint_auth_method":
                  "client_secret_basic"},
        secrets=(StoredSecret(digest=secret_digest(SECRET)),)))


def test_an_export_is_the_records_as_stored_readable_by_its_owner_only(
        tmp_path: Path) -> None:
    records = [registered("rp-zhuzhou"), registered("rp-liling", "醴陵市政务服务")]
    path = tmp_path / "clients.json"
    path.write_text("yesterday's copy")
    write_backup(path, records, now=1_800_000_000)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    body = json.loads(path.read_text())
    assert body["format"] == FORMAT
    assert body["exported_at"] == 1_800_000_000
    assert read_backup(path) == records
    text = path.read_text()
    assert SECRET not in text
    assert ACCESS_TOKEN not in text
    assert "醴陵市政务服务" in text
    assert [p.name for p in tmp_path.iterdir()] == ["clients.json"]  # no temporary left


@pytest.mark.parametrize(("content", "message"), [
    (b"\xff\xfe", "not JSON"),
    (b"[1, 2]", "not an export"),
    (json.dumps({"format": "something/1", "clients": []}).encode(), "not an export"),
    (json.dumps({"format": FORMAT, "clients": {}}).encode(), "'clients' is not a list"),
    (json.dumps({"format": FORMAT, "clients": [{"client_id": "rp-x"}]}).encode(),
     "client 1: metadata"),
])
def test_a_file_that_is_no_export_is_refused_saying_why(
        tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "clients.json"
    path.write_bytes(content)
    with pytest.raises(BackupError, match=message):
        read_backup(path)


def test_a_client_the_gateway_would_not_serve_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    good = registered("rp-zhuzhou")
    for change in ({"id_token_signed_response_alg": "none"}, {"client_name": None}):
        meta = {k: v for k, v in {**good.metadata, **change}.items() if v is not None}
        edited = good.model_copy(update={"metadata": meta, "status": "pending"})
        write_backup(path, [good, edited])
        with pytest.raises(BackupError, match=r"client 2 \(rp-zhuzhou\) is no client"):
            read_backup(path)


def test_a_client_twice_in_one_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    write_backup(path, [registered("rp-zhuzhou"), registered("rp-zhuzhou")])
    with pytest.raises(BackupError, match="rp-zhuzhou appears twice"):
        read_backup(path)
    with pytest.raises(BackupError, match="No such file"):
        read_backup(tmp_path / "missing.json")


async def test_after_the_store_lost_them_an_import_brings_back_working_clients(
        redis_url: str, redis_prefix: str, tmp_path: Path) -> None:
    store = RedisStore.from_url(redis_url, prefix=redis_prefix)
    try:
        directory = ClientDirectory(store, ClientRegistry([]))
        review = ClientReview(directory)
        await directory.create(registered("rp-zhuzhou"))
        await review.suspend("rp-zhuzhou", by="ops", reason="排查")
        await review.resume("rp-zhuzhou", by="ops", reason="好了")  # a history to keep
        await directory.create(registered("rp-liling", "醴陵市政务服务"))
        exported = await directory.every()
        path = tmp_path / "clients.json"
        write_backup(path, exported)

        delete_prefixed(redis_url, redis_prefix)  # the store's data is gone
        assert await directory.every() == []

        restored = await restore(directory, read_backup(path))
        assert sorted(restored.created) == ["rp-liling", "rp-zhuzhou"]
        assert await directory.every() == exported

        # Another process serves it after its reload, with the secret the RP holds.
        other = ClientRegistry([])
        await ClientDirectory(store, other).refresh(force=True)
        served = other.get("rp-zhuzhou")
        assert served is not None
        assert served.check_client_secret(SECRET)
        assert not served.check_client_secret("a guess")
        stored = await directory.load("rp-zhuzhou")
        assert stored is not None
        assert stored.client.access_digest == secret_digest(ACCESS_TOKEN)
    finally:
        await store.close()


async def test_an_import_keeps_what_the_store_has_unless_told_to_replace(
        redis_url: str, redis_prefix: str, tmp_path: Path) -> None:
    store = RedisStore.from_url(redis_url, prefix=redis_prefix)
    try:
        directory = ClientDirectory(store, ClientRegistry([]))
        await directory.create(registered("rp-zhuzhou"))
        path = tmp_path / "clients.json"
        write_backup(path, await directory.every())
        review = ClientReview(directory)
        suspended = await review.suspend("rp-zhuzhou", by="ops", reason="排查")  # since

        again = await restore(directory, read_backup(path))
        assert again.kept == ("rp-zhuzhou",)
        assert again.created == again.replaced == ()
        found = await directory.load("rp-zhuzhou")
        assert found is not None
        assert found.client == suspended

        replaced = await restore(directory, read_backup(path), replace=True)
        assert replaced.replaced == ("rp-zhuzhou",)
        found = await directory.load("rp-zhuzhou")
        assert found is not None
        assert found.client.status == "active"  # as exported, before the suspension
    finally:
        await store.close()
