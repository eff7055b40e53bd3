"""Health-check rules: ``[health]`` defaults, a system's own ``health`` table over them,
and every bad value refused with one line naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import HealthRules, HealthSection, load_config, rules_for
from gateway.errors import ConfigError
from tests.support.gateway import REPO

SYSTEM = """
[[item]]
code = "X-1"
name = "测试事项"

[[system]]
id = "sys-a"
name = "A"
region = "430100"
level = "prefecture"
instances = ["http://127.0.0.1:9001"]
connector = "cas"
connector_settings = {{ services = ["http://127.0.0.1:9001/"] }}
items = ["X-1"]
{health}
"""


def write(tmp_path: Path, health: str = "", system: str = "") -> Path:
    main = f'[routing]\nsystems_file = "systems.toml"\n[health]\n{health}\n'
    (tmp_path / "roam.toml").write_text(main, "utf-8")
    (tmp_path / "clients.toml").write_text("", "utf-8")
    (tmp_path / "systems.toml").write_text(SYSTEM.format(health=system), "utf-8")
    source = REPO / "config" / "directory.toml"
    (tmp_path / "directory.toml").write_text(source.read_text("utf-8"), "utf-8")
    return tmp_path / "roam.toml"


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    return caught.value.problems


def test_a_system_sets_only_what_it_names(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "interval = 30\ntimeout = 3\nunhealthy_threshold = 5",
                               'health = { path = "/healthz", timeout = 10 }'), env={})
    (system,) = config.systems
    rules = rules_for(config.settings.health, system.health)
    assert (rules.path, rules.timeout) == ("/healthz", 10)  # its own
    assert (rules.interval, rules.unhealthy_threshold) == (30, 5)  # roam.toml's
    assert rules.healthy_threshold == HealthRules().healthy_threshold  # the default


def test_without_a_table_a_system_gets_the_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "passive_failures = 7"), env={})
    (system,) = config.systems
    assert rules_for(config.settings.health, system.health).passive_failures == 7


@pytest.mark.parametrize(("health", "key"), [
    ("interval = 0", "health.interval"),
    ("timeout = 0", "health.timeout"),
    ("healthy_threshold = 0", "health.healthy_threshold"),
    ("unhealthy_threshold = 101", "health.unhealthy_threshold"),
    ("passive_failures = 0", "health.passive_failures"),
    ("passive_cooldown = 0.5", "health.passive_cooldown"),
    ("refresh = 0", "health.refresh"),
    ('path = "healthz"', "health.path"),
    ('path = "/health check"', "health.path"),
    ('path = "/a/../b"', "health.path"),
    ('path = "/a#b"', "health.path"),
    ('active = "sometimes"', "health.active"),
    ("colour = 1", "health.colour"),
])
def test_bad_defaults_are_refused_one_line_each(tmp_path: Path, health: str,
                                                key: str) -> None:
    found = problems(write(tmp_path, health))
    assert len(found) == 1
    assert found[0].startswith(f"{tmp_path / 'roam.toml'}: {key}: ")


def test_a_probe_must_end_before_the_next_is_due(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "interval = 5\ntimeout = 5"))
    assert found == [f"{tmp_path / 'roam.toml'}: health: Value error, timeout (5 s) must be "
                     "shorter than interval (5 s)"]


@pytest.mark.parametrize(("main", "table", "expected"), [
    ("", "health = { timeout = 10 }", "timeout (10 s) must be shorter than interval (10 s)"),
    ("timeout = 4", "health = { interval = 3 }",
     "timeout (4 s) must be shorter than interval (3 s)"),
])
def test_a_system_s_rules_are_judged_with_the_defaults(tmp_path: Path, main: str, table: str,
                                                       expected: str) -> None:
    found = problems(write(tmp_path, main, table))
    assert found == [f"{tmp_path / 'systems.toml'}: system 'sys-a': health: {expected}"]


@pytest.mark.parametrize(("table", "key"), [
    ('health = { path = "x" }', "system[0].health.path"),
    ("health = { interval = -1 }", "system[0].health.interval"),
    ("health = { refresh = 1 }", "system[0].health.refresh"),  # the process's, not a system's
])
def test_bad_system_tables_are_refused(tmp_path: Path, table: str, key: str) -> None:
    found = problems(write(tmp_path, "", table))
    assert len(found) == 1
    assert found[0].startswith(f"{tmp_path / 'systems.toml'}: {key}: ")


def test_the_shipped_defaults_hold_together() -> None:
    section = HealthSection()
    assert section.timeout < section.interval
    config = load_config(REPO / "config" / "roam.toml", env={})
    for system in config.systems:
        rules = rules_for(config.settings.health, system.health)
        assert rules.timeout < rules.interval
