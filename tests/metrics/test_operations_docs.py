"""docs/operations.md and the Grafana dashboard say what the registry holds: every metric
listed, none made up, and every name an alert rule or a panel queries exists."""

from __future__ import annotations

import json
import re
from typing import Any

from prometheus_client import CollectorRegistry

from gateway.metrics.recorder import PrometheusMetrics
from tests.support.gateway import REPO

OPERATIONS = REPO / "docs" / "operations.md"
DASHBOARD = REPO / "docs" / "grafana" / "roam.json"
# What a query may name: ours, and the process metrics prometheus-client adds.
QUERIED = re.compile(r"\b((?:roam|process)_[a-z0-9_]+)\b")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
            "gauge": ("",), "info": ("_info",)}


def exported() -> dict[str, str]:
    """Every sample name a gateway's registry exports, and its family's type."""
    registry = CollectorRegistry()
    PrometheusMetrics(registry=registry)
    return {family.name + suffix: family.type for family in registry.collect()
            for suffix in SUFFIXES.get(family.type, ("",))}


def documented() -> dict[str, str]:
    """The metrics table of docs/operations.md: name → type."""
    rows = re.findall(r"^\| `((?:roam)_[a-z0-9_]+)` \| (\w+) \|", OPERATIONS.read_text("utf-8"),
                      re.MULTILINE)
    return dict(rows)


def alert_rules() -> str:
    text = OPERATIONS.read_text("utf-8")
    blocks: list[str] = re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)
    [rules] = [b for b in blocks if "groups:" in b]
    return rules


def dashboard_queries() -> list[str]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text("utf-8"))
    queries = [t["expr"] for panel in data["panels"] for t in panel.get("targets", ())]
    queries += [v["query"] for v in data["templating"]["list"] if v["type"] == "query"]
    return queries


def test_the_page_lists_every_metric_and_no_other() -> None:
    ours = {name: kind for name, kind in exported().items() if name.startswith("roam_")}
    families = {re.sub(r"_(bucket|count|sum)$", "", n) if k == "histogram" else n: k
                for n, k in ours.items()}
    assert documented() == families


def test_every_alert_rule_queries_metrics_that_exist() -> None:
    rules = alert_rules()
    alerts = re.findall(r"^ {6}- alert: (\w+)$", rules, re.MULTILINE)
    assert len(alerts) == rules.count("expr:") >= 10
    used = set(QUERIED.findall(rules))
    assert used - set(exported()) == set()
    # the rules watch each kind of trouble the issue names
    for name in ("roam_instance_healthy", "roam_proxy_requests_total",
                 "roam_store_errors_total", "roam_login_failures_total",
                 "roam_backchannel_deliveries_total"):
        assert name in used


def test_every_dashboard_query_names_metrics_that_exist() -> None:
    queries = dashboard_queries()
    used = {name for query in queries for name in QUERIED.findall(query)}
    assert used - set(exported()) == set()
    # every metric of the page has a panel
    shown = {re.sub(r"_(bucket|count|sum|total)$", "", name) for name in used}
    listed = {re.sub(r"_total$", "", name) for name in documented()}
    assert listed - shown == set()
