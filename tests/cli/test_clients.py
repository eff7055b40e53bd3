"""``roam clients …`` (gateway/cli/clients.py) as an operator runs it, on the test Redis:
what needs the shared store refuses the memory one, and each command changes the record
every gateway process serves, audited."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from gateway.config import RegistrationSection
from gateway.digests import secret_digest
from gateway.oidc.client_directory import ClientDirectory
from gateway.oidc.client_review import ApprovalPolicy
from gateway.oidc.clients import ClientRegistry
from gateway.oidc.registered import RegisteredClient, StoredSecret
from gateway.store import RedisStore
from tests.support.cli import roam
from tests.support.redis_server import delete_prefixed


def seeded(redis_url: str, prefix: str, client_id: str) -> None:
    now = int(time.time())
    record = ApprovalPolicy(RegistrationSection()).registered(RegisteredClient(
        client_id=client_id, status="pending", region="430400", issued_at=now, updated_at=now,
        metadata={"client_name": "衡阳市医保服务", "redirect_uris": ["https://hy.example.cn/cb"],
                  "scope": "openid profile"},
        secrets=(StoredSecret(digest=secret_digest("first")),)))

    async def write() -> None:
        store = RedisStore.from_url(redis_url, prefix=prefix)
        try:
            await ClientDirectory(store, ClientRegistry([])).create(record)
        finally:
            await store.close()

    asyncio.run(write())


def stored(redis_url: str, prefix: str, client_id: str) -> RegisteredClient | None:
    async def read() -> RegisteredClient | None:
        store = RedisStore.from_url(redis_url, prefix=prefix)
        try:
            found = await ClientDirectory(store, ClientRegistry([])).load(client_id)
            return found.client if found else None
        finally:
            await store.close()

    return asyncio.run(read())


def test_the_store_commands_need_the_shared_store() -> None:
    refused = roam("clients", "invite", "--region", "4301")
    assert refused.returncode == 2
    assert "needs the shared 'redis' store" in refused.stderr
    bad = roam("clients", "invite", "--region", "长沙")
    assert bad.returncode == 2
    assert "GB/T 2260" in bad.stderr
    for command in (("export", "--out", "clients.json"), ("import", "clients.json")):
        refused = roam("clients", *command)
        assert refused.returncode == 2
        assert "needs the shared 'redis' store" in refused.stderr


def test_an_operator_suspends_resumes_rotates_reissues_and_deletes(
        redis_url: str, redis_prefix: str, tmp_path: Path) -> None:
    env = {"ROAM_STORE_BACKEND": "redis", "ROAM_STORE_REDIS_URL": redis_url,
           "ROAM_STORE_PREFIX": redis_prefix, "ROAM_AUDIT_PATH": str(tmp_path / "a.jsonl")}
    seeded(redis_url, redis_prefix, "rp-hengyang")
    listed = roam("clients", "list", env=env)
    assert listed.returncode == 0
    assert "rp-hengyang" in listed.stdout
    assert "changsha-gov" in listed.stdout  # the static seed too

    assert roam("clients", "suspend", "rp-hengyang", "--reason", "排查", env=env
                ).returncode == 0
    record = stored(redis_url, redis_prefix, "rp-hengyang")
    assert record is not None
    assert record.status == "suspended"
    again = roam("clients", "suspend", "rp-hengyang", "--reason", "排查", env=env)
    assert again.returncode == 2
    assert "suspended" in again.stderr
    assert roam("clients", "resume", "rp-hengyang", "--reason", "好了", env=env
                ).returncode == 0

    rotated = roam("clients", "rotate-secret", "rp-hengyang", "--overlap", "1h", env=env)
    assert rotated.returncode == 0, rotated.stderr
    secret = rotated.stdout.split(": ", 1)[1].splitlines()[0].strip()
    record = stored(redis_url, redis_prefix, "rp-hengyang")
    assert record is not None
    assert record.secret_digests() == (secret_digest(secret), secret_digest("first"))

    reissued = roam("clients", "token", "rp-hengyang", "--reason", "RP 丢失了管理令牌",
                    env=env)
    assert reissued.returncode == 0
    token = reissued.stdout.split(": ", 1)[1].splitlines()[0].strip()
    record = stored(redis_url, redis_prefix, "rp-hengyang")
    assert record is not None
    assert record.access_digest == secret_digest(token)

    assert roam("clients", "delete", "rp-hengyang", "--reason", "撤销接入", env=env
                ).returncode == 0
    assert stored(redis_url, redis_prefix, "rp-hengyang") is None
    trail = (tmp_path / "a.jsonl").read_text()
    for action in ("client.suspend", "client.resume", "client.secret.rotate",
                   "client.token", "client.delete"):
        assert f'"{action}"' in trail, action
    assert secret not in trail
    assert token not in trail


def test_an_operator_exports_and_after_a_loss_imports_the_registered_clients(
        redis_url: str, redis_prefix: str, tmp_path: Path) -> None:
    env = {"ROAM_STORE_BACKEND": "redis", "ROAM_STORE_REDIS_URL": redis_url,
           "ROAM_STORE_PREFIX": redis_prefix, "ROAM_AUDIT_PATH": str(tmp_path / "a.jsonl")}
    seeded(redis_url, redis_prefix, "rp-hengyang")
    seeded(redis_url, redis_prefix, "rp-leiyang")
    before = stored(redis_url, redis_prefix, "rp-hengyang")
    backup = tmp_path / "backup" / "clients.json"
    backup.parent.mkdir()
    exported = roam("clients", "export", "--out", str(backup), env=env)
    assert exported.returncode == 0, exported.stderr
    assert "2 registered clients" in exported.stdout

    delete_prefixed(redis_url, redis_prefix)  # Redis lost its data
    assert stored(redis_url, redis_prefix, "rp-hengyang") is None

    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "roam-registered-clients/1", "clients": [{}]}')
    refused = roam("clients", "import", str(bad), env=env)
    assert refused.returncode == 2
    assert "client 1" in refused.stderr

    imported = roam("clients", "import", str(backup), env=env)
    assert imported.returncode == 0, imported.stderr
    assert "restored 2, replaced 0, kept as stored 0" in imported.stdout
    assert stored(redis_url, redis_prefix, "rp-hengyang") == before
    listed = roam("clients", "list", env=env)
    assert "rp-leiyang" in listed.stdout

    again = roam("clients", "import", str(backup), env=env)
    assert "restored 0, replaced 0, kept as stored 2" in again.stdout
    trail = (tmp_path / "a.jsonl").read_text()
    assert '"operator.clients.export"' in trail
    assert trail.count('"client.import"') == 2  # the second import changed nothing
