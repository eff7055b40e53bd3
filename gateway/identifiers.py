"""Validators for the identifiers people type: resident ID (GB 11643), USCC (GB 32100) and
mainland mobile numbers.

Every validator returns None or raises ``ValueError`` whose message is bilingual
(``中文 / English``) and never repeats the value itself, so it can go into logs and
config reports without leaking personal data.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

__all__ = [
    "normalise_resident_id",
    "normalise_uscc",
    "resident_id_check_char",
    "uscc_check_char",
    "validate_mobile_number",
    "validate_resident_id",
    "validate_uscc",
]

# --- resident ID (公民身份号码, GB 11643-1999) ------------------------------------------

# ISO 7064 MOD 11-2: weight of position i (0-based, left to right) is 2**(17 - i) mod 11.
_ID_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_ID_CHECK_CHARS = "10X98765432"  # indexed by (weighted sum mod 11)

# Province-level codes (GB/T 2260 first two digits).
_PROVINCES = frozenset(
    (
        *range(11, 16),
        *range(21, 24),
        *range(31, 38),
        *range(41, 47),
        *range(50, 55),
        *range(61, 66),
        71,
        81,
        82,
    )
)

# 港澳台居民居住证 carry a GB 11643 number whose area code is a whole "province"; these are
# the only ``xx0000`` prefixes a real person's number can start with.
_RESIDENCE_PERMIT_AREAS = frozenset({"810000", "820000", "830000"})

_EARLIEST_BIRTH = date(1900, 1, 1)


def normalise_resident_id(value: str) -> str:
    """Strip surrounding whitespace and uppercase a trailing ``x``: the stored form."""
    return value.strip().upper()


def resident_id_check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character (``0-9`` or ``X``) for 17 digits."""
    if len(first17) != 17 or not (first17.isascii() and first17.isdigit()):
        raise ValueError("前17位必须是数字 / the first 17 characters must be digits")
    total = sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK_CHARS[total % 11]


def plausible_area(area: str) -> bool:
    """Cheap shape check of a six-digit area code; history lookup is ``known_area``."""
    if area in _RESIDENCE_PERMIT_AREAS:
        return True
    if int(area[:2]) not in _PROVINCES:
        return False
    # "xx0000" is a province: births are registered in a county or city district.
    return area[2:] != "0000"


def validate_resident_id(
    value: str,
    *,
    today: date | None = None,
    known_area: Callable[[str], bool] | None = None,
) -> None:
    """Check a resident ID number: shape, area, birth date and check character.

    ``value`` is normalised first (a lowercase ``x`` is accepted). ``known_area``, when
    given, must accept the six-digit area prefix (GB/T 2260 current or historical codes).
    """
    v = normalise_resident_id(value)
    if len(v) != 18:
        raise ValueError("身份证号码必须是18位 / a resident ID number has 18 characters")
    first17, check = v[:17], v[17]
    if not (first17.isascii() and first17.isdigit()):
        raise ValueError("前17位必须是数字 / the first 17 characters must be digits")
    if not (check.isascii() and (check.isdigit() or check == "X")):
        raise ValueError("第18位必须是数字或X / the 18th character must be a digit or X")

    area = v[:6]
    if not plausible_area(area):
        raise ValueError("地址码无效 / the area code (first 6 digits) is not a valid region")
    if known_area is not None and not known_area(area):
        raise ValueError("地址码不存在 / the area code (first 6 digits) is not a known region")

    try:
        born = date(int(v[6:10]), int(v[10:12]), int(v[12:14]))
    except ValueError:
        raise ValueError(
            "出生日期不是有效日期 / the birth date (digits 7-14) is not a real date"
        ) from None
    if born < _EARLIEST_BIRTH:
        raise ValueError("出生日期早于1900年 / the birth date is before 1900")
    if born > (today or date.today()):
        raise ValueError("出生日期在未来 / the birth date is in the future")

    if resident_id_check_char(first17) != check:
        raise ValueError("校验码错误 / check digit is wrong")


# --- mainland mobile number (手机号码) -------------------------------------------------


def validate_mobile_number(value: str) -> None:
    """Eleven digits starting 13-19 (surrounding whitespace ignored)."""
    v = value.strip()
    if not (len(v) == 11 and v.isascii() and v.isdigit() and v[0] == "1" and v[1] in "3456789"):
        raise ValueError("手机号码必须是11位、以13-19开头 / a mobile number has 11 digits "
                         "starting 13-19")


# --- unified social credit code (统一社会信用代码, GB 32100-2015) -------------------------

_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # 31 characters: no I, O, Z, S, V
_USCC_VALUES = {c: i for i, c in enumerate(_USCC_ALPHABET)}
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
# 登记管理部门代码: 1-9 (编办, 外交, 司法, 文化, 民政, 旅游, 宗教, 工会, 工商/市场监管),
# A-H (军队等, added after 2015), N (农业), Y (其他).
_USCC_AUTHORITIES = frozenset("123456789ABCDEFGHNY")


def normalise_uscc(value: str) -> str:
    """Strip surrounding whitespace and uppercase: the stored form."""
    return value.strip().upper()


def uscc_check_char(first17: str) -> str:
    """The GB 32100 mod-31 check character for the first 17 characters."""
    if len(first17) != 17 or any(c not in _USCC_VALUES for c in first17):
        raise ValueError(
            "前17位必须取自代码字符集 / the first 17 characters must come from "
            "0-9 and A-Y without I, O, Z, S, V"
        )
    total = sum(_USCC_VALUES[c] * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return _USCC_ALPHABET[(31 - total % 31) % 31]


def validate_uscc(value: str) -> None:
    """Check a unified social credit code: length, character set, authority, region, check.

    ``value`` is normalised first (lowercase letters are accepted).
    """
    v = normalise_uscc(value)
    if len(v) != 18:
        raise ValueError("统一社会信用代码必须是18位 / a credit code has 18 characters")
    if any(c not in _USCC_VALUES for c in v):
        raise ValueError(
            "含有不允许的字符 / contains a character outside 0-9 and A-Y "
            "(I, O, Z, S, V are not used)"
        )
    if v[0] not in _USCC_AUTHORITIES:
        raise ValueError(
            "登记管理部门代码无效 / the registering authority (1st character) is not valid"
        )
    if not v[2:8].isdigit():
        raise ValueError("行政区划码必须是数字 / the region code (characters 3-8) must be digits")
    if uscc_check_char(v[:17]) != v[17]:
        raise ValueError("校验码错误 / check digit is wrong")
