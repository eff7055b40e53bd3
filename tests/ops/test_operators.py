"""gateway/ops/operators.py: two factors for operators, each TOTP code once, lockout in
the store — on a real Redis shared by two clients as two gateway processes would be."""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path

import pyotp
import pytest
from argon2 import PasswordHasher

from gateway.errors import ConfigError
from gateway.ops.operators import STEP, OperatorLogin, OpsLoginRefused, Role, load_operators
from gateway.store.memory import MemoryStore
from gateway.store.redis import RedisStore
from tests.support.clock import Clock

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "operators.toml"
SECRET = "UGGTFWJD6QVTSZRN5TGEJWPF76RDUBSQ"  # ops-demo's in config/operators.toml
PASSWORD = "Ops@2026"
NOW = 1_800_000_000.0


def code(at: float = NOW, secret: str = SECRET) -> str:
    return pyotp.TOTP(secret).at(at)


def login(store: MemoryStore | RedisStore, clock: Clock | None = None,
          max_failures: int = 3) -> OperatorLogin:
    operators = load_operators(SHIPPED, allow_demo=True)
    return OperatorLogin(operators, store, max_failures=max_failures, lockout_seconds=900,
                         clock=clock or Clock(NOW))


def test_the_shipped_operators_load_and_are_refused_outside_the_demo() -> None:
    operators = load_operators(SHIPPED, allow_demo=True)
    assert {o.name: o.role for o in operators.values()} == {
        "ops-demo": Role.OPERATOR, "ops-viewer": Role.VIEWER}
    assert SECRET not in repr(operators["ops-demo"])
    with pytest.raises(ConfigError, match="loopback issuer only"):
        load_operators(SHIPPED, allow_demo=False)


def test_bad_files_name_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "operators.toml"
    path.write_text('[[operator]]\nname = "a b"\n[[operator]]\nname = "ok"\nrole = "root"\n'
                    'password_hash = "plain"\ntotp_secret = "SHORT"\ncolour = 1\n')
    with pytest.raises(ConfigError) as refused:
        load_operators(path, allow_demo=False)
    problems = "\n".join(refused.value.problems)
    for words in ("name must be", "unknown keys ['colour']", "role must be",
                  "argon2id", "at least 160 bits"):
        assert words in problems


async def test_password_and_code_log_in_and_the_code_is_then_spent() -> None:
    checker = login(MemoryStore(clock=Clock(NOW)))
    operator = await checker.check("ops-demo", PASSWORD, code())
    assert operator.role is Role.OPERATOR
    with pytest.raises(OpsLoginRefused, match="已使用"):
        await checker.check("ops-demo", PASSWORD, code())
    # the next step's code, and the previous one (clock drift), are each good once
    assert await checker.check("ops-demo", PASSWORD, code(NOW + STEP))
    assert await checker.check("ops-demo", PASSWORD, code(NOW - STEP))


@pytest.mark.parametrize(("name", "password", "totp"), [
    ("ops-demo", PASSWORD, ""),  # a password alone is one factor
    ("ops-demo", PASSWORD, "000000"),
    ("ops-demo", "wrong", "CODE"),  # a right code with a wrong password
    ("ops-demo", PASSWORD, "OTHER"),  # another operator's code
    ("nobody", PASSWORD, "CODE"),
    ("ops-demo", PASSWORD, "STALE"),  # two steps old
])
async def test_anything_less_than_both_factors_is_refused(name: str, password: str,
                                                          totp: str) -> None:
    value = {"CODE": code(), "OTHER": code(secret="V7ZXPEZJ5DUHJ3POCOTPVLR5S4JJS5RR"),
             "STALE": code(NOW - 2 * STEP)}.get(totp, totp)
    with pytest.raises(OpsLoginRefused) as refused:
        await login(MemoryStore(clock=Clock(NOW))).check(name, password, value)
    assert refused.value.retry_after == 0


async def test_failures_lock_the_account_and_a_locked_account_checks_nothing(
        caplog: pytest.LogCaptureFixture) -> None:
    checker = login(MemoryStore(clock=Clock(NOW)), max_failures=3)
    caplog.set_level(logging.INFO, logger="roam.audit")
    for _ in range(3):
        with pytest.raises(OpsLoginRefused):
            await checker.check("ops-demo", "wrong", code())
    with pytest.raises(OpsLoginRefused) as locked:
        await checker.check("ops-demo", PASSWORD, code())  # right, and refused unchecked
    assert locked.value.retry_after > 0
    assert [r.__dict__.get("reason") for r in caplog.records] == ["password"] * 3 + ["locked"]
    assert PASSWORD not in caplog.text
    assert code() not in caplog.text


async def test_one_code_logs_in_once_across_processes_on_redis(redis_url: str,
                                                               redis_prefix: str) -> None:
    stores = [RedisStore.from_url(redis_url, prefix=redis_prefix) for _ in range(2)]
    try:
        checkers = [login(store) for store in stores]
        attempts = [checkers[n % 2].check("ops-demo", PASSWORD, code()) for n in range(6)]
        results = await asyncio.gather(*attempts, return_exceptions=True)
    finally:
        for store in stores:
            await store.close()
    assert sum(1 for r in results if not isinstance(r, BaseException)) == 1
    assert all(isinstance(r, OpsLoginRefused) for r in results
               if isinstance(r, BaseException))


def test_a_hash_made_here_is_what_the_file_wants(tmp_path: Path) -> None:
    path = tmp_path / "operators.toml"
    path.write_text(f'[[operator]]\nname = "ops-li"\nrole = "viewer"\n'
                    f'password_hash = "{PasswordHasher().hash("x")}"\n'
                    f'totp_secret = "{pyotp.random_base32(32)}"\n')
    assert list(load_operators(path, allow_demo=False)) == ["ops-li"]


def test_roam_ops_operator_makes_an_entry_the_gateway_accepts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO("a long operator password\n"))
    assert main(["ops", "operator", "ops-wang", "--role", "operator", "--password-stdin"]) == 0
    out = capsys.readouterr().out
    uri = out.splitlines()[0]
    assert uri.startswith("# enrol in the operator's authenticator app")
    (tmp_path / "operators.toml").write_text(out)
    operators = load_operators(tmp_path / "operators.toml", allow_demo=False)
    assert operators["ops-wang"].role is Role.OPERATOR
    assert operators["ops-wang"].totp_secret in uri
    assert "a long operator password" not in out
