"""``roam routes status``'s table: every instance, why any is out, recent transitions."""

from __future__ import annotations

import time

from gateway.config import HealthRules
from gateway.health import CheckResult, InstanceState, status_table

A, B = "http://127.0.0.1:9101", "http://127.0.0.1:9102"
NOW = time.mktime((2026, 5, 1, 12, 0, 0, 0, 0, -1))


def test_the_table_shows_health_circuit_rotation_and_last_check() -> None:
    up = InstanceState("pair", A)
    down = InstanceState("pair", B).moved(
        "down", "3 health checks failed, the last: connect error", now=NOW - 60,
        cause="active", by="gw1:42:ab")
    drained = InstanceState("solo", A).drain(True, "upgrade", now=NOW - 30, by="cli:ops")
    ok = CheckResult("pair", A, NOW - 2, True, 200, "", 0.012, "gw1:42:ab", 5, 0)
    failed = CheckResult("pair", B, NOW - 1, False, None, "connect error", 0.001,
                         "gw1:42:ab", 0, 4)
    rules = {"pair": HealthRules(), "solo": HealthRules(active=False)}
    text = status_table([(up, ok), (down, failed), (drained, None)], rules,
                        where="the redis store (prefix 'roam:')", now=NOW)
    lines = text.splitlines()
    assert lines[0] == "instance health from the redis store (prefix 'roam:'), " \
        "2026-05-01 12:00:00"
    assert lines[2].split() == ["system", "instance", "health", "circuit", "rotation",
                                "last", "check"]
    assert lines[3].split()[:5] == ["pair", A, "up", "closed", "in"]
    assert "2026-05-01 11:59:58 ok (12 ms, 5 in a row, by gw1:42:ab)" in lines[3]
    assert lines[4].split()[:5] == ["pair", B, "down", "open", "in"]
    assert "failed: connect error (1 ms, 4 in a row" in lines[4]
    assert lines[5].strip() == ("open since 2026-05-01 11:59:00: 3 health checks failed, "
                                "the last: connect error")
    assert lines[6].split() == ["solo", A, "drained", "closed", "out", "(by", "cli:ops)",
                                "checks", "off"]
    assert lines[8] == "recent transitions (newest first):"
    assert lines[9].split()[2:6] == ["solo", A, "up", "→"]
    assert lines[10].endswith("3 health checks failed, the last: connect error (by gw1:42:ab)")


def test_a_quiet_cluster_says_there_were_no_transitions() -> None:
    text = status_table([(InstanceState("pair", A), None)], {"pair": HealthRules()},
                        where="x", now=NOW)
    assert "not checked yet" in text
    assert text.rstrip().endswith("no transitions yet")
