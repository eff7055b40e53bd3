"""Resident ID (GB 11643) and USCC (GB 32100) validators."""

from __future__ import annotations

from datetime import date

import pytest

from gateway.identifiers import (
    normalise_resident_id,
    normalise_uscc,
    resident_id_check_char,
    uscc_check_char,
    validate_resident_id,
    validate_uscc,
)

TODAY = date(2026, 3, 1)


def with_check(first17: str) -> str:
    return first17 + resident_id_check_char(first17)


# --- resident ID ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first17", "check"),
    [
        ("11010519491231002", "X"),  # the worked example in GB 11643-1999
        ("44052418800101001", "4"),  # the standard's other example
        ("43010219900101001", "6"),
    ],
)
def test_check_char_matches_published_examples(first17: str, check: str) -> None:
    assert resident_id_check_char(first17) == check


@pytest.mark.parametrize("bad", ["", "1234", "4301021990010100X", "43010219900101001 "])
def test_check_char_needs_17_digits(bad: str) -> None:
    with pytest.raises(ValueError, match="17"):
        resident_id_check_char(bad)


@pytest.mark.parametrize(
    "value",
    [
        "11010519491231002X",
        "430102199001010016",
        "430602197811300056",
        "430302199202290027",  # 29 February of a leap year
        "  430102199001010016\n",  # surrounding whitespace is stripped
        with_check("81000019900101001"),  # 港澳居民居住证 (Hong Kong)
        with_check("83000019900101001"),  # 台湾居民居住证
    ],
)
def test_valid_resident_ids(value: str) -> None:
    validate_resident_id(value, today=TODAY)


def test_lowercase_x_is_accepted_and_normalised() -> None:
    validate_resident_id("11010519491231002x", today=TODAY)
    assert normalise_resident_id(" 11010519491231002x ") == "11010519491231002X"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("430102199001010017", "check digit is wrong"),
        ("43010219900101001X", "check digit is wrong"),
        ("4301021990010100", "18 characters"),
        ("4301021990010100166", "18 characters"),
        ("43010219900101001Y", "digit or X"),
        ("4301021990O101001X", "first 17"),
        ("４３０１０２１９９００１０１００１６", "first 17"),  # full-width digits
        (with_check("43010219900230001"), "not a real date"),  # Feb 30
        (with_check("43010219910229001"), "not a real date"),  # not a leap year
        (with_check("43010219901301001"), "not a real date"),  # month 13
        (with_check("43010220270101001"), "in the future"),
        (with_check("43010220260302001"), "in the future"),  # tomorrow
        (with_check("44052418800101001"), "before 1900"),
        (with_check("99010219900101001"), "area code"),  # no province 99
        (with_check("20010219900101001"), "area code"),
        (with_check("72010219900101001"), "area code"),
        (with_check("43000019900101001"), "area code"),  # a province, not a county
    ],
)
def test_invalid_resident_ids(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_resident_id(value, today=TODAY)


def test_messages_are_bilingual_and_do_not_echo_the_value() -> None:
    value = "430102199001010017"
    with pytest.raises(ValueError, match="校验码错误") as caught:
        validate_resident_id(value, today=TODAY)
    assert value not in str(caught.value)
    assert "0101001" not in str(caught.value)


def test_today_defaults_to_the_real_date() -> None:
    validate_resident_id("430102199001010016")
    with pytest.raises(ValueError, match="future"):
        validate_resident_id(with_check(f"430102{date.today().year + 1}0101001"))


def test_known_area_hook_sees_the_prefix_and_can_refuse() -> None:
    seen: list[str] = []

    def known(area: str) -> bool:
        seen.append(area)
        return area.startswith("4301")

    validate_resident_id("430102199001010016", today=TODAY, known_area=known)
    with pytest.raises(ValueError, match="not a known region"):
        validate_resident_id("430602197811300056", today=TODAY, known_area=known)
    assert seen == ["430102", "430602"]


# --- USCC ----------------------------------------------------------------------------


def test_uscc_check_char_matches_the_standard_example() -> None:
    assert uscc_check_char("91350100M000100Y4") == "3"  # GB 32100-2015 appendix


@pytest.mark.parametrize(
    "value",
    [
        "91350100M000100Y43",
        "91430103MA4L0RAM0X",  # the demo directory's company
        " 91430103ma4l0ram0x ",  # lowercase and whitespace are normalised
    ],
)
def test_valid_uscc(value: str) -> None:
    validate_uscc(value)


@pytest.mark.parametrize("authority", ["1", "5", "9", "A", "G", "H", "N", "Y"])
def test_letter_and_digit_registering_authorities_are_accepted(authority: str) -> None:
    first17 = authority + "1430100MA4L0RAM0"
    validate_uscc(first17 + uscc_check_char(first17))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("91350100M000100Y44", "check digit is wrong"),
        ("91350100M000100Y4", "18 characters"),
        ("91350100M000100Y433", "18 characters"),
        ("91350100M000100I43", "I, O, Z, S, V"),
        ("91350100M000100O43", "I, O, Z, S, V"),
        ("91350100M000100S43", "I, O, Z, S, V"),
        ("91350100M000100V43", "I, O, Z, S, V"),
        ("Z1350100M000100Y43", "I, O, Z, S, V"),
        ("91350100M000100-43", "I, O, Z, S, V"),
        ("J1350100M000100Y43", "registering authority"),
        ("01350100M000100Y43", "registering authority"),
        ("913501A0M000100Y43", "region code"),
    ],
)
def test_invalid_uscc(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_uscc(value)


def test_uscc_check_char_rejects_characters_outside_the_alphabet() -> None:
    with pytest.raises(ValueError, match="first 17"):
        uscc_check_char("91350100M000100I4")


def test_normalise_uscc() -> None:
    assert normalise_uscc(" 91350100m000100y43\t") == "91350100M000100Y43"
