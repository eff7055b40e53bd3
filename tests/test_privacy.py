"""Masking of ID numbers, phone numbers and names."""

from __future__ import annotations

import json

import pytest

from gateway.privacy import (
    UNRECOGNISED,
    mask_claims,
    mask_id_number,
    mask_name,
    mask_phone,
    mask_username,
)

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
