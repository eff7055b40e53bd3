"""Masking of ID numbers, phone numbers and names."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.signed_header import verify
from gateway.app import create_app
from gateway.identifiers import resident_id_check_char
from gateway.privacy import (
    UNRECOGNISED,
    mask_claims,
    mask_id_number,
    mask_name,
    mask_phone,
    mask_username,
    release_claims,
)
from gateway.regions import RegionDirectory
from gateway.store.memory import MemoryStore
from tests.support.gateway import (
    DEMO_PASSWORD,
    config_on_port,
    form_field,
    log_in,
    with_systems,
)
from tests.support.rp import authorize_url, rp_client
from tests.support.servers import free_port, serve

ID = "430102199001011234"


def test_documented_examples() -> None:
    assert mask_id_number(ID) == "430***********1234"
    assert mask_phone("13812341234") == "138****1234"
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳娜娜") == "欧***"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ""),
        ("1", "*"),
        ("1234567", "*******"),
        ("4301021990010", "***********10"),  # 11 stay hidden: only the last 2 show
        ("430102900101123", "***********1123"),  # 15-digit (pre-1999) number: last 4 only
        ("43010219900101123X", "430***********123X"),
    ],
)
def test_id_number_never_reveals_more_than_the_rule(value: str, expected: str) -> None:
    assert mask_id_number(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ""),
        ("1", "*"),
        ("1234", "****"),
        ("12345", "****5"),
        ("88881234", "****1234"),
        ("+8613812341234", "+86*******1234"),
    ],
)
def test_phone_never_reveals_more_than_the_rule(value: str, expected: str) -> None:
    assert mask_phone(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", ""), ("张", "*"), (" 张三 ", "张*"), ("买买提·艾力", "买*****")],
)
def test_name_never_reveals_more_than_the_rule(value: str, expected: str) -> None:
    assert mask_name(value) == expected


def test_same_length_so_layouts_do_not_shift() -> None:
    for value in (ID, "13812341234", "欧阳娜娜"):
        for mask in (mask_id_number, mask_phone, mask_name):
            assert len(mask(value)) == len(value)


def digit_runs(value: str, length: int = 5) -> set[str]:
    """Every run of ``length`` consecutive characters of a digit string."""
    return {value[i : i + length] for i in range(len(value) - length + 1)}


def test_mask_claims_masks_top_level_and_agent() -> None:
    agent = {"name": "李四", "phone_number": "13900000002", "id_number": "430104198506150039"}
    claims = {
        "name": "张三",
        "phone_number": "13812341234",
        "phone_number_verified": True,
        "id_number": ID,
        "uscc": "91350100M000100Y43",
        "org_name": "湖南漫游示例科技有限公司",
        "agent": agent,
    }
    masked = mask_claims(claims)

    assert masked == {
        "name": "张*",
        "phone_number": "138****1234",
        "phone_number_verified": True,
        "id_number": "430***********1234",
        "uscc": "91350100M000100Y43",
        "org_name": "湖南漫游示例科技有限公司",
        "agent": {
            "name": "李*",
            "phone_number": "139****0002",
            "id_number": "430***********0039",
        },
    }
    dumped = json.dumps(masked, ensure_ascii=False)
    for secret in (ID, agent["id_number"], "13812341234", agent["phone_number"]):
        for run in digit_runs(secret):
            assert run not in dumped, run
    assert "张三" not in dumped
    assert "李四" not in dumped
    # The input is not modified.
    assert claims["id_number"] == ID
    assert agent["name"] == "李四"


def test_mask_claims_handles_odd_values() -> None:
    masked = mask_claims({"phone_number": 13812341234, "name": None, "agent": None, "x": 1})
    assert masked == {"phone_number": "138****1234", "name": None, "agent": None, "x": 1}


def test_birthdate_is_masked_to_the_year() -> None:
    from gateway.privacy import mask_birthdate

    assert mask_birthdate("1990-01-01") == "1990-**-**"
    assert mask_claims({"birthdate": "1990-01-01"}) == {"birthdate": "1990-**-**"}


def test_identity_repr_never_shows_personal_data() -> None:
    from gateway.identity import Identity, PersonKind

    identity = Identity(subject="c-1", kind=PersonKind.NATURAL, acr="L2", amr=("pwd",),
                        auth_time=0, region="430102",
                        claims={"name": "张三", "phone_number": "13812341234",
                                "id_number": "430102199001011237"})
    text = repr(identity)
    assert "13812341234" not in text
    assert "430102199001011237" not in text
    assert "张三" not in text
    assert "138****1234" in text


def test_with_an_id_number_a_log_shows_no_birth_date_at_all() -> None:
    masked = mask_claims({"id_number": ID, "birthdate": "1990-01-01", "region": "430102"})
    assert masked == {"id_number": "430***********1234", "region": "430102"}
    masked = mask_claims({"agent": {"id_number": ID, "birthdate": "1990-01-01"},
                          "birthdate": "1990-01-01"})
    assert masked == {"agent": {"id_number": "430***********1234"}}


@pytest.mark.parametrize(("typed", "logged"), [
    ("13812341234", "138****1234"),
    (" 13812341234 ", "138****1234"),
    ("430102199001011238", "430***********1238"),
    ("43010219900107006x", "430***********006X"),  # a lowercase check X
    ("430102199001011234", UNRECOGNISED),  # wrong check digit
    ("12812341234", UNRECOGNISED),
    ("1381234123", UNRECOGNISED),
    ("Roam@2026", UNRECOGNISED),
    ("", UNRECOGNISED),
])
def test_a_typed_user_name_is_logged_only_as_a_masked_phone_or_id(typed: str,
                                                                   logged: str) -> None:
    assert mask_username(typed) == logged


# -- release: masking that survives combination ---------------------------------------------

PERSON = {"name": "张三", "id_number": "430102199001010016", "phone_number": "13800000001",
          "birthdate": "1990-01-01", "gender": "male", "region": "430102"}
EVERYTHING = frozenset(PERSON)


def test_a_system_not_cleared_gets_no_birth_date_beside_the_masked_id_number() -> None:
    got = release_claims(PERSON, EVERYTHING, privileged=False)
    assert got == {"name": "张三", "id_number": "430***********0016",
                   "phone_number": "138****0001", "gender": "male", "region": "430102"}
    # without the ID number the birth date stays: the sequence digits are then unknown
    assert release_claims(PERSON, EVERYTHING - {"id_number"}, privileged=False)[
        "birthdate"] == "1990-01-01"
    # a cleared system gets what it is approved for, in full
    assert release_claims(PERSON, EVERYTHING, privileged=True) == PERSON


def test_the_agent_shows_in_full_only_what_the_system_is_cleared_for() -> None:
    company = {"uscc": "91430103MA4L0RAM0X", "region": "430103", "birthdate": "1988-05-20",
               "agent": {**PERSON, "region": None}}
    got = release_claims(company, {"uscc", "agent", "birthdate", "region"}, privileged=True)
    assert got == {"uscc": "91430103MA4L0RAM0X", "region": "430103",
                   "agent": {"name": "张三", "id_number": "430***********0016",
                             "phone_number": "138****0001", "gender": "male"}}
    cleared = release_claims(company, {"agent", "id_number", "phone_number"}, privileged=True)
    assert cleared["agent"]["id_number"] == PERSON["id_number"]
    assert cleared["agent"]["birthdate"] == "1990-01-01"


_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]
_LIMIT = 100_000


def _weighted(digits: str, start: int) -> int:
    return sum(int(c) * w for c, w in zip(digits, _WEIGHTS[start:], strict=False))


def id_candidates(seen: Mapping[str, Any], *, today: date) -> list[str]:
    """The attacker's brute force: every resident ID number (up to a cap) that fits what a
    system saw — a masked or full ``id_number``, ``birthdate`` (full or a year),
    ``gender``, ``region``. Generous to the attacker: a released region is taken to be
    the number's area code, and only Hunan's codes are tried otherwise."""
    pattern = str(seen.get("id_number") or "*" * 18)
    assert len(pattern) == 18

    def fits(value: str, start: int) -> bool:
        return all(p in ("*", c) for p, c in zip(pattern[start:], value, strict=False))

    region = seen.get("region")
    areas = ([region] if region and fits(region, 0) else
             [r.code for r in RegionDirectory.load() if r.level == "county" and fits(r.code, 0)])
    born = str(seen.get("birthdate") or "")
    first, last = date(1900, 1, 1), today
    if len(born) == 10:
        first = last = date.fromisoformat(born)
    elif len(born) == 4:
        first, last = date(int(born), 1, 1), date(int(born), 12, 31)
    days = [d for n in range((last - first).days + 1)
            if fits(d := (first + timedelta(n)).strftime("%Y%m%d"), 6)]
    parity = {"male": 1, "female": 0}.get(str(seen.get("gender")))
    sequences = [q for n in range(1000) if parity in (None, n % 2)
                 and fits(q := f"{n:03d}", 14)]
    found = []
    for area in areas:
        for day in days:
            for sequence in sequences:
                first17 = area + day + sequence
                if pattern[17] in ("*", resident_id_check_char(first17)):
                    found.append(first17 + resident_id_check_char(first17))
                    if len(found) > _LIMIT:
                        return found
    return found


def test_the_brute_force_finds_what_it_should() -> None:
    """The helper itself: everything released rebuilds the number; less leaves many."""
    today = date(2026, 1, 1)
    whole = {**PERSON, "id_number": mask_id_number(PERSON["id_number"])}
    assert id_candidates(whole, today=today) == [PERSON["id_number"]]
    year_only = {**whole, "birthdate": "1990"}
    assert PERSON["id_number"] in id_candidates(year_only, today=today)
    assert 20 < len(id_candidates(year_only, today=today)) < 50  # the year alone: ~33


SECRET = "a-test-only-signed-header-secret-for-privacy-0123"
ITEM = "430000-GJJ-001"
CHANGSHA_CLAIMS = ["name", "gender", "birthdate", "region", "uscc", "org_name", "agent",
                   "phone_number", "phone_number_verified"]
LEGAL_PERSON = "13800000007"  # e-0001: 湖南漫游示例科技有限公司, its 经办人 孙七
LEGAL_PERSON_ID = "430103198805200060"
CITIZEN_ID = "430102199001010016"  # c-0001, 张三


@dataclass(frozen=True)
class Stack:
    gateway: str


def recorder() -> Starlette:
    """A legacy system that answers with the headers it received."""
    async def echo(request: Request) -> Response:
        return JSONResponse({"path": request.url.path,
                             "headers": [[k.decode("latin-1"), v.decode("latin-1")]
                                         for k, v in request.headers.raw]})

    return Starlette(routes=[Route("/{path:path}", echo)])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The real gateway with a signed-header system approved for the whole identity but
    not privileged, and changsha-gov approved for profile, region and the legal person
    but not for the ID number."""
    upstream_port, port = free_port(), free_port()
    systems: Path = tmp_path_factory.mktemp("privacy") / "systems.toml"
    systems.write_text(f"""
[[item]]
code = "{ITEM}"
name = "住房公积金提取"

[[system]]
id = "records"
name = "档案系统（测试）"
region = "430000"
level = "province"
instances = ["http://127.0.0.1:{upstream_port}"]
connector = "signed-header"
connector_settings = {{ secret = "{SECRET}" }}
items = ["{ITEM}"]
claims = ["name", "id_number", "birthdate", "gender", "region", "phone_number"]
""", "utf-8")
    config = config_on_port(port, clients={"changsha-gov": {
        "scopes": ("openid", "profile", "phone", "region", "legal_person"),
        "claims": tuple(CHANGSHA_CLAIMS)}})
    config = with_systems(config, systems, path_mode=True)  # /s/records/
    with serve(recorder(), upstream_port), \
            serve(create_app(config, store=MemoryStore()), port) as gateway:
        yield Stack(gateway)


def test_a_signed_header_system_cannot_rebuild_the_id_number(stack: Stack) -> None:
    with httpx.Client(base_url=stack.gateway, headers={"Accept": "text/html"}) as browser:
        to_login = browser.get("/s/records/whoami")
        page = browser.get(browser.get(to_login.headers["location"]).headers["location"])
        back = browser.post("/login", data={
            "csrf_token": form_field(page.text, "csrf_token"), "r": form_field(page.text, "r"),
            "username": "13800000001", "password": DEMO_PASSWORD})
        assert back.headers["location"] == "/s/records/whoami"
        seen = browser.get("/s/records/whoami").json()
    claims = verify(seen["headers"], "GET", "/whoami", secret=SECRET, now=time.time(),
                    seen_nonces={}).claims
    assert claims["id_number"] == "430***********0016"
    assert claims["phone_number"] == "138****0001"
    assert "13800000001" not in json.dumps(claims)  # nothing else holds the phone's digits
    candidates = id_candidates(claims, today=date.today())
    assert CITIZEN_ID in candidates
    assert len(candidates) > 1000, len(candidates)


def _userinfo(gateway: str, username: str) -> dict[str, Any]:
    client = rp_client("changsha-gov", gateway, scope="openid profile region legal_person")
    url, verifier = authorize_url(client, gateway, nonce=secrets.token_urlsafe(8))
    with httpx.Client(base_url=gateway) as browser:
        callback = log_in(browser, url, username=username)
    client.fetch_token(f"{gateway}/token", authorization_response=callback,
                       code_verifier=verifier)
    info: dict[str, Any] = client.get(f"{gateway}/userinfo").json()
    return info


def test_an_rp_not_approved_for_id_numbers_cannot_rebuild_one(stack: Stack) -> None:
    company = _userinfo(stack.gateway, LEGAL_PERSON)
    agent = company["agent"]
    assert agent["id_number"] == "430***********0060"  # not approved: masked, not in full
    assert agent["phone_number"] == "138****0007"  # phone scope not asked for
    seen = {**agent, **{k: company[k] for k in ("region", "gender", "birthdate")
                        if k in company}}
    candidates = id_candidates(seen, today=date.today())
    assert LEGAL_PERSON_ID in candidates
    assert len(candidates) > 1000, len(candidates)

    person = _userinfo(stack.gateway, "13800000001")
    assert "id_number" not in person
    assert person["birthdate"] == "1990-01-01"  # no ID number: the sequence is unknown
    candidates = id_candidates(person, today=date.today())
    assert CITIZEN_ID in candidates
    assert len(candidates) == 500  # every odd sequence (male) with its check digit
