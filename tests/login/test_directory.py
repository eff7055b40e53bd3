"""The TOML directory identity source: loading, login, no user enumeration, lockout."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher, Type, extract_parameters

import gateway.login.directory as directory_module
from gateway.errors import ConfigError, LockedOut, LoginError
from gateway.identifiers import validate_resident_id, validate_uscc
from gateway.identity import Identity, PersonKind
from gateway.login.directory import TomlDirectory, hash_password, load_entries
from gateway.login.source import PasswordSource
from gateway.store import MemoryStore, RedisStore
from tests.support.counting import CountingDirectory

DEMO_FILE = Path(__file__).resolve().parents[2] / "config" / "directory.toml"
DEMO_PASSWORD = "Roam@2026"
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC).timestamp()

# Cheap parameters for the temp directories, so lockout and race tests stay fast.
CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


class Clock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def citizen_toml(**fields: str) -> str:
    base = {
        "subject": "t-0001",
        "kind": "natural",
        "name": "测试甲",
        "phone": "13800009991",
        "id_number": "43011119820307006X",
        "region": "430111",
        "verified_level": "L2",
        "password_hash": hash_password("secret-1", hasher=CHEAP),
    }
    base.update(fields)
    body = "\n".join(f'{k} = "{v}"' for k, v in base.items())
    return f"[[citizen]]\n{body}\n"


def cheap_directory(tmp_path: Path, clock: Clock, *entries: str, **options: Any) -> TomlDirectory:
    path = tmp_path / "directory.toml"
    path.write_text("\n".join(entries or (citizen_toml(),)), encoding="utf-8")
    return TomlDirectory.from_file(path, clock=clock, **options)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def demo(clock: Clock) -> TomlDirectory:
    return TomlDirectory.from_file(DEMO_FILE, clock=clock)


def by_subject(directory: TomlDirectory, subject: str) -> directory_module.DirectoryEntry:
    return next(e for e in directory.entries if e.subject == subject)


# --- the shipped demo file -----------------------------------------------------------


def test_demo_file_entries_are_all_valid_and_varied(demo: TomlDirectory) -> None:
    entries = demo.entries
    assert len(entries) >= 5
    assert {e.verified_level for e in entries} >= {"L1", "L2", "L3"}
    assert len({e.region for e in entries}) >= 5
    assert any(e.kind is PersonKind.LEGAL for e in entries)
    for e in entries:
        validate_resident_id(e.id_number, today=date(2026, 3, 1))
        assert e.id_number[:6] == e.region
        assert e.region.startswith("43")
        assert re.fullmatch(r"1(38|39|50)[0-9]{8}", e.phone)
        assert extract_parameters(e.password_hash).type.name == "ID"
        if e.kind is PersonKind.LEGAL:
            validate_uscc(e.claims["uscc"])
            assert e.claims["uscc"][2:8] == e.region


def test_demo_file_states_the_shared_password() -> None:
    text = DEMO_FILE.read_text(encoding="utf-8")
    header = text.split("[[citizen]]")[0]
    assert DEMO_PASSWORD in header
    assert text.count(DEMO_PASSWORD) == 1  # only in the comment, never as a value


def test_directory_is_a_password_source(demo: TomlDirectory) -> None:
    source: PasswordSource = demo
    assert source.name == "directory"


async def test_login_by_phone(demo: TomlDirectory, clock: Clock) -> None:
    clock.now = START + 0.75
    identity = await demo.authenticate("13800000001", DEMO_PASSWORD)
    assert identity == Identity(
        subject="c-0001",
        kind=PersonKind.NATURAL,
        acr="L2",  # a password alone, on an account verified to L3
        amr=("pwd",),
        auth_time=int(START),
        region="430102",
        claims={
            "name": "张三",
            "phone_number": "13800000001",
            "phone_number_verified": True,
            "id_number": "430102199001010016",
            "birthdate": "1990-01-01",
            "gender": "male",
            "verified_level": "L3",
        },
    )
    assert identity.verified_level == "L3"


async def test_login_by_id_number_with_spaces(demo: TomlDirectory) -> None:
    identity = await demo.authenticate(" 430302199202290027 ", DEMO_PASSWORD)
    assert identity.subject == "c-0004"
    assert identity.claims["birthdate"] == "1992-02-29"
    assert identity.claims["gender"] == "female"


async def test_legal_person_carries_company_and_agent(demo: TomlDirectory) -> None:
    identity = await demo.authenticate("13800000007", DEMO_PASSWORD)
    assert identity.kind is PersonKind.LEGAL
    assert identity.claims["uscc"] == "91430103MA4L0RAM0X"
    assert identity.claims["org_name"] == "湖南漫游示例科技有限公司"
    agent = identity.claims["agent"]
    assert agent["name"] == "孙七"
    assert agent["id_number"] == "430103198805200060"
    assert identity.agent == agent


async def test_wrong_password_and_unknown_user_fail_alike(demo: TomlDirectory) -> None:
    with pytest.raises(LoginError) as wrong:
        await demo.authenticate("13800000001", "not-the-password")
    with pytest.raises(LoginError) as unknown:
        await demo.authenticate("13899999999", DEMO_PASSWORD)
    assert type(wrong.value) is type(unknown.value) is LoginError
    assert str(wrong.value) == str(unknown.value) == "用户名或密码错误"


async def test_unknown_user_still_costs_a_hash_verification(
    demo: TomlDirectory, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = directory_module._verify_sync

    def spy(hasher: PasswordHasher, password_hash: str, password: str) -> bool:
        calls.append(password_hash)
        return real(hasher, password_hash, password)

    monkeypatch.setattr(directory_module, "_verify_sync", spy)
    with pytest.raises(LoginError):
        await demo.authenticate("430102199001010024", DEMO_PASSWORD)
    assert len(calls) == 1
    # The dummy hash costs what the real ones cost.
    real_cost = extract_parameters(by_subject(demo, "c-0001").password_hash)
    assert extract_parameters(calls[0]) == real_cost


async def test_lockout_after_five_failures_even_with_the_right_password(
    demo: TomlDirectory, clock: Clock
) -> None:
    for _ in range(4):
        with pytest.raises(LoginError) as caught:
            await demo.authenticate("13900000002", "wrong")
        assert not isinstance(caught.value, LockedOut)
    with pytest.raises(LockedOut):  # the fifth failure locks
        await demo.authenticate("13900000002", "wrong")

    clock.now += 60
    # The same account by its other username, with the right password: still locked.
    with pytest.raises(LockedOut) as locked:
        await demo.authenticate("430104198506150039", DEMO_PASSWORD)
    assert locked.value.retry_after == 900 - 60
    assert "分钟" in str(locked.value)

    # Other accounts are not affected.
    assert (await demo.authenticate("13800000001", DEMO_PASSWORD)).subject == "c-0001"

    clock.now += 900 - 60
    assert (await demo.authenticate("13900000002", DEMO_PASSWORD)).subject == "c-0002"


async def test_success_resets_the_count(tmp_path: Path, clock: Clock) -> None:
    directory = cheap_directory(tmp_path, clock)
    for _round in range(3):
        for _ in range(4):
            with pytest.raises(LoginError):
                await directory.authenticate("13800009991", "wrong")
        await directory.authenticate("13800009991", "secret-1")


async def test_failures_outside_the_window_do_not_add_up(tmp_path: Path, clock: Clock) -> None:
    directory = cheap_directory(tmp_path, clock, max_failures=3, lockout_seconds=100)
    for _ in range(2):
        with pytest.raises(LoginError):
            await directory.authenticate("13800009991", "wrong")
    clock.now += 100
    for _ in range(2):
        with pytest.raises(LoginError) as caught:
            await directory.authenticate("13800009991", "wrong")
        assert not isinstance(caught.value, LockedOut)


async def test_unknown_users_lock_too_so_lockout_reveals_nothing(
    tmp_path: Path, clock: Clock
) -> None:
    directory = cheap_directory(tmp_path, clock)
    for _ in range(4):
        with pytest.raises(LoginError):
            await directory.authenticate("13811112222", "guess")
    with pytest.raises(LockedOut):
        await directory.authenticate("13811112222", "guess")


async def test_case_insensitive_x_shares_one_counter(tmp_path: Path, clock: Clock) -> None:
    directory = cheap_directory(tmp_path, clock)
    identity = await directory.authenticate("43011119820307006x", "secret-1")
    assert identity.claims["id_number"] == "43011119820307006X"
    for username in ("43011119820307006x", "43011119820307006X") * 2:
        with pytest.raises(LoginError):
            await directory.authenticate(username, "wrong")
    with pytest.raises(LockedOut):
        await directory.authenticate("13800009991", "wrong")


async def test_parallel_guesses_cannot_outrun_the_lockout(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = cheap_directory(tmp_path, clock)
    verified = 0
    real = directory_module._verify_sync

    def counting(hasher: PasswordHasher, password_hash: str, password: str) -> bool:
        nonlocal verified
        verified += 1
        return real(hasher, password_hash, password)

    monkeypatch.setattr(directory_module, "_verify_sync", counting)
    results = await asyncio.gather(
        *(directory.authenticate("13800009991", f"guess-{i}") for i in range(30)),
        return_exceptions=True,
    )
    assert all(isinstance(r, LoginError) for r in results)
    assert verified == 5
    assert sum(isinstance(r, LockedOut) for r in results) == 30 - 4


async def test_counters_go_to_the_injected_store(tmp_path: Path, clock: Clock) -> None:
    store = MemoryStore(clock=clock)
    directory = cheap_directory(tmp_path, clock, store=store)

    with pytest.raises(LoginError):
        await directory.authenticate("13800009991", "wrong")
    assert store.snapshot()[("login_failures", "t-0001")][0] == "count=1"

    with pytest.raises(LoginError):
        await directory.authenticate(" 13899990000 ", "wrong")
    hashed = hashlib.sha256(b"13899990000").hexdigest()
    assert store.snapshot()[("login_failures", hashed)][0] == "count=1"
    assert "13899990000" not in repr(store.snapshot())
    assert await store.incr("login_failures", hashed, 1, by=0) == (1, 900)

    await directory.authenticate("13800009991", "secret-1")
    assert ("login_failures", "t-0001") not in store.snapshot()


async def test_bursts_across_processes_check_at_most_max_failures_passwords(
        tmp_path: Path, clock: Clock, redis_url: str, redis_prefix: str) -> None:
    """Two gateway processes (a directory and a Redis client each) share one Redis; three
    bursts of 25 wrong passwords at once: five are checked, and then the right one waits."""
    path = tmp_path / "directory.toml"
    path.write_text(citizen_toml(), encoding="utf-8")
    stores = [RedisStore.from_url(redis_url, prefix=redis_prefix) for _ in range(2)]
    processes = [CountingDirectory.from_file(path, clock=clock, store=store) for store in stores]
    CountingDirectory.verified = 0
    try:
        async def burst() -> list[BaseException | Identity]:
            return await asyncio.gather(
                *(processes[n % 2].authenticate("13800009991", f"guess-{n}") for n in range(25)),
                return_exceptions=True)

        results = [r for rs in await asyncio.gather(burst(), burst(), burst()) for r in rs]
        assert CountingDirectory.verified == 5
        assert all(isinstance(r, LoginError) for r in results)
        assert sum(isinstance(r, LockedOut) for r in results) == 75 - 4
        with pytest.raises(LockedOut, match="账户已临时锁定") as locked:
            await processes[0].authenticate("43011119820307006X", "secret-1")
        assert 0 < locked.value.retry_after <= 900
        assert CountingDirectory.verified == 5, "a locked account checks no password"
    finally:
        for store in stores:
            await store.close()


async def test_empty_and_overlong_input(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = cheap_directory(tmp_path, clock)
    with pytest.raises(LoginError, match="请输入"):
        await directory.authenticate("  ", "secret-1")
    with pytest.raises(LoginError, match="请输入"):
        await directory.authenticate("13800009991", "")

    def must_not_hash(*_args: object) -> bool:
        raise AssertionError("an over-long password must not be hashed")

    monkeypatch.setattr(directory_module, "_verify_sync", must_not_hash)
    with pytest.raises(LoginError, match="用户名或密码错误"):
        await directory.authenticate("13800009991", "x" * 100_000)


async def test_lookup(demo: TomlDirectory) -> None:
    identity = await demo.lookup("c-0005")
    assert identity is not None
    assert (identity.acr, identity.auth_time, identity.region) == ("", 0, "430202")
    assert identity.verified_level == "L3"  # the account's; no authentication, no acr
    assert identity.claims["name"] == "刘洋"
    assert await demo.lookup("c-9999") is None


async def test_returned_claims_are_copies(demo: TomlDirectory) -> None:
    first = await demo.lookup("e-0001")
    assert first is not None
    first.claims["agent"]["name"] = "篡改"
    first.claims["name"] = "篡改"
    again = await demo.lookup("e-0001")
    assert again is not None
    assert again.claims["name"] == again.claims["agent"]["name"] == "孙七"


def test_entry_repr_hides_personal_data(demo: TomlDirectory) -> None:
    text = repr(demo.entries)
    assert "13800000001" not in text
    assert "430102199001010016" not in text
    assert "argon2" not in text


# --- configuration errors ------------------------------------------------------------


def problems_of(load: Callable[[], object]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load()
    return caught.value.problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    good_hash = hash_password("x", hasher=CHEAP)
    path.write_text(
        "\n".join(
            [
                citizen_toml(),  # 0: fine
                citizen_toml(subject="t-0002", phone="13800009992", id_number="430111198203070061"),
                citizen_toml(  # 2: duplicates of entry 0
                    subject="t-0001", password_hash=good_hash
                ),
                citizen_toml(  # 3: a pile of field errors
                    subject="t 3",
                    phone="12345",
                    id_number="430102199002300010",
                    region="440101",
                    verified_level="L9",
                    kind="person",
                    password_hash="plaintext",
                ),
                citizen_toml(
                    subject="t-0004",
                    phone="13800009994",  # 4: legal without uscc
                    id_number="430102199001010016",
                    kind="legal",
                    uscc="",
                ),
                citizen_toml(
                    subject="t-0005",
                    phone="13800009995",  # 5: natural with uscc
                    id_number="430602197811300056",
                    uscc="91350100M000100Y43",
                ),
                "[[citizen]]\nsubject = 't-0006'\nphone = 13800009996\nnickname = 'x'\n",
                "[settings]\nx = 1\n",
            ]
        ),
        encoding="utf-8",
    )
    problems = problems_of(lambda: load_entries(path, today=date(2026, 3, 1)))
    label = str(path)
    assert all(p.startswith(f"{label}: ") for p in problems)
    keys = {p.split(": ")[1] for p in problems}
    assert keys == {
        "settings",
        "citizen[1].id_number",
        "citizen[2].subject",
        "citizen[2].phone",
        "citizen[2].id_number",
        "citizen[3].subject",
        "citizen[3].phone",
        "citizen[3].id_number",
        "citizen[3].region",
        "citizen[3].verified_level",
        "citizen[3].kind",
        "citizen[3].password_hash",
        "citizen[4].uscc",
        "citizen[4].org_name",
        "citizen[5].uscc",
        "citizen[6].phone",
        "citizen[6].nickname",
        "citizen[6].name",
        "citizen[6].id_number",
        "citizen[6].region",
        "citizen[6].verified_level",
        "citizen[6].kind",
        "citizen[6].password_hash",
    }
    joined = "\n".join(problems)
    assert f"{label}: citizen[1].id_number: 校验码错误 / check digit is wrong" in problems
    assert "citizen[2].phone: duplicate of citizen[0].phone" in joined
    assert "citizen[3].id_number: 出生日期不是有效日期" in joined
    assert "citizen[4].org_name: missing" in joined
    assert "citizen[6].phone: must be a string" in joined
    # Personal data is not echoed into the report.
    assert "13800009991" not in joined
    assert "43011119820307006X" not in joined


def test_the_old_acr_key_is_refused_with_its_new_name(tmp_path: Path) -> None:
    path = tmp_path / "d.toml"
    path.write_text(citizen_toml().replace("verified_level", "acr"), encoding="utf-8")
    problems = problems_of(lambda: load_entries(path))
    assert f"{path}: citizen[0].acr: renamed verified_level" in problems[0]
    assert problems[1] == f"{path}: citizen[0].verified_level: missing"


@pytest.mark.parametrize(("verified", "acr"), [("L1", "L1"), ("L2", "L2"), ("L3", "L2"),
                                                 ("L4", "L2")])
async def test_a_password_reaches_l2_at_most_and_never_above_the_account(
        tmp_path: Path, clock: Clock, verified: str, acr: str) -> None:
    directory = cheap_directory(tmp_path, clock, citizen_toml(verified_level=verified))
    identity = await directory.authenticate("13800009991", "secret-1")
    assert (identity.acr, identity.amr, identity.verified_level) == (acr, ("pwd",), verified)


def test_config_error_is_raised_by_from_file(tmp_path: Path) -> None:
    path = tmp_path / "d.toml"
    path.write_text(citizen_toml(region="43011"), encoding="utf-8")
    problems = problems_of(lambda: TomlDirectory.from_file(path))
    assert problems == [
        f"{path}: citizen[0].region: must be a current six-digit Hunan GB/T 2260 code "
        "(gateway/data/hunan_regions.json)"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[citizen]\n", "not valid TOML"),
        ("", "no [[citizen]] entries"),
        ("citizen = 'x'\n", "must be an array of tables"),
        ("citizen = ['x']\n", "citizen[0]: must be a table"),
    ],
)
def test_malformed_files(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "d.toml"
    path.write_text(text, encoding="utf-8")
    [problem] = problems_of(lambda: load_entries(path))
    assert problem.startswith(f"{path}: ")
    assert expected in problem


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    [problem] = problems_of(lambda: load_entries(path))
    assert problem.startswith(f"{path}: cannot read")


def test_argon2i_and_truncated_hashes_are_refused(tmp_path: Path) -> None:
    argon2i = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, type=Type.I).hash("x")
    path = tmp_path / "d.toml"
    path.write_text(
        citizen_toml(password_hash=argon2i)
        + citizen_toml(
            subject="t-2",
            phone="13800009992",
            id_number="430102199001010016",
            password_hash="$argon2id$v=19$m=65536,t=3,p=4$!!$a",
        ),
        encoding="utf-8",
    )
    problems = problems_of(lambda: load_entries(path))
    assert "argon2id" in problems[0]
    assert "citizen[1].password_hash: salt or digest" in problems[1]


def test_hash_password_makes_argon2id() -> None:
    hashed = hash_password(DEMO_PASSWORD)
    assert hashed.startswith("$argon2id$")
    assert PasswordHasher().verify(hashed, DEMO_PASSWORD)
